/**
 * The whole round as the server runs it on a fleet larger than the sample: planRound samples at
 * most d candidates per lot, the called hosts bid (random prices, some declines), and
 * determineWinners decides. The invariants of the determineWinners properties must hold end to
 * end: sampling may leave a host out, never a rule.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { determineWinners, planRound, seededRandom, type BidView, type DeclineView } from '../../server/auction';
import { awardedPerHost, hostArb, lotArb } from './fleet';

const scenario = fc
  .record({ hosts: fc.integer({ min: 5, max: 40 }), lots: fc.integer({ min: 1, max: 30 }), d: fc.integer({ min: 1, max: 4 }), seed: fc.integer() })
  .chain(({ hosts, lots, d, seed }) =>
    fc.record({
      hosts: fc.tuple(...Array.from({ length: hosts }, (_, i) => hostArb(`h${i}`))),
      lots: fc.tuple(...Array.from({ length: lots }, (_, i) => lotArb(`l${i}`))),
      d: fc.constant(Math.min(d, hosts - 1)),
      seed: fc.constant(seed),
    }),
  );

describe('auction: a sampled round, planned and decided (fleets larger than the sample)', () => {
  it('keeps every rule: at most d candidates, awards only to a called host, no over-commit, HA apart, each lot ending once', () => {
    fc.assert(
      fc.property(scenario, ({ hosts, lots, d, seed }) => {
        const random = seededRandom(seed);
        const plan = planRound(hosts, lots, { maxCandidatesPerLot: d, random });
        const calledFor = new Map<string, Set<string>>();
        for (const [hostId, lotIds] of plan.calls) for (const l of lotIds) (calledFor.get(l) ?? calledFor.set(l, new Set()).get(l)!).add(hostId);
        for (const [l, called] of calledFor) assert.ok(called.size <= d, `${l} called on ${called.size} hosts, d = ${d}`);

        const bids: BidView[] = [];
        const declines: DeclineView[] = [];
        for (const [hostId, lotIds] of plan.calls) {
          for (const lotId of lotIds) {
            if (random() < 0.1) declines.push({ hostId, lotId, reason: 'image' });
            else bids.push({ hostId, lotId, price: Math.floor(random() * 100), roundWeight: random() < 0.5 ? 100 : -100 });
          }
        }
        const { awards, pending } = determineWinners(hosts, lots, bids, declines);

        for (const a of awards) assert.ok(calledFor.get(a.lotId)?.has(a.hostId), `${a.lotId} awarded to ${a.hostId}, which was not called for it`);
        for (const [hostId, extra] of awardedPerHost(lots, awards)) {
          const h = hosts.find((x) => x.id === hostId)!;
          assert.ok(h.alive && h.acceptsWork, `${hostId} may not take work`);
          assert.ok(h.allocated.cpuMillis + extra.cpuMillis <= h.capacity.cpuMillis, `cpu of ${hostId}`);
          assert.ok(h.allocated.memoryMib + extra.memoryMib <= h.capacity.memoryMib, `memory of ${hostId}`);
        }
        const groups = new Set<string>();
        for (const h of hosts) for (const g of h.haGroups) groups.add(`${h.id}/${g}`);
        for (const a of awards) {
          const l = lots.find((x) => x.id === a.lotId)!;
          assert.ok(!l.excludedHosts.has(a.hostId), `${a.lotId} on a host that refused it`);
          if (l.haGroup === '') continue;
          assert.ok(!groups.has(`${a.hostId}/${l.haGroup}`), `two replicas of ${l.haGroup} on ${a.hostId}`);
          groups.add(`${a.hostId}/${l.haGroup}`);
        }
        const ends = [...awards.map((a) => a.lotId), ...plan.unplaceable.keys(), ...[...pending.keys()].filter((l) => !plan.unplaceable.has(l))];
        assert.deepEqual([...ends].sort(), lots.map((l) => l.id).sort(), 'every lot ends exactly once');
      }),
      { numRuns: 400 },
    );
  });
});
