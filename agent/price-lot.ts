import type { Resources } from '../gen/podium/v1/resources';

/**
 * Weights of the reference price. Their order of magnitude says what matters more:
 * - a replica of the same HA group already on the host (or, later, in its pod) outweighs
 *   everything else: the server forbids the same host anyway, and spreading across pods is the
 *   point of HA;
 * - load (0..1, the fuller of CPU and memory after placing) spreads work over the fleet;
 * - a missing image costs a pull (or a build) before the container can start;
 * - each container of the same tenant already there nudges towards spreading one customer.
 */
const PER_SAME_GROUP = 1000;
const LOAD = 100;
const IMAGE_NOT_CACHED = 30;
const PER_SAME_TENANT = 5;

/** How a service wants its replicas placed (the lot's policy). */
export type PlacementPolicy = 'spread' | 'binpack';

/**
 * The price this agent bids for a lot (lower is better), on the reference scale where a whole
 * load is worth LOAD (100) points. Under `spread` (the default) it is lower when more resources
 * stay free after placing and when fewer containers of the same tenant are on the host; under
 * `binpack` it is lower the fuller the host gets. Either way it is lower when the image is cached
 * and far higher when a replica of the same HA group is already here. Pure and total: always a
 * finite number >= 0; malformed inputs (negative, NaN, zero capacity) are read as a full host for
 * load and as 0 for the counts.
 */
export function priceLot(input: {
  freeAfter: Resources;
  capacity: Resources;
  imageCached: boolean;
  sameGroupCount: number;
  sameTenantCount: number;
  policy?: PlacementPolicy;
}): number {
  const load = Math.max(
    usedShare(input.freeAfter.cpuMillis, input.capacity.cpuMillis),
    usedShare(input.freeAfter.memoryMib, input.capacity.memoryMib),
  );
  const binpack = input.policy === 'binpack';
  return (
    LOAD * (binpack ? 1 - load : load) +
    (input.imageCached ? 0 : IMAGE_NOT_CACHED) +
    PER_SAME_GROUP * count(input.sameGroupCount) +
    (binpack ? 0 : PER_SAME_TENANT * count(input.sameTenantCount))
  );
}

/**
 * The round weight that goes with priceLot's prices (Bid.round_weight): how much the price of a
 * lot moves per whole host's capacity the same round awards this host first. The load term of
 * the price is LOAD × load, so the lots won earlier in a round move it by exactly LOAD per unit
 * of capacity: +LOAD under `spread`, −LOAD under `binpack`. The agent cannot know which of the
 * lots it bids on it will win; the server, which decides, applies this as it awards.
 */
export function roundWeight(policy: PlacementPolicy = 'spread'): number {
  return policy === 'binpack' ? -LOAD : LOAD;
}

/** Share of capacity in use after placing, in [0, 1]; 1 when the numbers make no sense. */
function usedShare(free: number, capacity: number): number {
  if (!(capacity > 0) || !Number.isFinite(capacity) || !Number.isFinite(free)) return 1;
  return Math.min(1, Math.max(0, 1 - free / capacity));
}

/** A count as a finite number >= 0, capped so that the price stays finite. */
function count(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.min(n, 1e6) : 0;
}
