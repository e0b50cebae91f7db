import assert from 'node:assert/strict';
import { ServerAddresses } from '../../agent/server-addresses';

describe('agent: the Pod API addresses it tries', () => {
  it('goes round the list, and says when a whole round failed', () => {
    const s = new ServerAddresses(['a:1', 'b:1', 'c:1']);
    assert.equal(s.current(), 'a:1');
    assert.equal(s.failed(undefined), false);
    assert.equal(s.current(), 'b:1');
    assert.equal(s.failed(undefined), false);
    assert.equal(s.failed(undefined), true, 'a, b and c all failed');
    assert.equal(s.current(), 'a:1');
  });

  it("goes to the leader a standby named, and back to the list when that fails too", () => {
    const s = new ServerAddresses(['standby:1', 'other:1']);
    assert.equal(s.failed('leader:1'), false);
    assert.equal(s.current(), 'leader:1');
    assert.deepEqual(s.all(), ['leader:1', 'standby:1', 'other:1']);
    assert.equal(s.failed(undefined), false, 'the named leader failed: not yet a whole round');
    assert.equal(s.current(), 'standby:1');
    // A standby naming itself (it has not heard of a new leader yet) is not a hint.
    assert.equal(s.failed('standby:1'), false);
    assert.equal(s.current(), 'other:1');
  });

  it('needs at least one address', () => {
    assert.throws(() => new ServerAddresses([]), /at least one/);
  });
});
