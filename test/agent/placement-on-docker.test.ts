/**
 * Three real agents in-process (real Join, real AgentService over mutual TLS, real Docker engine)
 * under a harness Pod API: a plain deploy places 48 containers with no false failure, and a
 * container killed from outside is reported failed with its exit code — through the event stream,
 * through the stream opened again after it was cut, and, with the stream broken, by the periodic
 * check.
 */
import assert from 'node:assert/strict';
import Modem from 'docker-modem';
import { Service, type Resources } from '../../gen/podium/v1/resources';
import type { ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { DockerEngine, DockerEngineError, type EventHandlers, type EventSubscription } from '../../agent/runtime';
import type { Agent } from '../../agent';
import { DOCKER_SOCKET } from '../support/local-engine';
import { as, call, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { RealAgents } from '../support/real-agents';

/** The real engine, whose event stream a test can cut (as an engine restart would) or break. */
class CuttableEvents extends DockerEngine {
  broken = false;
  private live: { sub: EventSubscription; handlers: EventHandlers } | null = null;

  override async watchEvents(filters: Record<string, string[]>, handlers: EventHandlers): Promise<EventSubscription> {
    if (this.broken) throw new DockerEngineError('watch events', 'the event stream is broken by the test');
    const sub = await super.watchEvents(filters, handlers);
    this.live = { sub, handlers };
    return sub;
  }

  cut(): void {
    const live = this.live;
    this.live = null;
    live?.sub.close();
    live?.handlers.onEnd(new Error('cut by the test'));
  }
}

/** `docker kill`: SIGKILL through the engine API, not through the agent. */
function kill(containerId: string): Promise<void> {
  const modem = new Modem({ socketPath: DOCKER_SOCKET, version: 'v1.41' });
  return new Promise((resolve, reject) =>
    modem.dial({ path: `/containers/${containerId}/kill`, method: 'POST', options: {}, statusCodes: { 204: true } }, (err) => (err ? reject(err) : resolve())),
  );
}

async function changes(agent: Agent, source: 'event' | 'check'): Promise<number> {
  const metric = agent.metrics.registry.getSingleMetric('podium_agent_container_changes_total')!;
  const values = (await metric.get()).values;
  return values.filter((v) => v.labels.source === source && v.labels.change === 'stopped').reduce((n, v) => n + v.value, 0);
}

describe('three real agents on the real engine', function () {
  this.timeout(180_000);
  let h: PodApiHarness;
  let fleet: RealAgents;
  const engines: CuttableEvents[] = [];
  const resources: Resources = { cpuMillis: 20, memoryMib: 16 };

  before(async function () {
    this.timeout(60_000);
    // Timings for a busy machine (2 cores shared with other work): a host marked down for a stall
    // would move replicas, which is another test's subject.
    h = await startPodApiHarness({ hostTtlMs: 15_000, heartbeatIntervalMs: 1_000, bidDeadlineMs: 2_000, awardTimeoutMs: 20_000 });
    fleet = await RealAgents.start(h, 3, {
      // A short full check: the race of the finding needs checks running while awards start.
      watchIntervalMs: 300,
      engineFor: (_host, i) => {
        engines[i] = new CuttableEvents({ socketPath: DOCKER_SOCKET });
        engines[i]!.broken = i === 2; // host 3 has no event stream at all, only the periodic check
        return engines[i]!;
      },
    });
    await poll('three hosts up', async () => {
      const res = await call<object, ListHostsResponse>(h.operator, 'listHosts', {});
      return res.hosts.filter((x) => fleet.hosts.includes(x.id) && x.state === 1).length === 3;
    });
  });

  after(async function () {
    this.timeout(60_000);
    await fleet?.stop();
    await h?.close();
  });

  /** The running instance of one host, as the server stores it. */
  async function runningOn(host: string): Promise<{ id: string; containerId: string }> {
    const inst = (await h.server.storage.read((r) => r.instances.listOnHost(host))).find((i) => i.state === 'running');
    assert.ok(inst, `a running instance on ${host}`);
    return { id: inst.id, containerId: inst.containerId! };
  }

  /** Kills the container from outside and waits until the server has it failed, with the exit
   *  code of SIGKILL; returns how long that took from the kill. */
  async function killAndWait(victim: { id: string; containerId: string }): Promise<number> {
    const started = Date.now();
    await kill(victim.containerId);
    const instanceId = victim.id;
    await poll(`instance ${instanceId} failed`, async () => {
      const i = await h.server.storage.read((r) => r.instances.get(instanceId));
      return i?.state === 'failed' && i.message === 'container exited with exit code 137';
    }, 10_000, 20);
    return Date.now() - started;
  }

  it('places 48 containers in a plain deploy, and none is reported failed', async () => {
    const started = Date.now();
    for (const env of ['prod', 'staging']) {
      await call(h.operator, 'createEnvironment', { environment: { name: env } }, as('acme'));
      for (const name of ['web', 'api', 'jobs']) {
        const service = Service.fromPartial({ name, image: 'podium/busybox:latest', command: ['sleep', '3600'], replicas: 8, resources });
        await call(h.operator, 'createService', { environment: env, service }, as('acme'));
      }
    }
    await poll('48 running', async () => ((await h.server.storage.read((r) => r.instances.countByState())).running ?? 0) === 48, 120_000);
    const placedMs = Date.now() - started;
    // Give the full checks (every 300 ms, on every host) time to do anything wrong.
    await new Promise((r) => setTimeout(r, 2_000));

    const events = await h.server.storage.read((r) => r.events.list(null, '', 0, 100_000));
    assert.deepEqual(events.filter((e) => e.type === 'instance.failed'), [], 'no instance.failed');
    assert.equal(events.filter((e) => e.type === 'instance.running').length, 48);
    assert.equal((await h.server.storage.read((r) => r.instances.countByState())).running ?? 0, 48);
    const containers = await fleet.containers();
    assert.equal(containers.filter((c) => c.running).length, 48);
    const byHost = fleet.hosts.map((host) => containers.filter((c) => c.labels['podium.host'] === host).length);
    assert.ok(byHost.every((n) => n > 0), `every host runs some: ${byHost}`);

    const networks = await fleet.networks();
    const subnets = networks.flatMap((n) => n.subnets);
    const pairs = new Set(containers.map((c) => `${c.labels['podium.host']} ${c.labels['podium.environment']}`));
    assert.equal(networks.length, pairs.size, 'one network per environment per host');
    assert.equal(new Set(subnets).size, subnets.length, 'distinct subnets');
    assert.ok(subnets.every((s) => /^10\.210\.\d+\.\d+\/26$/.test(s)), `from the pool: ${subnets}`);
    process.stdout.write(`      48 placements running after ${placedMs} ms on hosts ${byHost.join('/')}, ${networks.length} networks\n`);
  });

  it('reports a container killed from outside failed with its exit code, through the event stream', async () => {
    const agent = fleet.agents[0]!;
    const before = await changes(agent, 'event');
    const victim = await runningOn(fleet.hosts[0]!);
    const ms = await killAndWait(victim);
    assert.equal(await changes(agent, 'event'), before + 1, 'seen on the event stream');
    process.stdout.write(`      reported after ${ms} ms\n`);
  });

  it('opens the event stream again when it is cut, and reports the next kill through it', async () => {
    const agent = fleet.agents[0]!;
    const opened = agent.core.containerWatch.subscriptions;
    engines[0]!.cut();
    await poll('the stream opened again', () => agent.core.containerWatch.subscribed && agent.core.containerWatch.subscriptions > opened, 10_000, 20);
    const before = await changes(agent, 'event');
    const victim = await runningOn(fleet.hosts[0]!);
    await killAndWait(victim);
    assert.equal(await changes(agent, 'event'), before + 1);
  });

  it('with the event stream broken, the periodic check reports the kill', async () => {
    const agent = fleet.agents[2]!;
    assert.equal(agent.core.containerWatch.subscribed, false);
    const victim = await runningOn(fleet.hosts[2]!);
    const ms = await killAndWait(victim);
    assert.equal(await changes(agent, 'event'), 0);
    assert.equal(await changes(agent, 'check'), 1);
    process.stdout.write(`      reported by the check after ${ms} ms\n`);
  });

  it('deleting the services removes every container and network', async () => {
    for (const env of ['prod', 'staging']) for (const name of ['web', 'api', 'jobs']) await call(h.operator, 'deleteService', { environment: env, service: name }, as('acme'));
    await poll('no container left', async () => (await fleet.containers()).length === 0, 60_000);
    await poll('no network left', async () => (await fleet.networks()).length === 0, 30_000);
  });
});
