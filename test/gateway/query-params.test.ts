import { strict as assert } from 'node:assert';
import { protoMetadata } from '../../gen/podium/v1/pod_api';
import { applyQueryParams } from '../../gateway/query-params';
import { SchemaRegistry } from '../../gateway/schema-registry';

describe('gateway query parameters', () => {
  const registry = SchemaRegistry.fromMetadata(protoMetadata);
  const apply = (query: string, bound: string[] = []) => {
    const json: Record<string, unknown> = {};
    const violations = applyQueryParams(registry, 'podium.v1.CreateServiceRequest', json, new URLSearchParams(query), bound);
    return { json, violations };
  };

  it('maps dotted names into nested messages, repeated fields by repetition, proto or JSON names', () => {
    assert.deepEqual(apply('service.command=a&service.command=b&service.resources.cpu_millis=5&service.ha=true'), {
      json: { service: { command: ['a', 'b'], resources: { cpuMillis: '5' }, ha: true } },
      violations: [],
    });
  });

  it('ignores unknown names and fields bound by the path or the body', () => {
    assert.deepEqual(apply('nope=1&environment=x&service.name=y', ['environment', 'service']), { json: {}, violations: [] });
  });

  it('refuses a message-typed field and a singular field given twice', () => {
    const { violations } = apply('service.resources=1&environment=a&environment=b');
    assert.deepEqual(violations, [
      { field: 'service.resources', description: 'cannot be set from a query parameter' },
      { field: 'environment', description: 'is not repeated and may be given once' },
    ]);
  });
});
