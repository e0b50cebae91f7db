import { explanation } from './explanation-text';
import { FleetCensus } from './fleet-census';
import { minCostMatching, type MatchingCell } from './min-cost-matching';
import { firstExclusion, pipelineFor, type PlacementRule } from './placement-rules';
import { RoundState } from './round-state';
import {
  EXCLUSION_ORDER,
  type Award,
  type BidView,
  type DeclineView,
  type ExclusionReason,
  type HostView,
  type LotView,
  type RoundResult,
} from './types';
import { assertUniqueIds } from './unique-ids';

const EXCLUSION_REASONS: ReadonlySet<string> = new Set<string>(EXCLUSION_ORDER);

/**
 * What a host pays on top of its price for a lot of a service that failed on it recently: more
 * than a whole load (100 points), so that any other host that can take the lot wins it, and the
 * avoided host still takes it when no other can (SwarmKit down-weights such a node, too).
 */
export const AVOID_PENALTY = 1000;

/** Bids may not weigh the round more than this either way: a hostile agent cannot swamp prices. */
export const MAX_ROUND_WEIGHT = 1000;

/** Code-point order: the same on every machine and locale, unlike localeCompare. */
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

interface Lot {
  view: LotView;
  /** Position in the round's lots: the fair queue's order, which breaks ties between lots. */
  index: number;
  pipeline: readonly PlacementRule[];
  /** hostId -> lowest usable bid of the host for this lot. */
  bids: Map<string, { price: number; roundWeight: number }>;
  /** hostId -> reasons the host gave when declining this lot. */
  declines: Map<string, string[]>;
}

/**
 * Winner determination for one round.
 *
 * Never trusts a bid: every rule of the placement pipeline is checked again against the hosts'
 * views and this round's awards. A bid is dropped when its host or lot is unknown, its price is
 * not a finite number, or the same host also declined the lot; of several bids by one host for
 * one lot the lowest counts.
 *
 * A host's price counts what the round gives it: the effective price of a bid is its price plus
 * its round weight times how far the awards made to the host earlier in the round move the load
 * the price measured (the larger of CPU and memory fractions with the lot placed), plus
 * AVOID_PENALTY where the lot's service failed on that host recently. Agents price from what only
 * they know (their real free resources, cached images, replicas already there); the server, which
 * alone knows what it has awarded a host so far in the round, applies the rest. So 30 lots on 3
 * idle hosts under `spread` go 10/10/10, and under `binpack` fill one host first.
 *
 * HA groups go first, in group id order, each as a min-cost matching of its lots onto the hosts
 * that bid and pass the rules (costs are the effective prices when the group is matched): as many
 * replicas as possible, then the cheapest, never two on one host. Then the other lots one by one,
 * largest first (by their larger share of the biggest host's CPU or memory; then the cheaper best
 * bid; then their place in `lots`, which is the fair queue's order), each to the host with the
 * lowest effective price at that moment; ties go to the host with fewer awards this round under
 * `spread` (more under `binpack`), then the lower host id. Largest first is what keeps a round
 * balanced (longest-processing-time list scheduling under `spread`, best fit decreasing under
 * `binpack`): small lots placed last even out what the large ones left. Capacity is booked as each
 * award is made, so no host is over-committed.
 *
 * Guarantees: every lot of `lots` is either in `awards` (once) or in `pending` (with an
 * Explanation), never both; an award goes only to a host that bid for that lot, at its bid price;
 * awards are listed in the order they were made; the result is a function of the inputs alone,
 * whatever the order of `bids` and `declines`. A pending lot's Explanation counts every host of
 * `hosts` once, by the first rule that excludes it at the end of the round (pipeline order), else
 * by the reason it declined with when that is an ExclusionReason, else as 'no-bid'; the hosts
 * counted by their answer rather than a rule are `byAgents`. Throws RangeError on duplicate host
 * or lot ids.
 */
export function determineWinners(
  hosts: readonly HostView[],
  lots: readonly LotView[],
  bids: readonly BidView[],
  declines: readonly DeclineView[],
): RoundResult {
  assertUniqueIds(hosts, 'host');
  assertUniqueIds(lots, 'lot');
  const hostById = new Map(hosts.map((h) => [h.id, h]));
  const lotById = new Map<string, Lot>(
    lots.map((view, index) => [view.id, { view, index, pipeline: pipelineFor(view), bids: new Map(), declines: new Map() }]),
  );
  for (const decline of declines) {
    const lot = lotById.get(decline.lotId);
    if (lot === undefined || !hostById.has(decline.hostId)) continue;
    const reasons = lot.declines.get(decline.hostId) ?? [];
    reasons.push(decline.reason);
    lot.declines.set(decline.hostId, reasons);
  }
  for (const bid of bids) {
    const lot = lotById.get(bid.lotId);
    if (lot === undefined || !hostById.has(bid.hostId) || !Number.isFinite(bid.price)) continue;
    if (lot.declines.has(bid.hostId)) continue; // an agent that said no would refuse the award
    const price = bid.price + 0; // -0 -> 0, so that equal prices compare and print alike
    const roundWeight = clampWeight(bid.roundWeight);
    const best = lot.bids.get(bid.hostId);
    if (best === undefined || price < best.price || (price === best.price && roundWeight < best.roundWeight)) {
      lot.bids.set(bid.hostId, { price, roundWeight });
    }
  }

  const state = new RoundState();
  const awards: Award[] = [];
  const awarded = new Set<string>();
  /** Awards the lot if the host still passes every rule; the only place an award is made. */
  const tryAward = (lot: Lot, host: HostView, price: number): boolean => {
    if (awarded.has(lot.view.id) || firstExclusion(lot.pipeline, host, lot.view, state) !== undefined) return false;
    state.award(host, lot.view);
    awarded.add(lot.view.id);
    awards.push({ lotId: lot.view.id, hostId: host.id, price });
    return true;
  };
  const effective = (lot: Lot, host: HostView): number => {
    const bid = lot.bids.get(host.id)!;
    const avoid = lot.view.avoidHosts?.has(host.id) ? AVOID_PENALTY : 0;
    return bid.price + bid.roundWeight * state.roundShift(host, lot.view) + avoid;
  };

  // 1. HA groups, each as one matching.
  const groups = new Map<string, Lot[]>();
  for (const lot of lotById.values()) {
    if (lot.view.haGroup === '') continue;
    const members = groups.get(lot.view.haGroup) ?? [];
    members.push(lot);
    groups.set(lot.view.haGroup, members);
  }
  for (const group of [...groups.keys()].sort(byCodePoint)) {
    const members = groups.get(group)!.sort((a, b) => byCodePoint(a.view.id, b.view.id));
    awardGroup(members, hostById, state, effective, tryAward);
  }

  // 2. Other lots, largest first, each to the host with its lowest effective price now.
  const largest = dominantSizer(hosts);
  const singles = [...lotById.values()]
    .filter((lot) => lot.view.haGroup === '' && lot.bids.size > 0)
    .map((lot) => ({ lot, size: largest(lot.view), cheapest: Math.min(...[...lot.bids.values()].map((b) => b.price)) }))
    .sort((a, b) => b.size - a.size || a.cheapest - b.cheapest || a.lot.index - b.lot.index);
  for (const { lot } of singles) {
    const binpack = (lot.view.policy ?? 'spread') === 'binpack';
    let best: { host: HostView; price: number; tie: number } | undefined;
    for (const hostId of lot.bids.keys()) {
      const host = hostById.get(hostId)!;
      if (firstExclusion(lot.pipeline, host, lot.view, state) !== undefined) continue;
      const price = effective(lot, host);
      const tie = binpack ? -state.awardCount(host) : state.awardCount(host);
      if (best === undefined || price < best.price || (price === best.price && (tie < best.tie || (tie === best.tie && host.id < best.host.id)))) {
        best = { host, price, tie };
      }
    }
    if (best !== undefined) tryAward(lot, best.host, lot.bids.get(best.host.id)!.price);
  }

  // 3. What is left stays pending, with its reasons as the round ends.
  const pending = new Map<string, ReturnType<typeof explanation>>();
  const census = new FleetCensus(hosts, state);
  for (const lot of lotById.values()) {
    if (awarded.has(lot.view.id)) continue;
    const { counts, byAgents } = census.explain(lot.view, lot.pipeline, lot.declines.keys(), (hostId) => declineReason(lot.declines.get(hostId)));
    pending.set(lot.view.id, explanation(hosts.length, counts, byAgents));
  }
  return { awards, pending };
}

/**
 * Places the replicas of one HA group together: a min-cost matching of lots (rows) onto the hosts
 * (columns, in id order) that bid for them and pass every rule now. Each host takes at most one
 * replica, so checking capacity per cell is exact.
 */
function awardGroup(
  members: readonly Lot[],
  hostById: ReadonlyMap<string, HostView>,
  state: RoundState,
  effective: (lot: Lot, host: HostView) => number,
  tryAward: (lot: Lot, host: HostView, price: number) => boolean,
): void {
  const feasible: { row: number; hostId: string; cost: number }[] = [];
  members.forEach((lot, row) => {
    for (const hostId of lot.bids.keys()) {
      const host = hostById.get(hostId)!;
      if (firstExclusion(lot.pipeline, host, lot.view, state) === undefined) {
        feasible.push({ row, hostId, cost: effective(lot, host) });
      }
    }
  });
  const hostIds = [...new Set(feasible.map((f) => f.hostId))].sort(byCodePoint);
  const colOf = new Map(hostIds.map((id, col) => [id, col]));
  const cells: MatchingCell[] = feasible.map((f) => ({ row: f.row, col: colOf.get(f.hostId)!, cost: f.cost }));
  const assignment = minCostMatching(members.length, hostIds.length, cells);
  assignment.forEach((col, row) => {
    if (col < 0) return;
    const lot = members[row];
    const hostId = hostIds[col];
    tryAward(lot, hostById.get(hostId)!, lot.bids.get(hostId)!.price);
  });
}

/**
 * A lot's size for ordering: its larger share of the biggest CPU and the biggest memory any host
 * of the round advertises, so that CPU-heavy and memory-heavy lots compare on one scale.
 */
function dominantSizer(hosts: readonly HostView[]): (lot: LotView) => number {
  const cpu = Math.max(1, ...hosts.map((h) => h.capacity.cpuMillis).filter(Number.isFinite));
  const mem = Math.max(1, ...hosts.map((h) => h.capacity.memoryMib).filter(Number.isFinite));
  return (lot) => {
    const size = Math.max(lot.resources.cpuMillis / cpu, lot.resources.memoryMib / mem);
    return Number.isFinite(size) ? size : 0;
  };
}

function clampWeight(w: number | undefined): number {
  if (w === undefined || !Number.isFinite(w)) return 0;
  return Math.max(-MAX_ROUND_WEIGHT, Math.min(MAX_ROUND_WEIGHT, w)) + 0;
}

/** The reason a host gave when it declined, if it names one of ours; otherwise 'no-bid'. */
function declineReason(reasons: readonly string[] | undefined): ExclusionReason {
  let best: ExclusionReason = 'no-bid';
  for (const reason of reasons ?? []) {
    // Several declines for one lot: keep the first in pipeline order, whatever their order.
    if (EXCLUSION_REASONS.has(reason) && pipelineRank(reason as ExclusionReason) < pipelineRank(best)) {
      best = reason as ExclusionReason;
    }
  }
  return best;
}

const pipelineRank = (reason: ExclusionReason): number => EXCLUSION_ORDER.indexOf(reason);
