/**
 * The gateway end to end over loopback: HTTP in, real gRPC with real mutual TLS out, against an
 * in-test Pod API that records what reaches it.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import pino from 'pino';
import { startGateway, type Gateway } from '../../gateway';
import { CannedStatus, FakePodApi, event } from './fake-pod-api';
import { createTestPki, type TestPki } from './test-pki';

/** The service of the deploy issue: three HA replicas of nginx, a quarter core and 256 MiB each. */
const DEPLOY_BODY = {
  name: 'web',
  image: 'nginx:1.27-alpine',
  command: ['nginx', '-g', 'daemon off;'],
  replicas: 3,
  ha: true,
  resources: { cpuMillis: 250, memoryMib: 256 },
};

/** A response's JSON body, untyped: the assertions say what it must be. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = (res: Response): Promise<any> => res.json();

/** Polls until `check` holds (instead of sleeping a guessed time), or fails after `ms`. */
async function eventually(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('gateway', function () {
  let pki: TestPki;
  let fake: FakePodApi;
  let podApiAddress: string;
  let gateway: Gateway;
  let dir: string;
  let token: string;
  const logLines: string[] = [];

  const api = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(gateway.url + path, {
      ...init,
      headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) },
    });

  before(async function () {
    pki = await createTestPki();
    fake = new FakePodApi();
    podApiAddress = await fake.start(pki);
    dir = mkdtempSync(join(tmpdir(), 'podium-gateway-test-'));
    gateway = await startGateway({
      host: '127.0.0.1',
      port: 0,
      podApiAddress,
      tls: { caPem: pki.caPem, certPem: pki.gateway.certPem, keyPem: pki.gateway.keyPem },
      tokenDbPath: join(dir, 'tokens.db'),
      logger: pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) }),
    });
    token = await gateway.tokens.create('acme', 'ci');
  });

  after(async function () {
    await gateway?.close();
    fake?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => fake.reset());

  it('listens on an ephemeral port and answers /healthz without a token', async () => {
    assert.ok(gateway.port > 0);
    const res = await fetch(`${gateway.url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await json(res), { status: 'ok' });
  });

  describe('deploy: POST /v1/environments/{environment}/services', () => {
    it('reaches CreateService with the environment from the path, the service from the body and the tenant from the token', async () => {
      const res = await api('/v1/environments/prod/services', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(DEPLOY_BODY),
      });
      assert.equal(res.status, 200);
      const calls = fake.callsOf('createService');
      assert.equal(calls.length, 1);
      assert.equal(calls[0].tenant, 'acme');
      assert.equal(calls[0].request.environment, 'prod');
      assert.deepEqual(calls[0].request.service, {
        ...DEPLOY_BODY,
        environment: '',
        instances: [],
        pendingReason: '',
        placement: 0,
        ports: [],
        capabilities: [],
        allow: [],
        // Not given: the Pod API makes it true (an optional field, so "absent" reaches it as such).
        readOnlyRoot: undefined,
        writablePaths: [],
        // Not published.
        expose: undefined,
        createTime: undefined,
      });
      // proto3 JSON out: camelCase, enums by name, timestamps RFC 3339, defaults emitted.
      assert.deepEqual(await json(res), {
        ...DEPLOY_BODY,
        environment: 'prod',
        instances: [{ id: 'i-1', host: '', state: 'INSTANCE_STATE_PENDING', containerId: '', message: '' }],
        pendingReason: 'waiting for the next round',
        placement: 'PLACEMENT_POLICY_UNSPECIFIED',
        ports: [],
        capabilities: [],
        allow: [],
        writablePaths: [],
        createTime: '2024-05-01T12:00:00.000Z',
      });
    });

    it('accepts proto field names and numbers as strings, as proto3 JSON does', async () => {
      const res = await api('/v1/environments/prod/services', {
        method: 'POST',
        body: JSON.stringify({ name: 'db', replicas: '2', resources: { cpu_millis: 500, memory_mib: '1024' } }),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(fake.callsOf('createService')[0].request.service.resources, { cpuMillis: 500, memoryMib: 1024 });
      assert.equal(fake.callsOf('createService')[0].request.service.replicas, 2);
    });

    it('refuses a malformed JSON body with 400 and does not call the Pod API', async () => {
      const res = await api('/v1/environments/prod/services', { method: 'POST', body: '{"name": "web",' });
      assert.equal(res.status, 400);
      const body = await json(res);
      assert.equal(body.code, status.INVALID_ARGUMENT);
      assert.match(body.message, /^request body is not valid JSON: /);
      assert.deepEqual(body.details, []);
      assert.equal(fake.calls.length, 0);
    });

    it('refuses a body that is not an object', async () => {
      for (const text of ['[1, 2]', '"web"', '42']) {
        const res = await api('/v1/environments/prod/services', { method: 'POST', body: text });
        assert.equal(res.status, 400, text);
        assert.match((await json(res)).message, /must be a JSON object/);
      }
      assert.equal(fake.calls.length, 0);
    });

    it('refuses a field of the wrong type with 400 naming it, where fromJSON would have coerced it', async () => {
      const res = await api('/v1/environments/prod/services', {
        method: 'POST',
        body: JSON.stringify({ ...DEPLOY_BODY, replicas: 'three' }),
      });
      assert.equal(res.status, 400);
      const body = await json(res);
      assert.equal(body.code, status.INVALID_ARGUMENT);
      assert.match(body.message, /replicas/);
      assert.deepEqual(body.details, [
        {
          '@type': 'type.googleapis.com/google.rpc.BadRequest',
          fieldViolations: [{ field: 'service.replicas', description: 'must be a 32-bit integer, not a string' }],
        },
      ]);
      assert.equal(fake.calls.length, 0);
    });

    it('refuses unknown fields, nested wrong types and bad enum names, listing each', async () => {
      const res = await api('/v1/environments/prod/services', {
        method: 'POST',
        body: JSON.stringify({
          name: 'web',
          ha: 'yes',
          resources: { cpu_milis: 250 },
          command: ['a', 1],
          instances: [{ state: 'INSTANCE_STATE_SLEEPING' }],
        }),
      });
      assert.equal(res.status, 400);
      const body = await json(res);
      const fields = body.details[0].fieldViolations.map((v: { field: string }) => v.field);
      assert.deepEqual(fields, ['service.ha', 'service.resources.cpu_milis', 'service.command[1]', 'service.instances[0].state']);
      assert.equal(fake.calls.length, 0);
    });

    it('refuses a body over 1 MiB with 413 before reading it', async () => {
      const statusCode = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${gateway.url}/v1/environments/prod/services`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-length': String(2 * 1024 * 1024) },
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
          req.destroy();
        });
        req.on('error', reject);
        req.flushHeaders();
      });
      assert.equal(statusCode, 413);
      assert.equal(fake.calls.length, 0);
    });
  });

  describe('routing and query parameters', () => {
    it('maps path variables of GET and DELETE onto the request', async () => {
      const get = await api('/v1/environments/prod/services/web');
      assert.equal(get.status, 200);
      assert.deepEqual(fake.callsOf('getService')[0].request, { environment: 'prod', service: 'web' });
      const del = await api('/v1/environments/prod/services/my%20svc', { method: 'DELETE' });
      assert.equal(del.status, 200);
      assert.deepEqual(await del.json(), {});
      assert.deepEqual(fake.callsOf('deleteService')[0].request, { environment: 'prod', service: 'my svc' });
    });

    it('maps query parameters, by JSON or proto name, onto the request', async () => {
      for (const query of ['environment=prod&after_sequence=7', 'environment=prod&afterSequence=7']) {
        fake.reset();
        const res = await api(`/v1/events?${query}`);
        assert.equal(res.status, 200);
        await res.text();
        assert.deepEqual(fake.callsOf('watchEvents')[0].request, { environment: 'prod', afterSequence: 7 });
        assert.equal(fake.callsOf('watchEvents')[0].tenant, 'acme');
      }
    });

    it('refuses a query parameter of the wrong type, and ignores unknown ones', async () => {
      const bad = await api('/v1/events?after_sequence=seven');
      assert.equal(bad.status, 400);
      assert.match((await json(bad)).message, /afterSequence/);
      const ok = await api('/v1/hosts?_=123');
      assert.equal(ok.status, 200);
      assert.equal(fake.callsOf('watchEvents').length, 0);
    });

    it('answers every derived route with proto3 JSON', async () => {
      const hosts = await json(await api('/v1/hosts'));
      assert.deepEqual(hosts.hosts[0], {
        id: 'h1',
        pod: 'local',
        provider: 'dev',
        state: 'HOST_STATE_UP',
        capacity: { cpuMillis: 4000, memoryMib: 8192 },
        allocated: { cpuMillis: 250, memoryMib: 256 },
        labels: { zone: 'a' },
        apparmor: 'APP_ARMOR_MODE_UNAVAILABLE_INSECURE',
        lastHeartbeat: '2024-05-01T12:00:00.000Z',
        instanceCount: 1,
      });
      const envs = await api('/v1/environments', { method: 'POST', body: JSON.stringify({ name: 'staging' }) });
      assert.equal(envs.status, 200);
      assert.deepEqual(fake.callsOf('createEnvironment')[0].request, { environment: { name: 'staging', tenant: '', createTime: undefined } });
      assert.equal((await json(await api('/v1/environments'))).environments[0].name, 'prod');
      // An empty list is [], not a missing field.
      assert.deepEqual(await json(await api('/v1/environments/prod/services')), { services: [] });
    });

    it('answers an unknown route with 404 and a wrong method with 405', async () => {
      const missing = await api('/v1/nothing');
      assert.equal(missing.status, 404);
      assert.equal((await json(missing)).code, status.NOT_FOUND);
      const wrong = await api('/v1/environments', { method: 'PUT', body: '{}' });
      assert.equal(wrong.status, 405);
      assert.equal(wrong.headers.get('allow'), 'GET, POST');
      const body = await json(wrong);
      assert.equal(body.code, status.UNIMPLEMENTED);
      assert.deepEqual(body.details, []);
    });
  });

  describe('errors', () => {
    it('maps NOT_FOUND to 404 with the Pod API message', async () => {
      fake.answer('getService', () => {
        throw new CannedStatus(status.NOT_FOUND, 'service "nope" not found');
      });
      const res = await api('/v1/environments/prod/services/nope');
      assert.equal(res.status, 404);
      assert.deepEqual(await json(res), { code: 5, message: 'service "nope" not found', details: [] });
    });

    it('maps ALREADY_EXISTS to 409', async () => {
      fake.answer('createEnvironment', () => {
        throw new CannedStatus(status.ALREADY_EXISTS, 'environment "prod" already exists');
      });
      const res = await api('/v1/environments', { method: 'POST', body: JSON.stringify({ name: 'prod' }) });
      assert.equal(res.status, 409);
      assert.equal((await json(res)).code, status.ALREADY_EXISTS);
    });

    it('maps INVALID_ARGUMENT to 400 and passes the details through', async () => {
      const details = [
        {
          '@type': 'type.googleapis.com/google.rpc.BadRequest',
          fieldViolations: [{ field: 'replicas', description: 'must be at least 1' }],
        },
      ];
      fake.answer('createService', () => {
        throw new CannedStatus(status.INVALID_ARGUMENT, 'replicas: must be at least 1', details);
      });
      const res = await api('/v1/environments/prod/services', {
        method: 'POST',
        body: JSON.stringify({ ...DEPLOY_BODY, replicas: 0 }),
      });
      assert.equal(res.status, 400);
      assert.deepEqual(await json(res), { code: 3, message: 'replicas: must be at least 1', details });
    });

    it('hides the message of INTERNAL and UNAVAILABLE', async () => {
      fake.answer('listHosts', () => {
        throw new CannedStatus(status.UNAVAILABLE, 'connect ECONNREFUSED 10.0.0.7:5432');
      });
      const res = await api('/v1/hosts');
      assert.equal(res.status, 503);
      const body = await json(res);
      assert.equal(body.code, status.UNAVAILABLE);
      assert.doesNotMatch(body.message, /10\.0\.0\.7/);
    });

    it('gives up on a Pod API that does not answer within the deadline: 504', async () => {
      const slow = await startGateway({
        host: '127.0.0.1',
        port: 0,
        podApiAddress,
        tls: { caPem: pki.caPem, certPem: pki.gateway.certPem, keyPem: pki.gateway.keyPem },
        tokenDbPath: join(dir, 'tokens.db'),
        requestTimeoutMs: 200,
        logger: pino({ level: 'silent' }),
      });
      try {
        fake.answer('listHosts', () => new Promise(() => {}));
        const res = await fetch(`${slow.url}/v1/hosts`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(res.status, 504);
        assert.equal((await json(res)).code, status.DEADLINE_EXCEEDED);
      } finally {
        await slow.close();
      }
    });
  });

  describe('authentication', () => {
    it('answers 401 with WWW-Authenticate when the token is missing or unknown, without calling the Pod API', async () => {
      for (const authorization of [undefined, 'Bearer pdm_unknown', `Basic ${token}`]) {
        const res = await fetch(`${gateway.url}/v1/hosts`, { headers: authorization ? { authorization } : {} });
        assert.equal(res.status, 401);
        assert.equal(res.headers.get('www-authenticate'), 'Bearer');
        const body = await json(res);
        assert.equal(body.code, status.UNAUTHENTICATED);
        assert.deepEqual(body.details, []);
      }
      assert.equal(fake.calls.length, 0);
    });

    it('passes each token’s own tenant, and a revoked token stops working at once', async () => {
      const other = await gateway.tokens.create('globex', 'globex-ci');
      const res = await fetch(`${gateway.url}/v1/hosts`, { headers: { authorization: `Bearer ${other}` } });
      assert.equal(res.status, 200);
      assert.equal(fake.callsOf('listHosts')[0].tenant, 'globex');
      assert.equal(await gateway.tokens.revoke('globex-ci'), true);
      const after = await fetch(`${gateway.url}/v1/hosts`, { headers: { authorization: `Bearer ${other}` } });
      assert.equal(after.status, 401);
    });

    it('stores tokens hashed: the token is nowhere in the SQLite files', () => {
      const files = ['tokens.db', 'tokens.db-wal'].map((f) => join(dir, f)).filter((f) => existsSync(f));
      const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
      assert.equal(bytes.includes(token), false);
      assert.equal(bytes.includes(createHash('sha256').update(token).digest('hex')), true);
    });

    it('never logs the token or the Authorization header', () => {
      assert.ok(logLines.length > 0);
      for (const line of logLines) {
        assert.equal(line.includes(token), false);
        assert.equal(/authorization/i.test(line), false);
      }
      const requestLine = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'request' && l.tenant === 'acme');
      assert.ok(requestLine);
      for (const key of ['method', 'route', 'status', 'ms', 'tenant']) assert.ok(key in requestLine, key);
    });
  });

  describe('streaming: GET /v1/events', () => {
    it('sends newline-delimited JSON, one {"result"} per event, int64 as strings', async () => {
      const res = await api('/v1/events');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
      const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(lines, [
        {
          result: {
            sequence: '1',
            time: '2024-05-01T12:00:00.000Z',
            type: 'service.created',
            environment: 'prod',
            service: 'web',
            instance: '',
            host: '',
            message: '',
          },
        },
        {
          result: {
            sequence: '2',
            time: '2024-05-01T12:00:00.000Z',
            type: 'instance.running',
            environment: 'prod',
            service: 'web',
            instance: '',
            host: '',
            message: '',
          },
        },
      ]);
    });

    it('sends Server-Sent Events when the client accepts text/event-stream', async () => {
      const res = await api('/v1/events', { headers: { accept: 'text/event-stream' } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      const text = await res.text();
      const frames = text.split('\n\n').filter((f) => f !== '');
      assert.equal(frames.length, 2);
      for (const frame of frames) assert.match(frame, /^data: \{"result":/);
      assert.equal(JSON.parse(frames[1].slice('data: '.length)).result.type, 'instance.running');
    });

    it('ends a failing stream with an {"error"} line after the events already sent', async () => {
      fake.answerWatch((call) => {
        call.write(event(1, 'service.created'));
        setTimeout(() => call.emit('error', { code: status.PERMISSION_DENIED, details: 'no longer allowed' }), 20);
      });
      const res = await api('/v1/events');
      assert.equal(res.status, 200);
      const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(lines.length, 2);
      assert.equal(lines[0].result.sequence, '1');
      assert.deepEqual(lines[1], { error: { code: status.PERMISSION_DENIED, message: 'no longer allowed', details: [] } });
    });

    it('gives a stream refused at once its HTTP status', async () => {
      fake.answerWatch((call) => call.emit('error', { code: status.NOT_FOUND, details: 'environment "x" not found' }));
      const res = await api('/v1/events?environment=x');
      assert.equal(res.status, 404);
      assert.deepEqual(await json(res), { code: 5, message: 'environment "x" not found', details: [] });
    });

    it('cancels the gRPC call when the HTTP client goes away', async () => {
      fake.answerWatch((call) => call.write(event(1, 'service.created'))); // and never ends
      const abort = new AbortController();
      const res = await api('/v1/events', { signal: abort.signal, headers: { accept: 'text/event-stream' } });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      assert.match(first, /^data: \{"result":\{"sequence":"1"/);
      abort.abort();
      await eventually(() => fake.cancelledStreams === 1);
    });
  });

  describe('lifecycle and the dashboard hook', () => {
    const startAnother = (extra: { staticDir?: string } = {}) =>
      startGateway({
        host: '127.0.0.1',
        port: 0,
        podApiAddress,
        tls: { caPem: pki.caPem, certPem: pki.gateway.certPem, keyPem: pki.gateway.keyPem },
        tokenDbPath: join(dir, 'tokens.db'),
        logger: pino({ level: 'silent' }),
        ...extra,
      });

    it('serves the files of staticDir at / for paths the API does not own, never outside it', async () => {
      const site = join(dir, 'site');
      mkdirSync(site);
      writeFileSync(join(site, 'index.html'), '<h1>Podium</h1>');
      writeFileSync(join(site, '.env'), 'SECRET=1');
      const withSite = await startAnother({ staticDir: site });
      try {
        const index = await fetch(`${withSite.url}/`);
        assert.equal(index.status, 200);
        assert.match(index.headers.get('content-type') ?? '', /^text\/html/);
        assert.equal(await index.text(), '<h1>Podium</h1>');
        for (const path of ['/.env', '/../tokens.db', '/%2e%2e/tokens.db', '/missing.js']) {
          const res = await fetch(`${withSite.url}${path}`);
          assert.equal(res.status, 404, path);
        }
        assert.equal((await fetch(`${withSite.url}/v1/hosts`)).status, 401, 'the API still comes first');
      } finally {
        await withSite.close();
      }
    });

    it('close() ends the streams in flight and releases the port', async () => {
      fake.answerWatch((call) => call.write(event(1, 'service.created'))); // and never ends
      const other = await startAnother();
      const res = await fetch(`${other.url}/v1/events`, { headers: { authorization: `Bearer ${token}` } });
      const reader = res.body!.getReader();
      await reader.read();
      await other.close();
      let rest = '';
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
      assert.equal(JSON.parse(rest.trim()).error.code, status.CANCELLED);
      await eventually(() => fake.cancelledStreams === 1);
      await assert.rejects(fetch(`${other.url}/healthz`));
    });
  });

  describe('documents', () => {
    it('serves /openapi.json with every route, its parameters and the message schemas', async () => {
      const res = await fetch(`${gateway.url}/openapi.json`);
      assert.equal(res.status, 200);
      const doc = await json(res);
      assert.equal(doc.openapi, '3.0.3');
      assert.deepEqual(Object.keys(doc.paths).sort(), [
        '/v1/environments',
        '/v1/environments/{environment}/services',
        '/v1/environments/{environment}/services/{service}',
        '/v1/events',
        '/v1/hosts',
        '/v1/hosts/{host}:revoke',
        '/v1/tenants/{tenant}/quota',
      ]);
      const create = doc.paths['/v1/environments/{environment}/services'].post;
      assert.equal(create.operationId, 'PodApi_CreateService');
      assert.deepEqual(create.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`), ['path:environment']);
      assert.deepEqual(create.requestBody.content['application/json'].schema, { $ref: '#/components/schemas/podium.v1.Service' });
      assert.deepEqual(create.responses['200'].content['application/json'].schema, { $ref: '#/components/schemas/podium.v1.Service' });
      const watch = doc.paths['/v1/events'].get;
      assert.deepEqual(watch.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`), ['query:environment', 'query:afterSequence']);
      assert.ok(watch.responses['200'].content['application/x-ndjson']);
      const schemas = doc.components.schemas;
      assert.deepEqual(schemas['podium.v1.Resources'].properties.cpuMillis, { type: 'integer', format: 'int32' });
      assert.deepEqual(schemas['podium.v1.Event'].properties.sequence, { type: 'string', format: 'int64' });
      assert.deepEqual(schemas['podium.v1.InstanceState'].enum[1], 'INSTANCE_STATE_PENDING');
      assert.deepEqual(schemas['podium.v1.Host'].properties.labels, { type: 'object', additionalProperties: { type: 'string' } });
      assert.ok(schemas['google.rpc.Status']);
      // Every $ref points at a schema that exists.
      const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[^"]+/g) ?? [];
      for (const ref of refs) assert.ok(schemas[ref.slice('#/components/schemas/'.length)], ref);
    });

    it('serves Prometheus /metrics with the request counter by route template', async () => {
      await api('/v1/environments/prod/services/web');
      const res = await fetch(`${gateway.url}/metrics`);
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.match(
        text,
        /podium_gateway_http_requests_total\{method="GET",route="\/v1\/environments\/\{environment\}\/services\/\{service\}",status_code="200"\} \d+/,
      );
      assert.match(text, /podium_gateway_http_request_duration_seconds_bucket/);
      assert.match(text, /process_cpu_user_seconds_total/);
    });
  });
});
