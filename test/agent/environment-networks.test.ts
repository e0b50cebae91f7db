/**
 * Environment networks on the real engine: two agents that share an engine race for one subnet
 * and both end up with a network (the loser takes the next free subnet), and an agent that starts
 * removes the stray networks of its host, keeping those its containers still use.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import Modem from 'docker-modem';
import pino from 'pino';
import type { AgentMessage, ContainerSpec } from '../../gen/podium/v1/agent';
import { AppArmorMode } from '../../gen/podium/v1/resources';
import { AgentCore } from '../../agent/agent-core';
import { EnvironmentNetworks, isOverlap } from '../../agent/environment-networks';
import { AgentMetrics } from '../../agent/metrics';
import { DockerEngine, containerBody, containerName, ensureBusyboxImage, networkName, type NetworkSummary } from '../../agent/runtime';
import { formatIpv4Cidr, parseIpv4Cidr, SubnetPool } from '../../agent/subnet-pool';
import { DOCKER_SOCKET } from '../support/local-engine';
import { sweepStaleTestResources } from '../runtime/sweep';
import { uniquePrefix } from '../runtime/unique-prefix';
import { testAuthority } from '../certs/helpers';

const log = pino({ level: process.env.PODIUM_TEST_LOG ?? 'silent' });

/** A pool of the test's own (a free /28 of 10.241.0.0/16 now), so engineers sharing the engine do
 *  not meet; cut into /29s it holds two subnets. */
async function testPool(engine: DockerEngine, prefix: number): Promise<SubnetPool> {
  const used = (await engine.listNetworks()).flatMap((n) => n.subnets).map(parseIpv4Cidr).filter((c) => c !== undefined);
  const free = SubnetPool.parse('10.241.0.0/16', 28).pick(used, process.pid % 4096)!;
  return SubnetPool.parse(free, prefix);
}

/** Where EnvironmentNetworks starts its search for `hostId` (the same formula, read back). */
function startOf(hostId: string, size: number): number {
  return parseInt(createHash('sha256').update(hostId).digest('hex').slice(0, 8), 16) % size;
}

/** Lets every caller's full network list through only once `parties` callers have asked, so that
 *  each chooses its subnet from the same view: the race is certain, not likely. */
class ListBarrier {
  private waiting: Array<() => void> = [];
  private open = false;
  constructor(private readonly parties: number) {}
  arrive(): Promise<void> {
    if (this.open) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (this.waiting.length >= this.parties) {
        this.open = true;
        for (const go of this.waiting.splice(0)) go();
      }
    });
  }
}

class RacingEngine extends DockerEngine {
  overlapsRefused = 0;
  constructor(private readonly barrier: ListBarrier) {
    super({ socketPath: DOCKER_SOCKET });
  }
  override async listNetworks(filter: Record<string, string> = {}): Promise<NetworkSummary[]> {
    const list = await super.listNetworks(filter);
    if (Object.keys(filter).length === 0) await this.barrier.arrive();
    return list;
  }
  override async ensureNetwork(name: string, labels: Record<string, string>, options: { subnet?: string } = {}): Promise<string> {
    try {
      return await super.ensureNetwork(name, labels, options);
    } catch (err) {
      if (isOverlap(err)) this.overlapsRefused++;
      throw err;
    }
  }
}

describe('environment networks on the real engine', function () {
  // The CA workload certificates would be checked against (the core asks for one per award).
  let caPem = '';
  before(async () => {
    caPem = (await testAuthority()).caCertPem;
  });
  this.timeout(60_000);
  const engine = new DockerEngine({ socketPath: DOCKER_SOCKET });
  const hosts: string[] = [];

  before(async () => {
    await sweepStaleTestResources(engine, DOCKER_SOCKET);
    await ensureBusyboxImage(engine);
  });

  after(async () => {
    for (const host of hosts) {
      for (const c of await engine.listContainers({ 'podium.host': host })) await engine.removeContainer(c.id);
      for (const n of await engine.listNetworks({ 'podium.host': host })) await engine.forceRemoveNetwork(n.id);
    }
  });

  it('two agents on one engine racing for a subnet both get a network, on distinct subnets', async () => {
    const pool = await testPool(engine, 29);
    assert.equal(pool.size, 2);
    // Two host ids whose searches start at the same subnet.
    const prefix = uniquePrefix('host');
    const a = `${prefix}-a`;
    let b = '';
    for (let i = 0; !b; i++) if (startOf(`${prefix}-b${i}`, pool.size) === startOf(a, pool.size)) b = `${prefix}-b${i}`;
    hosts.push(a, b);
    const barrier = new ListBarrier(2);
    const engines = [new RacingEngine(barrier), new RacingEngine(barrier)];
    const nets = [a, b].map((hostId, i) => new EnvironmentNetworks(engines[i]!, { hostId, pool }, log));

    const names = await Promise.all(nets.map((n) => n.withNetwork('acme', 'race', async (network) => network)));
    assert.deepEqual(names, [networkName(a, 'acme', 'race'), networkName(b, 'acme', 'race')]);
    const subnets = (await Promise.all([a, b].map((host) => engine.listNetworks({ 'podium.host': host })))).map((l) => l.map((n) => n.subnets));
    assert.deepEqual(subnets.map((s) => s.length), [1, 1]);
    assert.deepEqual(
      subnets.flat(2).sort(),
      [pool.subnet(0), pool.subnet(1)].map(formatIpv4Cidr).sort(),
      'both subnets of the pool, one each',
    );
    assert.equal(engines[0]!.overlapsRefused + engines[1]!.overlapsRefused, 1, 'the loser was refused once and took the next');

    for (const n of nets) await n.release('acme', 'race');
    for (const host of [a, b]) assert.deepEqual(await engine.listNetworks({ 'podium.host': host }), []);
  });

  it('an agent that starts removes its stray networks and keeps those its containers use', async () => {
    const hostId = uniquePrefix('host');
    hosts.push(hostId);
    const pool = await testPool(engine, 29);
    const nets = new EnvironmentNetworks(engine, { hostId, pool }, log);
    // "used": a container exists on it (created, never started, so not even attached).
    const spec: ContainerSpec = {
      instanceId: `i-${process.pid}`,
      tenant: 'acme',
      environment: 'used',
      service: 'svc',
      image: 'podium/busybox:latest',
      command: ['sleep', '300'],
      resources: { cpuMillis: 10, memoryMib: 16 },
      capabilities: [],
      haGroup: '',
      readOnlyRoot: true,
      writablePaths: [],
    };
    await nets.withNetwork('acme', 'used', (network) =>
      engine.createContainer(containerName(spec, hostId), containerBody(spec, { hostId, network, apparmorProfile: null })),
    );
    // "stray": left by a crash between a container's removal and its network's.
    await nets.withNetwork('acme', 'stray', async () => undefined);
    assert.equal((await engine.listNetworks({ 'podium.host': hostId })).length, 2);

    const outbox: AgentMessage[] = [];
    const core = new AgentCore(
      engine,
      { hostId, capacity: { cpuMillis: 1000, memoryMib: 1024 }, apparmor: AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE, subnetPool: pool, watchIntervalMs: 60_000, caPem },
      (m) => outbox.push(m),
      new AgentMetrics({ connected: () => true, containers: () => 0 }),
      log,
    );
    await core.start();
    core.stop();
    assert.deepEqual((await engine.listNetworks({ 'podium.host': hostId })).map((n) => n.labels['podium.environment']), ['used']);
    assert.deepEqual(core.inventory().map((r) => [r.instanceId, r.running]), [[spec.instanceId, false]]);
  });

  it('a running agent sweeps a network no container uses within one check interval, with no restart', async () => {
    const hostId = uniquePrefix('host');
    hosts.push(hostId);
    const pool = await testPool(engine, 29);
    const core = new AgentCore(
      engine,
      { hostId, capacity: { cpuMillis: 1000, memoryMib: 1024 }, apparmor: AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE, subnetPool: pool, watchIntervalMs: 300, caPem },
      () => undefined,
      new AgentMetrics({ connected: () => true, containers: () => 0 }),
      log,
    );
    await core.start();
    try {
      // Left after the agent started, as by a removal the engine refused at the time: made by one
      // bare create (the agent's own create looks the network up again, and this agent's sweep
      // may already have taken it by then).
      const used = (await engine.listNetworks()).flatMap((n) => n.subnets).map(parseIpv4Cidr).filter((c) => c !== undefined);
      const subnet = pool.pick(used, 0)!;
      const labels = { 'podium.host': hostId, 'podium.tenant': 'acme', 'podium.environment': 'left' };
      await createNetworkOnce(networkName(hostId, 'acme', 'left'), labels, subnet);
      const until = Date.now() + 5_000;
      while ((await engine.listNetworks({ 'podium.host': hostId })).length > 0) {
        assert.ok(Date.now() < until, 'the network is still there 5 s later');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      core.stop();
    }
  });
});

/** One POST /networks/create, nothing before or after it. */
function createNetworkOnce(name: string, labels: Record<string, string>, subnet: string): Promise<void> {
  const modem = new Modem({ socketPath: DOCKER_SOCKET, version: 'v1.41' });
  const body = { Name: name, Driver: 'bridge', CheckDuplicate: true, Labels: labels, IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] } };
  return new Promise((resolve, reject) =>
    modem.dial({ path: '/networks/create', method: 'POST', options: body, statusCodes: { 201: true } }, (err) => (err ? reject(err) : resolve())),
  );
}
