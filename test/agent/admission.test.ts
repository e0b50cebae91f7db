/**
 * The real agent told by the server's admission when to come back (a reconnect storm): it comes
 * back at its slot, to the same server, instead of retrying at its own backoff and being sent back
 * again. Real agents (real Join, real AgentService over mutual TLS, the real engine).
 */
import assert from 'node:assert/strict';
import type { ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { call, PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { RealAgents } from '../support/real-agents';

describe('a real agent deferred by admission', function () {
  this.timeout(60_000);
  let h: PodApiHarness;
  let fleet: RealAgents | undefined;

  before(async () => {
    // One session a second: the agents, started one after another, mostly find the schedule full.
    h = await startPodApiHarness({ admitRatePerSecond: 1 });
  });

  after(async () => {
    await fleet?.stop();
    await h?.close();
  });

  it('comes back at the slot it was given, once, rather than at its own backoff', async () => {
    fleet = await RealAgents.start(h, 4);
    await poll('four hosts up', async () => {
      const res = await call<object, ListHostsResponse>(h.operator, 'listHosts', {});
      return res.hosts.filter((x) => fleet!.hosts.includes(x.id) && x.state === 1).length === 4;
    }, 20_000);
    const deferred = await new PodApiDriver(h).metric('podium_agent_sessions_deferred_total');
    // Agents back off from 100 ms, doubling: one that ignored its slot would be sent back several times.
    assert.ok(deferred >= 2 && deferred <= 3, `${deferred} deferrals for 4 hosts admitted at 1/s`);
  });
});
