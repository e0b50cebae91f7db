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
  /** Calls `onNotify` whenever another transaction notified `channel`; returns the stop function. */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
