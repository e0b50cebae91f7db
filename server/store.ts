/**
 * All of the Pod API's state, behind one module: the rest of the server never sees SQL.
 * Moving to PostgreSQL later is a change of this file's dialect, not of the design.
 *
 * Durability: WAL with synchronous=FULL, so an acknowledged write survives a crash of the process
 * or of the machine. Every multi-row change runs in one transaction: nothing is half-written.
 */
import Database from 'better-sqlite3';
import { MIGRATIONS } from './migrations';

export type InstanceStateName = 'pending' | 'starting' | 'running' | 'failed' | 'lost';
export type HostStateName = 'up' | 'down';

export interface ResourcesRow {
  cpuMillis: number;
  memoryMib: number;
}

export type PlacementPolicyName = 'spread' | 'binpack';

export interface ServiceSpec {
  image: string;
  command: string[];
  replicas: number;
  ha: boolean;
  resources: ResourcesRow;
  placement: PlacementPolicyName;
}

/** A tenant's quota: the most its services may ask for together (replicas × resources). */
export interface QuotaLimits {
  cpuMillis: number;
  memoryMib: number;
  instances: number;
}

export interface ServiceRecord {
  tenant: string;
  environment: string;
  name: string;
  spec: ServiceSpec;
  createdAt: number;
}

export interface HostRecord {
  id: string;
  pod: string;
  provider: string;
  labels: Record<string, string>;
  capacity: ResourcesRow;
  apparmor: number;
  state: HostStateName;
  lastHeartbeat: number;
  joinedAt: number;
}

export interface InstanceRecord {
  id: string;
  tenant: string;
  environment: string;
  service: string;
  haGroup: string;
  resources: ResourcesRow;
  host: string | null;
  state: InstanceStateName;
  containerId: string;
  message: string;
  excludedHosts: string[];
  createdAt: number;
  updatedAt: number;
}

export interface EventRecord {
  sequence: number;
  time: number;
  tenant: string;
  type: string;
  environment: string;
  service: string;
  instance: string;
  host: string;
  message: string;
}

export type NewEvent = Omit<EventRecord, 'sequence' | 'time' | 'environment' | 'service' | 'instance' | 'host' | 'message'> &
  Partial<Pick<EventRecord, 'environment' | 'service' | 'instance' | 'host' | 'message'>>;

interface InstanceRow {
  id: string;
  tenant: string;
  environment: string;
  service: string;
  ha_group: string;
  cpu_millis: number;
  memory_mib: number;
  host: string | null;
  state: InstanceStateName;
  container_id: string;
  message: string;
  excluded_hosts: string;
  created_at: number;
  updated_at: number;
}

interface HostRow {
  id: string;
  pod: string;
  provider: string;
  labels: string;
  cpu_millis: number;
  memory_mib: number;
  apparmor: number;
  state: HostStateName;
  last_heartbeat: number;
  joined_at: number;
}

function instanceFromRow(r: InstanceRow): InstanceRecord {
  return {
    id: r.id,
    tenant: r.tenant,
    environment: r.environment,
    service: r.service,
    haGroup: r.ha_group,
    resources: { cpuMillis: r.cpu_millis, memoryMib: r.memory_mib },
    host: r.host,
    state: r.state,
    containerId: r.container_id,
    message: r.message,
    excludedHosts: JSON.parse(r.excluded_hosts) as string[],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function hostFromRow(r: HostRow): HostRecord {
  return {
    id: r.id,
    pod: r.pod,
    provider: r.provider,
    labels: JSON.parse(r.labels) as Record<string, string>,
    capacity: { cpuMillis: r.cpu_millis, memoryMib: r.memory_mib },
    apparmor: r.apparmor,
    state: r.state,
    lastHeartbeat: r.last_heartbeat,
    joinedAt: r.joined_at,
  };
}

interface ServiceRow {
  tenant: string;
  environment: string;
  name: string;
  spec: string;
  created_at: number;
}

function serviceFromRow(r: ServiceRow): ServiceRecord {
  // Specs stored before placement policies existed are spread, the default.
  const spec = { placement: 'spread', ...(JSON.parse(r.spec) as Partial<ServiceSpec>) } as ServiceSpec;
  return { tenant: r.tenant, environment: r.environment, name: r.name, spec, createdAt: r.created_at };
}

/** The states in which an instance holds resources on its host. */
const PLACED = `('starting', 'running')`;

export class Store {
  readonly db: Database.Database;
  /** Called after each event is appended, so that watchers hear of it. */
  onEvent: (e: EventRecord) => void = () => {};

  private constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
  }

  /** Opens (creating if needed) the database at `path` and brings its schema up to date. */
  static open(path: string): Store {
    return new Store(path);
  }

  close(): void {
    this.db.close();
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /** Runs `fn` in one transaction; nested calls join the outer one. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  // ---- events -------------------------------------------------------------------------------

  appendEvent(e: NewEvent, now = Date.now()): EventRecord {
    const rec: EventRecord = {
      sequence: 0,
      time: now,
      environment: '',
      service: '',
      instance: '',
      host: '',
      message: '',
      ...e,
    };
    const info = this.db
      .prepare(
        `INSERT INTO events (time, tenant, type, environment, service, instance, host, message)
         VALUES (@time, @tenant, @type, @environment, @service, @instance, @host, @message)`,
      )
      .run(rec);
    rec.sequence = Number(info.lastInsertRowid);
    this.onEvent(rec);
    return rec;
  }

  /** Events after `afterSequence`, oldest first; `tenant` null means every tenant's (operators). */
  listEvents(tenant: string | null, environment: string, afterSequence: number, limit = 1000): EventRecord[] {
    return this.db
      .prepare(
        `SELECT * FROM events WHERE sequence > ? AND (? IS NULL OR tenant = ?)
           AND (? = '' OR environment = ?) ORDER BY sequence LIMIT ?`,
      )
      .all(afterSequence, tenant, tenant, environment, environment, limit) as EventRecord[];
  }

  // ---- environments -------------------------------------------------------------------------

  environmentExists(tenant: string, name: string): boolean {
    return this.db.prepare(`SELECT 1 FROM environments WHERE tenant = ? AND name = ?`).get(tenant, name) !== undefined;
  }

  /** Inserts an environment; false when the tenant already has one of that name. */
  insertEnvironment(tenant: string, name: string, now = Date.now()): boolean {
    const info = this.db
      .prepare(`INSERT OR IGNORE INTO environments (tenant, name, created_at) VALUES (?, ?, ?)`)
      .run(tenant, name, now);
    return info.changes === 1;
  }

  listEnvironments(tenant: string): Array<{ tenant: string; name: string; createdAt: number }> {
    return this.db
      .prepare(`SELECT tenant, name, created_at AS createdAt FROM environments WHERE tenant = ? ORDER BY name`)
      .all(tenant) as Array<{ tenant: string; name: string; createdAt: number }>;
  }

  // ---- services -----------------------------------------------------------------------------

  /** Inserts a service; false when the environment already has one of that name. */
  insertService(rec: ServiceRecord): boolean {
    const info = this.db
      .prepare(
        `INSERT OR IGNORE INTO services (tenant, environment, name, spec, created_at) VALUES (?, ?, ?, ?, ?)`,
      )
      .run(rec.tenant, rec.environment, rec.name, JSON.stringify(rec.spec), rec.createdAt);
    return info.changes === 1;
  }

  getService(tenant: string, environment: string, name: string): ServiceRecord | undefined {
    const r = this.db
      .prepare(`SELECT * FROM services WHERE tenant = ? AND environment = ? AND name = ?`)
      .get(tenant, environment, name) as ServiceRow | undefined;
    return r && serviceFromRow(r);
  }

  listServices(tenant: string, environment: string): ServiceRecord[] {
    const rows = this.db
      .prepare(`SELECT * FROM services WHERE tenant = ? AND environment = ? ORDER BY name`)
      .all(tenant, environment) as ServiceRow[];
    return rows.map(serviceFromRow);
  }

  /** Deletes a service and its instance rows; returns the instances that were placed on a host. */
  deleteService(tenant: string, environment: string, name: string): InstanceRecord[] | undefined {
    return this.tx(() => {
      const instances = this.listInstancesOfService(tenant, environment, name);
      this.db.prepare(`DELETE FROM instances WHERE tenant = ? AND environment = ? AND service = ?`).run(tenant, environment, name);
      const info = this.db
        .prepare(`DELETE FROM services WHERE tenant = ? AND environment = ? AND name = ?`)
        .run(tenant, environment, name);
      if (info.changes === 0) return undefined;
      return instances.filter((i) => i.host !== null);
    });
  }

  // ---- instances ----------------------------------------------------------------------------

  insertInstance(rec: Omit<InstanceRecord, 'host' | 'state' | 'containerId' | 'excludedHosts' | 'updatedAt'>): void {
    this.db
      .prepare(
        `INSERT INTO instances (id, tenant, environment, service, ha_group, cpu_millis, memory_mib, host, state,
           message, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 'pending', ?, ?, ?)`,
      )
      .run(
        rec.id,
        rec.tenant,
        rec.environment,
        rec.service,
        rec.haGroup,
        rec.resources.cpuMillis,
        rec.resources.memoryMib,
        rec.message,
        rec.createdAt,
        rec.createdAt,
      );
  }

  getInstance(id: string): InstanceRecord | undefined {
    const r = this.db.prepare(`SELECT * FROM instances WHERE id = ?`).get(id) as InstanceRow | undefined;
    return r && instanceFromRow(r);
  }

  listInstancesOfService(tenant: string, environment: string, service: string): InstanceRecord[] {
    return (
      this.db
        .prepare(`SELECT * FROM instances WHERE tenant = ? AND environment = ? AND service = ? ORDER BY created_at, id`)
        .all(tenant, environment, service) as InstanceRow[]
    ).map(instanceFromRow);
  }

  listInstancesOnHost(host: string): InstanceRecord[] {
    return (this.db.prepare(`SELECT * FROM instances WHERE host = ? ORDER BY id`).all(host) as InstanceRow[]).map(
      instanceFromRow,
    );
  }

  /** Instances holding resources on a host (starting or running), every host. */
  listPlacedInstances(): InstanceRecord[] {
    return (this.db.prepare(`SELECT * FROM instances WHERE state IN ${PLACED}`).all() as InstanceRow[]).map(
      instanceFromRow,
    );
  }

  /** Pending instances (lots), oldest first; the auctioneer takes its fair batch from them. */
  listPendingInstances(limit = -1): InstanceRecord[] {
    return (
      this.db
        .prepare(`SELECT * FROM instances WHERE state = 'pending' ORDER BY created_at, id LIMIT ?`)
        .all(limit) as InstanceRow[]
    ).map(instanceFromRow);
  }

  /** Hosts where instances of the service failed after `since` (the auction avoids them). */
  failedHostsOfService(tenant: string, environment: string, service: string, since: number): string[] {
    return (
      this.db
        .prepare(
          `SELECT DISTINCT host FROM instances WHERE tenant = ? AND environment = ? AND service = ?
             AND state = 'failed' AND host IS NOT NULL AND updated_at >= ?`,
        )
        .all(tenant, environment, service, since) as Array<{ host: string }>
    ).map((r) => r.host);
  }

  /**
   * Services that have fewer live instances (pending, starting or running) than replicas, in one
   * query: the orchestrator asks every tick, and most ticks nothing is missing.
   */
  listUnderReplicated(): ServiceRecord[] {
    const rows = this.db
      .prepare(
        `SELECT s.* FROM services s
         LEFT JOIN instances i ON i.tenant = s.tenant AND i.environment = s.environment AND i.service = s.name
           AND i.state IN ('pending', 'starting', 'running')
         GROUP BY s.tenant, s.environment, s.name
         HAVING count(i.id) < json_extract(s.spec, '$.replicas')`,
      )
      .all() as ServiceRow[];
    return rows.map(serviceFromRow);
  }

  countInstancesByState(): Record<string, number> {
    const rows = this.db.prepare(`SELECT state, count(*) AS n FROM instances GROUP BY state`).all() as Array<{ state: string; n: number }>;
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  countPending(): number {
    return (this.db.prepare(`SELECT count(*) AS n FROM instances WHERE state = 'pending'`).get() as { n: number }).n;
  }

  /**
   * Reserves a pending instance for a host (the award). Only a still-pending instance can be
   * reserved, so a lot is never awarded twice even if two rounds raced.
   */
  reserveInstance(id: string, host: string, now = Date.now()): boolean {
    const info = this.db
      .prepare(
        `UPDATE instances SET host = ?, state = 'starting', message = '', updated_at = ?
         WHERE id = ? AND state = 'pending'`,
      )
      .run(host, now, id);
    return info.changes === 1;
  }

  /** Sends an instance back to the auction, optionally excluding a host that refused it. */
  requeueInstance(id: string, excludeHost: string | null, message: string, now = Date.now()): boolean {
    return this.tx(() => {
      const inst = this.getInstance(id);
      if (!inst) return false;
      const excluded = new Set(inst.excludedHosts);
      if (excludeHost) excluded.add(excludeHost);
      this.db
        .prepare(
          `UPDATE instances SET host = NULL, state = 'pending', container_id = '', message = ?, excluded_hosts = ?,
             updated_at = ? WHERE id = ?`,
        )
        .run(message, JSON.stringify([...excluded]), now, id);
      return true;
    });
  }

  /** Records what an agent observed. Only the instance's own host may change it. */
  updateInstanceStatus(
    id: string,
    host: string,
    state: InstanceStateName,
    containerId: string,
    message: string,
    now = Date.now(),
  ): boolean {
    const info = this.db
      .prepare(
        `UPDATE instances SET state = ?, container_id = CASE WHEN ? = '' THEN container_id ELSE ? END, message = ?,
           updated_at = ? WHERE id = ? AND host = ? AND state IN ('starting', 'running', 'failed')`,
      )
      .run(state, containerId, containerId, message, now, id, host);
    return info.changes === 1;
  }

  /** Sets the auction's explanation on pending instances (only where it changed). */
  setPendingMessage(id: string, message: string): void {
    this.db.prepare(`UPDATE instances SET message = ? WHERE id = ? AND state = 'pending' AND message <> ?`).run(message, id, message);
  }

  /** Forgets failed instances last updated before `time`. */
  deleteFailedBefore(time: number): void {
    this.db.prepare(`DELETE FROM instances WHERE state = 'failed' AND updated_at < ?`).run(time);
  }

  deleteInstance(id: string): void {
    this.db.prepare(`DELETE FROM instances WHERE id = ?`).run(id);
  }

  clearExclusions(host: string): void {
    this.db
      .prepare(
        `UPDATE instances SET excluded_hosts = (
           SELECT coalesce(json_group_array(value), '[]') FROM json_each(instances.excluded_hosts) WHERE value <> ?)
         WHERE state = 'pending' AND EXISTS (SELECT 1 FROM json_each(instances.excluded_hosts) WHERE value = ?)`,
      )
      .run(host, host);
  }

  // ---- hosts --------------------------------------------------------------------------------

  upsertHost(h: Omit<HostRecord, 'joinedAt'>, now = Date.now()): void {
    this.db
      .prepare(
        `INSERT INTO hosts (id, pod, provider, labels, cpu_millis, memory_mib, apparmor, state, last_heartbeat, joined_at)
         VALUES (@id, @pod, @provider, @labels, @cpu, @mem, @apparmor, @state, @lastHeartbeat, @now)
         ON CONFLICT (id) DO UPDATE SET pod = excluded.pod, provider = excluded.provider, labels = excluded.labels,
           cpu_millis = excluded.cpu_millis, memory_mib = excluded.memory_mib, apparmor = excluded.apparmor,
           state = excluded.state, last_heartbeat = excluded.last_heartbeat`,
      )
      .run({
        id: h.id,
        pod: h.pod,
        provider: h.provider,
        labels: JSON.stringify(h.labels),
        cpu: h.capacity.cpuMillis,
        mem: h.capacity.memoryMib,
        apparmor: h.apparmor,
        state: h.state,
        lastHeartbeat: h.lastHeartbeat,
        now,
      });
  }

  getHost(id: string): HostRecord | undefined {
    const r = this.db.prepare(`SELECT * FROM hosts WHERE id = ?`).get(id) as HostRow | undefined;
    return r && hostFromRow(r);
  }

  listHosts(): HostRecord[] {
    return (this.db.prepare(`SELECT * FROM hosts ORDER BY id`).all() as HostRow[]).map(hostFromRow);
  }

  /**
   * Marks a host down and its placed instances lost, in one transaction. Returns the instances
   * that were lost, or undefined when the host was not up.
   */
  markHostDown(id: string, now = Date.now(), lastSeen?: number): InstanceRecord[] | undefined {
    return this.tx(() => {
      const info = this.db
        .prepare(`UPDATE hosts SET state = 'down', last_heartbeat = coalesce(?, last_heartbeat) WHERE id = ? AND state = 'up'`)
        .run(lastSeen ?? null, id);
      if (info.changes === 0) return undefined;
      const lost = this.listInstancesOnHost(id).filter((i) => i.state === 'starting' || i.state === 'running');
      this.db
        .prepare(`UPDATE instances SET state = 'lost', message = 'host down', updated_at = ? WHERE host = ? AND state IN ${PLACED}`)
        .run(now, id);
      return lost;
    });
  }

  // ---- quotas -------------------------------------------------------------------------------

  /** The quota set for a tenant, or undefined when the server's default applies. */
  getQuota(tenant: string): QuotaLimits | undefined {
    return this.db
      .prepare(`SELECT cpu_millis AS cpuMillis, memory_mib AS memoryMib, instances FROM quotas WHERE tenant = ?`)
      .get(tenant) as QuotaLimits | undefined;
  }

  setQuota(tenant: string, q: QuotaLimits, now = Date.now()): void {
    this.db
      .prepare(
        `INSERT INTO quotas (tenant, cpu_millis, memory_mib, instances, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (tenant) DO UPDATE SET cpu_millis = excluded.cpu_millis, memory_mib = excluded.memory_mib,
           instances = excluded.instances, updated_at = excluded.updated_at`,
      )
      .run(tenant, q.cpuMillis, q.memoryMib, q.instances, now);
  }

  /** What a tenant's services ask for together: replicas × resources, summed. */
  tenantUsage(tenant: string): QuotaLimits {
    const rows = this.db.prepare(`SELECT spec FROM services WHERE tenant = ?`).all(tenant) as Array<{ spec: string }>;
    const used: QuotaLimits = { cpuMillis: 0, memoryMib: 0, instances: 0 };
    for (const { spec } of rows) {
      const s = JSON.parse(spec) as ServiceSpec;
      used.instances += s.replicas;
      used.cpuMillis += s.replicas * s.resources.cpuMillis;
      used.memoryMib += s.replicas * s.resources.memoryMib;
    }
    return used;
  }

  // ---- join tokens and certificates ----------------------------------------------------------
  //
  // A join token has a number of uses and an expiry; it may be bound to a host id, and may be
  // allowed to replace a host that still holds a valid certificate. Every certificate the
  // authority issues to agents, gateways and operators is recorded here (the server's own is not:
  // it is re-issued at each start and never presented as a client). A revocation sets revoked_at
  // and stamps the row with the next value of one monotonic revision, so that a running Pod API
  // learns of revocations made by another process (the CLI) by reading a single row.
  //
  // The writers that may race another process use IMMEDIATE transactions: the write lock is taken
  // at BEGIN, so a read-then-write cannot be overtaken (and WAL cannot fail its upgrade).

  /** Runs `fn` in one IMMEDIATE transaction (the write lock is held from the start); nested calls join the outer one. */
  txImmediate<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  insertJoinToken(
    t: { id: string; secretHash: string; role: string; expiresAt: number; uses?: number; hostId?: string; replace?: boolean },
    now = Date.now(),
  ): void {
    this.db
      .prepare(
        `INSERT INTO join_tokens (id, secret_hash, role, created_at, expires_at, uses, used, host_id, replace_host)
         VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`,
      )
      .run(t.id, t.secretHash, t.role, now, t.expiresAt, t.uses ?? 1, t.hostId ?? '', t.replace ? 1 : 0);
  }

  getJoinToken(id: string): JoinTokenRecord | undefined {
    const r = this.db.prepare(`SELECT * FROM join_tokens WHERE id = ?`).get(id) as JoinTokenRow | undefined;
    return r && joinTokenFromRow(r);
  }

  /**
   * The one write of a Join, all or nothing: consumes a use of the token (a conditional UPDATE:
   * only while a use is left and the token has not expired at `now`); refuses when `cert.name`
   * already holds a valid certificate of `cert.role`, unless the token was made to replace, in
   * which case those certificates are revoked; records `cert`. Two Joins racing for the last use
   * or for one host id are serialized by the write lock: exactly one gets through.
   */
  recordJoin(tokenId: string, cert: NewCertificate, now = Date.now()): JoinOutcome {
    try {
      return this.txImmediate((): JoinOutcome => {
        const consumed = this.db
          .prepare(`UPDATE join_tokens SET used = used + 1 WHERE id = ? AND used < uses AND expires_at > ?`)
          .run(tokenId, now);
        if (consumed.changes !== 1) return { ok: false, reason: 'token' };
        const token = this.getJoinToken(tokenId)!;
        const holders = this.listValidCertificates(cert.role, cert.name, now);
        if (holders.length > 0 && !token.replace) throw new Rollback({ ok: false, reason: 'taken', holders });
        const replaced = holders.length > 0 ? this.revokeCertificates({ role: cert.role, name: cert.name }, 'replaced by a new join', now) : [];
        this.insertCertificate(cert, now);
        return { ok: true, replaced };
      });
    } catch (err) {
      if (err instanceof Rollback) return err.outcome;
      throw err;
    }
  }

  /**
   * Records a renewal's certificate, unless the certificate it renews (`previousSerial`) has been
   * revoked meanwhile: checked and written under one write lock, so a renewal racing a revocation
   * cannot leave a valid certificate behind. False when refused. A previous certificate the store
   * has no row for (issued before certificates were recorded) does not stop the renewal.
   */
  recordRenewal(previousSerial: string, cert: NewCertificate, now = Date.now()): boolean {
    return this.txImmediate(() => {
      const previous = this.getCertificate(previousSerial);
      if (previous && previous.revokedAt !== null) return false;
      this.insertCertificate(cert, now);
      return true;
    });
  }

  /** Records a certificate issued outside Join and Renew (`podium certs issue`). */
  recordCertificate(cert: NewCertificate, now = Date.now()): void {
    this.insertCertificate(cert, now);
  }

  getCertificate(serial: string): CertificateRecord | undefined {
    const r = this.db.prepare(`SELECT * FROM certificates WHERE serial = ?`).get(serial) as CertificateRow | undefined;
    return r && certificateFromRow(r);
  }

  /** Every recorded certificate of one identity, oldest first. */
  listCertificates(role: string, name: string): CertificateRecord[] {
    return (
      this.db.prepare(`SELECT * FROM certificates WHERE role = ? AND name = ? ORDER BY issued_at, serial`).all(role, name) as CertificateRow[]
    ).map(certificateFromRow);
  }

  /** Certificates of one identity that are neither revoked nor expired at `now`. */
  listValidCertificates(role: string, name: string, now = Date.now()): CertificateRecord[] {
    return (
      this.db
        .prepare(`SELECT * FROM certificates WHERE role = ? AND name = ? AND revoked_at IS NULL AND not_after > ? ORDER BY issued_at, serial`)
        .all(role, name, now) as CertificateRow[]
    ).map(certificateFromRow);
  }

  /**
   * Revokes one certificate by serial, or every unrevoked certificate of one identity, and moves
   * the revocation revision on by one (once, however many rows). Returns the certificates this
   * call revoked; already revoked ones are left as they were (their first reason stays).
   */
  revokeCertificates(match: { serial: string } | { role: string; name: string }, reason: string, now = Date.now()): CertificateRecord[] {
    return this.txImmediate(() => {
      const targets = (
        'serial' in match
          ? this.db.prepare(`SELECT * FROM certificates WHERE serial = ? AND revoked_at IS NULL`).all(match.serial)
          : this.db.prepare(`SELECT * FROM certificates WHERE role = ? AND name = ? AND revoked_at IS NULL`).all(match.role, match.name)
      ) as CertificateRow[];
      if (targets.length === 0) return [];
      this.db.prepare(`UPDATE revocation_revision SET revision = revision + 1 WHERE id = 1`).run();
      const revision = this.revocationRevision();
      const revoke = this.db.prepare(
        `UPDATE certificates SET revoked_at = ?, revoke_reason = ?, revocation = ? WHERE serial = ? AND revoked_at IS NULL`,
      );
      for (const t of targets) revoke.run(now, reason, revision, t.serial);
      return targets.map((t) => ({ ...certificateFromRow(t), revokedAt: now, revokeReason: reason }));
    });
  }

  /** Uses up every join token bound to `hostId` (a revoked host is not re-joined by an old token). Returns how many. */
  cancelJoinTokensFor(hostId: string): number {
    return this.db.prepare(`UPDATE join_tokens SET used = uses WHERE host_id = ? AND used < uses`).run(hostId).changes;
  }

  /** The revocation revision: it grows by one with every revoking write, and never goes back. */
  revocationRevision(): number {
    return (this.db.prepare(`SELECT revision FROM revocation_revision WHERE id = 1`).get() as { revision: number }).revision;
  }

  /** Certificates revoked at a revision after `revision` that are still unexpired at `now`. */
  listRevokedAfter(revision: number, now = Date.now()): RevokedCertificate[] {
    return this.db
      .prepare(
        `SELECT serial, role, name, not_after AS notAfter, revocation AS revision FROM certificates
         WHERE revocation > ? AND not_after > ? ORDER BY revocation, serial`,
      )
      .all(revision, now) as RevokedCertificate[];
  }

  private insertCertificate(c: NewCertificate, now: number): void {
    this.db
      .prepare(
        `INSERT INTO certificates (serial, role, name, not_before, not_after, issued_at, issued_by)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(c.serial, c.role, c.name, c.notBefore, c.notAfter, now, c.issuedBy);
  }
}

export interface JoinTokenRecord {
  id: string;
  secretHash: string;
  role: string;
  expiresAt: number;
  /** How many Joins the token allows, and how many it has had. */
  uses: number;
  used: number;
  /** The host id a Join with this token gets; empty when the server picks one. */
  hostId: string;
  /** A Join with this token may take over a host id that still holds a valid certificate. */
  replace: boolean;
}

export interface CertificateRecord {
  /** Canonical serial (certs' canonicalSerial): lower-case hex, no leading zeros. */
  serial: string;
  role: string;
  name: string;
  notBefore: number;
  notAfter: number;
  issuedAt: number;
  /** How it came to be: "join token <id>", "renewal of <serial>", "podium certs issue". */
  issuedBy: string;
  revokedAt: number | null;
  revokeReason: string;
}

export type NewCertificate = Pick<CertificateRecord, 'serial' | 'role' | 'name' | 'notBefore' | 'notAfter' | 'issuedBy'>;

export interface RevokedCertificate {
  serial: string;
  role: string;
  name: string;
  notAfter: number;
  /** The revocation revision that revoked it. */
  revision: number;
}

/** What a Join's write came to: the certificate recorded (and those it replaced), or why not. */
export type JoinOutcome =
  | { ok: true; replaced: CertificateRecord[] }
  | { ok: false; reason: 'token' }
  | { ok: false; reason: 'taken'; holders: CertificateRecord[] };

/** Thrown inside a transaction to undo it while still answering with an outcome. */
class Rollback extends Error {
  constructor(readonly outcome: JoinOutcome) {
    super('rollback');
  }
}

interface JoinTokenRow {
  id: string;
  secret_hash: string;
  role: string;
  created_at: number;
  expires_at: number;
  uses: number;
  used: number;
  host_id: string;
  replace_host: number;
}

function joinTokenFromRow(r: JoinTokenRow): JoinTokenRecord {
  return {
    id: r.id,
    secretHash: r.secret_hash,
    role: r.role,
    expiresAt: r.expires_at,
    uses: r.uses,
    used: r.used,
    hostId: r.host_id,
    replace: r.replace_host === 1,
  };
}

interface CertificateRow {
  serial: string;
  role: string;
  name: string;
  not_before: number;
  not_after: number;
  issued_at: number;
  issued_by: string;
  revoked_at: number | null;
  revoke_reason: string;
}

function certificateFromRow(r: CertificateRow): CertificateRecord {
  return {
    serial: r.serial,
    role: r.role,
    name: r.name,
    notBefore: r.not_before,
    notAfter: r.not_after,
    issuedAt: r.issued_at,
    issuedBy: r.issued_by,
    revokedAt: r.revoked_at,
    revokeReason: r.revoke_reason,
  };
}
