import { explanation } from './explanation-text';
import { FleetCensus } from './fleet-census';
import { firstExclusion, pipelineFor, type PlacementRule } from './placement-rules';
import { RoundState } from './round-state';
import type { ExclusionReason, HostView, LotView, PlanOptions, RoundPlan } from './types';
import { assertUniqueIds } from './unique-ids';

/**
 * Picks the candidate hosts of every lot of a round and groups them into calls for bids.
 *
 * A candidate passes every placement rule on the server's own view at the start of the round
 * (alive, accepts work, constraints, not excluded, advertised free capacity fits, HA group not
 * already there). Lots are judged one by one against that view: whether several lots fit on one
 * host together is winner determination's business, after the bids.
 *
 * When the fleet is no larger than `maxCandidatesPerLot`, every candidate is called and `random`
 * is never drawn. Otherwise hosts are visited in a random order (a lazily shuffled index, so a
 * lot costs O(hosts visited), not O(fleet)) until `maxCandidatesPerLot` candidates are found:
 * a uniform sample of the candidates, the "power of d choices" that keeps a round's cost flat as
 * the fleet grows. With `windowHosts`, the round first draws that many hosts of the fleet and its
 * lots sample among them: 16 candidates for each of 1,024 lots fall on about 1,000 hosts however
 * large the fleet, where drawn from 10,000 they fell on 8,000, each one more call to send and
 * answer to read; a lot no host of the window takes is sampled against the whole fleet. A lot
 * for which fewer than `maxCandidatesPerLot` hosts of the fleet pass has visited the
 * whole fleet; the lots after it that ask the same (resources, constraints) take their candidates
 * from the hosts that passed it (FleetCensus), so a backlog no host can take costs one visit of
 * the fleet per shape, not per lot. A lot no host passes goes to `unplaceable` with its
 * explanation, and in no call.
 *
 * Guarantees: each host appears at most once in `calls` (one call per host per round), with its
 * lot ids in the order of `lots`; `calls` iterates in the order of `hosts`; each lot is in at
 * most `maxCandidatesPerLot` calls; the result depends only on the inputs and the sequence of
 * `random()` values; a lot is unplaceable only when no host of the fleet passes. Throws
 * RangeError on duplicate host or lot ids, or when `maxCandidatesPerLot` or `windowHosts` is not
 * an integer >= 1.
 */
export function planRound(hosts: readonly HostView[], lots: readonly LotView[], opts: PlanOptions): RoundPlan {
  const d = opts.maxCandidatesPerLot;
  if (!Number.isInteger(d) || d < 1) throw new RangeError(`maxCandidatesPerLot must be an integer >= 1, got ${d}`);
  assertUniqueIds(hosts, 'host');
  assertUniqueIds(lots, 'lot');

  const state = new RoundState(); // empty: the plan judges against the views alone
  const lotsOfHost: (string[] | undefined)[] = new Array(hosts.length);
  const plan: RoundPlan = { calls: new Map(), unplaceable: new Map() };

  const census = new FleetCensus(hosts, state);
  // The hosts this round's lots sample from: a window of the fleet, drawn anew each round.
  const w = opts.windowHosts;
  if (w !== undefined && (!Number.isInteger(w) || w < 1)) throw new RangeError(`windowHosts must be an integer >= 1, got ${w}`);
  const window = w !== undefined && hosts.length > Math.max(w, d) ? take(lazyShuffle(hosts.length, opts.random), Math.max(w, d)) : null;
  for (const lot of lots) {
    const pipeline = pipelineFor(lot);
    let picked: number[];
    const known = hosts.length <= d ? null : census.knownPassers(lot, pipeline);
    if (known !== null) {
      if (known.length === 0) {
        plan.unplaceable.set(lot.id, explanation(hosts.length, census.explain(lot, pipeline).counts));
        continue;
      }
      picked = known.length <= d ? known : take(lazyShuffle(known.length, opts.random), d).map((k) => known[k]!);
    } else if (hosts.length <= d) {
      const counts: Partial<Record<ExclusionReason, number>> = {};
      picked = scanAll(hosts, lot, pipeline, state, counts);
      if (picked.length === 0) {
        plan.unplaceable.set(lot.id, explanation(hosts.length, counts));
        continue;
      }
    } else {
      picked = window === null ? [] : sample(hosts, window, lot, pipeline, state, {}, d, opts.random);
      if (picked.length === 0) {
        // No host of the window takes it (or there is no window): the whole fleet is visited.
        const counts: Partial<Record<ExclusionReason, number>> = {};
        picked = sample(hosts, null, lot, pipeline, state, counts, d, opts.random);
        if (picked.length === 0) {
          plan.unplaceable.set(lot.id, explanation(hosts.length, counts));
          continue;
        }
        // The whole fleet was visited and few hosts pass: the next lots of this shape use the list.
        if (picked.length < d) census.count(lot, pipeline);
      }
    }
    for (const i of picked) (lotsOfHost[i] ??= []).push(lot.id);
  }

  for (let i = 0; i < hosts.length; i++) {
    const lotIds = lotsOfHost[i];
    if (lotIds !== undefined) plan.calls.set(hosts[i].id, lotIds);
  }
  return plan;
}

type Counts = Partial<Record<ExclusionReason, number>>;

/**
 * The positions 0..n-1 in a uniformly random order (Fisher-Yates), produced one at a time: only
 * the positions swapped so far are stored, so stopping early costs nothing for the rest.
 */
function* lazyShuffle(n: number, random: () => number): Generator<number> {
  const swapped = new Map<number, number>(); // position -> what is there, where it differs from the identity
  for (let pos = 0; pos < n; pos++) {
    // Clamp: a random() that returns 1 (or garbage) must not index out of range.
    const other = pos + Math.min(n - pos - 1, Math.max(0, Math.floor(random() * (n - pos))) || 0);
    const atOther = swapped.get(other) ?? other;
    swapped.set(other, swapped.get(pos) ?? pos);
    yield atOther;
  }
}

/** The first `k` (>= 1) values of `values`, drawing no further. */
function take(values: Iterable<number>, k: number): number[] {
  const out: number[] = [];
  for (const v of values) {
    out.push(v);
    if (out.length >= k) break;
  }
  return out;
}

/** Indices of every host passing the pipeline; counts the others by their first failing rule. */
function scanAll(
  hosts: readonly HostView[],
  lot: LotView,
  pipeline: readonly PlacementRule[],
  state: RoundState,
  counts: Counts,
): number[] {
  const picked: number[] = [];
  for (let i = 0; i < hosts.length; i++) {
    const reason = firstExclusion(pipeline, hosts[i], lot, state);
    if (reason === undefined) picked.push(i);
    else counts[reason] = (counts[reason] ?? 0) + 1;
  }
  return picked;
}

/**
 * Up to `d` indices of hosts passing the pipeline, a uniform sample of them, from the hosts of
 * `pool` (indices into `hosts`) or, when it is null, the whole fleet, visited in the order of a
 * lazy shuffle. `counts` is complete only when all of them were visited, which is the case
 * whenever fewer than `d` hosts pass.
 */
function sample(
  hosts: readonly HostView[],
  pool: readonly number[] | null,
  lot: LotView,
  pipeline: readonly PlacementRule[],
  state: RoundState,
  counts: Counts,
  d: number,
  random: () => number,
): number[] {
  const picked: number[] = [];
  for (const pos of lazyShuffle(pool === null ? hosts.length : pool.length, random)) {
    const i = pool === null ? pos : pool[pos]!;
    const reason = firstExclusion(pipeline, hosts[i], lot, state);
    if (reason !== undefined) counts[reason] = (counts[reason] ?? 0) + 1;
    else if (picked.push(i) >= d) break;
  }
  return picked;
}
