/**
 * Issue 5, finding 8: every heartbeat was an fsync'd SQLite write. Liveness now lives in memory
 * and only changes of state are written. Seen from outside: a second connection to the server's
 * database file reads PRAGMA data_version, which changes exactly when another connection commits.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { HostState } from '../../gen/podium/v1/resources';
import type { ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { call, PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';

describe('liveness in memory', function () {
  this.timeout(30_000);
  let h: PodApiHarness;
  let d: PodApiDriver;

  beforeEach(async () => {
    h = await startPodApiHarness();
    d = new PodApiDriver(h);
  });

  afterEach(async () => {
    d.closeAgents();
    await h.close();
  });

  it('writes nothing to the database for heartbeats, and still shows when each host was last heard', async () => {
    await d.fleet(3, { heartbeatMs: 20 });
    const observer = new Database(join(h.dir, 'server', 'podium.db'), { readonly: true });
    try {
      const version = () => observer.pragma('data_version', { simple: true }) as number;
      const before = version();
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, 1500)); // about 200 heartbeats
      assert.equal(version(), before, 'a commit happened while only heartbeats were sent');
      const hosts = (await call<object, ListHostsResponse>(h.operator, 'listHosts', {})).hosts;
      for (const host of hosts) {
        assert.equal(host.state, HostState.HOST_STATE_UP);
        assert.ok(host.lastHeartbeat!.getTime() >= t0 + 1000, `${host.id} last heard ${host.lastHeartbeat!.toISOString()}`);
      }
    } finally {
      observer.close();
    }
  });
});
