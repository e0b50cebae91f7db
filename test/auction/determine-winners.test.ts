import assert from 'node:assert/strict';
import { determineWinners, planRound, type BidView, type HostView, type LotView } from '../../server/auction';
import { bid, host, lot } from './fleet';

/** Every called host bids the same price for every lot it was called for. */
function bidOnEverything(calls: Map<string, string[]>, price = 10): BidView[] {
  return [...calls].flatMap(([hostId, lotIds]) => lotIds.map((lotId) => bid(hostId, lotId, price)));
}

describe('auction: determineWinners', () => {
  it('places 3 of 4 HA replicas on 3 hosts and explains the 4th by the HA rule', () => {
    const hosts = [host('a'), host('b'), host('c')];
    const lots = ['r1', 'r2', 'r3', 'r4'].map((id) => lot(id, { haGroup: 'web' }));
    const plan = planRound(hosts, lots, { maxCandidatesPerLot: 8, random: () => assert.fail('no sampling') });
    assert.equal(plan.calls.size, 3);
    assert.equal(plan.unplaceable.size, 0);

    const result = determineWinners(hosts, lots, bidOnEverything(plan.calls), []);

    assert.equal(result.awards.length, 3);
    assert.deepEqual(new Set(result.awards.map((a) => a.hostId)), new Set(['a', 'b', 'c']));
    assert.equal(result.pending.size, 1);
    const [pendingId, why] = [...result.pending][0];
    assert.ok(!result.awards.some((a) => a.lotId === pendingId));
    assert.equal(why.text, '3 hosts: 3 excluded by the HA rule');
    assert.deepEqual(why.excluded, { ha: 3 });
    assert.equal(why.hosts, 3);
  });

  it('explains capacity by dimension, and books capacity as the round awards', () => {
    const hosts = [
      host('small-1', { capacity: { cpuMillis: 1000, memoryMib: 8192 } }),
      host('small-2', { capacity: { cpuMillis: 1000, memoryMib: 8192 } }),
      host('gone', { alive: false }),
    ];
    const big = lot('big', { resources: { cpuMillis: 3000, memoryMib: 512 } });
    const plan = planRound(hosts, [big], { maxCandidatesPerLot: 8, random: Math.random });
    assert.equal(plan.calls.size, 0);
    assert.equal(plan.unplaceable.get('big')?.text, '3 hosts: 2 excluded by CPU, 1 down');

    // Two lots of 600 millicores on one host of 1000: the round itself fills it.
    const one = [host('only', { capacity: { cpuMillis: 1000, memoryMib: 8192 } })];
    const lots = [lot('x', { resources: { cpuMillis: 600, memoryMib: 1 } }), lot('y', { resources: { cpuMillis: 600, memoryMib: 1 } })];
    const result = determineWinners(one, lots, [bid('only', 'x', 5), bid('only', 'y', 3)], []);
    assert.deepEqual(result.awards, [{ lotId: 'y', hostId: 'only', price: 3 }]);
    assert.equal(result.pending.get('x')?.text, '1 host: 1 excluded by CPU');
  });

  it('places an HA group by matching where greedy by price would strand a replica', () => {
    // r1 bids are cheapest on h1, but r2 can only go on h1. Greedy gives h1 to r1 (price 1),
    // then r2 has nowhere to go. The matching gives r1 -> h2 and r2 -> h1: both placed.
    const hosts = [host('h1'), host('h2')];
    const lots = [lot('r1', { haGroup: 'db' }), lot('r2', { haGroup: 'db' })];
    const bids = [bid('h1', 'r1', 1), bid('h2', 'r1', 2), bid('h1', 'r2', 1.5)];

    const greedy = greedyByPrice(hosts, lots, bids);
    assert.equal(greedy.size, 1, 'the crafted case does strand a replica under greedy');

    const result = determineWinners(hosts, lots, bids, []);
    assert.equal(result.pending.size, 0);
    assert.deepEqual(
      [...result.awards].sort((a, b) => (a.lotId < b.lotId ? -1 : 1)),
      [
        { lotId: 'r1', hostId: 'h2', price: 2 },
        { lotId: 'r2', hostId: 'h1', price: 1.5 },
      ],
    );
  });

  it('prefers the cheaper of two complete matchings', () => {
    const hosts = [host('h1'), host('h2'), host('h3')];
    const lots = [lot('r1', { haGroup: 'g' }), lot('r2', { haGroup: 'g' })];
    const bids = [bid('h1', 'r1', 5), bid('h2', 'r1', 6), bid('h1', 'r2', 1), bid('h3', 'r2', 9)];
    const result = determineWinners(hosts, lots, bids, []);
    // r1->h1 + r2->h3 = 14; r1->h2 + r2->h1 = 7.
    assert.deepEqual(new Map(result.awards.map((a) => [a.lotId, a.hostId])), new Map([['r1', 'h2'], ['r2', 'h1']]));
  });

  it('never trusts a bid: hosts that break a rule are dropped whatever they bid', () => {
    const hosts = [
      host('down', { alive: false }),
      host('no-aa', { acceptsWork: false }),
      host('full', { allocated: { cpuMillis: 3900, memoryMib: 0 } }),
      host('holds', { haGroups: new Set(['g']) }),
      host('refused'),
      host('wrong-pod', { pod: 'other' }),
      host('fine'),
    ];
    const l = lot('l', { haGroup: 'g', excludedHosts: new Set(['refused']), constraints: { pod: 'local' } });
    const bids = [
      ...hosts.filter((h) => h.id !== 'fine').map((h) => bid(h.id, 'l', -1e300)),
      bid('stranger', 'l', -Infinity),
      bid('fine', 'l', NaN),
      bid('fine', 'nope', 1),
    ];
    const result = determineWinners(hosts, [l], bids, []);
    assert.deepEqual(result.awards, []);
    const why = result.pending.get('l');
    assert.deepEqual(why?.excluded, {
      down: 1,
      'no-apparmor': 1,
      constraint: 1,
      refused: 1,
      cpu: 1,
      ha: 1,
      'no-bid': 1,
    });
    assert.equal(
      why?.text,
      '7 hosts: 1 down, 1 excluded by no AppArmor, 1 by constraints, 1 refused the award, 1 by CPU, 1 by the HA rule, 1 no bid',
    );
  });

  it('counts a decline by its reason when it names one, else as no bid', () => {
    const hosts = [host('a'), host('b'), host('c')];
    const declines = [
      { hostId: 'a', lotId: 'l', reason: 'memory' },
      { hostId: 'b', lotId: 'l', reason: 'image pull failed' },
    ];
    // b also bid, but a decline withdraws its bid for that lot.
    const result = determineWinners(hosts, [lot('l')], [bid('b', 'l', 1)], declines);
    assert.deepEqual(result.awards, []);
    assert.equal(result.pending.get('l')?.text, '3 hosts: 2 no bid, 1 excluded by memory');
  });

  it('says when hosts declined because they cannot get the image', () => {
    const hosts = [host('a'), host('b'), host('c')];
    const declines = ['a', 'b'].map((h) => ({ hostId: h, lotId: 'l', reason: 'image' }));
    const result = determineWinners(hosts, [lot('l')], [], declines);
    assert.equal(result.pending.get('l')?.text, '3 hosts: 2 cannot get the image, 1 no bid');
  });

  it('takes the cheapest bid first, ties by the lot\'s place in the round (the fair queue\'s order) then host id', () => {
    const hosts = [host('b', { capacity: { cpuMillis: 500, memoryMib: 512 } }), host('a', { capacity: { cpuMillis: 500, memoryMib: 512 } })];
    const lots = [lot('y'), lot('x')];
    const bids = [bid('a', 'y', 1), bid('b', 'y', 1), bid('a', 'x', 1), bid('b', 'x', 1)];
    const result = determineWinners(hosts, lots, bids, []);
    assert.deepEqual(result.awards, [
      { lotId: 'y', hostId: 'a', price: 1 },
      { lotId: 'x', hostId: 'b', price: 1 },
    ]);
  });

  it('explains a lot when the fleet is empty', () => {
    const result = determineWinners([], [lot('l')], [], []);
    assert.deepEqual(result.pending.get('l'), { hosts: 0, excluded: {}, text: '0 hosts: there is no host to place it on' });
  });

  it('refuses duplicate ids', () => {
    assert.throws(() => determineWinners([host('a'), host('a')], [], [], []), RangeError);
    assert.throws(() => determineWinners([], [lot('l'), lot('l')], [], []), RangeError);
  });
});

/** What a naive auctioneer would do: every lot greedily by price, the HA rule checked per award. */
function greedyByPrice(hosts: HostView[], lots: LotView[], bids: BidView[]): Set<string> {
  const taken = new Set<string>(); // `${host}/${group}`
  const placed = new Set<string>();
  for (const b of [...bids].sort((x, y) => x.price - y.price)) {
    const l = lots.find((x) => x.id === b.lotId)!;
    if (placed.has(l.id) || taken.has(`${b.hostId}/${l.haGroup}`) || !hosts.some((h) => h.id === b.hostId)) continue;
    placed.add(l.id);
    taken.add(`${b.hostId}/${l.haGroup}`);
  }
  return new Set(lots.filter((l) => !placed.has(l.id)).map((l) => l.id));
}
