/**
 * Finding: "Networks leak and exhaust Docker's address pools": after about 10 environments on one
 * engine every placement failed with "could not find an available, non-overlapping IPv4 address
 * pool". Here 200 environments with one container each are placed on one real agent on the real
 * engine, each on its own network from the agent's pool, and deleting them leaves no network.
 */
import assert from 'node:assert/strict';
import { Service } from '../../gen/podium/v1/resources';
import type { ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { parseIpv4Cidr, overlaps } from '../../agent/subnet-pool';
import { as, call, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { RealAgents } from '../support/real-agents';

const ENVIRONMENTS = 200;

describe('200 environments on one real agent', function () {
  this.timeout(900_000);
  let h: PodApiHarness;
  let fleet: RealAgents;
  const envs = Array.from({ length: ENVIRONMENTS }, (_, i) => `e${String(i).padStart(3, '0')}`);

  before(async function () {
    this.timeout(60_000);
    // Timings for a busy machine: 200 containers starting on 2 shared cores slow everything.
    h = await startPodApiHarness({ hostTtlMs: 15_000, heartbeatIntervalMs: 1_000, bidDeadlineMs: 2_000, awardTimeoutMs: 20_000 });
    fleet = await RealAgents.start(h, 1, { capacity: { cpuMillis: 2000, memoryMib: 2048 }, watchIntervalMs: 5_000 });
    await poll('the host up', async () => {
      const res = await call<object, ListHostsResponse>(h.operator, 'listHosts', {});
      return res.hosts.some((x) => x.id === fleet.hosts[0] && x.state === 1);
    });
  });

  after(async function () {
    this.timeout(300_000);
    await fleet?.stop();
    await h?.close();
  });

  it('places and runs them, each on its own network, and deleting them leaves no network', async () => {
    const started = Date.now();
    for (const env of envs) {
      await call(h.operator, 'createEnvironment', { environment: { name: env } }, as('acme'));
      const service = Service.fromPartial({
        name: 'app',
        image: 'podium/busybox:latest',
        command: ['sleep', '3600'],
        replicas: 1,
        resources: { cpuMillis: 10, memoryMib: 6 },
      });
      await call(h.operator, 'createService', { environment: env, service }, as('acme'));
    }
    let counts: Record<string, number> = {};
    try {
      await poll(`${ENVIRONMENTS} running`, async () => {
        counts = await h.server.storage.read((r) => r.instances.countByState());
        return (counts.running ?? 0) === ENVIRONMENTS;
      }, 600_000, 500);
    } catch (err) {
      // Say where it stood: how many in each state, and the last failures' reasons.
      const failures = (await h.server.storage.read((r) => r.events.list(null, '', 0, 100_000))).filter((e) => e.type === 'instance.failed').slice(-5);
      throw new Error(`${(err as Error).message}: instances by state ${JSON.stringify(counts)}, networks ${(await fleet.networks()).length}; last failures ${JSON.stringify(failures.map((e) => e.message))}`);
    }
    const placedMs = Date.now() - started;

    const containers = await fleet.containers();
    assert.equal(containers.filter((c) => c.running).length, ENVIRONMENTS);
    const networks = await fleet.networks();
    assert.equal(networks.length, ENVIRONMENTS, 'one network per environment');
    const subnets = networks.map((n) => parseIpv4Cidr(n.subnets[0] ?? '')!);
    assert.ok(subnets.every((s) => s !== undefined && s.prefix === 26 && overlaps(s, parseIpv4Cidr('10.210.0.0/16')!)), 'from the pool');
    for (let i = 0; i < subnets.length; i++) for (let j = i + 1; j < subnets.length; j++) assert.ok(!overlaps(subnets[i]!, subnets[j]!), 'no two overlap');
    assert.deepEqual((await h.server.storage.read((r) => r.events.list(null, '', 0, 100_000))).filter((e) => e.type === 'instance.failed'), []);

    const deleting = Date.now();
    for (const env of envs) await call(h.operator, 'deleteService', { environment: env, service: 'app' }, as('acme'));
    await poll('no container left', async () => (await fleet.containers()).length === 0, 600_000, 500);
    // The engine stops listing a network as soon as its removal begins; the agent's own calls
    // finish later (the engine tears bridges down one at a time), and only then is it done.
    await poll('no network left, and the agent idle', async () => (await fleet.networks()).length === 0 && fleet.agents[0]!.core.pendingWork === 0, 300_000, 500);
    const deletedMs = Date.now() - deleting;
    process.stdout.write(`      ${ENVIRONMENTS} environments placed and running in ${(placedMs / 1000).toFixed(1)} s; deleted, networks and all, in ${(deletedMs / 1000).toFixed(1)} s\n`);
  });
});
