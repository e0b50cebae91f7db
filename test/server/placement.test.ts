/**
 * Placement through the whole Pod API, without Docker: a real server (gRPC, TLS, SQLite) and
 * scripted agents that joined with the real Join, speak the real AgentService protocol and price
 * lots with the real agent pricing (agent/price-lot.ts).
 */
import assert from 'node:assert/strict';
import { AppArmorMode, InstanceState, PlacementPolicy, type Service } from '../../gen/podium/v1/resources';
import { PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { defaultBids, type ScriptedAgent } from '../support/scripted-agent';

function perHost(svc: Service, agents: readonly ScriptedAgent[]): number[] {
  return agents.map((a) => svc.instances.filter((i) => i.host === a.hostId && i.state === InstanceState.INSTANCE_STATE_RUNNING).length);
}

describe('placement over real gRPC with scripted agents', function () {
  this.timeout(60_000);
  let h: PodApiHarness;
  let d: PodApiDriver;

  beforeEach(async () => {
    h = await startPodApiHarness();
    d = new PodApiDriver(h);
    await d.createEnvironment('acme', 'prod');
  });

  afterEach(async () => {
    d.closeAgents();
    await h.close();
  });

  it('places an HA service on distinct hosts and reports it running', async () => {
    await d.fleet(3);
    await d.createService('acme', 'prod', { name: 'db', replicas: 3, ha: true });
    const svc = await d.running('acme', 'prod', 'db', 3);
    assert.equal(new Set(svc.instances.map((i) => i.host)).size, 3);
  });

  it('spreads 30 replicas on 3 idle hosts 10/10/10 (finding 5)', async () => {
    const agents = await d.fleet(3, { capacity: { cpuMillis: 2000, memoryMib: 2048 } });
    await d.createService('acme', 'prod', { name: 'web', replicas: 30 });
    const svc = await d.running('acme', 'prod', 'web', 30);
    assert.deepEqual(perHost(svc, agents), [10, 10, 10]);
  });

  it('packs 30 replicas under binpack: one host filled first, the third left empty', async () => {
    const agents = await d.fleet(3, { capacity: { cpuMillis: 2000, memoryMib: 2048 } });
    await d.createService('acme', 'prod', { name: 'batch', replicas: 30, placement: PlacementPolicy.PLACEMENT_POLICY_BINPACK });
    const svc = await d.running('acme', 'prod', 'batch', 30);
    assert.equal(svc.placement, PlacementPolicy.PLACEMENT_POLICY_BINPACK);
    assert.deepEqual(perHost(svc, agents).sort((a, b) => b - a), [20, 10, 0]);
  });

  it('shows the default policy as spread', async () => {
    await d.createService('acme', 'prod', { name: 'plain' });
    assert.equal((await d.getService('acme', 'prod', 'plain')).placement, PlacementPolicy.PLACEMENT_POLICY_SPREAD);
  });

  it('sends a crash-looping replica elsewhere rather than back to the host where it failed (finding 8)', async () => {
    const [bad, good] = await d.fleet(2);
    // The bad host is the cheapest by far, and every container it starts fails at once.
    bad!.bidScript = (_a, call) => ({ bids: call.lots.map((l) => ({ lotId: l.id, price: 0, roundWeight: 0 })), declines: [] });
    good!.bidScript = (_a, call) => ({ bids: call.lots.map((l) => ({ lotId: l.id, price: 90, roundWeight: 0 })), declines: [] });
    bad!.awardScript = () => ({ accepted: true, state: InstanceState.INSTANCE_STATE_FAILED });
    await d.createService('acme', 'prod', { name: 'flaky' });
    const svc = await d.running('acme', 'prod', 'flaky', 1);
    const failed = svc.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_FAILED);
    assert.equal(failed.length, 1, 'failed once on the bad host, then placed elsewhere');
    assert.equal(failed[0]!.host, bad!.hostId);
    assert.equal(svc.instances.find((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING)!.host, good!.hostId);
  });

  it('gives an agent without AppArmor and without the insecure flag no lot, and says why', async () => {
    const [unconfined] = await d.fleet(1, { apparmor: AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE });
    await d.createService('acme', 'prod', { name: 'web' });
    const reason = await poll('the reason', async () => {
      const svc = await d.getService('acme', 'prod', 'web');
      return /AppArmor/.test(svc.pendingReason) ? svc.pendingReason : undefined;
    });
    assert.equal(reason, '1 replica, 1 host: 1 excluded by no AppArmor');
    assert.equal(unconfined!.messages('callForBids').length, 0, 'never even called for bids');
    assert.equal(unconfined!.messages('award').length, 0);
  });

  it('never awards a lot twice: a late acceptance after the award timed out places nothing', async () => {
    const fast = await startPodApiHarness({ awardTimeoutMs: 300 });
    const fd = new PodApiDriver(fast);
    try {
      await fd.createEnvironment('acme', 'prod');
      const [slow, other] = await fd.fleet(2);
      slow!.bidScript = (_a, call) => ({ bids: call.lots.map((l) => ({ lotId: l.id, price: 0, roundWeight: 0 })), declines: [] });
      // The slow host says nothing until the award has timed out, then accepts and reports running.
      slow!.awardScript = (agent, award) => {
        setTimeout(() => {
          agent.send({ kind: { $case: 'awardReply', awardReply: { lotId: award.lotId, accepted: true, reason: '' } } });
          agent.report(award.spec!.instanceId, InstanceState.INSTANCE_STATE_RUNNING);
        }, 900);
        return 'silent';
      };
      await fd.createService('acme', 'prod', { name: 'once' });
      const svc = await fd.running('acme', 'prod', 'once', 1);
      assert.equal(svc.instances[0]!.host, other!.hostId, 'requeued without the host that timed out');
      // The late answers arrive: the instance stays with the other host; the slow one is told to stop.
      await poll('the slow host told to stop', () => slow!.messages('stopInstance').length > 0, 5000);
      const after = await fd.getService('acme', 'prod', 'once');
      assert.deepEqual(after.instances.map((i) => [i.host, i.state]), [[other!.hostId, InstanceState.INSTANCE_STATE_RUNNING]]);
    } finally {
      fd.closeAgents();
      await fast.close();
    }
  });

  it('puts an instance whose container is gone on reconnect back to the auction', async () => {
    const [a] = await d.fleet(1);
    await d.createService('acme', 'prod', { name: 'web' });
    const first = (await d.running('acme', 'prod', 'web', 1)).instances[0]!;
    // The host comes back without the container (its engine lost it): its inventory is empty.
    a!.close();
    a!.running.clear();
    a!.connect();
    await poll('requeued', async () => (await h.server.storage.read((r) => r.events.list('acme', 'prod', 0))).some((e) => e.instance === first.id && e.type === 'instance.requeued'));
    await poll('awarded again', () => a!.messages('award').length === 2);
    await d.running('acme', 'prod', 'web', 1);
  });

  it('tries again a lot that a host declined by its own bookkeeping, without waiting for the fleet to change', async () => {
    // Found on real Docker: a host that comes back still holds its old replica of the HA group for
    // a moment (it removes stale containers after reconciling) and declines "ha"; that is the
    // agent's word, not the server's rule, and must not park the lot until the next fleet change.
    const agents = await d.fleet(3);
    await d.createService('acme', 'prod', { name: 'db', replicas: 3, ha: true });
    await d.running('acme', 'prod', 'db', 3);
    const back = agents[2]!;
    let declines = 1;
    back.bidScript = (agent, call) => {
      if (declines-- > 0) return { bids: [], declines: call.lots.map((l) => ({ lotId: l.id, reason: 'ha' })) };
      return defaultBids(agent, call);
    };
    // It loses its replica (the engine lost the container) and reconnects: the replica is requeued.
    back.close();
    back.running.clear();
    back.connect();
    await poll('called again after declining', () => declines < 0 || undefined, 10_000);
    await d.running('acme', 'prod', 'db', 3, 10_000);
  });

  it('marks a silent host down and places its replicas on another host', async () => {
    const [quiet] = await d.fleet(1, { heartbeatMs: 0 });
    await d.createService('acme', 'prod', { name: 'web' });
    await d.running('acme', 'prod', 'web', 1);
    const [loud] = await d.fleet(1);
    const moved = await poll('moved off the silent host', async () => {
      const svc = await d.getService('acme', 'prod', 'web');
      const up = svc.instances.find((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING);
      return up && up.host === loud!.hostId ? svc : undefined;
    }, 15_000);
    assert.ok(moved.instances.some((i) => i.host === quiet!.hostId && i.state === InstanceState.INSTANCE_STATE_LOST));
    const types = (await h.server.storage.read((r) => r.events.list(null, '', 0))).filter((e) => e.host === quiet!.hostId).map((e) => e.type);
    assert.ok(types.includes('host.down'));
  });
});
