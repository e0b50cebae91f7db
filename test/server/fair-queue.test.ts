/**
 * Issue 5, finding 1: one tenant starved the fleet. Three services of 100 replicas that fit no
 * host took every round (the 256 oldest pending lots, `lots:256, bids:0, awards:0`), and another
 * tenant's 1-replica service waited "waiting for an auction" until they were deleted.
 * Real Pod API (gRPC, TLS, SQLite), scripted agents over the real AgentService protocol.
 */
import assert from 'node:assert/strict';
import { InstanceState } from '../../gen/podium/v1/resources';
import { PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';

describe('fair queue: a hostile tenant cannot delay another', function () {
  this.timeout(60_000);
  let h: PodApiHarness;
  let d: PodApiDriver;

  beforeEach(async () => {
    h = await startPodApiHarness({ pendingRetryMs: 1000 });
    d = new PodApiDriver(h);
  });

  afterEach(async () => {
    d.closeAgents();
    await h.close();
  });

  it("places tenant A's service within 2 s beside tenant B's 300 unplaceable lots, which keep their reason", async () => {
    await d.fleet(3, { capacity: { cpuMillis: 2000, memoryMib: 2048 } });
    await d.createEnvironment('bee', 'prod');
    await d.createEnvironment('ant', 'prod');
    await d.setQuota('bee', { cpuMillis: 1_000_000, memoryMib: 10_000_000, instances: 300 });
    for (const name of ['x', 'y', 'z']) {
      await d.createService('bee', 'prod', { name, replicas: 100, resources: { cpuMillis: 100, memoryMib: 4096 } });
    }
    // B's lots have been judged: no host has 4 GiB.
    await poll("B's lots explained", async () => /excluded by memory/.test((await d.getService('bee', 'prod', 'z')).pendingReason));

    const started = Date.now();
    await d.createService('ant', 'prod', { name: 'web', replicas: 1 });
    await d.running('ant', 'prod', 'web', 1, 2000);
    const tookMs = Date.now() - started;
    process.stdout.write(`      (tenant A running after ${tookMs} ms beside 300 unplaceable lots)\n`);
    assert.ok(tookMs < 2000);

    for (const name of ['x', 'y', 'z']) {
      const svc = await d.getService('bee', 'prod', name);
      assert.equal(svc.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_PENDING).length, 100);
      assert.equal(svc.pendingReason, '100 replicas (100 unplaced), 3 hosts: 3 excluded by memory');
    }
  });

  it("puts A's lot into the first round once there are hosts, however many older lots B has", async () => {
    // Everything is queued before any host exists; the first agent's arrival starts the rounds.
    await d.createEnvironment('bee', 'prod');
    await d.createEnvironment('ant', 'prod');
    await d.setQuota('bee', { cpuMillis: 1_000_000, memoryMib: 10_000_000, instances: 300 });
    for (const name of ['x', 'y', 'z']) {
      await d.createService('bee', 'prod', { name, replicas: 100, resources: { cpuMillis: 100, memoryMib: 4096 } });
    }
    await d.createService('ant', 'prod', { name: 'web', replicas: 1 });
    // Rounds without hosts park every lot; wait until they have stopped (301 lots take two).
    let roundsBefore = -1;
    await poll('rounds settled', async () => {
      const now = await d.rounds();
      await new Promise((r) => setTimeout(r, 300));
      roundsBefore = now;
      return now === (await d.rounds()) && now >= 2;
    });
    await d.fleet(1, { capacity: { cpuMillis: 2000, memoryMib: 2048 } });
    const svc = await d.running('ant', 'prod', 'web', 1);
    const awarded = (await h.server.storage.read((r) => r.events.list('ant', 'prod', 0))).find((e) => e.type === 'instance.awarded' && e.instance === svc.instances[0]!.id)!;
    const round = Number(/round r-(\d+)-/.exec(awarded.message)![1]);
    assert.equal(round, roundsBefore + 1, `awarded in round ${round}; ${roundsBefore} rounds ran before the host came`);
  });

  it('parks lots no host can take until the fleet changes, then auctions them again', async () => {
    await d.fleet(2, { capacity: { cpuMillis: 2000, memoryMib: 2048 } });
    await d.createEnvironment('bee', 'prod');
    await d.createService('bee', 'prod', { name: 'big', replicas: 20, resources: { cpuMillis: 100, memoryMib: 4096 } });
    await poll('the lots explained', async () => /excluded by memory/.test((await d.getService('bee', 'prod', 'big')).pendingReason));
    // Parked: over several retry periods nothing re-judges them (each judgement counts a pending lot).
    const judged = await d.metric('podium_auction_lots_total', { outcome: 'pending' });
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await d.metric('podium_auction_lots_total', { outcome: 'pending' }), judged, 'parked lots were auctioned again');

    // A host with room joins: the fleet changed, the lots are auctioned again and two fit.
    await d.fleet(1, { capacity: { cpuMillis: 4000, memoryMib: 8192 } });
    const svc = await d.running('bee', 'prod', 'big', 2);
    assert.equal(svc.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_PENDING).length, 18);
  });
});
