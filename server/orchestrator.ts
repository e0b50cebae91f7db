/**
 * Keeps what is running in line with what was asked: one pending instance (a lot for the auction)
 * for every missing replica, and hosts that stop heartbeating marked down so that their replicas
 * are placed again elsewhere. A replica whose container failed is replaced after an exponential
 * backoff, so that a crash-looping service does not churn the fleet.
 *
 * Order matters in `tick`: hosts are marked down first, so that the replicas they held count as
 * missing in the same tick and their replacements join the next auction round.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { HostLiveness } from './host-liveness';
import { fenced, type LeaderEpoch } from './leader-fence';
import type { InstanceRecord, NewInstance, ServiceRecord, Storage, UnitOfWork } from './storage';

export const WAITING_FOR_AUCTION = 'waiting for an auction';

export function newInstanceId(): string {
  return `i-${randomBytes(8).toString('hex')}`;
}

/** The HA group of a service: replicas of one group never share a host. Empty when not HA. */
export function haGroupOf(svc: Pick<ServiceRecord, 'tenant' | 'environment' | 'name' | 'spec'>): string {
  return svc.spec.ha ? `${svc.tenant}/${svc.environment}/${svc.name}` : '';
}

export interface OrchestratorOptions {
  /** How long a host may be silent before it is down, at `now` (scaled to the fleet). */
  hostTtlMs: number | ((now: number) => number);
  /** Wait before replacing a failed replica; doubles with each failure in the window. */
  restartBackoffMs: number;
  restartBackoffMaxMs: number;
  /** Failures older than this are forgotten (their rows deleted): the backoff starts over. */
  failureWindowMs: number;
  now: () => number;
}

/**
 * How long after the latest of `failures` recent failures a replacement may start: exponential,
 * capped, so a crash-looping service costs little and a one-off crash is replaced quickly.
 */
export function restartDelay(failures: number, baseMs: number, maxMs: number): number {
  if (failures <= 0) return 0;
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 30));
}

export class Orchestrator {
  constructor(
    private readonly storage: Storage,
    private readonly liveness: HostLiveness,
    private readonly leader: LeaderEpoch,
    private readonly opts: OrchestratorOptions,
    private readonly log: Logger,
    /** Told when there is something to auction. */
    private readonly onPending: () => void,
  ) {}

  /**
   * Creates a pending instance for every missing replica of `svc`, in the caller's unit of work,
   * so that a service is never stored without its lots. Counting and inserting happen under the
   * service's lock: two units (a create and a tick, or two processes) cannot both count the same
   * gap and both fill it. Returns the instances it created, as stored. Any Pod API process may
   * call it: it writes desired state only, and the leader's auctioneer picks the lots up.
   */
  async ensureReplicas(uow: UnitOfWork, svc: ServiceRecord): Promise<InstanceRecord[]> {
    await uow.lock(`replicas:${svc.tenant}/${svc.environment}/${svc.name}`);
    const instances = await uow.instances.listOfService(svc.tenant, svc.environment, svc.name);
    const live = instances.filter((i) => i.state === 'pending' || i.state === 'starting' || i.state === 'running').length;
    const missing = svc.spec.replicas - live;
    const now = this.opts.now();
    if (missing <= 0 || this.inBackoff(instances, now)) return [];
    const created: InstanceRecord[] = [];
    for (let k = 0; k < missing; k++) {
      const inst: NewInstance = {
        id: newInstanceId(),
        tenant: svc.tenant,
        environment: svc.environment,
        service: svc.name,
        haGroup: haGroupOf(svc),
        resources: svc.spec.resources,
        message: WAITING_FOR_AUCTION,
        createdAt: now,
      };
      await uow.instances.insert(inst);
      uow.emit({ tenant: svc.tenant, type: 'instance.pending', environment: svc.environment, service: svc.name, instance: inst.id, time: now });
      created.push({ ...inst, host: null, state: 'pending', containerId: '', excludedHosts: [], updatedAt: now });
    }
    return created;
  }

  /** True while the service's latest failure is more recent than its restart delay. */
  private inBackoff(instances: InstanceRecord[], now: number): boolean {
    const failed = instances.filter((i) => i.state === 'failed');
    if (failed.length === 0) return false;
    const latest = Math.max(...failed.map((i) => i.updatedAt));
    return now < latest + restartDelay(failed.length, this.opts.restartBackoffMs, this.opts.restartBackoffMaxMs);
  }

  /**
   * One pass, on the leader only: expire silent hosts, forget old failures, then top up every
   * service. Each change is its own fenced unit of work. Returns how many pending instances it
   * created.
   */
  async tick(): Promise<number> {
    const now = this.opts.now();
    await this.storage.transaction(async (u) => {
      await fenced(u, this.leader);
      await u.instances.deleteFailedBefore(now - this.opts.failureWindowMs);
    });
    for (const { hostId, silentMs } of this.liveness.expired(now, typeof this.opts.hostTtlMs === 'number' ? this.opts.hostTtlMs : this.opts.hostTtlMs(now))) {
      // The change of state is the one liveness write: the host down, its instances lost.
      const lost = await this.storage.transaction(async (u) => {
        await fenced(u, this.leader);
        if (!(await u.hosts.markDown(hostId, now - silentMs))) return undefined;
        const lost = await u.instances.markLostOnHost(hostId, now);
        u.emit({ tenant: '', type: 'host.down', host: hostId, message: `no heartbeat for ${silentMs} ms`, time: now });
        for (const i of lost) {
          u.emit({ tenant: i.tenant, type: 'instance.lost', environment: i.environment, service: i.service, instance: i.id, host: hostId, message: 'host down', time: now });
        }
        return lost;
      });
      this.liveness.markDown(hostId);
      if (lost) this.log.warn({ host: hostId, lost: lost.length }, 'host missed its heartbeats: down');
    }
    let created = 0;
    for (const svc of await this.storage.read((r) => r.services.listUnderReplicated())) {
      created += (await this.storage.transaction((u) => this.ensureReplicas(u, svc))).length;
    }
    if (created > 0) this.onPending();
    return created;
  }
}
