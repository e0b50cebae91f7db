import { ApiTokenRepository } from './api-token-repository';
import { AuthorityRepository } from './authority-repository';
import { CertificateRepository } from './certificate-repository';
import type { DriverTransaction } from './driver';
import { EnvironmentRepository } from './environment-repository';
import { EventRepository } from './event-repository';
import { HostRepository } from './host-repository';
import { InstanceRepository } from './instance-repository';
import { JoinTokenRepository } from './join-token-repository';
import { LeaseRepository } from './lease-repository';
import { QuotaRepository } from './quota-repository';
import type { NewEvent } from './records';
import { ServiceRepository } from './service-repository';
import type { Dialect, Sql } from './sql';

/** One repository per aggregate, all on the same connection (and transaction, in a unit of work). */
export class Repositories {
  readonly hosts: HostRepository;
  readonly environments: EnvironmentRepository;
  readonly services: ServiceRepository;
  readonly instances: InstanceRepository;
  readonly events: EventRepository;
  readonly quotas: QuotaRepository;
  readonly lease: LeaseRepository;
  readonly joinTokens: JoinTokenRepository;
  readonly certificates: CertificateRepository;
  readonly authority: AuthorityRepository;
  readonly apiTokens: ApiTokenRepository;

  constructor(
    protected readonly sql: Sql,
    readonly dialect: Dialect,
    clock: () => number = Date.now,
  ) {
    this.hosts = new HostRepository(sql);
    this.environments = new EnvironmentRepository(sql);
    this.services = new ServiceRepository(sql);
    this.instances = new InstanceRepository(sql);
    this.events = new EventRepository(sql);
    this.quotas = new QuotaRepository(sql);
    this.lease = new LeaseRepository(sql, dialect, clock);
    this.joinTokens = new JoinTokenRepository(sql);
    this.certificates = new CertificateRepository(sql);
    this.authority = new AuthorityRepository(sql);
    this.apiTokens = new ApiTokenRepository(sql);
  }
}

/**
 * One transaction's worth of work. Repositories read and write inside it; events are collected
 * with `emit` and written when the work is done, so that watchers hear of them only after commit;
 * `afterCommit` callbacks (kicking the auction, telling an agent) run only if it committed.
 * The work may be run again from the start when the database reports a serialization conflict:
 * anything it does outside the store belongs in `afterCommit`.
 */
export class UnitOfWork extends Repositories {
  /** @internal */ readonly emitted: NewEvent[] = [];
  /** @internal */ readonly committedCallbacks: Array<() => void> = [];

  constructor(
    private readonly tx: DriverTransaction,
    dialect: Dialect,
    clock?: () => number,
  ) {
    super(tx.sql, dialect, clock);
  }

  /**
   * Fails the unit of work (FencedError, never retried) unless the leader lease is still at
   * `epoch`: every write that only the leader may make (awards, placements, hosts marked down)
   * begins with it, so a leader that stalled past its lease cannot commit after a new one took over.
   */
  fence(epoch: number): Promise<void> {
    return this.lease.fence(epoch);
  }

  /** Appends an event to the log, in this transaction; watchers get it after commit. */
  emit(e: NewEvent): void {
    this.emitted.push(e);
  }

  /**
   * Serializes this unit with every other that takes the same key, until it ends: where a count
   * decides an insert (a service's replicas, a tenant's quota), so that two units cannot both read
   * the same count and both insert.
   */
  lock(key: string): Promise<void> {
    return this.tx.lock(key);
  }

  /** Runs `fn` once the transaction has committed (never if it rolled back). */
  afterCommit(fn: () => void): void {
    this.committedCallbacks.push(fn);
  }

  /** @internal for the storage module: the driver transaction. */
  get driverTransaction(): DriverTransaction {
    return this.tx;
  }
}
