/**
 * Per-tenant quotas, set by an operator with a server default: a create over quota is refused with
 * RESOURCE_EXHAUSTED naming the quota, and nothing is stored.
 */
import assert from 'node:assert/strict';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { PodApiClient } from '../../gen/podium/v1/pod_api';
import { Quota } from '../../gen/podium/v1/resources';
import { DETAILS_METADATA_KEY } from '../../server/errors';
import { as, call, PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';

const grpcError = (code: status, message?: RegExp) => (e: ServiceError) => e.code === code && (message === undefined || message.test(e.details));

describe('quotas', function () {
  this.timeout(30_000);
  let h: PodApiHarness;
  let d: PodApiDriver;

  beforeEach(async () => {
    h = await startPodApiHarness({ defaultQuota: { cpuMillis: 1000, memoryMib: 1024, instances: 5 } });
    d = new PodApiDriver(h);
    await d.createEnvironment('acme', 'prod');
  });

  afterEach(async () => {
    d.closeAgents();
    await h.close();
  });

  it('applies the default quota and refuses a create over it, naming the quota, storing nothing', async () => {
    await d.createService('acme', 'prod', { name: 'a', replicas: 4, resources: { cpuMillis: 100, memoryMib: 64 } });
    const err: ServiceError = await d.createService('acme', 'prod', { name: 'b', replicas: 2, resources: { cpuMillis: 100, memoryMib: 64 } }).then(
      () => assert.fail('created over quota'),
      (e: ServiceError) => e,
    );
    assert.equal(err.code, status.RESOURCE_EXHAUSTED);
    assert.match(err.details, /quota exceeded for tenant "acme": instances would be 6, over the quota of 5 \(4 in use\)/);
    const details = JSON.parse(String(err.metadata.get(DETAILS_METADATA_KEY)[0]));
    assert.deepEqual(details, [
      {
        '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
        violations: [{ subject: 'tenant:acme/instances', description: 'instances would be 6, over the quota of 5 (4 in use)' }],
      },
    ]);
    await assert.rejects(d.getService('acme', 'prod', 'b'), grpcError(status.NOT_FOUND));
    assert.equal((await h.server.storage.read((r) => r.instances.listOfService('acme', 'prod', 'b'))).length, 0);
  });

  it('gives a deleted service\'s share back, and counts creates that arrive together', async () => {
    await d.createService('acme', 'prod', { name: 'a', replicas: 4, resources: { cpuMillis: 100, memoryMib: 64 } });
    await assert.rejects(d.createService('acme', 'prod', { name: 'b', replicas: 2, resources: { cpuMillis: 100, memoryMib: 64 } }), grpcError(status.RESOURCE_EXHAUSTED));
    await d.deleteService('acme', 'prod', 'a');
    // Five creates at once: they share commits, and exactly the five instances of the quota fit.
    const results = await Promise.allSettled(
      ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'].map((name) => d.createService('acme', 'prod', { name, replicas: 1, resources: { cpuMillis: 100, memoryMib: 64 } })),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5);
    assert.equal(results.filter((r) => r.status === 'rejected' && (r.reason as ServiceError).code === status.RESOURCE_EXHAUSTED).length, 2);
    const q = await call<object, Quota>(h.operator, 'getQuota', { tenant: 'acme' });
    assert.deepEqual(q.used, { cpuMillis: 500, memoryMib: 320, instances: 5 });
  });

  it('names every dimension a create would exceed', async () => {
    await assert.rejects(
      d.createService('acme', 'prod', { name: 'fat', replicas: 2, resources: { cpuMillis: 600, memoryMib: 600 } }),
      grpcError(status.RESOURCE_EXHAUSTED, /cpuMillis would be 1200 mCPU, over the quota of 1000 mCPU .*; memoryMib would be 1200 MiB, over the quota of 1024 MiB/),
    );
  });

  it('lets an operator set a quota, which then applies, and shows what is used', async () => {
    const set = await d.setQuota('acme', { cpuMillis: 10_000, memoryMib: 10_000, instances: 50 });
    assert.equal(set.isDefault, false);
    await d.createService('acme', 'prod', { name: 'many', replicas: 20, resources: { cpuMillis: 100, memoryMib: 64 } });
    const q = await call<object, Quota>(h.operator, 'getQuota', { tenant: 'acme' });
    assert.deepEqual(q.used, { cpuMillis: 2000, memoryMib: 1280, instances: 20 });
    assert.equal(q.instances, 50);
    const other = await call<object, Quota>(h.operator, 'getQuota', { tenant: 'globex' });
    assert.equal(other.isDefault, true);
    assert.equal(other.instances, 5);
  });

  it('refuses a quota from a gateway, another tenant\'s quota to a customer, and a bad quota naming the field', async () => {
    const gw = new PodApiClient(h.address, await h.clientCredentials('gateway', 'gw'));
    try {
      await assert.rejects(call(gw, 'setQuota', { tenant: 'acme', quota: Quota.fromPartial({ instances: 1000 }) }, as('acme')), grpcError(status.PERMISSION_DENIED));
      const own = await call<object, Quota>(gw, 'getQuota', { tenant: 'acme' }, as('acme'));
      assert.equal(own.tenant, 'acme');
      await assert.rejects(call(gw, 'getQuota', { tenant: 'globex' }, as('acme')), grpcError(status.NOT_FOUND));
    } finally {
      gw.close();
    }
    await assert.rejects(
      call(h.operator, 'setQuota', { tenant: 'acme', quota: Quota.fromPartial({ cpuMillis: -1, memoryMib: 10, instances: 1 }) }, new Metadata()),
      grpcError(status.INVALID_ARGUMENT, /quota\.cpuMillis: must be a whole number/),
    );
    await assert.rejects(call(h.operator, 'setQuota', { tenant: 'Acme Corp', quota: Quota.fromPartial({ instances: 1 }) }), grpcError(status.INVALID_ARGUMENT, /tenant/));
  });
});
