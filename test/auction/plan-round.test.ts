import assert from 'node:assert/strict';
import fc from 'fast-check';
import { planRound, seededRandom, type HostView, type LotView } from '../../server/auction';
import { host, hostArb, lot, lotArb, oracleAllows, oracleReason } from './fleet';

/** A fleet of n hosts, one in ten down, in 4 pods. */
function fleet(n: number): HostView[] {
  return Array.from({ length: n }, (_, i) =>
    host(`h${String(i).padStart(5, '0')}`, { pod: `pod-${i % 4}`, alive: i % 10 !== 3 }),
  );
}

/** Lots of the plan, host by host, inverted: lot id -> hosts called for it. */
function candidatesOf(calls: Map<string, string[]>): Map<string, string[]> {
  const byLot = new Map<string, string[]>();
  for (const [hostId, lotIds] of calls) {
    for (const lotId of lotIds) byLot.set(lotId, [...(byLot.get(lotId) ?? []), hostId]);
  }
  return byLot;
}

describe('auction: planRound', () => {
  it('on a large fleet, calls each host once and samples at most d candidates per lot', () => {
    const hosts = fleet(3000);
    const lots: LotView[] = [
      ...Array.from({ length: 150 }, (_, i) => lot(`l${i}`)),
      ...Array.from({ length: 30 }, (_, i) => lot(`ha${i}`, { haGroup: `g${Math.floor(i / 3)}` })),
      ...Array.from({ length: 20 }, (_, i) => lot(`pinned${i}`, { constraints: { pod: 'pod-2' } })),
    ];
    let draws = 0;
    const random = seededRandom(42);
    const counting = (): number => {
      draws++;
      return random();
    };
    const d = 5;
    const plan = planRound(hosts, lots, { maxCandidatesPerLot: d, random: counting });

    // One call per host: a Map cannot repeat a key, and no call lists a lot twice.
    for (const lotIds of plan.calls.values()) assert.equal(new Set(lotIds).size, lotIds.length);
    const byLot = candidatesOf(plan.calls);
    assert.equal(plan.unplaceable.size, 0);
    for (const l of lots) {
      const called = byLot.get(l.id) ?? [];
      assert.equal(called.length, d, `lot ${l.id} sampled ${called.length} candidates`);
      for (const hostId of called) {
        assert.ok(oracleAllows(hosts.find((h) => h.id === hostId)!, l, lots, []), `${hostId} is no candidate for ${l.id}`);
      }
    }
    // The cost of a lot follows the hosts it visits, not the fleet: about d / (share of candidates).
    assert.ok(draws < lots.length * 40, `${draws} draws for ${lots.length} lots`);

    // Same seed, same plan; another seed, another sample.
    assert.deepStrictEqual(planRound(hosts, lots, { maxCandidatesPerLot: d, random: seededRandom(42) }), plan);
    assert.notDeepStrictEqual(planRound(hosts, lots, { maxCandidatesPerLot: d, random: seededRandom(7) }).calls, plan.calls);
  });

  it('spreads the sample over the fleet', () => {
    const hosts = fleet(1000);
    const lots = Array.from({ length: 400 }, (_, i) => lot(`l${i}`));
    const plan = planRound(hosts, lots, { maxCandidatesPerLot: 3, random: seededRandom(1) });
    // 1200 candidate slots over 900 live hosts: a uniform sample touches most of them.
    assert.ok(plan.calls.size > 600, `only ${plan.calls.size} hosts called`);
    for (const hostId of plan.calls.keys()) assert.notEqual(Number(hostId.slice(1)) % 10, 3, 'a down host called');
  });

  it('on a small fleet, calls every candidate and draws no randomness', () => {
    const hosts = [host('a'), host('b', { alive: false }), host('c', { pod: 'edge' }), host('d')];
    const lots = [lot('any'), lot('edge-only', { constraints: { pod: 'edge' } }), lot('huge', { resources: { cpuMillis: 1e6, memoryMib: 1 } })];
    const plan = planRound(hosts, lots, { maxCandidatesPerLot: 4, random: () => assert.fail('random drawn') });
    assert.deepStrictEqual(
      plan.calls,
      new Map([
        ['a', ['any']],
        ['c', ['any', 'edge-only']],
        ['d', ['any']],
      ]),
    );
    assert.deepStrictEqual(plan.unplaceable, new Map([['huge', { hosts: 4, excluded: { down: 1, cpu: 3 }, text: '4 hosts: 3 excluded by CPU, 1 down' }]]));
  });

  it('explains an unplaceable lot against the whole fleet, even when sampling', () => {
    const hosts = fleet(200);
    const plan = planRound(hosts, [lot('nowhere', { constraints: { provider: 'mars' } })], {
      maxCandidatesPerLot: 3,
      random: seededRandom(3),
    });
    assert.equal(plan.calls.size, 0);
    assert.equal(plan.unplaceable.get('nowhere')?.text, '200 hosts: 180 excluded by constraints, 20 down');
  });

  it('keeps out hosts that refused the lot or already hold its HA group', () => {
    const hosts = [host('a', { haGroups: new Set(['g']) }), host('b'), host('c')];
    const plan = planRound(hosts, [lot('r', { haGroup: 'g', excludedHosts: new Set(['b']) })], {
      maxCandidatesPerLot: 10,
      random: Math.random,
    });
    assert.deepStrictEqual(plan.calls, new Map([['c', ['r']]]));
  });

  it('rejects a bad maxCandidatesPerLot and duplicate ids', () => {
    const random = seededRandom(1);
    assert.throws(() => planRound([], [], { maxCandidatesPerLot: 0, random }), RangeError);
    assert.throws(() => planRound([], [], { maxCandidatesPerLot: 2.5, random }), RangeError);
    assert.throws(() => planRound([host('a'), host('a')], [], { maxCandidatesPerLot: 2, random }), RangeError);
  });

  it('survives a random() that returns 1 or NaN', () => {
    for (const value of [1, NaN, -3, 0.9999999999999999]) {
      const plan = planRound(fleet(50), [lot('l')], { maxCandidatesPerLot: 5, random: () => value });
      assert.equal(candidatesOf(plan.calls).get('l')?.length, 5);
    }
  });

  it('property: each lot is called on min(candidates, d) distinct candidates, or is unplaceable', () => {
    const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const arb = fc.record({
      hosts: fc.integer({ min: 0, max: 40 }).chain((n) => fc.tuple(...ids('h', n).map(hostArb))),
      // Half the lots ask what the first asks: a shape the census counts once, then reuses.
      lots: fc
        .integer({ min: 0, max: 16 })
        .chain((n) => fc.tuple(...ids('l', n).map(lotArb)))
        .map((ls) => ls.map((l, i) => (i % 2 === 1 ? { ...l, resources: ls[0]!.resources, constraints: ls[0]!.constraints } : l))),
      d: fc.integer({ min: 1, max: 12 }),
      seed: fc.integer(),
    });
    fc.assert(
      fc.property(arb, ({ hosts, lots, d, seed }) => {
        const plan = planRound(hosts, lots, { maxCandidatesPerLot: d, random: seededRandom(seed) });
        const byLot = candidatesOf(plan.calls);
        for (const l of lots) {
          const passing = hosts.filter((h) => oracleAllows(h, l, lots, []));
          const called = byLot.get(l.id) ?? [];
          assert.equal(new Set(called).size, called.length);
          assert.equal(called.length, Math.min(passing.length, d));
          for (const hostId of called) assert.ok(passing.some((h) => h.id === hostId));
          assert.equal(plan.unplaceable.has(l.id), passing.length === 0);
          const why = plan.unplaceable.get(l.id);
          if (why) {
            const expected: Partial<Record<string, number>> = {};
            for (const h of hosts) {
              const reason = oracleReason(h, l, lots, [], []);
              expected[reason] = (expected[reason] ?? 0) + 1;
            }
            assert.deepEqual(why.excluded, expected, `why ${l.id}`);
            assert.ok(why.text.length > 0);
          }
        }
        // Calls go in fleet order, lots in lot order.
        const order = hosts.map((h) => h.id).filter((id) => plan.calls.has(id));
        assert.deepEqual([...plan.calls.keys()], order);
      }),
      { numRuns: 300 },
    );
  });

  it('property: with a window, a lot is called only on hosts that pass, on at most d, and is unplaceable only when no host of the fleet passes', () => {
    const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const arb = fc.record({
      hosts: fc.integer({ min: 2, max: 40 }).chain((n) => fc.tuple(...ids('h', n).map(hostArb))),
      lots: fc.integer({ min: 1, max: 12 }).chain((n) => fc.tuple(...ids('l', n).map(lotArb))),
      d: fc.integer({ min: 1, max: 6 }),
      window: fc.integer({ min: 1, max: 40 }),
      seed: fc.integer(),
    });
    fc.assert(
      fc.property(arb, ({ hosts, lots, d, window, seed }) => {
        const plan = planRound(hosts, lots, { maxCandidatesPerLot: d, random: seededRandom(seed), windowHosts: window });
        const byLot = candidatesOf(plan.calls);
        for (const l of lots) {
          const passing = new Set(hosts.filter((h) => oracleAllows(h, l, lots, [])).map((h) => h.id));
          const called = byLot.get(l.id) ?? [];
          assert.equal(new Set(called).size, called.length);
          assert.ok(called.length <= d);
          for (const hostId of called) assert.ok(passing.has(hostId), `${l.id} called on ${hostId}, which does not pass`);
          assert.equal(plan.unplaceable.has(l.id), passing.size === 0);
          assert.equal(called.length > 0, passing.size > 0, `${l.id}: ${passing.size} hosts pass, called on none`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('calls no more hosts than the window when every host of it can take the lots, each lot on d of them', () => {
    const hosts = fleet(5000).map((h) => ({ ...h, alive: true }));
    const lots = Array.from({ length: 1024 }, (_, i) => lot(`l${i}`, { resources: { cpuMillis: 10, memoryMib: 10 } }));
    const plan = planRound(hosts, lots, { maxCandidatesPerLot: 16, random: seededRandom(3), windowHosts: 256 });
    assert.ok(plan.calls.size <= 256, `${plan.calls.size} hosts called`);
    for (const called of candidatesOf(plan.calls).values()) assert.equal(called.length, 16);
    // Without the window the same round calls most of the fleet.
    const unwindowed = planRound(hosts, lots, { maxCandidatesPerLot: 16, random: seededRandom(3) });
    assert.ok(unwindowed.calls.size > 3000, `${unwindowed.calls.size} hosts called without a window`);
    // The window is drawn anew each round: two rounds call different hosts.
    const next = planRound(hosts, lots, { maxCandidatesPerLot: 16, random: seededRandom(4), windowHosts: 256 });
    assert.ok([...next.calls.keys()].some((id) => !plan.calls.has(id)));
  });
});
