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

  // ---- join tokens --------------------------------------------------------------------------

  insertJoinToken(t: { id: string; secretHash: string; role: string; expiresAt: number }, now = Date.now()): void {
    this.db
      .prepare(`INSERT INTO join_tokens (id, secret_hash, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`)
      .run(t.id, t.secretHash, t.role, now, t.expiresAt);
  }

  getJoinToken(id: string): { id: string; secretHash: string; role: string; expiresAt: number } | undefined {
    return this.db
      .prepare(`SELECT id, secret_hash AS secretHash, role, expires_at AS expiresAt FROM join_tokens WHERE id = ?`)
      .get(id) as { id: string; secretHash: string; role: string; expiresAt: number } | undefined;
  }
}
