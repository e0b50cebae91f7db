import { firstExclusion, type PlacementRule } from './placement-rules';
import type { RoundState } from './round-state';
import type { ExclusionReason, HostView, LotView } from './types';

type Counts = Partial<Record<ExclusionReason, number>>;

/** Rules that judge a host by what a lot asks for (resources, constraints) and nothing else of it. */
const BY_SHAPE: ReadonlySet<ExclusionReason> = new Set<ExclusionReason>(['down', 'no-apparmor', 'constraint', 'cpu', 'memory']);

/** Passing hosts of a shape are listed when there are at most this many (the few-candidates case). */
const LISTED_PASSERS = 1024;

interface ShapeCount {
  /** Hosts excluded, by the first shape rule that excludes them. */
  counts: Counts;
  /** Hosts that pass every shape rule. */
  passing: number;
  /** Their indices in `hosts`, when there are at most LISTED_PASSERS of them. */
  passers: number[] | null;
}

/**
 * Why the fleet cannot take a lot, counted over every host, without visiting every host for every
 * lot. Lots that ask for the same resources under the same constraints (the replicas of a service)
 * are judged alike by every rule but two: `refused` excludes only the hosts a lot names and `ha`
 * only the hosts that hold its group. So the fleet is visited once per shape, and each lot then
 * corrects the count for the few hosts it names, holds a group on, or heard a decline from. A
 * round with a thousand pending lots on 10,000 hosts visited 10 million (host, lot) pairs for its
 * explanations and stalled the Pod API for 12 s, long enough for every agent's keepalive to give up.
 *
 * Counts are exactly those of visiting every host with the lot's whole pipeline. `state` may not
 * change while the census is in use (it is read at the end of a round, or empty when planning).
 */
export class FleetCensus {
  private readonly shapes = new Map<string, ShapeCount>();
  private indexOfId: Map<string, number> | null = null;
  private holders: Map<string, string[]> | null = null;

  constructor(
    private readonly hosts: readonly HostView[],
    private readonly state: RoundState,
  ) {}

  /**
   * Hosts of the fleet by the first rule of `pipeline` (pipelineFor(lot)) that excludes them; a
   * host no rule excludes counts by `answer(hostId)` when it answered (a decline's reason), else as
   * 'no-bid'. `byAgents` is the number of hosts no rule excludes. `answered` lists the hosts that
   * answered for this lot.
   */
  explain(
    lot: LotView,
    pipeline: readonly PlacementRule[],
    answered: Iterable<string> = [],
    answer: (hostId: string) => ExclusionReason = () => 'no-bid',
  ): { counts: Counts; byAgents: number } {
    const shapePipeline = pipeline.filter((r) => BY_SHAPE.has(r.reason));
    const shape = this.shape(lot, shapePipeline);
    const counts: Counts = { ...shape.counts };
    let unanswered = shape.passing;
    let byAgents = 0;
    for (const i of this.namedBy(lot, answered)) {
      const host = this.hosts[i];
      const before = firstExclusion(shapePipeline, host, lot, this.state);
      if (before === undefined) unanswered--;
      else counts[before]! -= 1;
      const reason = firstExclusion(pipeline, host, lot, this.state);
      if (reason !== undefined) counts[reason] = (counts[reason] ?? 0) + 1;
      else {
        byAgents++;
        const said = answer(host.id);
        counts[said] = (counts[said] ?? 0) + 1;
      }
    }
    if (unanswered > 0) counts['no-bid'] = (counts['no-bid'] ?? 0) + unanswered;
    return { counts, byAgents: byAgents + unanswered };
  }

  /**
   * Indices of every host passing the lot's whole pipeline, when its shape has been counted and
   * few enough hosts pass that shape to be listed; otherwise null (sample the fleet instead).
   */
  knownPassers(lot: LotView, pipeline: readonly PlacementRule[]): number[] | null {
    const shapePipeline = pipeline.filter((r) => BY_SHAPE.has(r.reason));
    const shape = this.shapes.get(shapeKey(lot, shapePipeline));
    if (shape === undefined || shape.passers === null) return null;
    if (shapePipeline.length === pipeline.length) return shape.passers;
    return shape.passers.filter((i) => firstExclusion(pipeline, this.hosts[i], lot, this.state) === undefined);
  }

  /** Counts the lot's shape now, if not yet: after this, knownPassers answers for its lots. */
  count(lot: LotView, pipeline: readonly PlacementRule[]): void {
    this.shape(lot, pipeline.filter((r) => BY_SHAPE.has(r.reason)));
  }

  private shape(lot: LotView, shapePipeline: readonly PlacementRule[]): ShapeCount {
    const key = shapeKey(lot, shapePipeline);
    let shape = this.shapes.get(key);
    if (shape !== undefined) return shape;
    const counts: Counts = {};
    let passers: number[] | null = [];
    let passing = 0;
    for (let i = 0; i < this.hosts.length; i++) {
      const reason = firstExclusion(shapePipeline, this.hosts[i], lot, this.state);
      if (reason !== undefined) {
        counts[reason] = (counts[reason] ?? 0) + 1;
        continue;
      }
      passing++;
      if (passers !== null && passers.length < LISTED_PASSERS) passers.push(i);
      else passers = null;
    }
    shape = { counts, passing, passers };
    this.shapes.set(key, shape);
    return shape;
  }

  /** Hosts of the fleet the lot's own rules or answers single out: each index once. */
  private namedBy(lot: LotView, answered: Iterable<string>): Set<number> {
    const index = (this.indexOfId ??= new Map(this.hosts.map((h, i) => [h.id, i])));
    const out = new Set<number>();
    const add = (id: string) => {
      const i = index.get(id);
      if (i !== undefined) out.add(i);
    };
    for (const id of lot.excludedHosts) add(id);
    if (lot.haGroup !== '') for (const id of this.holdersOf(lot.haGroup)) add(id);
    for (const id of answered) add(id);
    return out;
  }

  /** Hosts holding a replica of the group, before the round or from it. */
  private holdersOf(group: string): readonly string[] {
    if (this.holders === null) {
      const holders = new Map<string, string[]>();
      const add = (group: string, hostId: string) => {
        const list = holders.get(group);
        if (list === undefined) holders.set(group, [hostId]);
        else list.push(hostId);
      };
      for (const h of this.hosts) for (const g of h.haGroups) add(g, h.id);
      for (const [hostId, groups] of this.state.awardedGroups()) for (const g of groups) add(g, hostId);
      this.holders = holders;
    }
    return this.holders.get(group) ?? [];
  }
}

/** What the shape rules read of a lot. Which rules apply is part of it (constraints or none). */
function shapeKey(lot: LotView, shapePipeline: readonly PlacementRule[]): string {
  const c = lot.constraints;
  const labels = c.labels === undefined ? '' : JSON.stringify(Object.entries(c.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return [shapePipeline.map((r) => r.reason).join(','), lot.resources.cpuMillis, lot.resources.memoryMib, c.pod ?? '', c.provider ?? '', labels].join('\u0000');
}
