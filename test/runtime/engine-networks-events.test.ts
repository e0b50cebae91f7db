/**
 * The DockerEngine calls behind networks as a managed resource and the event-driven container
 * watch, against the real engine: explicit IPAM subnets, the engine's refusal of an overlap,
 * removal of a network that still has an endpoint, and the event stream.
 */
import assert from 'node:assert/strict';
import type { ContainerSpec } from '../../gen/podium/v1/agent';
import { DockerEngine, DockerEngineError, containerBody, containerName, ensureBusyboxImage, networkName, type EngineEvent } from '../../agent/runtime';
import { parseIpv4Cidr, SubnetPool } from '../../agent/subnet-pool';
import { poll } from '../support/poll';
import { sweepStaleTestResources } from './sweep';
import { uniquePrefix } from './unique-prefix';

const SOCKET = '/var/run/docker.sock';

describe('runtime/docker-engine: networks with their own subnets, forced removal, events', function () {
  this.timeout(60_000);
  const engine = new DockerEngine({ socketPath: SOCKET });
  const hostId = uniquePrefix('host');
  const made: string[] = [];

  /** A free /28 in a pool of the test's own, so that engineers sharing the engine do not meet. */
  async function freeSubnet(offset = 0): Promise<string> {
    const used = (await engine.listNetworks()).flatMap((n) => n.subnets).map(parseIpv4Cidr).filter((c) => c !== undefined);
    return SubnetPool.parse('10.240.0.0/16', 28).pick(used, (process.pid * 7 + offset) % 4096)!;
  }

  function spec(instanceId: string, command: string[]): ContainerSpec {
    return {
      instanceId,
      tenant: 'acme',
      environment: 'nets',
      service: 'svc',
      image: 'podium/busybox:latest',
      command,
      resources: { cpuMillis: 50, memoryMib: 16 },
      capabilities: [],
      haGroup: '',
      readOnlyRoot: true,
      writablePaths: [],
    };
  }

  before(async () => {
    await sweepStaleTestResources(engine, SOCKET);
    await ensureBusyboxImage(engine);
  });

  after(async () => {
    for (const c of await engine.listContainers({ 'podium.host': hostId })) await engine.removeContainer(c.id);
    for (const n of made) await engine.forceRemoveNetwork(n);
    assert.deepEqual(await engine.listNetworks({ 'podium.host': hostId }), [], 'networks left behind');
  });

  it('creates a network on the subnet asked for, lists it with it, and the engine refuses an overlap', async () => {
    const subnet = await freeSubnet();
    const name = networkName(hostId, 'acme', 'one');
    made.push(name);
    const labels = { 'podium.host': hostId, 'podium.tenant': 'acme', 'podium.environment': 'one' };
    const id = await engine.ensureNetwork(name, labels, { subnet });
    const listed = (await engine.listNetworks({ 'podium.host': hostId })).find((n) => n.id === id);
    assert.deepEqual(listed, { id, name, labels, subnets: [subnet] });
    assert.ok((await engine.listNetworks()).some((n) => n.name === 'bridge'), 'an empty filter lists every network of the engine');

    const other = networkName(hostId, 'acme', 'two');
    made.push(other);
    await assert.rejects(engine.ensureNetwork(other, { ...labels, 'podium.environment': 'two' }, { subnet }), (err: unknown) => {
      assert.ok(err instanceof DockerEngineError);
      assert.equal(err.statusCode, 403);
      assert.match(err.message, /^create network .*: Pool overlaps with other one on this address space$/);
      return true;
    });
  });

  it('forceRemoveNetwork removes a network the engine refuses to remove for an endpoint still on it', async () => {
    const subnet = await freeSubnet(17);
    const name = networkName(hostId, 'acme', 'busy');
    made.push(name);
    const id = await engine.ensureNetwork(name, { 'podium.host': hostId, 'podium.tenant': 'acme', 'podium.environment': 'busy' }, { subnet });
    const s = spec(`busy-${process.pid}`, ['sleep', '300']);
    const c = await engine.createContainer(containerName(s, hostId), containerBody(s, { hostId, network: name, apparmorProfile: null }));
    await engine.startContainer(c);
    const detail = await engine.inspectNetwork(id);
    assert.deepEqual(detail?.endpoints.map((e) => e.containerId), [c]);

    await assert.rejects(engine.removeNetwork(id), (err: unknown) => err instanceof DockerEngineError && err.statusCode === 403 && /has active endpoints/.test(err.message));
    await engine.forceRemoveNetwork(id);
    assert.equal(await engine.inspectNetwork(id), undefined);
    await engine.forceRemoveNetwork(id); // gone already: tolerated
    await engine.removeContainer(c);
  });

  it('delivers a container\'s start, die (with its exit code) and destroy, filtered by label', async () => {
    const subnet = await freeSubnet(33);
    const name = networkName(hostId, 'acme', 'events');
    made.push(name);
    await engine.ensureNetwork(name, { 'podium.host': hostId, 'podium.tenant': 'acme', 'podium.environment': 'events' }, { subnet });
    const seen: EngineEvent[] = [];
    let ended = false;
    const sub = await engine.watchEvents(
      { type: ['container'], label: [`podium.host=${hostId}`], event: ['start', 'die', 'destroy'] },
      { onEvent: (e) => seen.push(e), onEnd: () => (ended = true) },
    );
    try {
      const s = spec(`ev-${process.pid}`, ['sh', '-c', 'exit 7']);
      const c = await engine.createContainer(containerName(s, hostId), containerBody(s, { hostId, network: name, apparmorProfile: null }));
      await engine.startContainer(c);
      await poll('the die event', () => seen.some((e) => e.action === 'die'), 10_000, 20);
      await engine.removeContainer(c);
      await poll('the destroy event', () => seen.some((e) => e.action === 'destroy'), 10_000, 20);
      assert.deepEqual(seen.map((e) => e.action), ['start', 'die', 'destroy'], 'only the filtered actions, in order');
      for (const e of seen) {
        assert.equal(e.type, 'container');
        assert.equal(e.id, c);
        assert.equal(e.attributes['podium.instance'], s.instanceId);
      }
      assert.equal(seen[1]!.attributes.exitCode, '7');
    } finally {
      sub.close();
    }
    await new Promise((r) => setImmediate(r));
    assert.equal(ended, false, 'close() does not report an end');
  });
});
