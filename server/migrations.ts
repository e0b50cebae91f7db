/**
 * Versioned schema migrations. Each entry runs once, in order, inside one transaction with the
 * bump of `user_version`; a migration is never edited after it has shipped, only followed.
 *
 * Spec apart from status: `services.spec` is the customer's request as JSON, never rewritten;
 * what the system observed lives in `instances`. A host's allocation is not stored: it is the sum
 * of the resources of the instances placed on it, so it cannot drift from them.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: the walking skeleton.
  `
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
    state          TEXT NOT NULL
                   CHECK (state IN ('pending', 'starting', 'running', 'failed', 'lost')),
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
  );
  `,
  // 2: per-tenant quotas (a tenant without a row gets the server's default).
  `
  CREATE TABLE quotas (
    tenant     TEXT PRIMARY KEY,
    cpu_millis INTEGER NOT NULL CHECK (cpu_millis >= 0),
    memory_mib INTEGER NOT NULL CHECK (memory_mib >= 0),
    instances  INTEGER NOT NULL CHECK (instances >= 0),
    updated_at INTEGER NOT NULL
  );
  `,
  // 3: join tokens with a use count and an optional host binding; every certificate the authority
  // issues to agents, gateways and operators, and its revocation. Tokens made before this were
  // reusable for their whole TTL; from here on they have one use left.
  `
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
  INSERT INTO revocation_revision (id, revision) VALUES (1, 0);
  `,
];
