/**
 * The auction core: the door of server/auction.
 *
 * A ROUND places a batch of lots (one lot = one replica to place). It has two halves around the
 * network, and this module is both halves without the network: it takes views and bids as plain
 * values and returns plans, awards and explanations. No gRPC, SQLite, clock or Math.random
 * inside (randomness comes in through PlanOptions.random), so it is tested as properties,
 * benchmarked alone, and a management pod can run the same core for its own hosts.
 *
 * 0. takeFairBatch: the round's lots, tenants and then their services in turn (never oldest-first
 *    across the fleet); LotParking keeps lots no host could take out of rounds until the fleet
 *    changes (or, for reasons only agents know, until a retry time).
 * 1. planRound: for each lot, the candidate hosts that pass the placement pipeline on the
 *    server's view (alive, accepts work, constraints, not refused before, advertised free
 *    capacity, HA group not there yet). Past `maxCandidatesPerLot` candidates a lot samples that
 *    many at random (power of d choices), so a round costs about the same on 100 hosts as on
 *    5000. Each candidate host gets ONE call for bids listing all its lots.
 * 2. (outside) agents price each lot (agent/price-lot.ts) and answer with bids and declines.
 * 3. determineWinners: awards, and an explanation for every lot left pending.
 *
 * Why HA groups go first, as a matching: the replicas of a group compete for the same hosts and
 * exclude each other. Greedy by price can give the cheapest host to the replica that had other
 * options and strand the one that had only that host; a min-cost matching places as many replicas
 * as possible, then the cheapest way. Groups go before single lots because they are the harder
 * lots to place: a single lot takes whatever capacity is left afterwards.
 *
 * Why the server re-checks every rule: a bid is an agent's word, the agent may be stale, buggy or
 * hostile, and it sees only itself. Capacity over a whole round (several lots awarded to one
 * host) and anti-affinity across hosts are facts only the server holds, and the invariants (no
 * host over-committed, no two replicas of a group on one host, no lot awarded twice) must hold
 * whatever the bids say. A bid only ever chooses among hosts the server already allows.
 *
 * Every "no" carries its reason: each placement rule is an object in an ordered pipeline
 * (placement-rules.ts), and a pending lot counts, per host, the first rule that excluded it.
 */
export type {
  Award,
  BidView,
  Constraints,
  DeclineView,
  ExclusionReason,
  Explanation,
  HostView,
  LotView,
  PlacementPolicy,
  PlanOptions,
  Resources,
  RoundPlan,
  RoundResult,
} from './types';
export { planRound } from './plan-round';
export { determineWinners } from './determine-winners';
export { explanationText } from './explanation-text';
export { seededRandom } from './seeded-random';
export { AVOID_PENALTY, MAX_ROUND_WEIGHT } from './determine-winners';
export { EMPTY_CURSOR, takeFairBatch, type FairCursor, type QueuedLot } from './fair-batch';
export { LotParking } from './lot-parking';
