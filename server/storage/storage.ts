/**
 * The Pod API's state behind one door. Callers get repositories inside a unit of work
 * (`transaction`) or for plain reads (`read`); they never see SQL or a driver.
 *
 * The dialect is a choice of driver and migrations, not of design: `sqlite:<path>` (or a bare
 * path) is the embedded default, `postgres://…` the replicated one. Both run the same
 * repositories, the same units of work and the same tests.
 */
import type { Driver, Isolation, LockSession } from './driver';
import { EVENTS_CHANNEL, EventFeed } from './event-feed';
import { migrate } from './migrate';
import { PostgresDriver } from './postgres-driver';
import type { EventRecord } from './records';
import { FencedError, type Dialect } from './sql';
import { SqliteDriver } from './sqlite-driver';
import { Repositories, UnitOfWork } from './unit-of-work';

/** The lock every unit that writes events takes last: commit order is then sequence order. */
const EVENTS_LOCK = 'podium:events';

/** PostgreSQL's "try again" answers: serialization failure, deadlock detected. */
const RETRYABLE = new Set(['40001', '40P01']);
const MAX_ATTEMPTS = 5;

export interface OpenOptions {
  /** Names this process to the database (PostgreSQL application_name): podium:<processName>. */
  processName?: string;
  now?: () => number;
  /**
   * Follow the event log (default true): publish other processes' commits on `feed`. A process
   * that never watches events (the gateway, the CLI) says false and keeps no timer or listener.
   */
  followEvents?: boolean;
}

export interface TransactionOptions {
  /** `serializable` where the work reads what decides its writes without a lock; default read committed. */
  isolation?: Isolation;
}

export class Storage {
  readonly feed: EventFeed;
  private stopListening: (() => Promise<void>) | null = null;
  private poll: NodeJS.Timeout | null = null;

  private constructor(
    private readonly driver: Driver,
    private readonly now: () => number,
  ) {
    this.feed = new EventFeed((after) => this.read((r) => r.events.list(null, '', after, 1000)));
  }

  get dialect(): Dialect {
    return this.driver.dialect;
  }

  /**
   * Opens the store at `target` (a SQLite path, `sqlite:<path>` or a `postgres://` URL), brings
   * its schema up to date, and starts following committed events.
   */
  static async open(target: string, opts: OpenOptions = {}): Promise<Storage> {
    const driver: Driver = /^postgres(ql)?:\/\//.test(target)
      ? new PostgresDriver({ url: target, processName: opts.processName ?? `pid-${process.pid}` })
      : SqliteDriver.open(target.replace(/^sqlite:/, ''));
    try {
      await migrate(driver, opts.now ?? Date.now);
    } catch (err) {
      await driver.close();
      throw err;
    }
    const storage = new Storage(driver, opts.now ?? Date.now);
    if (opts.followEvents === false) return storage;
    storage.feed.startAt(await storage.read((r) => r.events.maxSequence()));
    if (driver.dialect === 'postgres') {
      storage.stopListening = await driver.listen(EVENTS_CHANNEL, () => void storage.feed.pump().catch(() => undefined));
    }
    // Other processes' commits without a notification (SQLite: the CLI; PostgreSQL: one lost while
    // the listener reconnected) cost at most this long.
    storage.poll = setInterval(() => void storage.feed.pump().catch(() => undefined), 1000);
    storage.poll.unref();
    return storage;
  }

  /**
   * Runs `work` as one unit of work: one transaction, committed when `work` resolves, rolled back
   * when it throws. Its events are written last, under one lock, and published after the commit;
   * its afterCommit callbacks run then. On a serialization conflict the whole unit runs again
   * (up to 5 times), so `work` must not act outside the store except through afterCommit.
   */
  async transaction<T>(work: (uow: UnitOfWork) => Promise<T>, opts: TransactionOptions = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let committed: EventRecord[] = [];
      let unit: UnitOfWork | null = null;
      try {
        const result = await this.driver.transaction(async (tx) => {
          const uow = new UnitOfWork(tx, this.driver.dialect, this.now);
          const value = await work(uow);
          if (uow.emitted.length > 0) {
            await tx.lock(EVENTS_LOCK);
            committed = await uow.events.insertAll(uow.emitted, this.now());
            await tx.notify(EVENTS_CHANNEL);
          }
          unit = uow;
          return value;
        }, opts);
        this.feed.committed(committed);
        for (const fn of (unit as UnitOfWork | null)?.committedCallbacks ?? []) fn();
        return result;
      } catch (err) {
        if (err instanceof FencedError || attempt >= MAX_ATTEMPTS || !RETRYABLE.has((err as { code?: string }).code ?? '')) throw err;
      }
    }
  }

  /**
   * A session for the leader lock of `key`, or undefined where the dialect has none (SQLite: one
   * process per file, and the lease row alone decides).
   */
  lockSession(key: string): Promise<LockSession> | undefined {
    return this.driver.lockSession?.(key);
  }

  /** Reads outside any unit of work; each statement sees what has committed. */
  read<T>(fn: (r: Repositories) => Promise<T>): Promise<T> {
    return this.driver.read((sql) => fn(new Repositories(sql, this.driver.dialect, this.now)));
  }

  async close(): Promise<void> {
    if (this.poll) clearInterval(this.poll);
    await this.stopListening?.();
    await this.driver.close();
  }
}
