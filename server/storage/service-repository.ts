import type { ExposeSpec, QuotaLimits, ServiceRecord, ServiceSpec } from './records';
import type { Sql } from './sql';

interface ServiceRow {
  tenant: string;
  environment: string;
  name: string;
  spec: string;
  created_at: number;
}

function fromRow(r: ServiceRow): ServiceRecord {
  // Specs stored before placement policies, ports, capabilities, allow rules and confinement
  // options existed are spread, the default, with none of the others; and read-only-root, as a
  // service that does not say otherwise is now (so such a service gets it when next placed).
  const spec = {
    placement: 'spread',
    ports: [],
    capabilities: [],
    allowFrom: [],
    readOnlyRoot: true,
    writablePaths: [],
    ...(JSON.parse(r.spec) as Partial<ServiceSpec>),
  } as ServiceSpec;
  return { tenant: r.tenant, environment: r.environment, name: r.name, spec, createdAt: r.created_at };
}

const COLUMNS = 'tenant, environment, name, spec, created_at';

/** Services: the customer's spec, as asked. */
export class ServiceRepository {
  constructor(private readonly sql: Sql) {}

  /** Inserts a service and adds what it asks for to its tenant's usage; false when its environment already has one of that name. */
  async insert(rec: ServiceRecord): Promise<boolean> {
    const s = rec.spec;
    const { changes } = await this.sql.run(
      `INSERT INTO services (tenant, environment, name, spec, created_at, replicas, cpu_millis, memory_mib)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
      [rec.tenant, rec.environment, rec.name, JSON.stringify(s), rec.createdAt, s.replicas, s.resources.cpuMillis, s.resources.memoryMib],
    );
    if (changes !== 1) return false;
    await this.addUsage(rec.tenant, s.replicas, s.replicas * s.resources.cpuMillis, s.replicas * s.resources.memoryMib);
    if (s.expose) {
      await this.sql.run(`INSERT INTO published_hostnames (hostname, tenant, environment, service) VALUES ($1, $2, $3, $4)`, [s.expose.hostname, rec.tenant, rec.environment, rec.name]);
    }
    return true;
  }

  /** The service that publishes `hostname`, of whichever tenant, if any. */
  async publisherOf(hostname: string): Promise<{ tenant: string; environment: string; service: string } | undefined> {
    return this.sql.get<{ tenant: string; environment: string; service: string }>(`SELECT tenant, environment, service FROM published_hostnames WHERE hostname = $1`, [hostname]);
  }

  async get(tenant: string, environment: string, name: string): Promise<ServiceRecord | undefined> {
    const r = await this.sql.get<ServiceRow>(
      `SELECT ${COLUMNS} FROM services WHERE tenant = $1 AND environment = $2 AND name = $3`,
      [tenant, environment, name],
    );
    return r && fromRow(r);
  }

  async list(tenant: string, environment: string): Promise<ServiceRecord[]> {
    const rows = await this.sql.all<ServiceRow>(
      `SELECT ${COLUMNS} FROM services WHERE tenant = $1 AND environment = $2 ORDER BY name`,
      [tenant, environment],
    );
    return rows.map(fromRow);
  }

  /** Every service with a published endpoint, of every tenant. */
  async listPublished(): Promise<ServiceRecord[]> {
    const rows = await this.sql.all<ServiceRow>(
      `SELECT s.tenant, s.environment, s.name, s.spec, s.created_at FROM services s
       JOIN published_hostnames p ON p.tenant = s.tenant AND p.environment = s.environment AND p.service = s.name
       ORDER BY s.tenant, s.environment, s.name`,
    );
    return rows.map(fromRow);
  }

  /** Replaces the published endpoint of a stored service (its certificate renewed); false when absent. */
  async updateExpose(tenant: string, environment: string, name: string, expose: ExposeSpec): Promise<boolean> {
    const row = await this.sql.get<ServiceRow>(`SELECT ${COLUMNS} FROM services WHERE tenant = $1 AND environment = $2 AND name = $3`, [tenant, environment, name]);
    if (!row) return false;
    const spec = { ...fromRow(row).spec, expose };
    await this.sql.run(`UPDATE services SET spec = $4 WHERE tenant = $1 AND environment = $2 AND name = $3`, [tenant, environment, name, JSON.stringify(spec)]);
    return true;
  }

  /** Every service of the tenant, of all its environments. */
  async listOfTenant(tenant: string): Promise<ServiceRecord[]> {
    const rows = await this.sql.all<ServiceRow>(`SELECT ${COLUMNS} FROM services WHERE tenant = $1 ORDER BY environment, name`, [tenant]);
    return rows.map(fromRow);
  }

  /**
   * Deletes the service row and takes what it asked for off its tenant's usage (its instances are
   * the caller's to delete first); false when absent.
   */
  async delete(tenant: string, environment: string, name: string): Promise<boolean> {
    const gone = await this.sql.get<{ replicas: number; cpu_millis: number; memory_mib: number }>(
      `DELETE FROM services WHERE tenant = $1 AND environment = $2 AND name = $3 RETURNING replicas, cpu_millis, memory_mib`,
      [tenant, environment, name],
    );
    if (!gone) return false;
    await this.addUsage(tenant, -gone.replicas, -gone.replicas * gone.cpu_millis, -gone.replicas * gone.memory_mib);
    await this.sql.run(`DELETE FROM published_hostnames WHERE tenant = $1 AND environment = $2 AND service = $3`, [tenant, environment, name]);
    return true;
  }

  /**
   * Services with fewer live instances (pending, starting or running) than replicas, in one query:
   * the orchestrator asks every tick, and most ticks nothing is missing.
   */
  async listUnderReplicated(): Promise<ServiceRecord[]> {
    const rows = await this.sql.all<ServiceRow>(
      `SELECT s.tenant, s.environment, s.name, s.spec, s.created_at FROM services s
       LEFT JOIN instances i ON i.tenant = s.tenant AND i.environment = s.environment AND i.service = s.name
         AND i.state IN ('pending', 'starting', 'running')
       GROUP BY s.tenant, s.environment, s.name
       HAVING count(i.id) < s.replicas`,
    );
    return rows.map(fromRow);
  }

  /** What a tenant's services ask for together: replicas × resources, summed (kept in tenant_usage). */
  async tenantUsage(tenant: string): Promise<QuotaLimits> {
    const r = await this.sql.get<{ instances: number; cpu_millis: number; memory_mib: number }>(
      `SELECT instances, cpu_millis, memory_mib FROM tenant_usage WHERE tenant = $1`,
      [tenant],
    );
    return { instances: Number(r?.instances ?? 0), cpuMillis: Number(r?.cpu_millis ?? 0), memoryMib: Number(r?.memory_mib ?? 0) };
  }

  private async addUsage(tenant: string, instances: number, cpuMillis: number, memoryMib: number): Promise<void> {
    await this.sql.run(
      `INSERT INTO tenant_usage (tenant, instances, cpu_millis, memory_mib) VALUES ($1, $2, $3, $4)
       ON CONFLICT (tenant) DO UPDATE SET instances = tenant_usage.instances + excluded.instances,
         cpu_millis = tenant_usage.cpu_millis + excluded.cpu_millis, memory_mib = tenant_usage.memory_mib + excluded.memory_mib`,
      [tenant, instances, cpuMillis, memoryMib],
    );
  }
}
