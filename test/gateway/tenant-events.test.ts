/**
 * WatchEvents shows a tenant its own events only, through every door: the gateway's NDJSON
 * stream, a gateway certificate over gRPC, and an operator who names the tenant. Two tenants
 * (acme and globex) each create environments and services that two scripted agents run, so
 * there are tenant events, instance events and host events (tenant '') to leak; an operator who
 * names no tenant sees them all, which shows that the other streams had something to leave out.
 *
 * Every stream is opened after the first events were stored (so the replay is tested) and
 * before the last ones (so the live path is tested); each is read until the last acme event.
 */
import { strict as assert } from 'node:assert';
import { Metadata, type ClientReadableStream } from '@grpc/grpc-js';
import { PodApiClient } from '../../gen/podium/v1/pod_api';
import { InstanceState, type Event } from '../../gen/podium/v1/resources';
import { readNdjsonResults, startGatewayHarness, type GatewayHarness } from '../support/gateway-harness';
import { as, call, PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import type { ScriptedAgent } from '../support/scripted-agent';

/** The fields of an event the gateway sends as JSON (a subset is enough here). */
interface EventJson {
  sequence: string;
  type: string;
  environment: string;
  service: string;
  host: string;
}

const ACME_ENVS = ['a-prod', 'a-dev', 'a-live'];
const GLOBEX_ENVS = ['b-prod', 'b-live'];
const LAST = 'a-live';

/** A gRPC WatchEvents call whose events are collected as they come. */
function watch(client: PodApiClient, metadata: Metadata): { events: Event[]; call: ClientReadableStream<Event> } {
  const events: Event[] = [];
  const stream = client.watchEvents({ environment: '', afterSequence: 0 }, metadata);
  stream.on('data', (e: Event) => events.push(e));
  stream.on('error', () => undefined); // cancelled at the end
  return { events, call: stream };
}

const reachedLast = (events: ReadonlyArray<{ type: string; environment: string }>): boolean =>
  events.some((e) => e.type === 'environment.created' && e.environment === LAST);

function assertOnlyAcme(events: ReadonlyArray<{ type: string; environment: string; host: string }>, door: string): void {
  assert.ok(events.length > 0, door);
  for (const e of events) {
    assert.ok(ACME_ENVS.includes(e.environment), `${door}: ${e.type} of environment "${e.environment}" (host "${e.host}") is not acme's`);
  }
  // Its own events are all there: environments, services, and the instances the agents run.
  for (const env of ACME_ENVS) assert.ok(events.some((e) => e.type === 'environment.created' && e.environment === env), `${door}: ${env}`);
  assert.ok(events.some((e) => e.type === 'service.created' && e.environment === 'a-prod'), `${door}: service.created`);
  assert.ok(events.some((e) => e.type.startsWith('instance.') && e.environment === 'a-prod' && e.host !== ''), `${door}: instance events`);
}

describe('gateway: WatchEvents shows a tenant only its own events', function () {
  this.timeout(30_000);
  let h: PodApiHarness;
  let gw: GatewayHarness;
  let gatewayClient: PodApiClient;
  const agents: ScriptedAgent[] = [];

  before(async () => {
    h = await startPodApiHarness();
    agents.push(...(await new PodApiDriver(h).fleet(2)));
    gw = await startGatewayHarness(h);
    gatewayClient = new PodApiClient(h.address, await h.clientCredentials('gateway', 'gw-direct'));
  });

  after(async () => {
    for (const a of agents.splice(0)) a.close();
    gatewayClient?.close();
    await gw?.close();
    await h?.close();
  });

  it('keeps globex\'s events and the fleet\'s out of acme\'s stream, replayed and live, through every door', async () => {
    const acme = await gw.gateway.tokens.create('acme', 'acme-ci');
    const acmeAdmin = await gw.gateway.tokens.create('acme', 'acme-ops', 'admin');
    const globex = await gw.gateway.tokens.create('globex', 'globex-ci');
    const post = async (token: string, path: string, body: unknown): Promise<void> => {
      const res = await gw.request(token, path, { method: 'POST', body: JSON.stringify(body) });
      assert.equal(res.status, 200, `${path}: ${await res.text()}`);
    };
    const web = { image: 'nginx', replicas: 2, ha: true, resources: { cpuMillis: 100, memoryMib: 64 } };

    // Stored before any stream opens: replayed.
    await post(acme, '/v1/environments', { name: 'a-prod' });
    await post(acme, '/v1/environments', { name: 'a-dev' });
    await post(globex, '/v1/environments', { name: 'b-prod' });
    await post(acme, '/v1/environments/a-prod/services', { name: 'a-web', ...web });
    await post(globex, '/v1/environments/b-prod/services', { name: 'b-web', ...web });
    for (const [token, env, svc] of [[acme, 'a-prod', 'a-web'], [globex, 'b-prod', 'b-web']] as const) {
      await poll(`${svc} running`, async () => {
        const s = (await (await gw.request(token, `/v1/environments/${env}/services/${svc}`)).json()) as { instances: Array<{ state: string }> };
        return s.instances.filter((i) => i.state === InstanceState[InstanceState.INSTANCE_STATE_RUNNING]).length === 2;
      });
    }

    const overGateway = (token: string) => gw.request(token, '/v1/events');
    const customerHttp = await overGateway(acme);
    const adminHttp = await overGateway(acmeAdmin);
    assert.equal(customerHttp.status, 200);
    assert.equal(adminHttp.status, 200);
    const direct = watch(gatewayClient, as('acme'));
    const directAdmin = watch(gatewayClient, as('acme', { 'podium-role': 'admin' }));
    const operatorNamed = watch(h.operator, as('acme'));
    const operatorAll = watch(h.operator, new Metadata());

    // Stored while the streams are open: live. globex's goes first, so a leak would come before acme's last.
    try {
      await post(globex, '/v1/environments', { name: 'b-live' });
      await post(acme, '/v1/environments', { name: LAST });

      const fromHttp = await readNdjsonResults<EventJson>(customerHttp, reachedLast);
      const fromHttpAdmin = await readNdjsonResults<EventJson>(adminHttp, reachedLast);
      for (const s of [direct, directAdmin, operatorNamed, operatorAll]) await poll('the last acme event', () => reachedLast(s.events), 10_000, 20);

      assertOnlyAcme(fromHttp, 'customer token, NDJSON');
      assertOnlyAcme(fromHttpAdmin, 'admin token, NDJSON (no host events either)');
      assertOnlyAcme(direct.events, 'gateway certificate, gRPC');
      assertOnlyAcme(directAdmin.events, 'gateway certificate as admin, gRPC');
      assertOnlyAcme(operatorNamed.events, 'operator naming acme');
      // The same events, whichever door: sequence numbers match.
      assert.deepEqual(fromHttp.map((e) => Number(e.sequence)), direct.events.map((e) => e.sequence));

      // Control: the events left out exist. An operator naming no tenant sees them.
      const all = operatorAll.events;
      for (const env of GLOBEX_ENVS) assert.ok(all.some((e) => e.type === 'environment.created' && e.environment === env), env);
      assert.ok(all.some((e) => e.type.startsWith('instance.') && e.environment === 'b-prod'));
      assert.ok(all.some((e) => e.environment === '' && e.host !== ''), 'host events');
    } finally {
      for (const s of [direct, directAdmin, operatorNamed, operatorAll]) s.call.cancel();
    }
  });
});
