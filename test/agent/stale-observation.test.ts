/**
 * Finding: "Healthy containers are reported failed." A full check of the containers listed them
 * before an award's start, and walked the instances after it: the award's container, still
 * `created` in that list, was read as not running, and a fresh inspect said "running with exit
 * code 0". Here a scripted engine holds the list's answer while the award starts its container,
 * so the order is the same every run.
 */
import assert from 'node:assert/strict';
import pino from 'pino';
import type { AgentMessage, ContainerSpec } from '../../gen/podium/v1/agent';
import { AppArmorMode, InstanceState } from '../../gen/podium/v1/resources';
import { AgentCore } from '../../agent/agent-core';
import { AgentMetrics } from '../../agent/metrics';
import { SubnetPool } from '../../agent/subnet-pool';
import { poll } from '../support/poll';
import { FakeEngine, statuses } from './fake-engine';
import { testAuthority } from '../certs/helpers';

const HOST = 'h-stale';

function spec(instanceId: string): ContainerSpec {
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
  };
}

describe('agent core: an observation taken before an award started its container', function () {
  // The CA workload certificates would be checked against (the core asks for one per award).
  let caPem = '';
  before(async () => {
    caPem = (await testAuthority()).caCertPem;
  });
  this.timeout(20_000);
  let engine: FakeEngine;
  let core: AgentCore;
  const outbox: AgentMessage[] = [];

  beforeEach(async () => {
    engine = new FakeEngine();
    outbox.length = 0;
    core = new AgentCore(
      engine,
      // The periodic check is driven by the test, never by the timer.
      {
        hostId: HOST,
        capacity: { cpuMillis: 2000, memoryMib: 2048 },
        apparmor: AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE,
        subnetPool: SubnetPool.parse('10.210.0.0/16', 26),
        watchIntervalMs: 3_600_000,
        caPem,
      },
      (msg) => outbox.push(msg),
      new AgentMetrics({ connected: () => true, containers: () => 0 }),
      pino({ level: 'silent' }),
    );
    await core.start();
  });

  afterEach(() => core.stop());

  it('is not applied: the healthy container stays running, and a later exit is still reported', async () => {
    engine.gates.start.close();
    const award = core.handle({ kind: { $case: 'award', award: { lotId: 'lot-1', spec: spec('i-1') } } });
    await poll('the container created and starting', () => engine.calls.includes('startContainer'), 5_000, 5);

    // The check asks for the list now (the container is `created` in it); its answer comes later.
    engine.gates.list.close();
    const check = core.checkContainers();
    await poll('the list requested', () => engine.gates.list.held === 1, 5_000, 5);

    engine.gates.start.open();
    await award;
    assert.deepEqual(statuses(outbox, 'i-1'), [{ state: InstanceState.INSTANCE_STATE_RUNNING, message: '' }]);

    engine.gates.list.open();
    await check;
    assert.deepEqual(statuses(outbox, 'i-1'), [{ state: InstanceState.INSTANCE_STATE_RUNNING, message: '' }], 'no failure from a stale list');

    // A list taken after the start, of a container that really exited, is applied.
    const [c] = engine.containersOf('i-1');
    engine.exit(c!.id, 3);
    await core.checkContainers();
    const last = statuses(outbox, 'i-1').at(-1)!;
    assert.equal(last.state, InstanceState.INSTANCE_STATE_FAILED);
    assert.equal(last.message, 'container exited with exit code 3');
  });
});
