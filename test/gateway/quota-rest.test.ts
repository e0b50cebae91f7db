/**
 * Quotas as a customer meets them through the REST API: the real gateway in front of the real Pod
 * API. A create over quota is 429 with the google.rpc.QuotaFailure in `details`; a customer reads
 * its own quota and usage, another tenant's is 404, and setting one is for operators (403).
 */
import { strict as assert } from 'node:assert';
import { startGatewayHarness, type GatewayHarness } from '../support/gateway-harness';
import { startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = (res: Response): Promise<any> => res.json();
const post = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('gateway: quotas over REST', function () {
  this.timeout(30_000);
  let h: PodApiHarness;
  let gw: GatewayHarness;
  let token: string;

  before(async () => {
    h = await startPodApiHarness({ defaultQuota: { cpuMillis: 1000, memoryMib: 1024, instances: 3 } });
    gw = await startGatewayHarness(h);
    token = await gw.gateway.tokens.create('acme', 'acme-ci');
    assert.equal((await gw.request(token, '/v1/environments', post({ name: 'prod' }))).status, 200);
  });

  after(async () => {
    await gw.close();
    await h.close();
  });

  it('answers a create over quota with 429 naming the quota, and creates nothing', async () => {
    const body = { name: 'web', image: 'img', replicas: 4, resources: { cpuMillis: 10, memoryMib: 16 } };
    const res = await gw.request(token, '/v1/environments/prod/services', post(body));
    assert.equal(res.status, 429);
    const err = await json(res);
    assert.equal(err.code, 8);
    assert.match(err.message, /quota exceeded for tenant "acme": instances would be 4, over the quota of 3/);
    assert.deepEqual(err.details, [
      { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ subject: 'tenant:acme/instances', description: 'instances would be 4, over the quota of 3 (0 in use)' }] },
    ]);
    assert.equal((await gw.request(token, '/v1/environments/prod/services/web')).status, 404);
  });

  it("shows a customer its own quota and usage, hides another tenant's, and leaves setting to operators", async () => {
    const ok = { name: 'api', image: 'img', replicas: 2, resources: { cpuMillis: 100, memoryMib: 64 } };
    assert.equal((await gw.request(token, '/v1/environments/prod/services', post(ok))).status, 200);
    const quota = await json(await gw.request(token, '/v1/tenants/acme/quota'));
    assert.deepEqual(quota, { tenant: 'acme', cpuMillis: 1000, memoryMib: 1024, instances: 3, used: { cpuMillis: 200, memoryMib: 128, instances: 2 }, isDefault: true });
    assert.equal((await gw.request(token, '/v1/tenants/globex/quota')).status, 404);
    const put = await gw.request(token, '/v1/tenants/acme/quota', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ instances: 100, cpuMillis: 1, memoryMib: 1 }) });
    assert.equal(put.status, 403);
  });
});
