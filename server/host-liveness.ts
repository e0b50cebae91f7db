/**
 * Which hosts are alive, in memory. A heartbeat updates a map and never the database: writing each
 * one (an fsync'd SQLite UPDATE at N/interval per second) was the Pod API's busiest code path, and a
 * heartbeat's only durable consequence is the change of state it may cause. So only changes of
 * state are written (a host marked down, its instances lost), by the orchestrator.
 *
 * After a restart the server knows no heartbeat: every host the store has as up is given a full
 * TTL from the start (grace) to reconnect before anything is moved.
 *
 * A stall of this process (a long GC, a blocked loop, a paused VM) is not the hosts' silence: when
 * it runs again its timers fire before it reads the heartbeats queued in its sockets, and every
 * host would look silent for as long as the stall (issue 7: 913 of 1,000 marked down after 20 s).
 * The timer that checks liveness measures its own lateness and credits it to every host.
 */
export class HostLiveness {
  private readonly hosts = new Map<string, { lastSeen: number; up: boolean }>();

  /** A host (re)connected or was given grace: up, seen now. */
  up(hostId: string, now: number): void {
    this.hosts.set(hostId, { lastSeen: now, up: true });
  }

  /**
   * A heartbeat. Returns false when the host is marked down (it stalled past the TTL with its
   * stream open): its replicas were placed elsewhere and it must reconnect to be reconciled.
   */
  seen(hostId: string, now: number): boolean {
    const h = this.hosts.get(hostId);
    if (h === undefined || !h.up) return false;
    h.lastSeen = now;
    return true;
  }

  /** A host told to come back at `until` (its admission slot) is not silent before then. */
  holdUntil(hostId: string, until: number): void {
    const h = this.hosts.get(hostId);
    if (h && h.up) h.lastSeen = Math.max(h.lastSeen, until);
  }

  /** This process could not run for `ms`: nobody was heard, and nobody was silent either. */
  creditStall(ms: number, now: number): void {
    for (const h of this.hosts.values()) h.lastSeen = Math.min(now, h.lastSeen + ms);
  }

  markDown(hostId: string): void {
    const h = this.hosts.get(hostId);
    if (h) h.up = false;
  }

  /** The last time the host was heard of, if it was since the server started. */
  lastSeen(hostId: string): number | undefined {
    return this.hosts.get(hostId)?.lastSeen;
  }

  /** Hosts that are up and have been silent for longer than `ttlMs`. */
  expired(now: number, ttlMs: number): Array<{ hostId: string; silentMs: number }> {
    const out: Array<{ hostId: string; silentMs: number }> = [];
    for (const [hostId, h] of this.hosts) if (h.up && now - h.lastSeen > ttlMs) out.push({ hostId, silentMs: now - h.lastSeen });
    return out;
  }
}
