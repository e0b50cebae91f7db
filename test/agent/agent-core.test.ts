/**
 * The agent's core with a scripted engine: how it routes the server's messages and the engine's
 * observations to its instances, what it bids from, and when an environment's network goes.
 */
import assert from 'node:assert/strict';
import pino from 'pino';
import type { AgentMessage, ContainerSpec, Lot } from '../../gen/podium/v1/agent';
import { AppArmorMode, InstanceState } from '../../gen/podium/v1/resources';
import { AgentCore } from '../../agent/agent-core';
import { AgentMetrics } from '../../agent/metrics';
import { SubnetPool } from '../../agent/subnet-pool';
import { containerBody, containerName, kernelAppArmor, networkName } from '../../agent/runtime';
import { poll } from '../support/poll';
import { FakeEngine, statuses } from './fake-engine';
import { testAuthority } from '../certs/helpers';

const HOST = 'h-core';
const RUNNING = InstanceState.INSTANCE_STATE_RUNNING;
const FAILED = InstanceState.INSTANCE_STATE_FAILED;

function spec(instanceId: string, over: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    instanceId,
    tenant: 'acme',
    environment: 'prod',
    service: 'web',
    image: 'podium/busybox:latest',
    command: ['sleep', '300'],
    resources: { cpuMillis: 100, memoryMib: 32 },
    capabilities: [],
    haGroup: '',
    readOnlyRoot: true,
    writablePaths: [],
    ...over,
  };
}

describe('agent core with a scripted engine', function () {
  // The CA workload certificates would be checked against (the core asks for one per award).
  let caPem = '';
  before(async () => {
    caPem = (await testAuthority()).caCertPem;
  });
  this.timeout(20_000);
  let engine: FakeEngine;
  let core: AgentCore;
  let outbox: AgentMessage[];

  function makeCore(watchIntervalMs = 3_600_000, apparmor = AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE): AgentCore {
    return new AgentCore(
      engine,
      {
        hostId: HOST,
        capacity: { cpuMillis: 1000, memoryMib: 1024 },
        apparmor,
        subnetPool: SubnetPool.parse('10.210.0.0/16', 26),
        watchIntervalMs,
        caPem,
      },
      (msg) => outbox.push(msg),
      new AgentMetrics({ connected: () => true, containers: () => 0 }),
      pino({ level: 'silent' }),
    );
  }

  const award = (s: ContainerSpec) => core.handle({ kind: { $case: 'award', award: { lotId: `lot-${s.instanceId}`, spec: s } } });
  const stop = (instanceId: string) => core.handle({ kind: { $case: 'stopInstance', stopInstance: { instanceId } } });
  const containerOf = (instanceId: string) => engine.containersOf(instanceId)[0]!;

  beforeEach(async () => {
    engine = new FakeEngine();
    outbox = [];
    core = makeCore();
    await core.start();
  });

  afterEach(() => core.stop());

  it('ignores a list asked for before the award created its container, so it is not "disappeared"', async () => {
    // The award is creating (its own transition is older than the list); the list is asked for;
    // the container is created; the list's answer, without the container, comes before the start.
    engine.gates.create.close();
    engine.gates.start.close();
    const awarded = award(spec('i-1'));
    await poll('the create requested', () => engine.gates.create.held === 1, 5_000, 5);
    engine.gates.list.close();
    const check = core.checkContainers();
    await poll('the list requested', () => engine.gates.list.held === 1, 5_000, 5);
    engine.gates.create.open();
    await poll('the start requested', () => engine.gates.start.held === 1, 5_000, 5);
    engine.gates.list.open();
    await check;
    engine.gates.start.open();
    await awarded;
    assert.deepEqual(statuses(outbox, 'i-1'), [{ state: RUNNING, message: '' }]);
    // A list asked for now does see it missing once it is removed from outside.
    engine.containers.delete(containerOf('i-1').id);
    await core.checkContainers();
    assert.deepEqual(statuses(outbox, 'i-1').at(-1), { state: FAILED, message: 'container disappeared' });
  });

  it('reports an exit from the event stream with its exit code, and an OOM kill as such', async () => {
    await award(spec('i-1'));
    await award(spec('i-2'));
    engine.exit(containerOf('i-1').id, 137);
    engine.exit(containerOf('i-2').id, 137, true);
    await poll('both failures', () => statuses(outbox, 'i-2').length === 2 && statuses(outbox, 'i-1').length === 2, 5_000, 5);
    assert.deepEqual(statuses(outbox, 'i-1')[1], { state: FAILED, message: 'container exited with exit code 137' });
    assert.deepEqual(statuses(outbox, 'i-2')[1], { state: FAILED, message: 'container exited with exit code 137 (out of memory)' });
    assert.ok(!engine.calls.includes('inspectContainer'), 'the event carries the exit code: no inspect');
  });

  it('a container that dies before its start returns is reported exited, never running', async () => {
    engine.gates.started.close();
    const awarded = award(spec('i-1'));
    await poll('the container running, its start not returned yet', () => engine.gates.started.held === 1, 5_000, 5);
    engine.exit(containerOf('i-1').id, 3);
    await poll('the exit', () => statuses(outbox, 'i-1').length > 0, 5_000, 5);
    engine.gates.started.open();
    await awarded;
    assert.deepEqual(statuses(outbox, 'i-1'), [{ state: FAILED, message: 'container exited with exit code 3' }]);
  });

  it('with the event stream broken, the periodic check reports the exit, and the stream is opened again', async () => {
    core.stop();
    core = makeCore(100);
    await core.start();
    await award(spec('i-1'));
    assert.equal(engine.subscriptions, 1);
    engine.gates.events.close(); // nothing arrives on the stream any more…
    engine.breakEvents(); // …and then it ends
    engine.exit(containerOf('i-1').id, 2);
    await poll('the exit found by the check', () => statuses(outbox, 'i-1').length === 2, 5_000, 20);
    assert.deepEqual(statuses(outbox, 'i-1')[1], { state: FAILED, message: 'container exited with exit code 2' });
    await poll('subscribed again', () => engine.subscriptions === 1 && core.containerWatch.subscriptions === 2, 5_000, 20);
  });

  it('a stop that arrives while the award is creating removes the container the award made, and reports nothing', async () => {
    engine.gates.create.close();
    const awarded = award(spec('i-1'));
    await poll('the create requested', () => engine.gates.create.held === 1, 5_000, 5);
    const stopped = stop('i-1');
    await new Promise((r) => setTimeout(r, 20)); // the removal gets as far as it can before the create lands
    engine.gates.create.open();
    await Promise.all([awarded, stopped]);
    assert.deepEqual(statuses(outbox, 'i-1'), []);
    assert.deepEqual(engine.containersOf('i-1'), []);
    assert.equal(engine.networks.size, 0, 'the network went with the last container');
    assert.deepEqual(core.holdings(), []);
  });

  it('removes the environment network with the last container of that environment on this host, not before', async () => {
    await award(spec('i-1'));
    await award(spec('i-2'));
    await award(spec('i-3', { environment: 'staging' }));
    const names = () => [...engine.networks.values()].map((n) => n.name).sort();
    assert.deepEqual(names(), [networkName(HOST, 'acme', 'prod'), networkName(HOST, 'acme', 'staging')].sort());
    const subnets = [...engine.networks.values()].map((n) => n.subnets[0]);
    assert.equal(new Set(subnets).size, 2, `distinct subnets: ${subnets}`);
    assert.ok(subnets.every((s) => /^10\.210\.\d+\.\d+\/26$/.test(s!)), `from the pool: ${subnets}`);
    await stop('i-1');
    assert.deepEqual(names(), [networkName(HOST, 'acme', 'prod'), networkName(HOST, 'acme', 'staging')].sort());
    await stop('i-2');
    assert.deepEqual(names(), [networkName(HOST, 'acme', 'staging')]);
    await stop('i-3');
    assert.deepEqual(names(), []);
  });

  it('starts and stops one network\'s containers one at a time, so the engine\'s endpoint count stays true and the network goes with the last', async () => {
    // The scripted engine keeps Docker 20.10's endpoint count, which loses an update when two
    // joins or leaves of one network overlap; a count left above zero refuses the removal.
    const ids = ['i-1', 'i-2', 'i-3', 'i-4', 'i-5', 'i-6'];
    await Promise.all(ids.map((id) => award(spec(id))));
    await Promise.all(ids.map((id) => award(spec(`${id}-staging`, { environment: 'staging' }))));
    const prod = [...engine.networks.values()].find((n) => n.name === networkName(HOST, 'acme', 'prod'))!;
    assert.equal(prod.endpointCount, 6, 'six joins counted');
    await Promise.all(ids.map((id) => stop(id)));
    assert.deepEqual([...engine.networks.values()].map((n) => n.name), [networkName(HOST, 'acme', 'staging')], 'prod removed, staging kept');
    await Promise.all(ids.map((id) => stop(`${id}-staging`)));
    assert.equal(engine.networks.size, 0);
  });

  it('adopts the containers it finds at start, keeps their networks, removes the stray ones', async () => {
    await award(spec('i-1'));
    core.stop();
    // A network left by a crash between a container's removal and its network's.
    await engine.ensureNetwork(networkName(HOST, 'acme', 'old'), { 'podium.host': HOST, 'podium.tenant': 'acme', 'podium.environment': 'old' });
    // Another host's network on the same engine is not ours to remove.
    await engine.ensureNetwork(networkName('h-other', 'acme', 'old'), { 'podium.host': 'h-other', 'podium.tenant': 'acme', 'podium.environment': 'old' });
    outbox = [];
    core = makeCore();
    await core.start();
    assert.deepEqual([...engine.networks.values()].map((n) => n.name).sort(), [networkName('h-other', 'acme', 'old'), networkName(HOST, 'acme', 'prod')].sort());
    assert.deepEqual(core.inventory(), [{ instanceId: 'i-1', containerId: containerOf('i-1').id, running: true }]);
    await core.handle({ kind: { $case: 'reconcile', reconcile: { keepInstanceIds: ['i-1'], removeInstanceIds: [] } } });
    assert.deepEqual(statuses(outbox, 'i-1'), [{ state: RUNNING, message: '' }]);
  });

  it('replaces a container of its own name left by a crash, never one of another host or instance', async () => {
    const mine = spec('i-1');
    const name = containerName(mine, HOST);
    const body = (hostId: string, s: ContainerSpec) => containerBody(s, { hostId, network: 'podium-x', apparmorProfile: null });
    const left = await engine.createContainer(name, body(HOST, mine));
    await award(mine);
    assert.deepEqual(statuses(outbox, 'i-1'), [{ state: RUNNING, message: '' }]);
    assert.ok(!engine.containers.has(left), 'the leftover was replaced');

    const other = spec('i-2');
    const foreign = await engine.createContainer(containerName(other, HOST), body('h-elsewhere', other));
    await award(other);
    assert.equal(statuses(outbox, 'i-2').at(-1)?.state, FAILED);
    assert.match(statuses(outbox, 'i-2').at(-1)!.message, /the name is taken by a container of host "h-elsewhere", instance "i-2"/);
    assert.ok(engine.containers.has(foreign), "another host's container is left alone");
  });

  it('creates each service\'s container from its own needs: a read-only root (or not), a tmpfs on each of its writable paths', async () => {
    await award(spec('i-db', { service: 'db', writablePaths: ['/var/lib/data'], capabilities: ['CHOWN'] }));
    await award(spec('i-web', { service: 'www', writablePaths: ['/srv/www'], capabilities: ['NET_BIND_SERVICE'] }));
    await award(spec('i-legacy', { service: 'legacy', readOnlyRoot: false, writablePaths: ['/var/lib/data'] }));
    for (const id of ['i-db', 'i-web', 'i-legacy']) assert.equal(statuses(outbox, id).at(-1)?.state, RUNNING, id);
    const db = containerOf('i-db').hostConfig;
    const web = containerOf('i-web').hostConfig;
    assert.equal(db.ReadonlyRootfs, true);
    assert.deepEqual(Object.keys(db.Tmpfs as object).sort(), ['/run', '/tmp', '/var/lib/data']);
    assert.deepEqual(db.CapAdd, ['CHOWN']);
    assert.equal(web.ReadonlyRootfs, true);
    assert.deepEqual(Object.keys(web.Tmpfs as object).sort(), ['/run', '/srv/www', '/tmp']);
    assert.deepEqual(web.CapAdd, ['NET_BIND_SERVICE']);
    const legacy = containerOf('i-legacy').hostConfig;
    assert.equal(legacy.ReadonlyRootfs, false);
    assert.equal(legacy.Tmpfs, undefined);
    for (const h of [db, web, legacy]) {
      assert.deepEqual(h.CapDrop, ['ALL']);
      assert.deepEqual(h.SecurityOpt, ['no-new-privileges:true'], 'no apparmor= on a host whose kernel has none (insecure mode)');
    }
  });

  it('an agent that says its kernel enforces AppArmor but cannot load the profile fails the award, never runs it unconfined', async function () {
    if (kernelAppArmor().enabled) this.skip(); // the check needs a kernel without AppArmor
    core.stop();
    core = makeCore(3_600_000, AppArmorMode.APP_ARMOR_MODE_ENFORCED);
    await core.start();
    await award(spec('i-1'));
    assert.deepEqual(statuses(outbox, 'i-1').map((s) => s.state), [FAILED]);
    assert.match(statuses(outbox, 'i-1')[0]!.message, /cannot load an AppArmor profile/);
    assert.deepEqual(engine.containersOf('i-1'), [], 'no container was made');
  });

  it('bids from its instances, and declines a lot that does not fit naming the dimension', async () => {
    await award(spec('i-1', { resources: { cpuMillis: 900, memoryMib: 100 } }));
    const lot = (id: string, cpuMillis: number, memoryMib: number): Lot => ({
      id,
      tenant: 'acme',
      environment: 'prod',
      service: 'web',
      haGroup: '',
      resources: { cpuMillis, memoryMib },
      image: 'podium/busybox:latest',
      placement: 0,
    });
    await core.handle({ kind: { $case: 'callForBids', callForBids: { roundId: 'r1', deadlineMs: 500, lots: [lot('cpu', 200, 10), lot('mem', 50, 1000), lot('ok', 50, 50)] } } });
    const answer = outbox.map((m) => m.kind).find((k) => k?.$case === 'bids');
    assert.ok(answer?.$case === 'bids');
    assert.deepEqual(answer.bids.declines, [
      { lotId: 'cpu', reason: 'cpu' },
      { lotId: 'mem', reason: 'memory' },
    ]);
    assert.deepEqual(answer.bids.bids.map((b) => b.lotId), ['ok']);
    // An award that no longer fits is refused with the dimension too.
    await award(spec('i-2', { resources: { cpuMillis: 200, memoryMib: 10 } }));
    const reply = outbox.map((m) => m.kind).find((k) => k?.$case === 'awardReply' && k.awardReply.lotId === 'lot-i-2');
    assert.deepEqual(reply?.$case === 'awardReply' && reply.awardReply, { lotId: 'lot-i-2', accepted: false, reason: 'no longer fits (cpu)' });
  });
});
