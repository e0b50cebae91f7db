import type { JoinTokenRecord, NewJoinToken } from './records';
import type { Sql } from './sql';

interface JoinTokenRow {
  id: string;
  secret_hash: string;
  role: string;
  expires_at: number;
  uses: number;
  used: number;
  host_id: string;
  replace_host: number;
}

function fromRow(r: JoinTokenRow): JoinTokenRecord {
  return {
    id: r.id,
    secretHash: r.secret_hash,
    role: r.role,
    expiresAt: Number(r.expires_at),
    uses: r.uses,
    used: r.used,
    hostId: r.host_id,
    replace: r.replace_host === 1,
  };
}

/**
 * Join tokens: stored by id with the hash of their secret, never the secret. A token has a number
 * of uses and an expiry, may be bound to a host id, and may be allowed to replace a host that
 * still holds a valid certificate.
 */
export class JoinTokenRepository {
  constructor(private readonly sql: Sql) {}

  async insert(t: NewJoinToken, now: number): Promise<void> {
    await this.sql.run(
      `INSERT INTO join_tokens (id, secret_hash, role, created_at, expires_at, uses, used, host_id, replace_host)
       VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)`,
      [t.id, t.secretHash, t.role, now, t.expiresAt, t.uses ?? 1, t.hostId ?? '', t.replace ? 1 : 0],
    );
  }

  async get(id: string): Promise<JoinTokenRecord | undefined> {
    const r = await this.sql.get<JoinTokenRow>(`SELECT * FROM join_tokens WHERE id = $1`, [id]);
    return r && fromRow(r);
  }

  /**
   * Uses up one use of the token: a conditional update, true only while a use is left and the
   * token has not expired at `now`. Two Joins racing for the last use: exactly one gets it.
   */
  async consume(id: string, now: number): Promise<boolean> {
    const { changes } = await this.sql.run(`UPDATE join_tokens SET used = used + 1 WHERE id = $1 AND used < uses AND expires_at > $2`, [id, now]);
    return changes === 1;
  }

  /** Uses up every token bound to `hostId` (a revoked host is not re-joined by an old token). Returns how many. */
  async cancelFor(hostId: string): Promise<number> {
    const { changes } = await this.sql.run(`UPDATE join_tokens SET used = uses WHERE host_id = $1 AND used < uses`, [hostId]);
    return changes;
  }
}
