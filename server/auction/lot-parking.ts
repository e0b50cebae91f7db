import type { Explanation } from './types';

/**
 * Lots that no host could take, set aside so that they are not auctioned again every round
 * (issue 5, finding 1: 300 unplaceable lots took every round). A lot is parked in one of two ways:
 *
 * - until the fleet changes, when the server's own rules excluded every host (down, no AppArmor,
 *   constraints, refused, CPU, memory, HA): nothing will be different until a host joins or comes
 *   back, capacity is freed, or the service changes, and each of those calls fleetChanged();
 * - until a time, when some host was counted by what it answered rather than by the server's
 *   rules (Explanation.byAgents): a decline ('image': it may be pulling it now; 'ha' or 'memory'
 *   by its own bookkeeping, which may be about to drop a container) or no bid at all (it did not
 *   answer, or was not in the round's sample). What an agent knows can change without the server
 *   hearing of it.
 *
 * Pure bookkeeping: the caller passes the time. Parked lots keep their explanation in the store,
 * so a customer still sees why.
 */
export class LotParking {
  private epoch = 0;
  private readonly parked = new Map<string, { epoch: number } | { until: number }>();

  /** Every lot parked until the fleet changes becomes eligible again. */
  fleetChanged(): void {
    this.epoch++;
  }

  /** The fleet as of now: what a round notes before it reads the fleet, to park by (`asOf`). */
  get fleetEpoch(): number {
    return this.epoch;
  }

  /**
   * Parks a pending lot after a round, by what its explanation says. `asOf` is the fleetEpoch the
   * round noted before it read the fleet: after a change that came while the round ran (a host
   * back during the bids) the lot is not parked, since its explanation was made without it.
   */
  park(lotId: string, why: Explanation, now: number, retryMs: number, asOf: number): void {
    if (asOf < this.epoch) {
      // Either kind of reason may be out of date: a host that came back was not even called.
      this.parked.delete(lotId);
      return;
    }
    const agentOnly = (why.byAgents ?? 0) > 0;
    this.parked.set(lotId, agentOnly ? { until: now + retryMs } : { epoch: this.epoch });
  }

  /** True when the lot may go into a round now. */
  eligible(lotId: string, now: number): boolean {
    const p = this.parked.get(lotId);
    if (p === undefined) return true;
    return 'epoch' in p ? p.epoch < this.epoch : now >= p.until;
  }

  /** Forgets lots that are no longer pending (awarded, deleted). */
  retain(pending: { has(lotId: string): boolean }): void {
    for (const id of this.parked.keys()) if (!pending.has(id)) this.parked.delete(id);
  }

  get size(): number {
    return this.parked.size;
  }
}
