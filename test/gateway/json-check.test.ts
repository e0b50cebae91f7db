import { strict as assert } from 'node:assert';
import { protoMetadata } from '../../gen/podium/v1/pod_api';
import { checkJson } from '../../gateway/json-check';
import { SchemaRegistry } from '../../gateway/schema-registry';

describe('gateway json-check', () => {
  const registry = SchemaRegistry.fromMetadata(protoMetadata);
  const check = (typeName: string, value: unknown) => checkJson(registry, typeName, value);

  it('accepts what proto3 JSON accepts', () => {
    assert.deepEqual(
      check('podium.v1.Service', {
        name: 'web',
        replicas: '3',
        ha: null,
        resources: { cpu_millis: 250, memoryMib: '256' },
        command: [],
        instances: [{ state: 'INSTANCE_STATE_RUNNING' }, { state: 3 }],
        create_time: '2024-05-01T12:00:00.5+02:00',
      }),
      [],
    );
    assert.deepEqual(check('podium.v1.Event', { sequence: '9007199254740991' }), []);
    assert.deepEqual(check('podium.v1.Host', { labels: { zone: 'a' }, apparmor: 'APP_ARMOR_MODE_ENFORCED' }), []);
  });

  it('names each field whose value fromJSON would silently coerce', () => {
    assert.deepEqual(
      check('podium.v1.Service', {
        replicas: 'three',
        ha: 'true',
        name: 7,
        resources: { cpuMillis: 1.5, memoryMib: 2 ** 31 },
        command: 'nginx',
        createTime: 'yesterday',
      }),
      [
        { field: 'replicas', description: 'must be a 32-bit integer, not a string' },
        { field: 'ha', description: 'must be true or false, not a string' },
        { field: 'name', description: 'must be a string, not a number' },
        { field: 'resources.cpuMillis', description: 'must be a 32-bit integer, not a fraction' },
        { field: 'resources.memoryMib', description: 'must be a 32-bit integer between -2147483648 and 2147483647' },
        { field: 'command', description: 'must be a JSON array, not a string' },
        { field: 'createTime', description: 'must be an RFC 3339 timestamp such as "2024-05-01T12:00:00Z"' },
      ],
    );
  });

  it('refuses unknown fields, a field given twice, unknown enum values and unsafe 64-bit integers', () => {
    assert.deepEqual(check('podium.v1.Resources', { cpu: 1 }), [{ field: 'cpu', description: 'is not a known field' }]);
    assert.equal(check('podium.v1.Resources', { cpuMillis: 1, cpu_millis: 2 })[0].field, 'cpu_millis');
    assert.equal(check('podium.v1.Instance', { state: 'RUNNING' })[0].field, 'state');
    assert.equal(check('podium.v1.Instance', { state: 42 })[0].field, 'state');
    assert.equal(check('podium.v1.Event', { sequence: '9007199254740993' })[0].field, 'sequence');
    assert.equal(check('podium.v1.Host', { labels: { zone: 1 } })[0].field, 'labels.zone');
    assert.equal(check('podium.v1.Service', [])[0].field, '(body)');
  });

  it('never quotes the offending value', () => {
    const violations = check('podium.v1.Service', { replicas: 'hunter2-secret', image: { password: 'hunter2-secret' } });
    assert.equal(JSON.stringify(violations).includes('hunter2'), false);
  });
});
