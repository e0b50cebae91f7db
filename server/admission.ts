/**
 * Admission of agent sessions at a bounded rate. After a restart (or a takeover) the whole fleet
 * reconnects at once; every hello is a unit of work that reconciles the host, and ten thousand of
 * them arriving together starve the heartbeats of the hosts already back (which are then marked
 * down: issue 7 saw 5,000 agents take 244 s with most hosts marked down on the way).
 *
 * So sessions are admitted on a schedule, `ratePerSecond` of them a second. A host that arrives
 * when the schedule is full is given the next free slot and told to come back then (the agent waits
 * exactly that long instead of its own backoff); its slot is kept for it, so coming back on time
 * it is admitted, and the schedule spreads the storm evenly instead of having it retry in waves.
 * A host's slot is also the time it has to be back by: the liveness TTL counts from it.
 */
export interface AdmissionDecision {
  admitted: boolean;
  /** When not admitted: how long to wait before trying again (the host's slot). */
  retryAfterMs: number;
}

export class SessionAdmission {
  private nextFree = 0;
  private readonly slots = new Map<string, number>();
  private readonly intervalMs: number;
  private deferredCount = 0;
  private prunedAt = 0;

  constructor(
    private readonly opts: {
      /** Sessions admitted per second; 0 admits every session at once. */
      ratePerSecond: number;
      /** How early (ms) before its slot a host may come back and still be admitted. */
      slackMs: number;
    },
  ) {
    this.intervalMs = opts.ratePerSecond > 0 ? 1000 / opts.ratePerSecond : 0;
  }

  admit(hostId: string, now: number): AdmissionDecision {
    if (this.intervalMs === 0) return this.yes();
    const slot = this.slots.get(hostId);
    if (slot !== undefined) {
      if (now >= slot - this.opts.slackMs) {
        this.slots.delete(hostId);
        return this.yes();
      }
      return this.no(slot - now);
    }
    const at = Math.max(now, this.nextFree);
    this.nextFree = at + this.intervalMs;
    if (at - now <= this.opts.slackMs) return this.yes();
    this.slots.set(hostId, at);
    this.prune(now);
    return this.no(at - now);
  }

  /** How long a fleet of `hosts` takes to pass admission, all arriving at once. */
  spanMs(hosts: number): number {
    return Math.ceil(hosts * this.intervalMs);
  }

  get deferred(): number {
    return this.deferredCount;
  }

  private yes(): AdmissionDecision {
    return { admitted: true, retryAfterMs: 0 };
  }

  private no(retryAfterMs: number): AdmissionDecision {
    this.deferredCount++;
    return { admitted: false, retryAfterMs: Math.ceil(retryAfterMs) };
  }

  /** Slots long past were not used (the host went elsewhere, or stopped): forgotten, at most
   *  once a minute, so that a storm's many deferrals do not each walk every slot. */
  private prune(now: number): void {
    if (this.slots.size < 1024 || now - this.prunedAt < 60_000) return;
    this.prunedAt = now;
    for (const [hostId, at] of this.slots) if (at < now - 60_000) this.slots.delete(hostId);
  }
}
