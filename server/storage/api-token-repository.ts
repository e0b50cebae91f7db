import type { ApiTokenRecord } from './records';
import type { Sql } from './sql';

interface ApiTokenRow {
  hash: string;
  tenant: string;
  name: string;
  role: string;
  created_at: number;
}

function fromRow(r: ApiTokenRow): ApiTokenRecord {
  return { hash: r.hash, tenant: r.tenant, name: r.name, role: r.role, createdAt: Number(r.created_at) };
}

/** The gateway's API tokens, by the hash of the token; names are unique. */
export class ApiTokenRepository {
  constructor(private readonly sql: Sql) {}

  /** Inserts the token; false (nothing written) when its name is taken. */
  async insert(t: ApiTokenRecord): Promise<boolean> {
    const { changes } = await this.sql.run(
      `INSERT INTO api_tokens (hash, tenant, name, role, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING`,
      [t.hash, t.tenant, t.name, t.role, t.createdAt],
    );
    return changes === 1;
  }

  async byHash(hash: string): Promise<ApiTokenRecord | undefined> {
    const r = await this.sql.get<ApiTokenRow>(`SELECT * FROM api_tokens WHERE hash = $1`, [hash]);
    return r && fromRow(r);
  }

  /** Deletes the token of that name; false if there was none. */
  async deleteByName(name: string): Promise<boolean> {
    return (await this.sql.run(`DELETE FROM api_tokens WHERE name = $1`, [name])).changes > 0;
  }

  /** Every token, oldest first. */
  async list(): Promise<ApiTokenRecord[]> {
    return (await this.sql.all<ApiTokenRow>(`SELECT * FROM api_tokens ORDER BY created_at, name`)).map(fromRow);
  }
}
