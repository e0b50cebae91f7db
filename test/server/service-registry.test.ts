/**
 * The service registry (issue 8): which instances of which service run where, on which port,
 * pushed over the agent stream to the hosts that run the environment, within a second of an
 * instance running or going away, and to no other host.
 *
 * The real Pod API over real mutual TLS, scripted agents that advertise a proxy address.
 */
import assert from 'node:assert/strict';
import type { EnvironmentRegistry } from '../../gen/podium/v1/agent';
import { InstanceState, PortProtocol } from '../../gen/podium/v1/resources';
import { PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import type { ScriptedAgent } from '../support/scripted-agent';

/** The latest snapshot of an environment a host holds, as the agent keeps it (highest version). */
function latest(agent: ScriptedAgent, tenant: string, environment: string): EnvironmentRegistry | undefined {
  let best: EnvironmentRegistry | undefined;
  for (const { registry } of agent.messages('registry')) {
    if (registry.tenant !== tenant || registry.environment !== environment) continue;
    if (!best || registry.version > best.version) best = registry;
  }
  return best;
}

const endpointsOf = (r: EnvironmentRegistry | undefined, service: string) =>
  (r?.services.find((s) => s.name === service)?.endpoints ?? []).map((e) => `${e.instanceId}@${e.host}=${e.meshAddress}`).sort();

describe('service registry', function () {
  this.timeout(60_000);
  let h: PodApiHarness;
  let d: PodApiDriver;
  let agents: ScriptedAgent[];
  const mesh = (a: ScriptedAgent) => a.options.meshAddress;

  beforeEach(async () => {
    // Replacements placed 300 ms after a failure: the test sees the registry follow both ways.
    h = await startPodApiHarness({ restartBackoffMs: 300, restartBackoffMaxMs: 300 });
    d = new PodApiDriver(h);
    agents = [];
    for (let i = 0; i < 4; i++) agents.push(...(await d.fleet(1, { meshAddress: `10.99.0.${i + 1}:7946` })));
    await d.createEnvironment('acme', 'prod');
    await d.createEnvironment('globex', 'prod');
  });
  afterEach(async () => {
    d.closeAgents();
    await h.close();
  });

  it('pushes each environment\'s snapshot to the hosts that run it, and to no other host', async () => {
    await d.createService('acme', 'prod', { name: 'api', replicas: 2, ha: true, ports: [{ name: 'http', port: 8080, protocol: PortProtocol.PORT_PROTOCOL_HTTP }], allow: [{ environment: 'staging' }] });
    await d.createService('globex', 'prod', { name: 'db', replicas: 1, ports: [{ name: 'pg', port: 5432, protocol: PortProtocol.PORT_PROTOCOL_TCP }] });
    const api = await d.running('acme', 'prod', 'api', 2);
    const db = await d.running('globex', 'prod', 'db', 1);
    const expected = api.instances.map((i) => `${i.id}@${i.host}=${mesh(agents.find((a) => a.hostId === i.host)!)}`).sort();
    const acmeHosts = new Set(api.instances.map((i) => i.host));
    for (const a of agents.filter((x) => acmeHosts.has(x.hostId))) {
      const r = await poll(`acme's registry on ${a.hostId}`, () => (endpointsOf(latest(a, 'acme', 'prod'), 'api').length === 2 ? latest(a, 'acme', 'prod') : undefined), 2_000, 10);
      assert.deepEqual(endpointsOf(r, 'api'), expected);
      assert.deepEqual(r!.services.find((s) => s.name === 'api')!.ports, [{ name: 'http', port: 8080, protocol: PortProtocol.PORT_PROTOCOL_HTTP }]);
      assert.deepEqual(r!.services.find((s) => s.name === 'api')!.allowFromEnvironments, ['staging']);
    }
    const dbHost = db.instances[0]!.host;
    await poll('globex\'s registry on its host', () => endpointsOf(latest(agents.find((a) => a.hostId === dbHost)!, 'globex', 'prod'), 'db').length === 1, 2_000, 10);
    const others = agents.filter((a) => !acmeHosts.has(a.hostId));
    assert.ok(others.length >= 2, 'two of the four hosts run nothing of acme');
    for (const a of others) assert.equal(latest(a, 'acme', 'prod'), undefined, `${a.hostId} runs nothing of acme and must hear nothing of it`);
    for (const a of agents.filter((x) => x.hostId !== dbHost)) assert.equal(latest(a, 'globex', 'prod'), undefined, `${a.hostId} runs nothing of globex`);
  });

  it('drops a failed replica within a second, adds its replacement within a second of running, and drops a host whose session ended', async () => {
    await d.createService('acme', 'prod', { name: 'api', replicas: 2, ha: true, ports: [{ name: 'http', port: 8080, protocol: PortProtocol.PORT_PROTOCOL_TCP }] });
    const api = await d.running('acme', 'prod', 'api', 2);
    const [first, second] = api.instances;
    const holder = (hostId: string) => agents.find((a) => a.hostId === hostId)!;
    const watcher = holder(second!.host);
    await poll('both endpoints', () => endpointsOf(latest(watcher, 'acme', 'prod'), 'api').length === 2, 2_000, 10);

    const failedAt = Date.now();
    holder(first!.host).report(first!.id, InstanceState.INSTANCE_STATE_FAILED, 'exit 1');
    await poll('the failed replica dropped', () => endpointsOf(latest(watcher, 'acme', 'prod'), 'api').every((e) => !e.startsWith(first!.id)), 2_000, 5);
    const dropMs = Date.now() - failedAt;
    assert.ok(dropMs <= 1_000, `dropped after ${dropMs} ms`);

    // The replacement: scripted agents report RUNNING as they accept an award.
    const replacement = await poll('a replacement awarded', () => {
      const known = new Set([first!.id, second!.id]);
      for (const a of agents) for (const { award } of a.messages('award')) if (award.spec && !known.has(award.spec.instanceId)) return { id: award.spec.instanceId, at: Date.now() };
      return undefined;
    }, 10_000, 5);
    await poll('the replacement listed', () => endpointsOf(latest(watcher, 'acme', 'prod'), 'api').some((e) => e.startsWith(replacement.id)), 2_000, 5);
    const addMs = Date.now() - replacement.at;
    assert.ok(addMs <= 1_000, `listed ${addMs} ms after it ran`);

    // A host whose session ended routes nothing: its endpoints go from the others' snapshots.
    const lostHost = (await d.running('acme', 'prod', 'api', 2)).instances.find((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING && i.host !== second!.host)!.host;
    const closedAt = Date.now();
    holder(lostHost).close();
    await poll('the closed host\'s endpoint dropped', () => endpointsOf(latest(watcher, 'acme', 'prod'), 'api').every((e) => !e.includes(`@${lostHost}=`)), 2_000, 5);
    assert.ok(Date.now() - closedAt <= 1_000, `dropped ${Date.now() - closedAt} ms after the session ended`);
  });

  it('tells a host that runs nothing of an environment any more that it is gone', async () => {
    await d.createService('acme', 'prod', { name: 'api', replicas: 1, ports: [{ name: 'http', port: 8080, protocol: PortProtocol.PORT_PROTOCOL_TCP }] });
    const [inst] = (await d.running('acme', 'prod', 'api', 1)).instances;
    const a = agents.find((x) => x.hostId === inst!.host)!;
    await poll('the snapshot', () => latest(a, 'acme', 'prod')?.gone === false, 2_000, 10);
    await d.deleteService('acme', 'prod', 'api');
    const r = await poll('gone', () => (latest(a, 'acme', 'prod')?.gone ? latest(a, 'acme', 'prod') : undefined), 2_000, 10);
    assert.deepEqual(r!.services, []);
  });

  it('lists in an environment\'s snapshot the services of the tenant\'s other environments that allow it, and only those', async () => {
    await d.createEnvironment('acme', 'staging');
    await d.createService('acme', 'prod', { name: 'api', replicas: 1, ports: [{ name: 'http', port: 8080, protocol: PortProtocol.PORT_PROTOCOL_TCP }], allow: [{ environment: 'staging' }] });
    await d.createService('acme', 'prod', { name: 'secret', replicas: 1, ports: [{ name: 'tcp', port: 9000, protocol: PortProtocol.PORT_PROTOCOL_TCP }] });
    await d.createService('acme', 'staging', { name: 'web', replicas: 1, ports: [{ name: 'http', port: 80, protocol: PortProtocol.PORT_PROTOCOL_TCP }], capabilities: ['NET_BIND_SERVICE'] });
    const [api] = (await d.running('acme', 'prod', 'api', 1)).instances;
    const [web] = (await d.running('acme', 'staging', 'web', 1)).instances;
    const onWebHost = agents.find((x) => x.hostId === web!.host)!;
    const r = await poll('staging\'s snapshot with prod\'s api', () => {
      const got = latest(onWebHost, 'acme', 'staging');
      return got?.services.find((x) => x.name === 'api')?.endpoints.length === 1 ? got : undefined;
    }, 2_000, 10);
    assert.deepEqual(r!.services.map((x) => `${x.name}.${x.environment}`).sort(), ['api.prod', 'web.staging'], 'its own, and the import; never prod\'s secret');
    assert.deepEqual(endpointsOf(r, 'api'), [`${api!.id}@${api!.host}=${mesh(agents.find((a) => a.hostId === api!.host)!)}`]);
    // The import goes with the service that allowed it.
    await d.deleteService('acme', 'prod', 'api');
    await poll('the import gone from staging', () => latest(onWebHost, 'acme', 'staging')?.services.every((x) => x.name !== 'api'), 2_000, 10);
  });
});
