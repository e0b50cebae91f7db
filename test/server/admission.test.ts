/**
 * Issue 7: a reconnect storm is admitted at a bounded rate, each host told when to come back; after
 * a restart, hosts that were up get as long as admission needs for the whole fleet, and a host
 * given a later slot is held to that slot, not to the TTL. Real gRPC, TLS and database; scripted
 * agents that reconnect on their own and honour the slot they are given.
 */
import assert from 'node:assert/strict';
import { HostState } from '../../gen/podium/v1/resources';
import type { ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { SessionAdmission } from '../../server/admission';
import { call, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { ScriptedAgent } from '../support/scripted-agent';

describe('session admission: the schedule', () => {
  it('admits at the rate, keeps a deferred host its slot, and sends back one that comes early', () => {
    const a = new SessionAdmission({ ratePerSecond: 10, slackMs: 0 });
    assert.deepEqual(a.admit('h1', 1000), { admitted: true, retryAfterMs: 0 });
    assert.deepEqual(a.admit('h2', 1000), { admitted: false, retryAfterMs: 100 });
    assert.deepEqual(a.admit('h3', 1000), { admitted: false, retryAfterMs: 200 });
    assert.deepEqual(a.admit('h2', 1050), { admitted: false, retryAfterMs: 50 }, 'early: the rest of the wait');
    assert.deepEqual(a.admit('h2', 1100), { admitted: true, retryAfterMs: 0 }, 'on time: admitted');
    assert.deepEqual(a.admit('h3', 1300), { admitted: true, retryAfterMs: 0 }, 'late: admitted');
    assert.deepEqual(a.admit('h4', 1300), { admitted: true, retryAfterMs: 0 }, 'the schedule is free again');
    assert.equal(a.spanMs(10_000), 1_000_000);
    assert.equal(new SessionAdmission({ ratePerSecond: 0, slackMs: 0 }).admit('h', 0).admitted, true, '0: no limit');
  });
});

describe('session admission on a live server', function () {
  this.timeout(60_000);
  let h: PodApiHarness | undefined;
  const agents: ScriptedAgent[] = [];

  afterEach(async () => {
    for (const a of agents.splice(0)) a.close();
    await h?.close();
    h = undefined;
  });

  async function join(n: number, reconnectMs: number): Promise<ScriptedAgent[]> {
    const joined: ScriptedAgent[] = [];
    for (let i = 0; i < n; i++) joined.push(await ScriptedAgent.join(h!.address, await h!.joinToken(), { reconnectMs, heartbeatMs: 200 }));
    agents.push(...joined);
    return joined;
  }

  async function upHosts(): Promise<number> {
    const res = await call<object, ListHostsResponse>(h!.operator, 'listHosts', {});
    return res.hosts.filter((x) => x.state === HostState.HOST_STATE_UP).length;
  }

  it('spreads a storm of 25 sessions at 10 a second, telling each deferred host when to come back', async () => {
    h = await startPodApiHarness({ admitRatePerSecond: 10 });
    const fleet = await join(25, 5_000);
    const started = Date.now();
    for (const a of fleet) a.connect();
    await poll('every host welcomed', () => fleet.every((a) => a.sessions > 0), 20_000, 20);
    const tookMs = Date.now() - started;
    const deferred = fleet.filter((a) => a.deferrals > 0);
    assert.ok(deferred.length >= 10, `${deferred.length} deferred`);
    assert.match(deferred[0]!.lastDeferral ?? '', /^8 RESOURCE_EXHAUSTED: too many hosts connecting at once: come back in \d+ ms/);
    // 25 at 10/s: the last slot is about 2.4 s after the first; agents came back at their slot, not
    // at their own 5 s backoff.
    assert.ok(tookMs >= 1_500 && tookMs < 5_000, `all admitted after ${tookMs} ms`);
    assert.equal(await upHosts(), 25);
  });

  it('after a restart, marks no host down while the fleet waits for its slots, however late they fall', async () => {
    // One TTL (1 s) of grace, 12 hosts at 4/s (3 s to let them all in), and agents that come back
    // 2.5 s after they lost the server: a grace of one TTL would mark every one down, and a host
    // whose slot falls after the fleet's grace would be marked down without its slot.
    h = await startPodApiHarness({ admitRatePerSecond: 4, hostTtlMs: 1_000, heartbeatIntervalMs: 200, restartGraceMs: 1_000 });
    const fleet = await join(12, 2_500);
    for (const a of fleet) a.connect();
    await poll('12 hosts up', async () => (await upHosts()) === 12, 15_000);
    const sessionsBefore = fleet.map((a) => a.sessions);
    await h.restart();
    await poll('every host back', () => fleet.every((a, i) => a.sessions > sessionsBefore[i]!), 20_000);
    await new Promise((r) => setTimeout(r, 1_500)); // past any TTL that was about to run out
    const events = (await h.server.storage.read((r) => r.events.list(null, '', 0))).map((e) => e.type);
    assert.ok(!events.includes('host.down'), `marked down: ${events.filter((e) => e === 'host.down').length}`);
    assert.equal(await upHosts(), 12);
    assert.ok(fleet.some((a) => a.deferrals > 0), 'the reconnect went through admission');
  });
});
