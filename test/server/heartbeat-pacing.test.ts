/**
 * Issue 7: "idle CPU for heartbeats 13 % / 41 % of a core at 1,000 / 5,000 agents; 10,000 never
 * all connected". The Pod API now hears at most --max-heartbeats heartbeats a second: a larger
 * fleet is told to heartbeat less often, and the TTL grows with the interval.
 */
import assert from 'node:assert/strict';
import { HeartbeatPacing } from '../../server/heartbeat-pacing';
import { PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';

describe('heartbeat pacing', () => {
  it('keeps the base interval on a small fleet and grows in whole steps with the fleet', () => {
    const p = new HeartbeatPacing({ baseIntervalMs: 2_000, baseTtlMs: 10_000, maxPerSecond: 400 });
    assert.equal(p.fleetSize(800, 0), null, '800 hosts at 2 s are 400 a second');
    assert.equal(p.intervalMs, 2_000);
    assert.equal(p.fleetSize(801, 0), 4_000);
    assert.equal(p.ttlMs(0), 20_000, 'the TTL keeps its ratio to the interval');
    assert.equal(p.fleetSize(10_000, 0), 26_000, '10,000 hosts: 13 steps, 385 a second');
    assert.ok(10_000 / (p.intervalMs / 1000) <= 400);
    assert.equal(new HeartbeatPacing({ baseIntervalMs: 2_000, baseTtlMs: 10_000, maxPerSecond: 0 }).fleetSize(1e6, 0), null, 'no limit: never scaled');
  });

  it('shrinks only well below a step, and keeps the longer TTL until it has passed', () => {
    const p = new HeartbeatPacing({ baseIntervalMs: 1_000, baseTtlMs: 5_000, maxPerSecond: 10 });
    assert.equal(p.fleetSize(30, 0), 3_000); // 10 hosts per step
    assert.equal(p.fleetSize(19, 0), null, '19 hosts fit in two steps, but not a fifth below: no flapping');
    assert.equal(p.fleetSize(15, 1_000), 2_000);
    // Hosts may have heartbeated at 3 s just before they heard of 2 s: the 15 s TTL holds 15 s.
    assert.equal(p.ttlMs(1_000), 15_000);
    assert.equal(p.ttlMs(15_999), 15_000);
    assert.equal(p.ttlMs(16_000), 10_000);
  });
});

describe('heartbeat pacing on a running Pod API', function () {
  this.timeout(60_000);
  let h: PodApiHarness;
  let d: PodApiDriver;

  beforeEach(async () => {
    // 10 heartbeats a second at 200 ms: two hosts per step of interval.
    h = await startPodApiHarness({ heartbeatIntervalMs: 200, hostTtlMs: 1_000, maxHeartbeatsPerSecond: 10 });
    d = new PodApiDriver(h);
  });
  afterEach(async () => {
    d.closeAgents();
    await h.close();
  });

  it('tells every host the interval of the fleet, hears no more than the rate, and marks none down at the longer interval', async () => {
    const agents = await d.fleet(6);
    await poll('every host told 600 ms', () => agents.every((a) => a.heartbeatIntervals.at(-1) === 600), 5_000, 20);
    assert.deepEqual(agents[0]!.heartbeatIntervals, [200, 400, 600], 'the first host heard of each step');
    assert.deepEqual(agents[5]!.heartbeatIntervals, [600], 'the last was welcomed at the fleet\'s interval');

    const sent = () => agents.reduce((n, a) => n + a.heartbeatsSent, 0);
    const s0 = sent();
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 3_000));
    const rate = ((sent() - s0) * 1000) / (Date.now() - t0);
    assert.ok(rate <= 11, `heard ${rate.toFixed(1)} heartbeats a second, at most 10 allowed`);

    // A host heartbeating every 1.5 s is within the fleet's TTL (4 s with 7 hosts), past the base one (1 s).
    const slow = await d.fleet(1, { heartbeatMs: 1_500 });
    await new Promise((r) => setTimeout(r, 4_000));
    const types = (await h.server.storage.read((r) => r.events.list(null, '', 0))).map((e) => e.type);
    assert.ok(!types.includes('host.down'), types.join(','));
    assert.equal((await h.server.storage.read((r) => r.hosts.get(slow[0]!.hostId)))!.state, 'up');

    // The fleet shrinks to one: the interval comes back down, and the host is told.
    for (const a of agents.slice(1)) a.close();
    slow[0]!.close();
    await poll('told 200 ms again', () => agents[0]!.heartbeatIntervals.at(-1) === 200, 5_000, 20);
  });
});
