/**
 * The file lock that lets the agents of one engine take turns where the engine does not serialize
 * them (network creates of one name): one holder at a time, across processes, and a lock left by a
 * process that died is taken over.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { lockPath, withFileLock } from '../../agent/runtime/file-lock';

describe('file lock', () => {
  it('lets one holder in at a time, across processes', async () => {
    const path = lockPath(`test ${process.pid} ${Date.now()}`);
    // Another process holds the lock for 600 ms.
    const child = spawn(process.execPath, ['-e', `
      const { withFileLock } = require(${JSON.stringify(require.resolve('../../agent/runtime/file-lock'))});
      withFileLock(${JSON.stringify(path)}, () => { process.stdout.write('held\\n'); return new Promise((r) => setTimeout(r, 600)); });
    `]);
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    const t0 = Date.now();
    let inside = 0;
    let most = 0;
    await Promise.all([1, 2, 3].map(() => withFileLock(path, async () => {
      inside++;
      most = Math.max(most, inside);
      await new Promise((r) => setTimeout(r, 20));
      inside--;
    })));
    assert.ok(Date.now() - t0 >= 450, `waited for the other process (${Date.now() - t0} ms)`);
    assert.equal(most, 1, 'never two holders at once');
    assert.equal(existsSync(path), false, 'released');
  });

  it('takes over a lock whose holder died', async () => {
    const path = lockPath(`stale ${process.pid} ${Date.now()}`);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    await withFileLock(path, async () => undefined); // makes the directory
    writeFileSync(path, dead);
    const t0 = Date.now();
    assert.equal(await withFileLock(path, async () => 'mine', 2_000), 'mine');
    assert.ok(Date.now() - t0 < 1_000);
  });
});
