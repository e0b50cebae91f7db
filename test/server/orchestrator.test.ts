import assert from 'node:assert/strict';
import { restartDelay } from '../../server/orchestrator';

describe('orchestrator: restart backoff', () => {
  it('waits nothing before the first failure, then doubles up to the cap', () => {
    assert.equal(restartDelay(0, 2000, 60_000), 0);
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => restartDelay(n, 2000, 60_000)), [2000, 4000, 8000, 16_000, 32_000, 60_000]);
    assert.equal(restartDelay(10_000, 2000, 60_000), 60_000);
  });
});
