/**
 * The embedded dialect: one better-sqlite3 connection in WAL mode with synchronous=FULL (an
 * acknowledged write survives a crash of the process or the machine).
 *
 * better-sqlite3 is synchronous and a unit of work is async (it may await between statements), so
 * every unit of work and every read takes its turn on one queue: two transactions can never
 * interleave on the connection, and a read never sees another unit's uncommitted rows. Writers
 * start with BEGIN IMMEDIATE, taking SQLite's write lock at once, so a unit never fails halfway for
 * a lock another process (the CLI) holds; the busy timeout waits for it instead. Statements are
 * prepared once per text and reused.
 */
import Database from 'better-sqlite3';
import { chmodSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { Driver, DriverTransaction } from './driver';
import { argumentsInOrder, positional, type Sql } from './sql';

/**
 * One connection per database file per process, shared: two connections to one file in one
 * process would deadlock, because a unit of work holds the write lock across its awaits and the
 * other connection's BEGIN (synchronous in better-sqlite3) would block the only thread until its
 * busy timeout. Another process (the CLI) waits for the lock through that timeout instead.
 */
const OPEN = new Map<string, { connection: SqliteConnection; users: number }>();

export class SqliteDriver implements Driver {
  readonly dialect = 'sqlite' as const;
  private closed = false;

  private constructor(
    private readonly key: string,
    private readonly connection: SqliteConnection,
  ) {}

  /** The process's connection to the file at `path`, opened on first use. */
  static open(path: string): SqliteDriver {
    const key = path === ':memory:' ? `:memory:${OPEN.size}` : resolvePath(path);
    let entry = OPEN.get(key);
    if (!entry) OPEN.set(key, (entry = { connection: new SqliteConnection(path), users: 0 }));
    entry.users++;
    return new SqliteDriver(key, entry.connection);
  }

  transaction<T>(fn: (tx: DriverTransaction) => Promise<T>): Promise<T> {
    return this.connection.transaction(fn);
  }

  read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.connection.read(fn);
  }

  legacyUserVersion(): number {
    return this.connection.legacyUserVersion();
  }

  async listen(): Promise<() => Promise<void>> {
    // Commits of this process are published by the storage module; other processes' (the CLI's)
    // are read by its periodic pump.
    return async () => {};
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const entry = OPEN.get(this.key);
    if (!entry || --entry.users > 0) return;
    OPEN.delete(this.key);
    await entry.connection.close();
  }
}

/** The connection itself: one better-sqlite3 handle and the queue every unit of work takes. */
class SqliteConnection {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, { stmt: Database.Statement; reader: boolean; order: number[] }>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(path: string) {
    this.db = new Database(path);
    // The file holds the sealed CA key, certificates, token hashes: its owner's alone (SQLite gives
    // the -wal and -shm files the same mode).
    if (path !== ':memory:' && !path.startsWith('file:')) chmodSync(path, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
  }

  /** Runs `fn` alone on the connection, in order of arrival. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(() => {
      if (this.closed) throw new Error('the store is closed');
      return fn();
    });
    // The queue continues whatever this unit's outcome.
    this.queue = next.catch(() => undefined);
    return next;
  }

  private readonly sql: Sql = {
    all: async <R>(text: string, params: readonly unknown[] = []) => {
      const { stmt, args } = this.prepare(text, params);
      return stmt.reader ? (stmt.stmt.all(...args) as R[]) : (stmt.stmt.run(...args), []);
    },
    get: async <R>(text: string, params: readonly unknown[] = []) => {
      const { stmt, args } = this.prepare(text, params);
      return (stmt.reader ? stmt.stmt.get(...args) : (stmt.stmt.run(...args), undefined)) as R | undefined;
    },
    run: async (text: string, params: readonly unknown[] = []) => {
      const { stmt, args } = this.prepare(text, params);
      return { changes: stmt.stmt.run(...args).changes };
    },
  };

  private prepare(text: string, params: readonly unknown[]) {
    let stmt = this.statements.get(text);
    if (!stmt) {
      const { text: translated, order } = positional(text);
      const prepared = this.db.prepare(translated);
      stmt = { stmt: prepared, reader: prepared.reader, order };
      this.statements.set(text, stmt);
    }
    return { stmt, args: argumentsInOrder(stmt.order, params).map(bindable) };
  }

  transaction<T>(fn: (tx: DriverTransaction) => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn({ sql: this.sql, lock: async () => {}, notify: async () => {} });
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.exclusive(() => fn(this.sql));
  }

  /** SQLite's own schema version (PRAGMA user_version), kept by the first releases. */
  legacyUserVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  async close(): Promise<void> {
    await this.exclusive(async () => {
      this.closed = true;
      this.db.close();
    }).catch(() => undefined);
  }
}

/** better-sqlite3 binds numbers, strings, bigints, buffers and null: booleans become 0/1. */
function bindable(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v === undefined) return null;
  return v;
}
