/**
 * Versioned schema migrations, one list per dialect, the same versions in both: after version k
 * each dialect has the same tables, columns and constraints (test/storage/schema.test.ts compares
 * them). A migration is never edited after it has shipped, only followed. Applied versions are
 * recorded in schema_migrations, inside the transaction that applies them; on PostgreSQL an
 * advisory lock keeps two Pod API processes starting at once from migrating twice.
 *
 * Spec apart from status: `services.spec` is the customer's request as JSON, never rewritten; the
 * columns `replicas`, `cpu_millis` and `memory_mib` are copied from it when it is written, so that
 * counts and sums are plain SQL in both dialects. What the system observed lives in `instances`.
 * A host's allocation is not stored: it is the sum of its placed instances.
 *
 * Times are milliseconds since the epoch (BIGINT on PostgreSQL), booleans 0/1, JSON as text.
 */
import type { Dialect } from './sql';

export interface Migration {
  version: number;
  description: string;
  sqlite: string;
  postgres: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'the walking skeleton',
    sqlite: `
      CREATE TABLE hosts (
        id             TEXT PRIMARY KEY,
        pod            TEXT NOT NULL,
        provider       TEXT NOT NULL,
        labels         TEXT NOT NULL DEFAULT '{}',
        cpu_millis     INTEGER NOT NULL,
        memory_mib     INTEGER NOT NULL,
        apparmor       INTEGER NOT NULL,
        state          TEXT NOT NULL CHECK (state IN ('up', 'down')),
        last_heartbeat INTEGER NOT NULL,
        joined_at      INTEGER NOT NULL
      );
      CREATE TABLE environments (
        tenant     TEXT NOT NULL,
        name       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, name)
      );
      CREATE TABLE services (
        tenant      TEXT NOT NULL,
        environment TEXT NOT NULL,
        name        TEXT NOT NULL,
        spec        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (tenant, environment, name),
        FOREIGN KEY (tenant, environment) REFERENCES environments (tenant, name)
      );
      CREATE TABLE instances (
        id             TEXT PRIMARY KEY,
        tenant         TEXT NOT NULL,
        environment    TEXT NOT NULL,
        service        TEXT NOT NULL,
        ha_group       TEXT NOT NULL,
        cpu_millis     INTEGER NOT NULL,
        memory_mib     INTEGER NOT NULL,
        host           TEXT REFERENCES hosts (id),
        state          TEXT NOT NULL CHECK (state IN ('pending', 'starting', 'running', 'failed', 'lost')),
        container_id   TEXT NOT NULL DEFAULT '',
        message        TEXT NOT NULL DEFAULT '',
        excluded_hosts TEXT NOT NULL DEFAULT '[]',
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        CHECK ((state = 'pending') = (host IS NULL))
      );
      CREATE INDEX instances_by_service ON instances (tenant, environment, service);
      CREATE INDEX instances_by_host ON instances (host);
      CREATE INDEX instances_pending ON instances (state) WHERE state = 'pending';
      CREATE TABLE events (
        sequence    INTEGER PRIMARY KEY AUTOINCREMENT,
        time        INTEGER NOT NULL,
        tenant      TEXT NOT NULL,
        type        TEXT NOT NULL,
        environment TEXT NOT NULL DEFAULT '',
        service     TEXT NOT NULL DEFAULT '',
        instance    TEXT NOT NULL DEFAULT '',
        host        TEXT NOT NULL DEFAULT '',
        message     TEXT NOT NULL DEFAULT ''
      );
      CREATE TABLE join_tokens (
        id          TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        role        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
      );`,
    postgres: `
      CREATE TABLE hosts (
        id             TEXT PRIMARY KEY,
        pod            TEXT NOT NULL,
        provider       TEXT NOT NULL,
        labels         TEXT NOT NULL DEFAULT '{}',
        cpu_millis     INTEGER NOT NULL,
        memory_mib     INTEGER NOT NULL,
        apparmor       INTEGER NOT NULL,
        state          TEXT NOT NULL CHECK (state IN ('up', 'down')),
        last_heartbeat BIGINT NOT NULL,
        joined_at      BIGINT NOT NULL
      );
      CREATE TABLE environments (
        tenant     TEXT NOT NULL,
        name       TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (tenant, name)
      );
      CREATE TABLE services (
        tenant      TEXT NOT NULL,
        environment TEXT NOT NULL,
        name        TEXT NOT NULL,
        spec        TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        PRIMARY KEY (tenant, environment, name),
        FOREIGN KEY (tenant, environment) REFERENCES environments (tenant, name)
      );
      CREATE TABLE instances (
        id             TEXT PRIMARY KEY,
        tenant         TEXT NOT NULL,
        environment    TEXT NOT NULL,
        service        TEXT NOT NULL,
        ha_group       TEXT NOT NULL,
        cpu_millis     INTEGER NOT NULL,
        memory_mib     INTEGER NOT NULL,
        host           TEXT REFERENCES hosts (id),
        state          TEXT NOT NULL CHECK (state IN ('pending', 'starting', 'running', 'failed', 'lost')),
        container_id   TEXT NOT NULL DEFAULT '',
        message        TEXT NOT NULL DEFAULT '',
        excluded_hosts TEXT NOT NULL DEFAULT '[]',
        created_at     BIGINT NOT NULL,
        updated_at     BIGINT NOT NULL,
        CHECK ((state = 'pending') = (host IS NULL))
      );
      CREATE INDEX instances_by_service ON instances (tenant, environment, service);
      CREATE INDEX instances_by_host ON instances (host);
      CREATE INDEX instances_pending ON instances (state) WHERE state = 'pending';
      CREATE TABLE events (
        sequence    BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        time        BIGINT NOT NULL,
        tenant      TEXT NOT NULL,
        type        TEXT NOT NULL,
        environment TEXT NOT NULL DEFAULT '',
        service     TEXT NOT NULL DEFAULT '',
        instance    TEXT NOT NULL DEFAULT '',
        host        TEXT NOT NULL DEFAULT '',
        message     TEXT NOT NULL DEFAULT ''
      );
      CREATE TABLE join_tokens (
        id          TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        role        TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL
      );`,
  },
  {
    version: 2,
    description: 'per-tenant quotas (a tenant without a row gets the server default)',
    sqlite: `
      CREATE TABLE quotas (
        tenant     TEXT PRIMARY KEY,
        cpu_millis INTEGER NOT NULL CHECK (cpu_millis >= 0),
        memory_mib INTEGER NOT NULL CHECK (memory_mib >= 0),
        instances  INTEGER NOT NULL CHECK (instances >= 0),
        updated_at INTEGER NOT NULL
      );`,
    postgres: `
      CREATE TABLE quotas (
        tenant     TEXT PRIMARY KEY,
        cpu_millis INTEGER NOT NULL CHECK (cpu_millis >= 0),
        memory_mib INTEGER NOT NULL CHECK (memory_mib >= 0),
        instances  INTEGER NOT NULL CHECK (instances >= 0),
        updated_at BIGINT NOT NULL
      );`,
  },
  {
    version: 3,
    description: 'join tokens with uses and a host binding; every issued certificate; revocations by revision',
    // Tokens made before this were reusable for their whole TTL; from here on they have one use left.
    // A revocation stamps its rows with the next value of one revision, so that every Pod API
    // process learns of revocations made by any other (or by the CLI) by reading one row.
    sqlite: `
      ALTER TABLE join_tokens ADD COLUMN uses INTEGER NOT NULL DEFAULT 1;
      ALTER TABLE join_tokens ADD COLUMN used INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE join_tokens ADD COLUMN host_id TEXT NOT NULL DEFAULT '';
      ALTER TABLE join_tokens ADD COLUMN replace_host INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE certificates (
        serial        TEXT PRIMARY KEY,
        role          TEXT NOT NULL CHECK (role IN ('agent', 'gateway', 'operator')),
        name          TEXT NOT NULL,
        not_before    INTEGER NOT NULL,
        not_after     INTEGER NOT NULL,
        issued_at     INTEGER NOT NULL,
        issued_by     TEXT NOT NULL,
        revoked_at    INTEGER,
        revoke_reason TEXT NOT NULL DEFAULT '',
        revocation    INTEGER,
        CHECK ((revoked_at IS NULL) = (revocation IS NULL))
      );
      CREATE INDEX certificates_by_name ON certificates (role, name);
      CREATE INDEX certificates_by_revocation ON certificates (revocation) WHERE revocation IS NOT NULL;
      CREATE TABLE revocation_revision (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        revision INTEGER NOT NULL
      );
      INSERT INTO revocation_revision (id, revision) VALUES (1, 0);`,
    postgres: `
      ALTER TABLE join_tokens ADD COLUMN uses INTEGER NOT NULL DEFAULT 1;
      ALTER TABLE join_tokens ADD COLUMN used INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE join_tokens ADD COLUMN host_id TEXT NOT NULL DEFAULT '';
      ALTER TABLE join_tokens ADD COLUMN replace_host INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE certificates (
        serial        TEXT PRIMARY KEY,
        role          TEXT NOT NULL CHECK (role IN ('agent', 'gateway', 'operator')),
        name          TEXT NOT NULL,
        not_before    BIGINT NOT NULL,
        not_after     BIGINT NOT NULL,
        issued_at     BIGINT NOT NULL,
        issued_by     TEXT NOT NULL,
        revoked_at    BIGINT,
        revoke_reason TEXT NOT NULL DEFAULT '',
        revocation    BIGINT,
        CHECK ((revoked_at IS NULL) = (revocation IS NULL))
      );
      CREATE INDEX certificates_by_name ON certificates (role, name);
      CREATE INDEX certificates_by_revocation ON certificates (revocation) WHERE revocation IS NOT NULL;
      CREATE TABLE revocation_revision (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        revision BIGINT NOT NULL
      );
      INSERT INTO revocation_revision (id, revision) VALUES (1, 0);`,
  },
  {
    version: 4,
    description: 'counts as columns, the authority in the database, the leader lease',
    // services: replicas and resources copied from the spec, so that under-replication and quota
    // usage are portable SQL. authority: the CA certificate, and its key encrypted with a key file
    // each Pod API process is given, so that a standby signs exactly as the leader did.
    // leader_lease: one row; the epoch fences every write that matters.
    sqlite: `
      ALTER TABLE services ADD COLUMN replicas INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE services ADD COLUMN cpu_millis INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE services ADD COLUMN memory_mib INTEGER NOT NULL DEFAULT 0;
      UPDATE services SET replicas = json_extract(spec, '$.replicas'), cpu_millis = json_extract(spec, '$.resources.cpuMillis'),
        memory_mib = json_extract(spec, '$.resources.memoryMib');
      CREATE TABLE authority (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        trust_domain  TEXT NOT NULL,
        cert_pem      TEXT NOT NULL,
        key_encrypted TEXT NOT NULL,
        created_at    INTEGER NOT NULL
      );
      CREATE TABLE leader_lease (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        epoch      INTEGER NOT NULL,
        holder     TEXT NOT NULL,
        address    TEXT NOT NULL,
        renewed_at INTEGER NOT NULL
      );`,
    postgres: `
      ALTER TABLE services ADD COLUMN replicas INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE services ADD COLUMN cpu_millis INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE services ADD COLUMN memory_mib INTEGER NOT NULL DEFAULT 0;
      UPDATE services SET replicas = (spec::json->>'replicas')::int, cpu_millis = (spec::json->'resources'->>'cpuMillis')::int,
        memory_mib = (spec::json->'resources'->>'memoryMib')::int;
      CREATE TABLE authority (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        trust_domain  TEXT NOT NULL,
        cert_pem      TEXT NOT NULL,
        key_encrypted TEXT NOT NULL,
        created_at    BIGINT NOT NULL
      );
      CREATE TABLE leader_lease (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        epoch      BIGINT NOT NULL,
        holder     TEXT NOT NULL,
        address    TEXT NOT NULL,
        renewed_at BIGINT NOT NULL
      );`,
  },
  {
    version: 5,
    description: "the gateway's API tokens",
    // Only the SHA-256 of a token is kept. In the same schema as the rest, so that gateways on one
    // PostgreSQL share their tokens (a token works through any of them, a revocation at once
    // everywhere); a gateway's own SQLite file carries the other tables empty.
    sqlite: `
      CREATE TABLE api_tokens (
        hash       TEXT PRIMARY KEY,
        tenant     TEXT NOT NULL,
        name       TEXT NOT NULL UNIQUE,
        role       TEXT NOT NULL CHECK (role IN ('customer', 'admin')),
        created_at INTEGER NOT NULL
      );`,
    postgres: `
      CREATE TABLE api_tokens (
        hash       TEXT PRIMARY KEY,
        tenant     TEXT NOT NULL,
        name       TEXT NOT NULL UNIQUE,
        role       TEXT NOT NULL CHECK (role IN ('customer', 'admin')),
        created_at BIGINT NOT NULL
      );`,
  },
  {
    version: 6,
    description: "each tenant's quota usage, kept as a row",
    // What a tenant's services ask for together (replicas × resources), kept up to date by the
    // same unit of work that inserts or deletes a service, so that a create checks its quota in
    // one row's read rather than a sum over every service of the tenant. Filled here from the
    // services that exist.
    sqlite: `
      CREATE TABLE tenant_usage (
        tenant     TEXT PRIMARY KEY,
        instances  INTEGER NOT NULL,
        cpu_millis INTEGER NOT NULL,
        memory_mib INTEGER NOT NULL
      );
      INSERT INTO tenant_usage (tenant, instances, cpu_millis, memory_mib)
        SELECT tenant, sum(replicas), sum(replicas * cpu_millis), sum(replicas * memory_mib) FROM services GROUP BY tenant;`,
    postgres: `
      CREATE TABLE tenant_usage (
        tenant     TEXT PRIMARY KEY,
        instances  BIGINT NOT NULL,
        cpu_millis BIGINT NOT NULL,
        memory_mib BIGINT NOT NULL
      );
      INSERT INTO tenant_usage (tenant, instances, cpu_millis, memory_mib)
        SELECT tenant, sum(replicas), sum(replicas::bigint * cpu_millis), sum(replicas::bigint * memory_mib) FROM services GROUP BY tenant;`,
  },
  {
    version: 7,
    description: 'published hostnames, each one service\'s in the whole platform',
    // A name published by one service (Service.expose) cannot be another's, of any tenant: the
    // primary key decides between two creates racing for it.
    sqlite: `
      CREATE TABLE published_hostnames (
        hostname    TEXT PRIMARY KEY,
        tenant      TEXT NOT NULL,
        environment TEXT NOT NULL,
        service     TEXT NOT NULL
      );
      CREATE INDEX published_hostnames_service ON published_hostnames (tenant, environment, service);`,
    postgres: `
      CREATE TABLE published_hostnames (
        hostname    TEXT PRIMARY KEY,
        tenant      TEXT NOT NULL,
        environment TEXT NOT NULL,
        service     TEXT NOT NULL
      );
      CREATE INDEX published_hostnames_service ON published_hostnames (tenant, environment, service);`,
  },
];

export function migrationText(m: Migration, dialect: Dialect): string {
  return dialect === 'sqlite' ? m.sqlite : m.postgres;
}
