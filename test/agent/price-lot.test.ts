import assert from 'node:assert/strict';
import fc from 'fast-check';
import { priceLot, roundWeight } from '../../agent/price-lot';
import type { Resources } from '../../server/auction';

const resources = fc.record({ cpuMillis: fc.integer({ min: 0, max: 64000 }), memoryMib: fc.integer({ min: 0, max: 262144 }) });
const input = fc.record({
  freeAfter: resources,
  capacity: resources,
  imageCached: fc.boolean(),
  sameGroupCount: fc.integer({ min: 0, max: 20 }),
  sameTenantCount: fc.integer({ min: 0, max: 200 }),
});

describe('auction: priceLot', () => {
  it('is finite and >= 0, even on nonsense', () => {
    const anyNumber = fc.oneof(fc.double(), fc.integer());
    const nonsense = fc.record({
      freeAfter: fc.record({ cpuMillis: anyNumber, memoryMib: anyNumber }),
      capacity: fc.record({ cpuMillis: anyNumber, memoryMib: anyNumber }),
      imageCached: fc.boolean(),
      sameGroupCount: anyNumber,
      sameTenantCount: anyNumber,
    });
    fc.assert(
      fc.property(nonsense, (i) => {
        const p = priceLot(i);
        assert.ok(Number.isFinite(p) && p >= 0, String(p));
      }),
    );
  });

  it('is lower with the image cached, more free resources, fewer of the same group and tenant', () => {
    fc.assert(
      fc.property(input, fc.integer({ min: 1, max: 4000 }), (i, more) => {
        const p = priceLot(i);
        assert.ok(priceLot({ ...i, imageCached: true }) <= priceLot({ ...i, imageCached: false }));
        assert.ok(priceLot({ ...i, imageCached: true }) < priceLot({ ...i, imageCached: false }));
        const freer: Resources = { cpuMillis: i.freeAfter.cpuMillis + more, memoryMib: i.freeAfter.memoryMib + more };
        assert.ok(priceLot({ ...i, freeAfter: freer }) <= p);
        assert.ok(priceLot({ ...i, sameGroupCount: i.sameGroupCount + 1 }) > p);
        assert.ok(priceLot({ ...i, sameTenantCount: i.sameTenantCount + 1 }) > p);
        assert.equal(priceLot(i), p, 'pure');
      }),
    );
  });

  it('prefers an empty cached host to a busy one that must pull', () => {
    const capacity = { cpuMillis: 4000, memoryMib: 8192 };
    const empty = priceLot({ freeAfter: { cpuMillis: 3500, memoryMib: 7680 }, capacity, imageCached: true, sameGroupCount: 0, sameTenantCount: 0 });
    const busy = priceLot({ freeAfter: { cpuMillis: 500, memoryMib: 1024 }, capacity, imageCached: false, sameGroupCount: 0, sameTenantCount: 2 });
    assert.ok(empty < busy);
  });

  it('under binpack is lower the fuller the host gets, and its round weight packs', () => {
    fc.assert(
      fc.property(input, fc.integer({ min: 1, max: 4000 }), (i, more) => {
        const packed = { ...i, policy: 'binpack' as const };
        const freer: Resources = { cpuMillis: i.freeAfter.cpuMillis + more, memoryMib: i.freeAfter.memoryMib + more };
        assert.ok(priceLot({ ...packed, freeAfter: freer }) >= priceLot(packed));
        assert.ok(priceLot({ ...packed, sameGroupCount: i.sameGroupCount + 1 }) > priceLot(packed));
        assert.ok(Number.isFinite(priceLot(packed)) && priceLot(packed) >= 0);
      }),
    );
    assert.ok(roundWeight('binpack') < 0);
    assert.ok(roundWeight('spread') > 0);
    assert.equal(roundWeight(), roundWeight('spread'));
  });
});
