/**
 * Issue 5, finding 8: every heartbeat was an fsync'd SQLite write. Liveness now lives in memory
 * and only changes of state are written. Seen from outside, on a connection of the test's own:
 * the hosts table does not change while only heartbeats are sent.
 */
import assert from 'node:assert/strict';
import { HostState } from '../../gen/podium/v1/resources';
import type { ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { call, PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { readRows } from '../support/databases';

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
    // Every write of a host row shows: on SQLite its last_heartbeat changes, on PostgreSQL its xmin.
    const rows = () => readRows(h.database, `SELECT ${h.database.startsWith('postgres') ? 'xmin::text AS x, ' : ''}* FROM hosts ORDER BY id`);
    const before = await rows();
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 1500)); // about 200 heartbeats
    assert.deepEqual(await rows(), before, 'a heartbeat was written to the hosts table');
    const hosts = (await call<object, ListHostsResponse>(h.operator, 'listHosts', {})).hosts;
    for (const host of hosts) {
      assert.equal(host.state, HostState.HOST_STATE_UP);
      assert.ok(host.lastHeartbeat!.getTime() >= t0 + 1000, `${host.id} last heard ${host.lastHeartbeat!.toISOString()}`);
    }
  });

  it('blames a stall of its own on nobody: a server that could not run for longer than the TTL marks no host down', async () => {
    await d.fleet(3);
    await d.createEnvironment('acme', 'prod');
    await d.createService('acme', 'prod', { name: 'web', replicas: 3 });
    await d.running('acme', 'prod', 'web', 3);
    // The whole process stalls (a long GC, a blocked loop, a VM paused) for twice the TTL. When it
    // runs again, its timers fire before it reads the heartbeats queued in its sockets.
    const until = Date.now() + 2 * 3_000;
    while (Date.now() < until) {
      // busy: nothing else of this process runs
    }
    await new Promise((r) => setTimeout(r, 1_500)); // several orchestrator ticks and heartbeats after it
    const types = (await h.server.storage.read((r) => r.events.list(null, '', 0))).map((e) => e.type);
    assert.ok(!types.includes('host.down') && !types.includes('instance.lost'), types.join(','));
    const hosts = (await call<object, ListHostsResponse>(h.operator, 'listHosts', {})).hosts;
    assert.deepEqual(hosts.map((x) => x.state), [HostState.HOST_STATE_UP, HostState.HOST_STATE_UP, HostState.HOST_STATE_UP]);
  });

  it('still marks down a host that stays silent after such a stall, one TTL after the stall', async () => {
    const [quiet] = await d.fleet(2);
    const until = Date.now() + 2 * 3_000;
    while (Date.now() < until) {
      // busy
    }
    const stallEnded = Date.now();
    quiet!.close();
    const down = await poll('the silent host down', async () => {
      const hosts = (await call<object, ListHostsResponse>(h.operator, 'listHosts', {})).hosts;
      return hosts.find((x) => x.id === quiet!.hostId && x.state === HostState.HOST_STATE_DOWN) ? Date.now() : undefined;
    }, 15_000, 50);
    assert.ok(down - stallEnded < 3_000 + 2_000, `down ${down - stallEnded} ms after the stall`);
    // What an operator's Prometheus sees, counted by the database.
    assert.equal(await d.metric('podium_hosts', { state: 'down' }), 1);
    assert.equal(await d.metric('podium_hosts', { state: 'up' }), 1);
  });

  it('after a restart, gives hosts that were up the restart grace, not one TTL, to come back', async () => {
    const graceful = await startPodApiHarness({ hostTtlMs: 1000, heartbeatIntervalMs: 300, restartGraceMs: 5000 });
    const gd = new PodApiDriver(graceful);
    try {
      const [late, gone] = await gd.fleet(2);
      await gd.createEnvironment('acme', 'prod');
      await gd.createService('acme', 'prod', { name: 'db', replicas: 2, ha: true });
      await gd.running('acme', 'prod', 'db', 2);
      late!.close();
      gone!.close();
      await graceful.restart();
      // Three TTLs later the late host comes back: nothing was marked down or lost meanwhile.
      await new Promise((r) => setTimeout(r, 3000));
      const types = async () => (await graceful.server.storage.read((r) => r.events.list(null, '', 0))).map((e) => e.type);
      const seen = await types();
      assert.ok(!seen.includes('host.down'), seen.join(','));
      late!.connect();
      await late!.welcomed();
      // The other never comes back: it is marked down once the grace is over, not before.
      await poll('the absent host down after the grace', async () => (await types()).includes('host.down'), 10_000);
      const hosts = (await call<object, ListHostsResponse>(graceful.operator, 'listHosts', {})).hosts;
      assert.equal(hosts.find((x) => x.id === late!.hostId)!.state, HostState.HOST_STATE_UP);
      assert.equal(hosts.find((x) => x.id === gone!.hostId)!.state, HostState.HOST_STATE_DOWN);
    } finally {
      gd.closeAgents();
      await graceful.close();
    }
  });
});
