import { explanation } from './explanation-text';
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

/** Code-point order: the same on every machine and locale, unlike localeCompare. */
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

interface Lot {
  view: LotView;
  pipeline: readonly PlacementRule[];
  /** hostId -> lowest usable price the host bid for this lot. */
  bids: Map<string, number>;
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
 * HA groups go first, in group id order, each as a min-cost matching of its lots onto the hosts
 * that bid and pass the rules: as many replicas as possible, then the lowest total price, never
 * two on one host (the HA rule counts the groups a host held before the round and those it won in
 * it). Then the other lots, greedily: cheapest bid first, ties broken by lot id then host id.
 * Capacity is booked as each award is made, so no host is over-committed within the round.
 *
 * Guarantees: every lot of `lots` is either in `awards` (once) or in `pending` (with an
 * Explanation), never both; an award goes only to a host that bid for that lot, at its bid price;
 * awards are listed in the order they were made; the result is a function of the inputs alone,
 * whatever the order of `bids` and `declines`. A pending lot's Explanation counts every host of
 * `hosts` once, by the first rule that excludes it at the end of the round (pipeline order), else
 * by the reason it declined with when that is an ExclusionReason, else as 'no-bid'.
 * Throws RangeError on duplicate host or lot ids.
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
    lots.map((view) => [view.id, { view, pipeline: pipelineFor(view), bids: new Map(), declines: new Map() }]),
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
    const best = lot.bids.get(bid.hostId);
    if (best === undefined || price < best) lot.bids.set(bid.hostId, price);
  }

  const state = new RoundState();
  const awards: Award[] = [];
  const awarded = new Set<string>();
  /** Awards the lot if the host still passes every rule; the only place an award is made. */
  const tryAward = (lot: Lot, host: HostView, price: number): void => {
    if (awarded.has(lot.view.id) || firstExclusion(lot.pipeline, host, lot.view, state) !== undefined) return;
    state.award(host, lot.view);
    awarded.add(lot.view.id);
    awards.push({ lotId: lot.view.id, hostId: host.id, price });
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
    awardGroup(members, hostById, state, tryAward);
  }

  // 2. Other lots, cheapest bid first.
  const offers: { lot: Lot; host: HostView; price: number }[] = [];
  for (const lot of lotById.values()) {
    if (lot.view.haGroup !== '') continue;
    for (const [hostId, price] of lot.bids) {
      const host = hostById.get(hostId)!;
      if (firstExclusion(lot.pipeline, host, lot.view, state) === undefined) offers.push({ lot, host, price });
    }
  }
  offers.sort(
    (a, b) => a.price - b.price || byCodePoint(a.lot.view.id, b.lot.view.id) || byCodePoint(a.host.id, b.host.id),
  );
  for (const offer of offers) tryAward(offer.lot, offer.host, offer.price);

  // 3. What is left stays pending, with its reasons as the round ends.
  const pending = new Map<string, ReturnType<typeof explanation>>();
  for (const lot of lotById.values()) {
    if (awarded.has(lot.view.id)) continue;
    const counts: Partial<Record<ExclusionReason, number>> = {};
    for (const host of hosts) {
      const reason = firstExclusion(lot.pipeline, host, lot.view, state) ?? declineReason(lot.declines.get(host.id));
      counts[reason] = (counts[reason] ?? 0) + 1;
    }
    pending.set(lot.view.id, explanation(hosts.length, counts));
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
  tryAward: (lot: Lot, host: HostView, price: number) => void,
): void {
  const feasible: { row: number; hostId: string; price: number }[] = [];
  members.forEach((lot, row) => {
    for (const [hostId, price] of lot.bids) {
      if (firstExclusion(lot.pipeline, hostById.get(hostId)!, lot.view, state) === undefined) {
        feasible.push({ row, hostId, price });
      }
    }
  });
  const hostIds = [...new Set(feasible.map((f) => f.hostId))].sort(byCodePoint);
  const colOf = new Map(hostIds.map((id, col) => [id, col]));
  const cells: MatchingCell[] = feasible.map((f) => ({ row: f.row, col: colOf.get(f.hostId)!, cost: f.price }));
  const assignment = minCostMatching(members.length, hostIds.length, cells);
  assignment.forEach((col, row) => {
    if (col < 0) return;
    const lot = members[row];
    const hostId = hostIds[col];
    tryAward(lot, hostById.get(hostId)!, lot.bids.get(hostId)!);
  });
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
