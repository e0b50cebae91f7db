import type { RoundState } from './round-state';
import type { ExclusionReason, HostView, LotView } from './types';

/**
 * One hard rule of placement. A rule is asked only about the lots it applies to, and answers
 * for one host at a time; the first rule to say no is the reason the host is excluded.
 */
export interface PlacementRule {
  readonly reason: Exclude<ExclusionReason, 'no-bid'>;
  /** False when the rule cannot exclude any host for this lot (e.g. the HA rule for a non-HA lot). */
  appliesTo(lot: LotView): boolean;
  /** True when the host may take the lot, given what the round has awarded so far. */
  check(host: HostView, lot: LotView, state: RoundState): boolean;
}

const hasOwn = (record: Record<string, string>, key: string): boolean =>
  Object.prototype.hasOwnProperty.call(record, key);

const down: PlacementRule = {
  reason: 'down',
  appliesTo: () => true,
  check: (host) => host.alive,
};

const noAppArmor: PlacementRule = {
  reason: 'no-apparmor',
  appliesTo: () => true,
  check: (host) => host.acceptsWork,
};

const constraint: PlacementRule = {
  reason: 'constraint',
  appliesTo: (lot) => {
    const c = lot.constraints;
    return !!c.pod || !!c.provider || (c.labels !== undefined && Object.keys(c.labels).length > 0);
  },
  check: (host, lot) => {
    const c = lot.constraints;
    if (c.pod && host.pod !== c.pod) return false;
    if (c.provider && host.provider !== c.provider) return false;
    if (c.labels !== undefined) {
      for (const key of Object.keys(c.labels)) {
        if (!hasOwn(host.labels, key) || host.labels[key] !== c.labels[key]) return false;
      }
    }
    return true;
  },
};

const refused: PlacementRule = {
  reason: 'refused',
  appliesTo: (lot) => lot.excludedHosts.size > 0,
  check: (host, lot) => !lot.excludedHosts.has(host.id),
};

/** Fits when used + asked <= advertised CPU. A negative or NaN ask never fits. */
const cpu: PlacementRule = {
  reason: 'cpu',
  appliesTo: () => true,
  check: (host, lot, state) => {
    const ask = lot.resources.cpuMillis;
    return ask >= 0 && state.used(host).cpuMillis + ask <= host.capacity.cpuMillis;
  },
};

/** Fits when used + asked <= advertised memory. A negative or NaN ask never fits. */
const memory: PlacementRule = {
  reason: 'memory',
  appliesTo: () => true,
  check: (host, lot, state) => {
    const ask = lot.resources.memoryMib;
    return ask >= 0 && state.used(host).memoryMib + ask <= host.capacity.memoryMib;
  },
};

const ha: PlacementRule = {
  reason: 'ha',
  appliesTo: (lot) => lot.haGroup !== '',
  check: (host, lot, state) => !state.holdsGroup(host, lot.haGroup),
};

/**
 * The placement pipeline, cheapest first: flags, then string compares, then a set lookup, then
 * the arithmetic of CPU and memory and the round state's HA bookkeeping. The order is also the order
 * in which an explanation attributes a host, so a host that is down is counted as down and not
 * as full: the first reason is the one an operator would fix first.
 */
export const placementRules: readonly PlacementRule[] = [down, noAppArmor, constraint, refused, cpu, memory, ha];

/** The rules of `placementRules` that apply to this lot, in pipeline order. Computed once per lot. */
export function pipelineFor(lot: LotView): readonly PlacementRule[] {
  return placementRules.filter((rule) => rule.appliesTo(lot));
}

/**
 * The first rule of the lot's pipeline that excludes the host, or undefined when the host passes
 * them all. `pipeline` must come from pipelineFor(lot).
 */
export function firstExclusion(
  pipeline: readonly PlacementRule[],
  host: HostView,
  lot: LotView,
  state: RoundState,
): PlacementRule['reason'] | undefined {
  for (const rule of pipeline) {
    if (!rule.check(host, lot, state)) return rule.reason;
  }
  return undefined;
}
