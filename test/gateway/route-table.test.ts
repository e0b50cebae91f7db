import { strict as assert } from 'node:assert';
import { protoMetadata } from '../../gen/podium/v1/pod_api';
import { RouteTable } from '../../gateway/route-table';
import { SchemaRegistry } from '../../gateway/schema-registry';

describe('gateway route table', () => {
  const registry = SchemaRegistry.fromMetadata(protoMetadata);
  const table = RouteTable.fromService(registry, 'podium.v1.PodApi');

  it('derives one route per annotated method: all 11 PodApi methods', () => {
    const routes = table.routes.map((r) => `${r.methodName} ${r.httpMethod} ${r.template.text} body=${r.body}`).sort();
    assert.deepEqual(routes, [
      'CreateEnvironment POST /v1/environments body=environment',
      'CreateService POST /v1/environments/{environment}/services body=service',
      'DeleteService DELETE /v1/environments/{environment}/services/{service} body=',
      'GetQuota GET /v1/tenants/{tenant}/quota body=',
      'GetService GET /v1/environments/{environment}/services/{service} body=',
      'ListEnvironments GET /v1/environments body=',
      'ListHosts GET /v1/hosts body=',
      'ListServices GET /v1/environments/{environment}/services body=',
      'RevokeHost POST /v1/hosts/{host}:revoke body=*',
      'SetQuota PUT /v1/tenants/{tenant}/quota body=quota',
      'WatchEvents GET /v1/events body=',
    ]);
    const service = registry.service('podium.v1.PodApi');
    assert.equal(service.methods.length, 11);
    for (const method of service.methods) assert.ok(table.routes.some((r) => r.methodName === method.name), method.name);
  });

  it('knows the types, the gRPC path and which method streams', () => {
    const create = table.routes.find((r) => r.methodName === 'CreateService')!;
    assert.equal(create.grpcPath, '/podium.v1.PodApi/CreateService');
    assert.equal(create.inputType, 'podium.v1.CreateServiceRequest');
    assert.equal(create.outputType, 'podium.v1.Service');
    assert.equal(create.serverStreaming, false);
    assert.equal(table.routes.find((r) => r.methodName === 'WatchEvents')!.serverStreaming, true);
  });

  it('matches a request to its route, or says which methods the path allows', () => {
    const found = table.match('DELETE', '/v1/environments/prod/services/web');
    assert.equal(found.kind, 'found');
    assert.equal(found.kind === 'found' && found.route.methodName, 'DeleteService');
    assert.deepEqual(table.match('PATCH', '/v1/environments/prod/services/web'), {
      kind: 'method-not-allowed',
      allow: ['DELETE', 'GET'],
      template: '/v1/environments/{environment}/services/{service}',
    });
    assert.deepEqual(table.match('GET', '/v1/environments/prod'), { kind: 'not-found' });
  });
});
