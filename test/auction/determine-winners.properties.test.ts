import assert from 'node:assert/strict';
import fc from 'fast-check';
import { determineWinners } from '../../server/auction';
import { bruteForceMatching } from './brute-force-matching';
import type { ExclusionReason } from '../../server/auction';
import { awardedPerHost, oracleAllows, oracleReason, pairKey, scenarioArb, usableBids } from './fleet';

const RUNS = { numRuns: 400 };

describe('auction: determineWinners properties (random fleets, lots and bids)', () => {
  it('never over-commits a host: allocated + awards <= capacity on every host awarded', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const { awards } = determineWinners(s.hosts, s.lots, s.bids, s.declines);
        for (const [hostId, extra] of awardedPerHost(s.lots, awards)) {
          const h = s.hosts.find((x) => x.id === hostId)!;
          assert.ok(h.allocated.cpuMillis + extra.cpuMillis <= h.capacity.cpuMillis, `cpu of ${hostId}`);
          assert.ok(h.allocated.memoryMib + extra.memoryMib <= h.capacity.memoryMib, `memory of ${hostId}`);
        }
      }),
      RUNS,
    );
  });

  it('never puts two replicas of an HA group on one host, counting the groups already there', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const { awards } = determineWinners(s.hosts, s.lots, s.bids, s.declines);
        const seen = new Set<string>();
        for (const h of s.hosts) for (const g of h.haGroups) seen.add(`${h.id}/${g}`);
        for (const a of awards) {
          const group = s.lots.find((l) => l.id === a.lotId)!.haGroup;
          if (group === '') continue;
          const key = `${a.hostId}/${group}`;
          assert.ok(!seen.has(key), `two replicas of ${group} on ${a.hostId}`);
          seen.add(key);
        }
      }),
      RUNS,
    );
  });

  it('ends every lot exactly once: awarded once, or pending with a reason', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const { awards, pending } = determineWinners(s.hosts, s.lots, s.bids, s.declines);
        const awarded = awards.map((a) => a.lotId);
        assert.equal(new Set(awarded).size, awarded.length, 'a lot awarded twice');
        for (const l of s.lots) {
          const isAwarded = awarded.includes(l.id);
          assert.notEqual(isAwarded, pending.has(l.id), `lot ${l.id}: awarded xor pending`);
        }
        assert.equal(awards.length + pending.size, s.lots.length, 'nothing but the given lots');
        for (const why of pending.values()) {
          assert.ok(why.text.length > 0);
          assert.equal(why.hosts, s.hosts.length);
          const counted = Object.values(why.excluded).reduce((sum, n) => sum + (n ?? 0), 0);
          assert.equal(counted, s.hosts.length, 'every host counted once');
        }
      }),
      RUNS,
    );
  });

  it('awards only to a host that bid for that lot, at its lowest usable price, and that the rules allow', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const { awards } = determineWinners(s.hosts, s.lots, s.bids, s.declines);
        const usable = usableBids(s);
        awards.forEach((a, i) => {
          const price = usable.get(pairKey(a.hostId, a.lotId));
          assert.ok(price !== undefined, `${a.hostId} never bid usably for ${a.lotId}`);
          assert.ok(price === a.price, 'award at the bid price');
          const h = s.hosts.find((x) => x.id === a.hostId)!;
          const l = s.lots.find((x) => x.id === a.lotId)!;
          // Checked against the awards made before this one: the order of `awards` is the order made.
          assert.ok(oracleAllows(h, l, s.lots, awards.slice(0, i)), `${a.hostId} may not take ${a.lotId}`);
        });
      }),
      RUNS,
    );
  });

  it('leaves a lot pending only when no host that bid for it can take it', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const { awards, pending } = determineWinners(s.hosts, s.lots, s.bids, s.declines);
        const usable = usableBids(s);
        for (const lotId of pending.keys()) {
          const l = s.lots.find((x) => x.id === lotId)!;
          for (const h of s.hosts) {
            if (!usable.has(pairKey(h.id, lotId))) continue;
            assert.ok(!oracleAllows(h, l, s.lots, awards), `${lotId} pending though ${h.id} bid and fits`);
          }
        }
      }),
      RUNS,
    );
  });

  it('places an HA group as a maximum matching, at the least total price', () => {
    // One group alone in the round (its first 4 lots), so that the brute force sees exactly the
    // cells the module sees: the hosts the rules allow before any award, with a usable bid.
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        // Without avoided hosts: their penalty is meant to move the matching off the cheapest bids.
        const lots = scenario.lots.slice(0, 4).map((l) => ({ ...l, haGroup: 'g1', avoidHosts: undefined }));
        const s = { ...scenario, lots };
        const usable = usableBids(s);
        const cells = lots.flatMap((l, row) =>
          s.hosts.flatMap((h, col) => {
            const price = usable.get(pairKey(h.id, l.id));
            return price !== undefined && oracleAllows(h, l, lots, []) ? [{ row, col, cost: price }] : [];
          }),
        );
        const [most, cheapest] = bruteForceMatching(lots.length, s.hosts.length, cells);
        const { awards } = determineWinners(s.hosts, lots, s.bids, s.declines);
        assert.equal(awards.length, most, 'as many replicas as any matching places');
        // Totals compare exactly only when no absurd magnitude swamps the others.
        if (cells.every((c) => Number.isInteger(c.cost) && Math.abs(c.cost) <= 1e6)) {
          assert.equal(awards.reduce((sum, a) => sum + a.price, 0), cheapest);
        }
      }),
      RUNS,
    );
  });

  it('is deterministic, whatever the order of bids and declines', () => {
    fc.assert(
      fc.property(
        scenarioArb.chain((s) =>
          fc.record({
            s: fc.constant(s),
            bids: fc.shuffledSubarray(s.bids, { minLength: s.bids.length }),
            declines: fc.shuffledSubarray(s.declines, { minLength: s.declines.length }),
          }),
        ),
        ({ s, bids, declines }) => {
          const first = determineWinners(s.hosts, s.lots, s.bids, s.declines);
          assert.deepStrictEqual(determineWinners(s.hosts, s.lots, s.bids, s.declines), first);
          const shuffled = determineWinners(s.hosts, s.lots, bids, declines);
          assert.deepStrictEqual(shuffled.awards, first.awards);
          assert.deepStrictEqual([...shuffled.pending], [...first.pending]);
        },
      ),
      RUNS,
    );
  });

  it('does not mutate its inputs', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const snapshot = structuredClone(s);
        determineWinners(s.hosts, s.lots, s.bids, s.declines);
        assert.deepStrictEqual(structuredClone(s), snapshot);
      }),
      { numRuns: 100 },
    );
  });

  it('explains a pending lot by the first reason of every host, also when lots share a shape (the census)', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        // Half the lots ask what the first asks, under its constraints: the census counts that shape once.
        const lots = s.lots.map((l, i) => (i % 2 === 1 ? { ...l, resources: s.lots[0]!.resources, constraints: s.lots[0]!.constraints } : l));
        const { awards, pending } = determineWinners(s.hosts, lots, s.bids, s.declines);
        for (const [lotId, why] of pending) {
          const l = lots.find((x) => x.id === lotId)!;
          const expected: Partial<Record<ExclusionReason, number>> = {};
          let byAgents = 0;
          for (const h of s.hosts) {
            const reason = oracleReason(h, l, lots, awards, s.declines);
            expected[reason] = (expected[reason] ?? 0) + 1;
            if (oracleAllows(h, l, lots, awards)) byAgents++;
          }
          assert.deepEqual(why.excluded, expected, `lot ${lotId}`);
          assert.equal(why.byAgents ?? 0, byAgents, `lot ${lotId}: hosts counted by their answer`);
        }
      }),
      RUNS,
    );
  });
});
