import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EMPTY_CURSOR, LotParking, takeFairBatch, type QueuedLot } from '../../server/auction';
import { explanation } from '../../server/auction/explanation-text';

const lotsOf = (tenant: string, service: string, n: number, haGroup = ''): QueuedLot[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${tenant}-${service}-${i}`, tenant, service: `${tenant}/${service}`, haGroup }));

describe('auction: takeFairBatch', () => {
  it('gives a tenant with one lot its place however many older lots another tenant has', () => {
    // Finding 1: tenant b's 300 older lots took every round, oldest first.
    const queued = [...lotsOf('b', 'x', 100), ...lotsOf('b', 'y', 100), ...lotsOf('b', 'z', 100), ...lotsOf('a', 'web', 1)];
    const { batch } = takeFairBatch(queued, 256);
    assert.equal(batch.length, 256);
    assert.ok(batch.some((l) => l.id === 'a-web-0'));
    assert.equal(batch[0]!.tenant, 'a', 'tenants take turns, a first by name');
  });

  it('lets tenants, then their services, take turns', () => {
    const queued = [...lotsOf('t1', 's1', 5), ...lotsOf('t1', 's2', 5), ...lotsOf('t2', 's1', 5)];
    const { batch } = takeFairBatch(queued, 6);
    assert.deepEqual(batch.map((l) => l.id), ['t1-s1-0', 't2-s1-0', 't1-s2-0', 't2-s1-1', 't1-s1-1', 't2-s1-2']);
  });

  it('keeps the lots of an HA service together, oldest first within a service', () => {
    const queued = [...lotsOf('t1', 'db', 3, 'g'), ...lotsOf('t2', 'web', 3)];
    const { batch } = takeFairBatch(queued, 10);
    assert.deepEqual(batch.map((l) => l.id), ['t1-db-0', 't1-db-1', 't1-db-2', 't2-web-0', 't2-web-1', 't2-web-2']);
  });

  it('rotates: the next batch starts after the tenant and service served last', () => {
    const queued = [...lotsOf('a', 's', 3), ...lotsOf('b', 's', 3), ...lotsOf('c', 's', 3)];
    const first = takeFairBatch(queued, 2);
    assert.deepEqual(first.batch.map((l) => l.tenant), ['a', 'b']);
    const rest = queued.filter((l) => !first.batch.includes(l));
    const second = takeFairBatch(rest, 2, first.cursor);
    assert.deepEqual(second.batch.map((l) => l.tenant), ['c', 'a']);
  });

  it('never returns a lot twice or one it was not given, never more than asked, and serves every tenant when it can', () => {
    const lotArb = fc.record({ tenant: fc.constantFrom('t1', 't2', 't3', 't4'), service: fc.constantFrom('s1', 's2', 's3'), ha: fc.boolean() });
    fc.assert(
      fc.property(fc.array(lotArb, { maxLength: 80 }), fc.integer({ min: 1, max: 40 }), (specs, max) => {
        const queued: QueuedLot[] = specs.map((s, i) => ({
          id: `l${i}`,
          tenant: s.tenant,
          service: `${s.tenant}/${s.service}`,
          // One HA flag per service, as in the store.
          haGroup: specs.find((o) => o.tenant === s.tenant && o.service === s.service)!.ha ? `${s.tenant}/${s.service}` : '',
        }));
        const { batch } = takeFairBatch(queued, max, EMPTY_CURSOR);
        assert.ok(batch.length <= max);
        assert.equal(new Set(batch.map((l) => l.id)).size, batch.length);
        for (const l of batch) assert.ok(queued.includes(l));
        assert.equal(batch.length, Math.min(max, queued.length), 'fills the batch when there are lots');
        const tenants = new Set(queued.map((l) => l.tenant));
        // An HA service can take many places in one turn; without any, every tenant gets a place.
        if (tenants.size <= max && queued.every((l) => l.haGroup === '')) {
          for (const t of tenants) assert.ok(batch.some((l) => l.tenant === t), `tenant ${t} left out`);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('auction: LotParking', () => {
  it('parks a lot the rules excluded everywhere until the fleet changes', () => {
    const p = new LotParking();
    p.park('l', explanation(3, { memory: 3 }), 1000, 500, p.fleetEpoch);
    assert.equal(p.eligible('l', 10_000), false, 'time alone does not bring it back');
    p.fleetChanged();
    assert.equal(p.eligible('l', 1000), true);
  });

  it('parks a lot that some host kept out by its own answer until a retry time', () => {
    const p = new LotParking();
    p.park('img', explanation(3, { image: 1, memory: 2 }, 1), 1000, 500, p.fleetEpoch);
    p.park('nobid', explanation(3, { 'no-bid': 3 }, 3), 1000, 500, p.fleetEpoch);
    // An agent's "ha" (it still holds a replica it is about to remove) is its word, not the rule's.
    p.park('declined-ha', explanation(3, { ha: 3 }, 1), 1000, 500, p.fleetEpoch);
    assert.equal(p.eligible('declined-ha', 1500), true);
    assert.equal(p.eligible('img', 1499), false);
    assert.equal(p.eligible('img', 1500), true);
    assert.equal(p.eligible('nobid', 1500), true);
  });

  it('leaves a lot eligible when the fleet changed while the round that parks it ran', () => {
    const p = new LotParking();
    const asOf = p.fleetEpoch; // the round reads the fleet: every host down
    p.fleetChanged(); // a host comes back while the bids are out
    p.park('l', explanation(3, { down: 3 }), 1000, 500, asOf);
    p.park('nobid', explanation(3, { down: 2, 'no-bid': 1 }, 1), 1000, 500, asOf);
    assert.equal(p.eligible('l', 1000), true, 'the next round sees the host that came back');
    assert.equal(p.eligible('nobid', 1000), true, 'and calls it, rather than waiting for the retry time');
    p.park('l', explanation(3, { down: 3 }), 1000, 500, p.fleetEpoch);
    assert.equal(p.eligible('l', 1000), false);
  });

  it('forgets lots that are no longer pending', () => {
    const p = new LotParking();
    p.park('a', explanation(1, { cpu: 1 }), 0, 1, p.fleetEpoch);
    p.park('b', explanation(1, { cpu: 1 }), 0, 1, p.fleetEpoch);
    p.retain(new Set(['b']));
    assert.equal(p.size, 1);
    assert.equal(p.eligible('a', 0), true);
  });
});
