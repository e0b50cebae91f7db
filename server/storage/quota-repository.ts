import type { QuotaLimits } from './records';
import type { Sql } from './sql';

/** Quotas set by operators; a tenant without a row gets the server's default. */
export class QuotaRepository {
  constructor(private readonly sql: Sql) {}

  async get(tenant: string): Promise<QuotaLimits | undefined> {
    return this.sql.get<QuotaLimits>(
      `SELECT cpu_millis AS "cpuMillis", memory_mib AS "memoryMib", instances FROM quotas WHERE tenant = $1`,
      [tenant],
    );
  }

  async set(tenant: string, q: QuotaLimits, now: number): Promise<void> {
    await this.sql.run(
      `INSERT INTO quotas (tenant, cpu_millis, memory_mib, instances, updated_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tenant) DO UPDATE SET cpu_millis = excluded.cpu_millis, memory_mib = excluded.memory_mib,
         instances = excluded.instances, updated_at = excluded.updated_at`,
      [tenant, q.cpuMillis, q.memoryMib, q.instances, now],
    );
  }
}
