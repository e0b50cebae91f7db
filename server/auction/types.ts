// The auction's vocabulary: the views it is given and the answers it returns.
// Everything here is plain data; the core never sees gRPC messages or database rows.

/** CPU in millicores, memory in MiB: the two dimensions a lot asks for and a host advertises. */
export interface Resources {
  cpuMillis: number;
  memoryMib: number;
}

/** The server's view of one host at the start of a round. */
export interface HostView {
  id: string;
  pod: string;
  provider: string;
  labels: Record<string, string>;
  /** What the host advertised. */
  capacity: Resources;
  /** Already awarded on this host (the server's own bookkeeping, not the agent's word). */
  allocated: Resources;
  /** False when the host is down (missed heartbeats). */
  alive: boolean;
  /** False e.g. when the host has no AppArmor and was not started with the insecure flag. */
  acceptsWork: boolean;
  /** HA groups that already have a replica on this host. */
  haGroups: ReadonlySet<string>;
  /** HA groups that already have a replica in this host's pod. Not used yet. */
  haPodGroups?: ReadonlySet<string>;
}

/** Hard constraints of a lot. An absent or empty pod/provider means "any". */
export interface Constraints {
  pod?: string;
  provider?: string;
  /** Every label listed must be present on the host with exactly this value. */
  labels?: Record<string, string>;
}

/**
 * How a service wants its replicas placed. `spread` (the default): a host asks more for each lot
 * it already holds or wins in the round, and ties go to the host with fewer awards this round.
 * `binpack`: the reverse, so that a host fills up before the next one is used.
 */
export type PlacementPolicy = 'spread' | 'binpack';

/** One replica to place. */
export interface LotView {
  id: string;
  tenant: string;
  environment: string;
  service: string;
  /** '' when the service is not HA. */
  haGroup: string;
  resources: Resources;
  image: string;
  constraints: Constraints;
  /** Hosts that refused or timed out an award for this lot: never asked again. */
  excludedHosts: ReadonlySet<string>;
  /** Defaults to 'spread'. */
  policy?: PlacementPolicy;
  /**
   * Hosts where replicas of this service failed recently: still allowed, but priced up by
   * AVOID_PENALTY, so that a crash-looping replica goes elsewhere when anywhere else will do.
   */
  avoidHosts?: ReadonlySet<string>;
}

/**
 * Why a host cannot take a lot, in pipeline order (placement-rules.ts), then the reasons only an
 * agent knows and gives when it declines: 'image' (it cannot get the image), 'no-bid'. Capacity
 * is two reasons, 'cpu' and 'memory', so that an explanation says which one to add.
 */
export const EXCLUSION_ORDER = ['down', 'no-apparmor', 'constraint', 'refused', 'cpu', 'memory', 'ha', 'image', 'no-bid'] as const;
export type ExclusionReason = (typeof EXCLUSION_ORDER)[number];

/** Why a lot stays pending: for each host of the fleet, the first reason that excluded it. */
export interface Explanation {
  /** Number of hosts in the view the lot was judged against. */
  hosts: number;
  /** Hosts per reason; reasons with no host are absent. The counts add up to `hosts`. */
  excluded: Partial<Record<ExclusionReason, number>>;
  /** e.g. "3 hosts: 2 excluded by memory, 1 by CPU" (see explanation-text.ts). */
  text: string;
  /**
   * How many of the hosts were counted by what they answered (a decline, or no bid) rather than
   * by the server's own rules; absent when none. What an agent knows can change without the
   * server hearing of it (it finished removing a container, pulled an image), so such a lot is
   * tried again after a while instead of waiting for the fleet to change.
   */
  byAgents?: number;
}

/** What the auctioneer sends out for one round. */
export interface RoundPlan {
  /** hostId -> lot ids: ONE call for bids per candidate host per round. */
  calls: Map<string, string[]>;
  /** Lots with no candidate at all, and why. */
  unplaceable: Map<string, Explanation>;
}

export interface PlanOptions {
  /** d in "power of d choices": a lot samples this many candidates when it has more. Integer >= 1. */
  maxCandidatesPerLot: number;
  /** Uniform in [0, 1). Injected so that a round can be replayed from its seed. */
  random: () => number;
  /**
   * When set (an integer >= 1) and the fleet is larger: the round's lots sample their candidates
   * from this many hosts (at least `maxCandidatesPerLot`), drawn uniformly from the fleet for each
   * round, so that the calls a round sends do not grow with the fleet. A lot no host of the window
   * can take is sampled against the whole fleet.
   */
  windowHosts?: number;
}

/**
 * A host's price for a lot; lower is better. Prices are on the reference scale where a host's
 * whole load is worth 100 points (agent/price-lot.ts).
 */
export interface BidView {
  hostId: string;
  lotId: string;
  price: number;
  /**
   * How the host's price moves with what the round awards it before this lot: the effective
   * price is `price + roundWeight × shift`, where shift is how far the awards made to the host
   * earlier in the round move its load with the lot placed (the larger of the CPU and memory
   * fractions of its capacity, as the price measures it). Positive spreads,
   * negative packs; clamped to ±MAX_ROUND_WEIGHT; absent means 0.
   */
  roundWeight?: number;
}

/** A host saying it cannot take a lot. `reason` may be an ExclusionReason or free text. */
export interface DeclineView {
  hostId: string;
  lotId: string;
  reason: string;
}

export interface Award {
  lotId: string;
  hostId: string;
  price: number;
}

export interface RoundResult {
  awards: Award[];
  pending: Map<string, Explanation>;
}
