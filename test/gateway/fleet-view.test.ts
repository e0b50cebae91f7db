/**
 * The fleet is the operators' view: the real gateway in front of the real Pod API (gRPC, TLS,
 * SQLite) with two scripted agents as hosts. A customer's token is refused GET /v1/hosts and
 * still sees where its own instances run; an admin token and an operator certificate see every
 * host; the role metadata counts only when a gateway certificate sends it.
 */
import { strict as assert } from 'node:assert';
import { status, type ServiceError } from '@grpc/grpc-js';
import { PodApiClient, type ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { InstanceState } from '../../gen/podium/v1/resources';
import { startGatewayHarness, type GatewayHarness } from '../support/gateway-harness';
import { as, call, PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import type { ScriptedAgent } from '../support/scripted-agent';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = (res: Response): Promise<any> => res.json();

describe('gateway: the fleet is the operators\' view', function () {
  this.timeout(30_000);
  let h: PodApiHarness;
  let gw: GatewayHarness;
  const agents: ScriptedAgent[] = [];
  let customer: string;
  let admin: string;

  before(async () => {
    h = await startPodApiHarness();
    agents.push(...(await new PodApiDriver(h).fleet(2)));
    gw = await startGatewayHarness(h);
    customer = await gw.gateway.tokens.create('acme', 'acme-ci');
    admin = await gw.gateway.tokens.create('default', 'ops', 'admin');
  });

  after(async () => {
    for (const a of agents.splice(0)) a.close();
    await gw?.close();
    await h?.close();
  });

  it('refuses GET /v1/hosts to a customer token with 403, saying where a customer sees its hosts', async () => {
    const res = await gw.request(customer, '/v1/hosts');
    assert.equal(res.status, 403);
    const body = await json(res);
    assert.equal(body.code, status.PERMISSION_DENIED);
    assert.match(body.message, /the fleet is the operators' view/);
    assert.match(body.message, /GetService/);
    assert.match(body.message, /ListServices/);
    assert.equal(JSON.stringify(body).includes(agents[0]!.hostId), false);
  });

  it('answers GET /v1/hosts to an admin token with every host', async () => {
    const res = await gw.request(admin, '/v1/hosts');
    assert.equal(res.status, 200);
    const body = await json(res);
    assert.deepEqual(body.hosts.map((x: { id: string }) => x.id).sort(), agents.map((a) => a.hostId).sort());
  });

  it('answers ListHosts to an operator certificate over gRPC, whatever role metadata it sends', async () => {
    for (const md of [undefined, as('acme'), as('acme', { 'podium-role': 'customer' })]) {
      const res = await call<object, ListHostsResponse>(h.operator, 'listHosts', {}, md);
      assert.deepEqual(res.hosts.map((x) => x.id).sort(), agents.map((a) => a.hostId).sort());
    }
  });

  it('trusts podium-role only from a gateway certificate, and takes no role as a customer', async () => {
    const client = new PodApiClient(h.address, await h.clientCredentials('gateway', 'gw-direct'));
    try {
      const hosts = await call<object, ListHostsResponse>(client, 'listHosts', {}, as('default', { 'podium-role': 'admin' }));
      assert.equal(hosts.hosts.length, 2);
      for (const md of [as('acme'), as('acme', { 'podium-role': 'customer' })]) {
        await assert.rejects(call(client, 'listHosts', {}, md), (err: ServiceError) => err.code === status.PERMISSION_DENIED);
      }
      await assert.rejects(
        call(client, 'listHosts', {}, as('acme', { 'podium-role': 'root' })),
        (err: ServiceError) => err.code === status.UNAUTHENTICATED && /podium-role/.test(err.details),
      );
    } finally {
      client.close();
    }
  });

  it('still shows a customer the host of each of its own instances in GET …/services/{s}', async () => {
    let res = await gw.request(customer, '/v1/environments', { method: 'POST', body: JSON.stringify({ name: 'prod' }) });
    assert.equal(res.status, 200);
    res = await gw.request(customer, '/v1/environments/prod/services', {
      method: 'POST',
      body: JSON.stringify({ name: 'web', image: 'nginx', replicas: 2, ha: true, resources: { cpuMillis: 100, memoryMib: 64 } }),
    });
    assert.equal(res.status, 200);
    const svc = await poll('two instances running', async () => {
      const r = await gw.request(customer, '/v1/environments/prod/services/web');
      const body = await json(r);
      const running = body.instances.filter((i: { state: string }) => i.state === InstanceState[InstanceState.INSTANCE_STATE_RUNNING]);
      return running.length === 2 ? body : undefined;
    });
    assert.deepEqual(svc.instances.map((i: { host: string }) => i.host).sort(), agents.map((a) => a.hostId).sort());
  });
});
