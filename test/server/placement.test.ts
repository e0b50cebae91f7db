/**
 * Placement through the whole Pod API, without Docker: a real server (gRPC, TLS, SQLite) and
 * scripted agents that joined with the real Join and speak the real AgentService protocol.
 */
import assert from 'node:assert/strict';
import type { ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { InstanceState, Service } from '../../gen/podium/v1/resources';
import { as, call, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { ScriptedAgent } from '../support/scripted-agent';

describe('placement over real gRPC with scripted agents', function () {
  this.timeout(30_000);
  let h: PodApiHarness;
  const agents: ScriptedAgent[] = [];

  beforeEach(async () => {
    h = await startPodApiHarness();
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) a.close();
    await h.close();
  });

  async function fleet(n: number): Promise<ScriptedAgent[]> {
    const joined: ScriptedAgent[] = [];
    for (let i = 0; i < n; i++) {
      const a = await ScriptedAgent.join(h.address, await h.joinToken());
      a.connect();
      await a.welcomed();
      joined.push(a);
      agents.push(a);
    }
    await poll('hosts up', async () => {
      const res = await call<object, ListHostsResponse>(h.operator, 'listHosts', {});
      return res.hosts.filter((x) => x.state === 1).length === n;
    });
    return joined;
  }

  it('places an HA service on distinct hosts and reports it running', async () => {
    await fleet(3);
    await call(h.operator, 'createEnvironment', { environment: { name: 'prod' } }, as('acme'));
    await call(h.operator, 'createService', {
      environment: 'prod',
      service: Service.fromPartial({ name: 'db', image: 'img', replicas: 3, ha: true, resources: { cpuMillis: 100, memoryMib: 64 } }),
    }, as('acme'));
    const svc = await poll('3 running', async () => {
      const s = await call<object, Service>(h.operator, 'getService', { environment: 'prod', service: 'db' }, as('acme'));
      return s.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING).length === 3 ? s : undefined;
    });
    assert.equal(new Set(svc.instances.map((i) => i.host)).size, 3);
  });
});
