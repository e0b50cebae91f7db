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

/**
 * The price this agent bids for a lot (lower is better): lower when the image is cached,
 * when more resources stay free after placing, and when fewer containers of the same tenant / HA
 * group are on the host. Pure and total: always a finite number >= 0, non-decreasing in load and
 * in both counts; malformed inputs (negative, NaN, zero capacity) are read as the worst case for
 * load and as 0 for the counts.
 */
export function priceLot(input: {
  freeAfter: Resources;
  capacity: Resources;
  imageCached: boolean;
  sameGroupCount: number;
  sameTenantCount: number;
}): number {
  const load = Math.max(
    usedShare(input.freeAfter.cpuMillis, input.capacity.cpuMillis),
    usedShare(input.freeAfter.memoryMib, input.capacity.memoryMib),
  );
  return (
    LOAD * load +
    (input.imageCached ? 0 : IMAGE_NOT_CACHED) +
    PER_SAME_GROUP * count(input.sameGroupCount) +
    PER_SAME_TENANT * count(input.sameTenantCount)
  );
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
