/**
 * Duplicate JSON keys are refused (JSON.parse would keep the last one silently): first the
 * finder on its own, then the real gateway in front of the real Pod API, where a refused body
 * must create nothing.
 */
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import type { ListEnvironmentsResponse, ListServicesResponse } from '../../gen/podium/v1/pod_api';
import { duplicateKeyViolations } from '../../gateway/duplicate-keys';
import { BAD_REQUEST_TYPE, GatewayError } from '../../gateway/gateway-error';
import { startGatewayHarness, type GatewayHarness } from '../support/gateway-harness';
import { as, call, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';

const TWICE = 'is given more than once';

describe('gateway: duplicate JSON keys', () => {
  describe('duplicateKeyViolations', () => {
    const fields = (text: string, prefix = ''): string[] => duplicateKeyViolations(text, prefix).map((v) => v.field);

    it('names a key given twice at the top level, under the prefix the body is bound to', () => {
      assert.deepEqual(duplicateKeyViolations('{"name": "a", "name": "b"}', 'service'), [{ field: 'service.name', description: TWICE }]);
      assert.deepEqual(fields('{"name": "a", "name": "b"}'), ['name']);
    });

    it('names nested keys by their JSON path, through objects and arrays', () => {
      assert.deepEqual(fields('{"resources": {"cpuMillis": 1, "memoryMib": 6, "cpuMillis": 2}}', 'service'), ['service.resources.cpuMillis']);
      assert.deepEqual(fields('{"items": [{"a": 1}, {"b": [{"c": 1, "c": 2}]}]}'), ['items[1].b[0].c']);
      assert.deepEqual(fields('[{"a": 1, "a": 2}]', 'command'), ['command[0].a']);
    });

    it('reports every duplicated key once, however often it is repeated', () => {
      assert.deepEqual(fields('{"a": 1, "a": 2, "a": 3, "b": {"x": 1, "x": 2}, "b": 4}'), ['a', 'b.x', 'b']);
    });

    it('compares keys as JSON.parse does, after unescaping', () => {
      assert.deepEqual(fields('{"a": 1, "\\u0061": 2}'), ['a']);
      assert.deepEqual(fields('{"__proto__": 1, "__proto__": 2}'), ['__proto__']);
    });

    it('keeps objects apart: siblings and nested objects may reuse a key', () => {
      assert.deepEqual(fields('[{"a": 1}, {"a": 2}]'), []);
      assert.deepEqual(fields('{"a": {"a": {"a": 1}}, "b": {"a": 2}}'), []);
      assert.deepEqual(fields('{"replicas": 3, "resources": {"cpuMillis": 1}}'), []);
    });

    it('never quotes a value', () => {
      const violations = duplicateKeyViolations('{"password": "hunter2", "password": "hunter3"}', '');
      assert.equal(violations.length, 1);
      assert.equal(JSON.stringify(violations).includes('hunter'), false);
    });

    it('refuses nesting deeper than any request needs with INVALID_ARGUMENT, not a stack overflow', () => {
      const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
      JSON.parse(deep); // valid JSON: only the depth is wrong
      assert.throws(
        () => duplicateKeyViolations(deep, ''),
        (err: unknown) => err instanceof GatewayError && err.code === status.INVALID_ARGUMENT && /nested more than \d+ levels/.test(err.message),
      );
      const fine = `${'{"a":'.repeat(60)}1${'}'.repeat(60)}`;
      assert.deepEqual(duplicateKeyViolations(fine, ''), []);
    });

    it('stops counting at a bound', () => {
      const text = `{${Array.from({ length: 100 }, (_, i) => `"k${i}": 1, "k${i}": 2`).join(', ')}}`;
      assert.equal(duplicateKeyViolations(text, '').length, 20);
    });
  });

  describe('through the gateway to the real Pod API', function () {
    this.timeout(20_000);
    let h: PodApiHarness;
    let gw: GatewayHarness;
    let token: string;

    before(async () => {
      h = await startPodApiHarness();
      gw = await startGatewayHarness(h);
      token = await gw.gateway.tokens.create('acme', 'ci');
      await call(h.operator, 'createEnvironment', { environment: { name: 'base' } }, as('acme'));
    });

    after(async () => {
      await gw?.close();
      await h?.close();
    });

    async function refused(res: Response, field: string): Promise<void> {
      assert.equal(res.status, 400);
      const body = (await res.json()) as { code: number; message: string; details: Array<{ '@type': string; fieldViolations: unknown[] }> };
      assert.equal(body.code, status.INVALID_ARGUMENT);
      assert.equal(body.message, `invalid request: ${field} ${TWICE}`);
      assert.deepEqual(body.details, [{ '@type': BAD_REQUEST_TYPE, fieldViolations: [{ field, description: TWICE }] }]);
    }

    it('refuses a top-level duplicate with 400 naming the key, and creates nothing', async () => {
      const res = await gw.request(token, '/v1/environments', { method: 'POST', body: '{"name": "prod", "name": "staging"}' });
      await refused(res, 'environment.name');
      const envs = await call<object, ListEnvironmentsResponse>(h.operator, 'listEnvironments', {}, as('acme'));
      assert.deepEqual(envs.environments.map((e) => e.name), ['base']);
    });

    it('refuses a duplicate inside the service, at any depth, and creates no service', async () => {
      const service = (inner: string) =>
        `{"name": "web", "image": "nginx", "replicas": 1, ${inner}, "resources": {"cpuMillis": 100, "memoryMib": 64}}`;
      let res = await gw.request(token, '/v1/environments/base/services', { method: 'POST', body: service('"replicas": 30') });
      await refused(res, 'service.replicas');
      res = await gw.request(token, '/v1/environments/base/services', {
        method: 'POST',
        body: '{"name": "web", "image": "nginx", "replicas": 1, "resources": {"cpuMillis": 100, "memoryMib": 64, "cpuMillis": 99999}}',
      });
      await refused(res, 'service.resources.cpuMillis');
      const services = await call<object, ListServicesResponse>(h.operator, 'listServices', { environment: 'base' }, as('acme'));
      assert.deepEqual(services.services, []);
    });

    it('answers a body nested too deeply for the finder with 400, not 500', async () => {
      const res = await gw.request(token, '/v1/environments', { method: 'POST', body: `${'['.repeat(100_000)}${']'.repeat(100_000)}` });
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { message: string }).message, /nested more than \d+ levels deep/);
    });

    it('still accepts the same body without the duplicate (control)', async () => {
      const res = await gw.request(token, '/v1/environments/base/services', {
        method: 'POST',
        body: '{"name": "api", "image": "nginx", "replicas": 1, "resources": {"cpuMillis": 100, "memoryMib": 64}}',
      });
      assert.equal(res.status, 200, await res.clone().text());
    });
  });
});
