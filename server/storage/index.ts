/**
 * server/storage — the Pod API's state behind one door.
 *
 * Design note. Storage is one module with an async, unit-of-work interface and one repository per
 * aggregate (hosts, environments, services, instances, events, quotas, join tokens, certificates,
 * the authority, the leader lease), so that the database is a choice of driver and migrations,
 * not of design: `sqlite:<path>` is the embedded default, `postgres://…` is for several Pod API
 * processes on one replicated engine. Nothing outside this folder sees SQL or a driver.
 *
 * - A unit of work (`Storage.transaction`) is one transaction; it is run again on a serialization
 *   conflict, so its side effects go in afterCommit.
 * - Where a count decides an insert (replicas, quotas), the unit takes a lock first
 *   (`UnitOfWork.lock`: an advisory transaction lock on PostgreSQL; SQLite has one writer).
 * - Events are written last in a unit, under one lock, so that sequence order is commit order, and
 *   published (`Storage.feed`) only after commit; other processes hear of them through
 *   LISTEN/NOTIFY and a sequence poll.
 * - Writes only the leader may make are fenced by the lease epoch (`UnitOfWork.fence`).
 */
export { Storage, type OpenOptions, type TransactionOptions } from './storage';
export { UnitOfWork, Repositories } from './unit-of-work';
export { FencedError, type Dialect } from './sql';
export type { EventListener } from './event-feed';
export type { LeaseRecord } from './lease-repository';
export type { LockSession } from './driver';
export type { StoredAuthority } from './authority-repository';
export { startLocalPostgres, type LocalPostgres } from './local-postgres';
export * from './records';
