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
import type { InstanceRecord, ServiceRecord, Store } from './store';

export const WAITING_FOR_AUCTION = 'waiting for an auction';

export function newInstanceId(): string {
  return `i-${randomBytes(8).toString('hex')}`;
}

/** The HA group of a service: replicas of one group never share a host. Empty when not HA. */
export function haGroupOf(svc: Pick<ServiceRecord, 'tenant' | 'environment' | 'name' | 'spec'>): string {
  return svc.spec.ha ? `${svc.tenant}/${svc.environment}/${svc.name}` : '';
}

export interface OrchestratorOptions {
  /** A host that has not heartbeated for this long is down. */
  hostTtlMs: number;
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
    private readonly store: Store,
    private readonly liveness: HostLiveness,
    private readonly opts: OrchestratorOptions,
    private readonly log: Logger,
    /** Told when there is something to auction. */
    private readonly onPending: () => void,
  ) {}

  /**
   * Creates a pending instance for every missing replica of `svc`. Must run inside the caller's
   * transaction when the service was just inserted, so that a service never exists without its lots.
   */
  ensureReplicas(svc: ServiceRecord): number {
    return this.store.tx(() => {
      const instances = this.store.listInstancesOfService(svc.tenant, svc.environment, svc.name);
      const live = instances.filter((i) => i.state === 'pending' || i.state === 'starting' || i.state === 'running').length;
      const missing = svc.spec.replicas - live;
      const now = this.opts.now();
      if (missing > 0 && this.inBackoff(instances, now)) return 0;
      for (let k = 0; k < missing; k++) {
        const id = newInstanceId();
        this.store.insertInstance({
          id,
          tenant: svc.tenant,
          environment: svc.environment,
          service: svc.name,
          haGroup: haGroupOf(svc),
          resources: svc.spec.resources,
          message: WAITING_FOR_AUCTION,
          createdAt: now,
        });
        this.store.appendEvent(
          { tenant: svc.tenant, type: 'instance.pending', environment: svc.environment, service: svc.name, instance: id },
          now,
        );
      }
      return Math.max(0, missing);
    });
  }

  /** True while the service's latest failure is more recent than its restart delay. */
  private inBackoff(instances: InstanceRecord[], now: number): boolean {
    const failed = instances.filter((i) => i.state === 'failed');
    if (failed.length === 0) return false;
    const latest = Math.max(...failed.map((i) => i.updatedAt));
    return now < latest + restartDelay(failed.length, this.opts.restartBackoffMs, this.opts.restartBackoffMaxMs);
  }

  /**
   * One pass: expire silent hosts, forget old failures, then top up every service. Returns how
   * many pending instances it created.
   */
  tick(): number {
    const now = this.opts.now();
    this.store.deleteFailedBefore(now - this.opts.failureWindowMs);
    for (const { hostId, silentMs } of this.liveness.expired(now, this.opts.hostTtlMs)) {
      this.liveness.markDown(hostId);
      // The change of state is the one liveness write: the host down, its instances lost.
      const lost = this.store.tx(() => {
        const lost = this.store.markHostDown(hostId, now, now - silentMs);
        if (!lost) return undefined;
        this.store.appendEvent({ tenant: '', type: 'host.down', host: hostId, message: `no heartbeat for ${silentMs} ms` }, now);
        for (const i of lost) {
          this.store.appendEvent(
            { tenant: i.tenant, type: 'instance.lost', environment: i.environment, service: i.service, instance: i.id, host: hostId, message: 'host down' },
            now,
          );
        }
        return lost;
      });
      if (lost) this.log.warn({ host: hostId, lost: lost.length }, 'host missed its heartbeats: down');
    }
    let created = 0;
    for (const svc of this.store.listUnderReplicated()) created += this.ensureReplicas(svc);
    if (created > 0) this.onPending();
    return created;
  }
}
