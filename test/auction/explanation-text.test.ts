import assert from 'node:assert/strict';
import { explanationText } from '../../server/auction';

describe('auction: explanationText', () => {
  it('reads as DESIGN.md asks', () => {
    assert.equal(explanationText(3, { ha: 3 }), '3 hosts: 3 excluded by the HA rule');
    assert.equal(explanationText(3, { ha: 1, memory: 2 }), '3 hosts: 2 excluded by memory, 1 by the HA rule');
    assert.equal(explanationText(1, { constraint: 1 }), '1 host: 1 excluded by constraints');
  });

  it('puts the largest count first, ties in pipeline order, states without "excluded by"', () => {
    assert.equal(
      explanationText(9, { 'no-bid': 3, down: 1, ha: 1, refused: 2, 'no-apparmor': 2 }),
      '9 hosts: 3 no bid, 2 excluded by no AppArmor, 2 refused the award, 1 down, 1 by the HA rule',
    );
  });

  it('leaves out zero counts and is never empty', () => {
    assert.equal(explanationText(2, { cpu: 2, ha: 0 }), '2 hosts: 2 excluded by CPU');
    assert.equal(explanationText(0, {}), '0 hosts: there is no host to place it on');
    assert.ok(explanationText(4, {}).length > 0);
  });
});
