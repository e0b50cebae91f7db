import type { Dialect, Sql } from './sql';

/** What a unit of work gets from the driver inside its transaction. */
export interface DriverTransaction {
  sql: Sql;
  /**
   * Serializes this transaction with every other that takes the same key, until it ends: the
   * guard where a count decides an insert (replicas, quotas) or where commit order must be
   * sequence order (events). PostgreSQL: pg_advisory_xact_lock; SQLite: nothing to do, a writer
   * already holds the database's only write lock.
   */
  lock(key: string): Promise<void>;
  /** Wakes listeners of `channel` in every process, when (and only if) the transaction commits. */
  notify(channel: string): Promise<void>;
}

export type Isolation = 'read committed' | 'serializable';

/** One database engine behind the storage module. Nothing outside server/storage sees it. */
export interface Driver {
  readonly dialect: Dialect;
  transaction<T>(fn: (tx: DriverTransaction) => Promise<T>, opts?: { isolation?: Isolation }): Promise<T>;
  read<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  /**
   * A session that can hold the leader lock (PostgreSQL: a session advisory lock on a connection
   * of its own) and end the backends of a stalled holder. SQLite has no such session: undefined.
   */
  lockSession?(key: string): Promise<LockSession>;
  /** Calls `onNotify` whenever another transaction notified `channel`; returns the stop function. */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** A connection that holds (or tries to hold) one session-level lock. */
export interface LockSession {
  /** Takes the lock if no live session holds it; true while this session holds it. */
  tryLock(): Promise<boolean>;
  /** Ends every database backend of the process `holder` (its application_name), to free what it holds. */
  terminate(holder: string): Promise<number>;
  /** True once the session's connection broke (it no longer holds the lock). */
  readonly lost: boolean;
  close(): Promise<void>;
}
