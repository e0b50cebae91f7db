import type { EnvironmentRecord } from './records';
import type { Sql } from './sql';

/** A tenant's environments; a name is unique within its tenant. */
export class EnvironmentRepository {
  constructor(private readonly sql: Sql) {}

  async exists(tenant: string, name: string): Promise<boolean> {
    return (await this.sql.get(`SELECT 1 AS one FROM environments WHERE tenant = $1 AND name = $2`, [tenant, name])) !== undefined;
  }

  /** Inserts an environment; false when the tenant already has one of that name. */
  async insert(tenant: string, name: string, now: number): Promise<boolean> {
    const { changes } = await this.sql.run(
      `INSERT INTO environments (tenant, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
      [tenant, name, now],
    );
    return changes === 1;
  }

  async list(tenant: string): Promise<EnvironmentRecord[]> {
    return this.sql.all<EnvironmentRecord>(
      `SELECT tenant, name, created_at AS "createdAt" FROM environments WHERE tenant = $1 ORDER BY name`,
      [tenant],
    );
  }
}
