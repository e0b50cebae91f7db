import type { InstanceRecord, InstanceStateName, NewInstance, PendingKey } from './records';
import { inLists, paddedSlices, type Sql } from './sql';

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

function fromRow(r: InstanceRow): InstanceRecord {
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

/** The states in which an instance holds resources on its host. */
const PLACED = `('starting', 'running')`;

/** What a host's starting and running instances hold, and their HA groups. */
export interface HostAllocation {
  cpuMillis: number;
  memoryMib: number;
  haGroups: Set<string>;
}

/**
 * Instances: the replicas of services as the system observed them. A pending instance is a lot
 * for the auction; starting and running ones hold resources on their host.
 */
export class InstanceRepository {
  constructor(private readonly sql: Sql) {}

  async insert(rec: NewInstance): Promise<void> {
    await this.sql.run(
      `INSERT INTO instances (id, tenant, environment, service, ha_group, cpu_millis, memory_mib, host, state, message, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 'pending', $8, $9, $9)`,
      [rec.id, rec.tenant, rec.environment, rec.service, rec.haGroup, rec.resources.cpuMillis, rec.resources.memoryMib, rec.message, rec.createdAt],
    );
  }

  async get(id: string): Promise<InstanceRecord | undefined> {
    const r = await this.sql.get<InstanceRow>(`SELECT * FROM instances WHERE id = $1`, [id]);
    return r && fromRow(r);
  }

  async listOfService(tenant: string, environment: string, service: string): Promise<InstanceRecord[]> {
    return (
      await this.sql.all<InstanceRow>(
        `SELECT * FROM instances WHERE tenant = $1 AND environment = $2 AND service = $3 ORDER BY created_at, id`,
        [tenant, environment, service],
      )
    ).map(fromRow);
  }

  /** Every instance of an environment's services (the registry's snapshot reads it). */
  async listOfEnvironment(tenant: string, environment: string): Promise<InstanceRecord[]> {
    return (
      await this.sql.all<InstanceRow>(`SELECT * FROM instances WHERE tenant = $1 AND environment = $2 ORDER BY service, created_at, id`, [tenant, environment])
    ).map(fromRow);
  }

  async listOnHost(host: string): Promise<InstanceRecord[]> {
    return (await this.sql.all<InstanceRow>(`SELECT * FROM instances WHERE host = $1 ORDER BY id`, [host])).map(fromRow);
  }

  /** Instances holding resources on a host (starting or running), every host. */
  async listPlaced(): Promise<InstanceRecord[]> {
    return (await this.sql.all<InstanceRow>(`SELECT * FROM instances WHERE state IN ${PLACED}`)).map(fromRow);
  }

  /**
   * What is placed on each host: the resources its starting and running instances hold, and their
   * HA groups. Summed by the database (the auction needs the totals, not the rows; mapping every
   * placed row was a fifth of a busy Pod API's time).
   */
  async allocationByHost(): Promise<Map<string, HostAllocation>> {
    return this.allocation('', []);
  }

  /** allocationByHost for the hosts of `ids` only (a host with nothing placed is absent). */
  async allocationOfHosts(ids: readonly string[]): Promise<Map<string, HostAllocation>> {
    const out = new Map<string, HostAllocation>();
    for (const { placeholders, params } of inLists(ids)) {
      for (const [host, a] of await this.allocation(`AND host IN ${placeholders}`, params)) out.set(host, a);
    }
    return out;
  }

  private async allocation(where: string, params: readonly string[]): Promise<Map<string, HostAllocation>> {
    const out = new Map<string, HostAllocation>();
    const sums = await this.sql.all<{ host: string; cpu: number; mem: number }>(
      `SELECT host, SUM(cpu_millis) AS cpu, SUM(memory_mib) AS mem FROM instances WHERE state IN ${PLACED} ${where} GROUP BY host`,
      params,
    );
    for (const r of sums) out.set(r.host, { cpuMillis: Number(r.cpu), memoryMib: Number(r.mem), haGroups: new Set() });
    const groups = await this.sql.all<{ host: string; ha_group: string }>(
      `SELECT DISTINCT host, ha_group FROM instances WHERE state IN ${PLACED} AND ha_group <> '' ${where}`,
      params,
    );
    for (const g of groups) out.get(g.host)?.haGroups.add(g.ha_group);
    return out;
  }

  /** What the fair queue needs of every pending instance, oldest first: no row is mapped whole. */
  async listPendingKeys(): Promise<PendingKey[]> {
    const rows = await this.sql.all<{ id: string; tenant: string; environment: string; service: string; ha_group: string }>(
      `SELECT id, tenant, environment, service, ha_group FROM instances WHERE state = 'pending' ORDER BY created_at, id`,
    );
    return rows.map((r) => ({ id: r.id, tenant: r.tenant, environment: r.environment, service: r.service, haGroup: r.ha_group }));
  }

  /**
   * The instances of `ids` that are still pending, whole, in no particular order (the others are
   * absent).
   * Looked up by id alone, the state checked here: with `state = 'pending'` in the query, SQLite
   * (without statistics) chose the partial index of pending rows and scanned the whole backlog
   * for each round's lots, 5 % of a busy Pod API's time.
   */
  async pendingOfIds(ids: readonly string[]): Promise<InstanceRecord[]> {
    const out: InstanceRecord[] = [];
    for (const { placeholders, params } of inLists(ids)) {
      for (const r of await this.sql.all<InstanceRow>(`SELECT * FROM instances WHERE id IN ${placeholders}`, params)) {
        if (r.state === 'pending') out.push(fromRow(r));
      }
    }
    return out;
  }

  /** Hosts where instances of the service failed at or after `since` (the auction avoids them). */
  async failedHostsOfService(tenant: string, environment: string, service: string, since: number): Promise<string[]> {
    const rows = await this.sql.all<{ host: string }>(
      `SELECT DISTINCT host FROM instances WHERE tenant = $1 AND environment = $2 AND service = $3
         AND state = 'failed' AND host IS NOT NULL AND updated_at >= $4`,
      [tenant, environment, service, since],
    );
    return rows.map((r) => r.host);
  }

  async countByState(): Promise<Record<string, number>> {
    const rows = await this.sql.all<{ state: string; n: number }>(`SELECT state, count(*) AS n FROM instances GROUP BY state`);
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }

  /**
   * Reserves a pending instance for a host (the award). Only a still-pending instance can be
   * reserved, so a lot is never awarded twice even if two rounds (or two leaders) raced.
   */
  async reserve(id: string, host: string, now: number): Promise<boolean> {
    const { changes } = await this.sql.run(
      `UPDATE instances SET host = $1, state = 'starting', message = '', updated_at = $2 WHERE id = $3 AND state = 'pending'`,
      [host, now, id],
    );
    return changes === 1;
  }

  /**
   * reserve for many awards at once (a round's): one statement per 256 (paddedSlices: a repeated
   * pair joins the same row to the same host again), and the ids of those reserved (the others
   * were no longer pending).
   */
  async reserveAll(awards: ReadonlyArray<{ id: string; host: string }>, now: number): Promise<Set<string>> {
    const reserved = new Set<string>();
    for (const padded of paddedSlices(awards)) {
      const values = padded.map((_, k) => `($${2 * k + 2}, $${2 * k + 3})`).join(', ');
      const rows = await this.sql.all<{ id: string }>(
        `UPDATE instances SET host = v.column2, state = 'starting', message = '', updated_at = $1
           FROM (VALUES ${values}) AS v WHERE instances.id = v.column1 AND instances.state = 'pending'
           RETURNING instances.id`,
        [now, ...padded.flatMap((a) => [a.id, a.host])],
      );
      for (const r of rows) reserved.add(r.id);
    }
    return reserved;
  }

  /** Sends an instance back to the auction, optionally excluding a host that refused it. */
  async requeue(id: string, excludeHost: string | null, message: string, now: number): Promise<boolean> {
    const inst = await this.get(id);
    if (!inst) return false;
    const excluded = new Set(inst.excludedHosts);
    if (excludeHost) excluded.add(excludeHost);
    await this.sql.run(
      `UPDATE instances SET host = NULL, state = 'pending', container_id = '', message = $1, excluded_hosts = $2, updated_at = $3 WHERE id = $4`,
      [message, JSON.stringify([...excluded]), now, id],
    );
    return true;
  }

  /** Records what an agent observed. Only the instance's own host may change it. */
  async updateStatus(id: string, host: string, state: InstanceStateName, containerId: string, message: string, now: number): Promise<boolean> {
    const { changes } = await this.sql.run(
      `UPDATE instances SET state = $1, container_id = CASE WHEN $2 = '' THEN container_id ELSE $2 END, message = $3, updated_at = $4
       WHERE id = $5 AND host = $6 AND state IN ('starting', 'running', 'failed')`,
      [state, containerId, message, now, id, host],
    );
    return changes === 1;
  }

  /** Sets the auction's explanation on a pending instance (only where it changed). */
  async setPendingMessage(id: string, message: string): Promise<void> {
    await this.sql.run(`UPDATE instances SET message = $1 WHERE id = $2 AND state = 'pending' AND message <> $1`, [message, id]);
  }

  /** Marks the placed instances of a host lost; returns them as they were. */
  async markLostOnHost(host: string, now: number): Promise<InstanceRecord[]> {
    const lost = (await this.listOnHost(host)).filter((i) => i.state === 'starting' || i.state === 'running');
    if (lost.length > 0) {
      await this.sql.run(`UPDATE instances SET state = 'lost', message = 'host down', updated_at = $1 WHERE host = $2 AND state IN ${PLACED}`, [now, host]);
    }
    return lost;
  }

  /** Forgets failed instances last updated before `time`. */
  async deleteFailedBefore(time: number): Promise<void> {
    await this.sql.run(`DELETE FROM instances WHERE state = 'failed' AND updated_at < $1`, [time]);
  }

  async delete(id: string): Promise<void> {
    await this.sql.run(`DELETE FROM instances WHERE id = $1`, [id]);
  }

  /** Deletes every instance of a service; returns those that were on a host. */
  async deleteOfService(tenant: string, environment: string, service: string): Promise<InstanceRecord[]> {
    const all = await this.listOfService(tenant, environment, service);
    await this.sql.run(`DELETE FROM instances WHERE tenant = $1 AND environment = $2 AND service = $3`, [tenant, environment, service]);
    return all.filter((i) => i.host !== null);
  }

  /** A host that comes back may be asked again: it leaves the refusal lists of pending lots. */
  async clearExclusions(host: string): Promise<void> {
    const rows = await this.sql.all<{ id: string; excluded_hosts: string }>(
      `SELECT id, excluded_hosts FROM instances WHERE state = 'pending' AND excluded_hosts LIKE $1`,
      [`%${JSON.stringify(host)}%`],
    );
    for (const r of rows) {
      const left = (JSON.parse(r.excluded_hosts) as string[]).filter((h) => h !== host);
      await this.sql.run(`UPDATE instances SET excluded_hosts = $1 WHERE id = $2`, [JSON.stringify(left), r.id]);
    }
  }
}
