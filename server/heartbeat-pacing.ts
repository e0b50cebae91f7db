/**
 * How often agents heartbeat, scaled to the fleet so that the Pod API hears at most
 * `maxPerSecond` heartbeats a second, however many hosts hold sessions (Nomad's
 * `max_heartbeats_per_second` does the same with its TTLs). Each heartbeat is a gRPC message
 * read, decoded and dispatched on the event loop (about 0.18 ms here): at a fixed 2 s interval,
 * 5,000 hosts took half a core and 10,000 never all stayed connected.
 *
 * The interval is the configured one while the fleet is small, and grows in whole steps of it as
 * the fleet grows: n hosts get the smallest multiple of the base interval at which n heartbeats
 * fit in the rate. The TTL keeps its ratio to the interval (five heartbeats by default), so a host
 * is declared down after as many missed heartbeats at any size. A host learns a new interval at
 * once (over its session), so a longer TTL applies at once; a shorter one only after the longer
 * has passed, since a host may have heartbeated at the longer interval just before it was told.
 * The interval shrinks again only when the fleet is a fifth below the step, so that a fleet at a
 * boundary does not flap between two.
 */
export interface HeartbeatPacingOptions {
  baseIntervalMs: number;
  baseTtlMs: number;
  /** 0: no limit, the base interval at any size. */
  maxPerSecond: number;
}

export class HeartbeatPacing {
  private step = 1;
  private longerTtl: { ttlMs: number; until: number } | null = null;

  constructor(private readonly opts: HeartbeatPacingOptions) {}

  get intervalMs(): number {
    return this.opts.baseIntervalMs * this.step;
  }

  /** How long a host may be silent before it is down, now. */
  ttlMs(now: number): number {
    const ttl = this.opts.baseTtlMs * this.step;
    if (this.longerTtl && now < this.longerTtl.until) return Math.max(ttl, this.longerTtl.ttlMs);
    this.longerTtl = null;
    return ttl;
  }

  /** The fleet has `hosts` hosts. Returns the new interval when it changed, else null. */
  fleetSize(hosts: number, now: number): number | null {
    if (this.opts.maxPerSecond <= 0) return null;
    const perStep = (this.opts.maxPerSecond * this.opts.baseIntervalMs) / 1000; // hosts one step of interval carries
    const needed = Math.max(1, Math.ceil(hosts / perStep));
    let next = this.step;
    if (needed > this.step) next = needed;
    else if (needed < this.step && hosts < (this.step - 1) * perStep * 0.8) next = needed;
    if (next === this.step) return null;
    if (next < this.step) {
      const before = this.opts.baseTtlMs * this.step;
      this.longerTtl = { ttlMs: before, until: now + before };
    }
    this.step = next;
    return this.intervalMs;
  }
}
