/**
 * The replicated dialect: PostgreSQL through node-pg, for several Pod API processes on one
 * database (one leader, standbys). Every connection carries application_name `podium:<process>`,
 * so that a new leader can end every backend of a stalled one (leadership.ts).
 *
 * Statements are prepared once per connection (named by a hash of their text). BIGINT and NUMERIC
 * (counts, sums, sequences, times in ms) are read as JavaScript numbers: every value we store is
 * far below 2^53. Serialization failures and deadlocks are retried by the storage module, not here.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Driver, DriverTransaction, Isolation, LockSession } from './driver';
import type { Sql } from './sql';

const INT8 = 20;
const NUMERIC = 1700;

export interface PostgresOptions {
  url: string;
  /** Names this process in pg_stat_activity (application_name). */
  processName: string;
  maxConnections?: number;
}

export class PostgresDriver implements Driver {
  readonly dialect = 'postgres' as const;
  readonly pool: pg.Pool;
  private readonly types = {
    getTypeParser: (oid: number, format?: string) => {
      if (oid === INT8 || oid === NUMERIC) return (v: string) => Number(v);
      return pg.types.getTypeParser(oid, format as 'text');
    },
  };
  private readonly listeners: pg.Client[] = [];

  constructor(readonly opts: PostgresOptions) {
    this.pool = new pg.Pool({
      connectionString: opts.url,
      application_name: `podium:${opts.processName}`,
      max: opts.maxConnections ?? 10,
      types: this.types,
      // A statement waiting on a lock held by a stalled process must not wait forever.
      statement_timeout: 30_000,
    });
    // An idle client that dies (the server restarted, a backend was terminated) is dropped from
    // the pool; the next checkout opens a new one.
    this.pool.on('error', () => undefined);
  }

  private sqlOf(client: pg.PoolClient | pg.Pool): Sql {
    const query = async (text: string, params: readonly unknown[] = []) =>
      client.query({ name: statementName(text), text, values: params.map(bindable) as unknown[] });
    return {
      all: async <R>(text: string, params?: readonly unknown[]) => (await query(text, params)).rows as R[],
      get: async <R>(text: string, params?: readonly unknown[]) => (await query(text, params)).rows[0] as R | undefined,
      run: async (text: string, params?: readonly unknown[]) => ({ changes: (await query(text, params)).rowCount ?? 0 }),
    };
  }

  async transaction<T>(fn: (tx: DriverTransaction) => Promise<T>, opts: { isolation?: Isolation } = {}): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    // A backend ended under a checked-out client (a new leader ending a stalled one's) makes the
    // client emit 'error' besides failing its query: the query's rejection is what we act on.
    const onError = () => {
      broken = true;
    };
    client.on('error', onError);
    try {
      await client.query(`BEGIN ISOLATION LEVEL ${opts.isolation === 'serializable' ? 'SERIALIZABLE' : 'READ COMMITTED'}`);
      const sql = this.sqlOf(client);
      const result = await fn({
        sql,
        lock: async (key) => {
          await sql.run('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [key]);
        },
        notify: async (channel) => {
          await sql.run('SELECT pg_notify($1, $2)', [channel, '']);
        },
      });
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return fn(this.sqlOf(this.pool));
  }

  /** Runs a script (migrations) on one connection. */


  async lockSession(key: string): Promise<LockSession> {
    const client = new pg.Client({ connectionString: this.opts.url, application_name: `podium:${this.opts.processName}`, types: this.types });
    let lost = false;
    let held = false;
    client.on('error', () => {
      lost = true;
      held = false;
    });
    client.on('end', () => {
      lost = true;
      held = false;
    });
    await client.connect();
    return {
      get lost() {
        return lost;
      },
      tryLock: async () => {
        if (lost) return false;
        if (held) return true;
        const r = await client.query('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [key]);
        held = r.rows[0].ok === true;
        return held;
      },
      terminate: async (holder) => {
        const r = await client.query(
          `SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`,
          [`podium:${holder}`],
        );
        return Number(r.rows[0].n);
      },
      close: async () => {
        lost = true;
        await client.end().catch(() => undefined);
      },
    };
  }

  async listen(channel: string, onNotify: () => void): Promise<() => Promise<void>> {
    let stopped = false;
    let client: pg.Client | null = null;
    // A dedicated connection (LISTEN holds it); reopened when it breaks, and the caller is woken
    // then too, since notifications sent while it was down are lost.
    const open = async (): Promise<void> => {
      if (stopped) return;
      const c = new pg.Client({ connectionString: this.opts.url, application_name: `podium:${this.opts.processName}`, types: this.types });
      c.on('notification', (n) => n.channel === channel && onNotify());
      c.on('error', () => {
        if (client === c) client = null;
        setTimeout(() => void open().catch(() => undefined), 500);
      });
      await c.connect();
      await c.query(`LISTEN ${quoteIdent(channel)}`);
      client = c;
      this.listeners.push(c);
      onNotify();
    };
    await open();
    return async () => {
      stopped = true;
      await client?.end().catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    for (const l of this.listeners) await l.end().catch(() => undefined);
    await this.pool.end();
  }
}

function statementName(text: string): string {
  return `p${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
}

function bindable(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v === undefined ? null : v;
}

function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a channel name: ${name}`);
  return name;
}
