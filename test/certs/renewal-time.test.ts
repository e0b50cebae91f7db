import assert from 'node:assert/strict';
import { renewalTime } from '../../certs';

describe('certs: renewalTime', () => {
  const notBefore = new Date('2030-01-01T00:00:00Z');
  const notAfter = new Date('2030-01-02T00:00:00Z'); // 24 h
  const at = (r: number) => (renewalTime(notBefore, notAfter, () => r).getTime() - notBefore.getTime()) / 86400_000;

  it('is at 50 % for random 0 and just under 80 % for random 0.999', () => {
    assert.equal(at(0), 0.5);
    const late = at(0.999);
    assert.ok(late >= 0.79 && late < 0.8, `0.999 -> ${late}`);
  });

  it('stays within [50 %, 80 %) across the range', () => {
    for (let i = 0; i < 1000; i++) {
      const f = at(i / 1000);
      assert.ok(f >= 0.5 && f < 0.8, `${i / 1000} -> ${f}`);
    }
  });

  it('is uniform: the middle of random maps to the middle of the window', () => {
    assert.ok(Math.abs(at(0.5) - 0.65) < 1e-6);
  });

  it('refuses out-of-range randomness and reversed dates', () => {
    assert.throws(() => renewalTime(notBefore, notAfter, () => 1), /random\(\) must be in \[0, 1\)/);
    assert.throws(() => renewalTime(notBefore, notAfter, () => -0.1), /random\(\)/);
    assert.throws(() => renewalTime(notAfter, notBefore, () => 0), /notAfter must be a valid date after notBefore/);
  });
});
