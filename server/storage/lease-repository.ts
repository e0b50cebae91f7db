import type { Dialect, Sql } from './sql';
import { FencedError } from './sql';

export interface LeaseRecord {
  epoch: number;
  /** The process that holds (or last held) it: podium:<holder> is its application_name. */
  holder: string;
  /** Where agents reach the holder. */
  address: string;
  /** When the holder last renewed it, by the database's clock (ms). */
  renewedAt: number;
  /** The database's clock now (ms), read with the row. */
  now: number;
}

/**
 * The leader lease: one row. Its epoch grows by one with every change of leader and fences every
 * write that matters: a unit of work that awards, places or marks hosts down first checks, under a
 * share lock on the row, that the epoch is still the one its leader took (fence). Times come from
 * the database's clock on PostgreSQL (the one clock every Pod API process shares); SQLite has one
 * process, and its clock is that process's.
 */
export class LeaseRepository {
  constructor(
    private readonly sql: Sql,
    private readonly dialect: Dialect,
    private readonly clock: () => number,
  ) {}

  /**
   * The expression for "now" in a statement whose other parameters are `params`: the database's
   * clock on PostgreSQL; on SQLite this process's clock, as one more parameter.
   */
  private now(params: unknown[]): { now: string; params: unknown[] } {
    if (this.dialect === 'postgres') return { now: `(extract(epoch from clock_timestamp()) * 1000)::bigint`, params };
    return { now: `$${params.length + 1}`, params: [...params, this.clock()] };
  }

  async get(): Promise<LeaseRecord | undefined> {
    const t = this.now([]);
    const r = await this.sql.get<{ epoch: number; holder: string; address: string; renewed_at: number; now: number }>(
      `SELECT epoch, holder, address, renewed_at, ${t.now} AS now FROM leader_lease WHERE id = 1`,
      t.params,
    );
    return r && { epoch: Number(r.epoch), holder: r.holder, address: r.address, renewedAt: Number(r.renewed_at), now: Number(r.now) };
  }

  /**
   * Takes the lease if its epoch is still `seenEpoch` (0: there is no lease yet): the next epoch,
   * held by `holder`. Returns the new epoch, or undefined when someone else changed it first.
   */
  async claim(holder: string, address: string, seenEpoch: number): Promise<number | undefined> {
    if (seenEpoch === 0) {
      const t = this.now([holder, address]);
      const r = await this.sql.get<{ epoch: number }>(
        `INSERT INTO leader_lease (id, epoch, holder, address, renewed_at) VALUES (1, 1, $1, $2, ${t.now})
         ON CONFLICT DO NOTHING RETURNING epoch`,
        t.params,
      );
      return r ? Number(r.epoch) : undefined;
    }
    const t = this.now([holder, address, seenEpoch]);
    const r = await this.sql.get<{ epoch: number }>(
      `UPDATE leader_lease SET epoch = epoch + 1, holder = $1, address = $2, renewed_at = ${t.now}
       WHERE id = 1 AND epoch = $3 RETURNING epoch`,
      t.params,
    );
    return r ? Number(r.epoch) : undefined;
  }

  /** Renews the lease held at `epoch` by `holder`; false when it is no longer theirs. */
  async renew(holder: string, epoch: number): Promise<boolean> {
    const t = this.now([epoch, holder]);
    const { changes } = await this.sql.run(`UPDATE leader_lease SET renewed_at = ${t.now} WHERE id = 1 AND epoch = $1 AND holder = $2`, t.params);
    return changes === 1;
  }

  /** Gives up the lease held at `epoch` (a clean shutdown): it is lapsed at once for whoever looks next. */
  async release(holder: string, epoch: number): Promise<boolean> {
    const { changes } = await this.sql.run(`UPDATE leader_lease SET renewed_at = 0 WHERE id = 1 AND epoch = $1 AND holder = $2`, [epoch, holder]);
    return changes === 1;
  }

  /**
   * Throws FencedError unless the lease is still at `epoch`. On PostgreSQL the row is share-locked
   * until the unit of work ends, so no takeover can commit between this check and the unit's
   * commit; a takeover already committed makes the check fail.
   */
  async fence(epoch: number): Promise<void> {
    const r = await this.sql.get<{ epoch: number }>(
      `SELECT epoch FROM leader_lease WHERE id = 1${this.dialect === 'postgres' ? ' FOR SHARE' : ''}`,
    );
    if (!r || Number(r.epoch) !== epoch) {
      throw new FencedError(`the leader lease is at epoch ${r ? r.epoch : 'none'}, not ${epoch}: this process no longer leads`);
    }
  }
}
