/**
 * The real agent follows the heartbeat interval the Pod API scales to the fleet (issue 7: at a
 * fixed interval, 10,000 agents' heartbeats took the server's loop). Real agents (real Join, the
 * real AgentService over mutual TLS), each on a scripted engine: no container is involved.
 */
import assert from 'node:assert/strict';
import type { ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { call, PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { RealAgents } from '../support/real-agents';
import { FakeEngine } from './fake-engine';

describe('a real agent told a new heartbeat interval', function () {
  this.timeout(60_000);
  let h: PodApiHarness;
  let fleet: RealAgents | undefined;

  before(async () => {
    // 5 heartbeats a second at 200 ms: one host per step of interval.
    h = await startPodApiHarness({ heartbeatIntervalMs: 200, hostTtlMs: 1_000, maxHeartbeatsPerSecond: 5 });
  });
  after(async () => {
    await fleet?.stop();
    await h?.close();
  });

  it('heartbeats at the fleet\'s interval, so the server hears no more than its rate, and stays up', async () => {
    fleet = await RealAgents.start(h, 3, { engineFor: () => new FakeEngine() });
    const d = new PodApiDriver(h);
    await poll('three hosts up', async () => {
      const res = await call<object, ListHostsResponse>(h.operator, 'listHosts', {});
      return res.hosts.filter((x) => fleet!.hosts.includes(x.id) && x.state === 1).length === 3;
    }, 20_000);
    await poll('the interval of three hosts', async () => (await d.metric('podium_heartbeat_interval_seconds')) === 0.6, 5_000, 50);
    await new Promise((r) => setTimeout(r, 700)); // every agent past its old timer
    const heard0 = await d.metric('podium_agent_heartbeats_total');
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 3_000));
    const rate = ((await d.metric('podium_agent_heartbeats_total')) - heard0) * 1000 / (Date.now() - t0);
    assert.ok(rate <= 5.5, `heard ${rate.toFixed(1)} heartbeats a second from 3 hosts told 600 ms (15 at 200 ms)`);
    assert.ok(rate >= 3.5, `heard only ${rate.toFixed(1)} a second: the agents stopped heartbeating`);
    const types = (await h.server.storage.read((r) => r.events.list(null, '', 0))).map((e) => e.type);
    assert.ok(!types.includes('host.down'), types.join(','));
  });
});
