// Builders, fast-check arbitraries and an independent oracle of the placement rules, shared by
// the auction suites. The oracle is written apart from server/auction on purpose: the
// properties check the module against it, not against itself.
import fc from 'fast-check';
import type {
  Award,
  BidView,
  Constraints,
  DeclineView,
  ExclusionReason,
  HostView,
  LotView,
  Resources,
} from '../../server/auction';

export function host(id: string, over: Partial<HostView> = {}): HostView {
  return {
    id,
    pod: 'local',
    provider: 'dev',
    labels: {},
    capacity: { cpuMillis: 4000, memoryMib: 8192 },
    allocated: { cpuMillis: 0, memoryMib: 0 },
    alive: true,
    acceptsWork: true,
    haGroups: new Set(),
    ...over,
  };
}

export function lot(id: string, over: Partial<LotView> = {}): LotView {
  return {
    id,
    tenant: 't1',
    environment: 'prod',
    service: 'web',
    haGroup: '',
    resources: { cpuMillis: 500, memoryMib: 512 },
    image: 'busybox',
    constraints: {},
    excludedHosts: new Set(),
    ...over,
  };
}

export const bid = (hostId: string, lotId: string, price: number): BidView => ({ hostId, lotId, price });

// ---- arbitraries ----

const HOST_IDS = Array.from({ length: 12 }, (_, i) => `h${i}`);
const LOT_IDS = Array.from({ length: 14 }, (_, i) => `l${i}`);
const GROUPS = ['g1', 'g2', 'g3'];
export const REASONS = ['down', 'no-apparmor', 'constraint', 'cpu', 'memory', 'capacity', 'ha', 'refused', 'no-bid', 'disk full', ''];

const resources = (cpu: number, mem: number): fc.Arbitrary<Resources> =>
  fc.record({ cpuMillis: fc.integer({ min: 0, max: cpu }), memoryMib: fc.integer({ min: 0, max: mem }) });

export const hostArb = (id: string): fc.Arbitrary<HostView> =>
  fc.record({
    id: fc.constant(id),
    pod: fc.constantFrom('p1', 'p2'),
    provider: fc.constantFrom('aws', 'gcp'),
    labels: fc.dictionary(fc.constantFrom('zone', 'disk'), fc.constantFrom('a', 'b')),
    capacity: fc.record({ cpuMillis: fc.integer({ min: 500, max: 4000 }), memoryMib: fc.integer({ min: 512, max: 8192 }) }),
    // Sometimes already above capacity: such a host must simply receive nothing.
    allocated: fc.oneof({ weight: 8, arbitrary: resources(1000, 2000) }, { weight: 1, arbitrary: resources(5000, 9000) }),
    alive: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
    acceptsWork: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
    haGroups: fc.subarray(GROUPS, { maxLength: 1 }).map((g) => new Set(g)),
  });

const constraintsArb: fc.Arbitrary<Constraints> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({}) },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        pod: fc.constantFrom('p1', 'p2', ''),
        provider: fc.constantFrom('aws', 'gcp'),
        labels: fc.dictionary(fc.constantFrom('zone', 'disk'), fc.constantFrom('a', 'b'), { maxKeys: 1 }),
      },
      { requiredKeys: [] },
    ),
  },
);

export const lotArb = (id: string): fc.Arbitrary<LotView> =>
  fc.record({
    id: fc.constant(id),
    tenant: fc.constantFrom('t1', 't2'),
    environment: fc.constant('prod'),
    service: fc.constantFrom('web', 'db'),
    haGroup: fc.constantFrom('', '', ...GROUPS),
    resources: resources(1200, 2400),
    image: fc.constant('busybox'),
    constraints: constraintsArb,
    excludedHosts: fc.oneof(
      { weight: 3, arbitrary: fc.constant(new Set<string>()) },
      { weight: 1, arbitrary: fc.subarray(HOST_IDS, { maxLength: 2 }).map((h) => new Set(h)) },
    ),
    policy: fc.constantFrom<'spread' | 'binpack' | undefined>('spread', 'binpack', undefined),
    avoidHosts: fc.oneof(
      { weight: 3, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.subarray(HOST_IDS, { maxLength: 3 }).map((h) => new Set(h)) },
    ),
  });

/** Round weights as agents might send them: the usual ±100, nothing, and absurd values. */
const roundWeightArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(100, -100, 0, undefined) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constantFrom(1e300, -1e300, NaN, Infinity, -Infinity) },
);

/** Absurd prices included: NaN, infinities, -0, the extremes of a double. */
const priceArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -5, max: 100 }) },
  { weight: 2, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constantFrom(Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, -0, NaN, Infinity) },
);

export interface Scenario {
  hosts: HostView[];
  lots: LotView[];
  bids: BidView[];
  declines: DeclineView[];
}

export const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    hostIds: fc.subarray(HOST_IDS),
    lotIds: fc.subarray(LOT_IDS),
  })
  .chain(({ hostIds, lotIds }) => {
    // Most bids name a real host and lot; a few name neither, and some come from hosts that the
    // rules exclude: the module must drop those itself.
    const anyHost = fc.constantFrom(...hostIds, 'ghost-host');
    const anyLot = fc.constantFrom(...lotIds, 'ghost-lot');
    const realBids =
      hostIds.length > 0 && lotIds.length > 0
        ? fc.array(fc.record({ hostId: fc.constantFrom(...hostIds), lotId: fc.constantFrom(...lotIds), price: priceArb, roundWeight: roundWeightArb }), {
            maxLength: 80,
            size: 'medium', // the default size would rarely give more than ten bids
          })
        : fc.constant([]);
    const junkBids = fc.array(fc.record({ hostId: anyHost, lotId: anyLot, price: priceArb }), { maxLength: 4 });
    return fc.record({
      hosts: fc.tuple(...hostIds.map(hostArb)),
      lots: fc.tuple(...lotIds.map(lotArb)),
      bids: fc.tuple(realBids, junkBids).map(([real, junk]) => [...real, ...junk]),
      declines: fc.array(fc.record({ hostId: anyHost, lotId: anyLot, reason: fc.constantFrom(...REASONS) }), {
        maxLength: 6,
      }),
    });
  });

// ---- oracle ----

/** Resources awarded per host by a list of awards. */
export function awardedPerHost(lots: readonly LotView[], awards: readonly Award[]): Map<string, Resources> {
  const byId = new Map(lots.map((l) => [l.id, l]));
  const sums = new Map<string, Resources>();
  for (const a of awards) {
    const r = byId.get(a.lotId)!.resources;
    const s = sums.get(a.hostId) ?? { cpuMillis: 0, memoryMib: 0 };
    sums.set(a.hostId, { cpuMillis: s.cpuMillis + r.cpuMillis, memoryMib: s.memoryMib + r.memoryMib });
  }
  return sums;
}

/** May `h` take `l` after `awards`? The rules of DESIGN.md, written independently of the module. */
export function oracleAllows(h: HostView, l: LotView, lots: readonly LotView[], awards: readonly Award[]): boolean {
  if (!h.alive || !h.acceptsWork || l.excludedHosts.has(h.id)) return false;
  const c = l.constraints;
  if (c.pod && c.pod !== h.pod) return false;
  if (c.provider && c.provider !== h.provider) return false;
  for (const [k, v] of Object.entries(c.labels ?? {})) if (h.labels[k] !== v) return false;
  const extra = awardedPerHost(lots, awards).get(h.id) ?? { cpuMillis: 0, memoryMib: 0 };
  if (h.allocated.cpuMillis + extra.cpuMillis + l.resources.cpuMillis > h.capacity.cpuMillis) return false;
  if (h.allocated.memoryMib + extra.memoryMib + l.resources.memoryMib > h.capacity.memoryMib) return false;
  if (l.haGroup !== '') {
    if (h.haGroups.has(l.haGroup)) return false;
    const byId = new Map(lots.map((x) => [x.id, x]));
    if (awards.some((a) => a.hostId === h.id && byId.get(a.lotId)!.haGroup === l.haGroup)) return false;
  }
  return true;
}

/** Why `h` cannot take `l` after `awards`, by the first rule in pipeline order; written apart from the module. */
export function oracleReason(h: HostView, l: LotView, lots: readonly LotView[], awards: readonly Award[], declines: readonly DeclineView[]): ExclusionReason {
  if (!h.alive) return 'down';
  if (!h.acceptsWork) return 'no-apparmor';
  const c = l.constraints;
  if ((c.pod && c.pod !== h.pod) || (c.provider && c.provider !== h.provider) || Object.entries(c.labels ?? {}).some(([k, v]) => h.labels[k] !== v)) return 'constraint';
  if (l.excludedHosts.has(h.id)) return 'refused';
  const extra = awardedPerHost(lots, awards).get(h.id) ?? { cpuMillis: 0, memoryMib: 0 };
  if (l.resources.cpuMillis < 0 || h.allocated.cpuMillis + extra.cpuMillis + l.resources.cpuMillis > h.capacity.cpuMillis) return 'cpu';
  if (l.resources.memoryMib < 0 || h.allocated.memoryMib + extra.memoryMib + l.resources.memoryMib > h.capacity.memoryMib) return 'memory';
  if (!oracleAllows(h, l, lots, awards)) return 'ha';
  const order: ExclusionReason[] = ['down', 'no-apparmor', 'constraint', 'refused', 'cpu', 'memory', 'ha', 'image'];
  const said = declines.filter((d) => d.hostId === h.id && d.lotId === l.id).map((d) => d.reason as ExclusionReason).filter((r) => order.includes(r));
  return said.sort((a, b) => order.indexOf(a) - order.indexOf(b))[0] ?? 'no-bid';
}

/** The lowest finite price each host bid for each lot, ignoring pairs the host also declined. */
export function usableBids(s: Scenario): Map<string, number> {
  const declined = new Set(s.declines.map((d) => `${d.hostId}\u0000${d.lotId}`));
  const best = new Map<string, number>();
  for (const b of s.bids) {
    const key = `${b.hostId}\u0000${b.lotId}`;
    if (!Number.isFinite(b.price) || declined.has(key)) continue;
    if (!best.has(key) || b.price < best.get(key)!) best.set(key, b.price);
  }
  return best;
}

export const pairKey = (hostId: string, lotId: string): string => `${hostId}\u0000${lotId}`;
