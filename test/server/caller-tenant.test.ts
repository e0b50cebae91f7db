/**
 * The tenant a PodApi call acts for comes from `podium-tenant` metadata, which must be a tenant
 * name by the one rule (certs/tenant-name.ts) that the gateway's tokens are made with.
 */
import assert from 'node:assert/strict';
import { status, type ServiceError } from '@grpc/grpc-js';
import { PodApiClient, type ListEnvironmentsResponse } from '../../gen/podium/v1/pod_api';
import { TENANT_NAME_RULE } from '../../certs';
import { as, call, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';

describe('Pod API: the caller\'s tenant', function () {
  this.timeout(20_000);
  let h: PodApiHarness;
  let gateway: PodApiClient;

  before(async () => {
    h = await startPodApiHarness();
    gateway = new PodApiClient(h.address, await h.clientCredentials('gateway', 'gw'));
  });

  after(async () => {
    gateway?.close();
    await h?.close();
  });

  it('acts for the tenant a gateway names', async () => {
    await call(gateway, 'createEnvironment', { environment: { name: 'prod' } }, as('acme'));
    const res = await call<object, ListEnvironmentsResponse>(gateway, 'listEnvironments', {}, as('acme'));
    assert.deepEqual(res.environments.map((e) => [e.tenant, e.name]), [['acme', 'prod']]);
  });

  it('refuses a tenant outside the rule, naming the metadata and the rule but not the value', async () => {
    for (const tenant of ['Acme Corp', '1acme', 'acme-', 'a'.repeat(41)]) {
      await assert.rejects(call(gateway, 'listEnvironments', {}, as(tenant)), (err: ServiceError) => {
        assert.equal(err.code, status.UNAUTHENTICATED, tenant);
        assert.match(err.details, /podium-tenant/);
        assert.ok(err.details.includes(TENANT_NAME_RULE), err.details);
        assert.equal(err.details.includes(tenant), false);
        return true;
      });
    }
  });

  it('refuses a gateway call that names no tenant', async () => {
    await assert.rejects(call(gateway, 'listEnvironments', {}), (err: ServiceError) => err.code === status.UNAUTHENTICATED && /podium-tenant/.test(err.details));
  });
});
