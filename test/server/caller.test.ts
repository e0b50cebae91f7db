/**
 * The tenant a PodApi call acts for comes from `podium-tenant` metadata, which must be a tenant
 * name by the one rule (certs/tenant-name.ts) that the gateway's tokens are made with; its role
 * beyond the tenant from `podium-role`, trusted only from a gateway certificate.
 */
import assert from 'node:assert/strict';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { PodApiClient, type ListEnvironmentsResponse } from '../../gen/podium/v1/pod_api';
import { TENANT_NAME_RULE, type Identity, type Role } from '../../certs';
import { callerRole, type ServerSurfaceCall } from '../../server/auth';
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

describe('Pod API: the caller\'s role (callerRole, one module)', () => {
  const callWith = (md: Record<string, string>) => {
    const metadata = new Metadata();
    for (const [k, v] of Object.entries(md)) metadata.set(k, v);
    return { metadata, getAuthContext: () => ({}) } as unknown as ServerSurfaceCall;
  };
  const identity = (role: Role): Identity => ({ role, name: 'x', spiffeId: `spiffe://podium.local/${role}/x` });

  it('reads podium-role from a gateway only; an operator is an operator, anyone else a customer', () => {
    assert.equal(callerRole(callWith({ 'podium-role': 'admin' }), identity('gateway')), 'admin');
    assert.equal(callerRole(callWith({ 'podium-role': 'customer' }), identity('gateway')), 'customer');
    assert.equal(callerRole(callWith({}), identity('gateway')), 'customer');
    assert.equal(callerRole(callWith({ 'podium-role': 'customer' }), identity('operator')), 'operator');
    assert.equal(callerRole(callWith({ 'podium-role': 'admin' }), identity('agent')), 'customer');
    assert.throws(() => callerRole(callWith({ 'podium-role': 'Admin' }), identity('gateway')), /podium-role metadata must be/);
  });
});
