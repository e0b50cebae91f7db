/**
 * The ports and capabilities of a service, as a customer declares them through the REST API: the
 * real gateway in front of the real Pod API. A bad port is a 400 naming the field and the reason,
 * every problem of one request at once, and nothing is stored; a good one comes back in GET as
 * stored (protocol TCP when not given, capabilities upper case and sorted), and the award carries
 * the capabilities to the winning host.
 */
import { strict as assert } from 'node:assert';
import { poll } from '../support/poll';
import { customerRest, json, post } from '../support/gateway-harness';

const BASE = { image: 'busybox', replicas: 1, resources: { cpuMillis: 100, memoryMib: 64 } };

describe('gateway: service ports and capabilities over REST', function () {
  this.timeout(30_000);
  const rest = customerRest(['prod', 'staging']);

  const cases: Array<[string, unknown, Array<{ field: string; description: RegExp }>]> = [
    ['port 0', { ports: [{ name: 'http', port: 0 }] }, [{ field: 'ports[0].port', description: /from 1 to 65535/ }]],
    ['port above 65535', { ports: [{ name: 'http', port: 65536 }] }, [{ field: 'ports[0].port', description: /from 1 to 65535/ }]],
    [
      'a port twice',
      { ports: [{ name: 'http', port: 8080 }, { name: 'alt', port: 8080 }] },
      [{ field: 'ports[1].port', description: /duplicates ports\[0\]\.port/ }],
    ],
    [
      'a name twice',
      { ports: [{ name: 'http', port: 8080 }, { name: 'http', port: 8081 }] },
      [{ field: 'ports[1].name', description: /duplicates ports\[0\]\.name/ }],
    ],
    ['no name', { ports: [{ port: 8080 }] }, [{ field: 'ports[0].name', description: /is required/ }]],
    ['a name that is no env var part', { ports: [{ name: 'HTTP_1', port: 8080 }] }, [{ field: 'ports[0].name', description: /1-15 characters/ }]],
    ['privileged without the capability', { ports: [{ name: 'http', port: 80 }] }, [{ field: 'ports[0].port', description: /80 is privileged.*NET_BIND_SERVICE/ }]],
    ['a capability that leaves the container', { capabilities: ['SYS_ADMIN'] }, [{ field: 'capabilities[0]', description: /"SYS_ADMIN" is not a capability a service may keep/ }]],
    ['an allow rule that names no environment', { allow: [{ environment: 'Staging Env' }] }, [{ field: 'allow[0].environment', description: /1-40 characters/ }]],
    [
      'an allow rule twice',
      { allow: [{ environment: 'staging' }, { environment: 'staging' }] },
      [{ field: 'allow[1].environment', description: /duplicates allow\[0\]\.environment/ }],
    ],
    ['more than 16 ports', { ports: Array.from({ length: 17 }, (_, i) => ({ name: `p${i}`, port: 9000 + i })) }, [{ field: 'ports', description: /more than 16/ }]],
    [
      'every problem at once',
      { ports: [{ name: 'http', port: 443 }, { name: 'http', port: 70000, protocol: 'PORT_PROTOCOL_TCP' }], capabilities: ['NET_RAW'] },
      [
        { field: 'capabilities[0]', description: /NET_RAW/ },
        { field: 'ports[0].port', description: /443 is privileged/ },
        { field: 'ports[1].name', description: /duplicates/ },
        { field: 'ports[1].port', description: /from 1 to 65535/ },
      ],
    ],
  ];

  cases.forEach(([what, extra, expected], n) => {
    it(`refuses ${what} with a 400 naming the field, and stores nothing`, async () => {
      const name = `bad-${n}`;
      const res = await rest.request('/v1/environments/prod/services', post({ ...BASE, name, ...(extra as object) }));
      const body = await json(res);
      assert.equal(res.status, 400, JSON.stringify(body));
      const violations: Array<{ field: string; description: string }> = body.details[0].fieldViolations;
      assert.deepEqual(violations.map((v) => v.field), expected.map((e) => e.field));
      violations.forEach((v, i) => assert.match(v.description, expected[i]!.description, v.field));
      assert.equal((await rest.request(`/v1/environments/prod/services/${name}`)).status, 404);
    });
  });

  it('stores good ports and capabilities and shows them in GET as stored; the award carries the capabilities', async () => {
    const [agent] = await rest.d.fleet(1);
    const res = await rest.request(
      '/v1/environments/prod/services',
      post({
        ...BASE,
        name: 'web',
        ports: [{ name: 'http', port: 80, protocol: 'PORT_PROTOCOL_HTTP' }, { name: 'admin', port: 9090 }],
        capabilities: ['cap_net_bind_service', 'CHOWN', 'NET_BIND_SERVICE'],
      }),
    );
    assert.equal(res.status, 200, JSON.stringify(await res.clone().json()));
    const got = await json(await rest.request('/v1/environments/prod/services/web'));
    assert.deepEqual(got.ports, [
      { name: 'http', port: 80, protocol: 'PORT_PROTOCOL_HTTP' },
      { name: 'admin', port: 9090, protocol: 'PORT_PROTOCOL_TCP' },
    ]);
    assert.deepEqual(got.capabilities, ['CHOWN', 'NET_BIND_SERVICE']);
    assert.deepEqual(got.allow, []);
    const award = await poll('the award', () => agent!.messages('award').find((m) => m.award.spec?.service === 'web')?.award);
    assert.deepEqual(award.spec?.capabilities, ['CHOWN', 'NET_BIND_SERVICE']);
  });

  it('refuses a second service on a port of its environment, naming the owner; another environment may use it', async () => {
    const api = { ...BASE, name: 'api', ports: [{ name: 'http', port: 7000 }], allow: [{ environment: 'staging' }] };
    assert.equal((await rest.request('/v1/environments/prod/services', post(api))).status, 200);
    const res = await rest.request('/v1/environments/prod/services', post({ ...BASE, name: 'worker', ports: [{ name: 'alt', port: 7001 }, { name: 'http', port: 7000 }] }));
    const body = await json(res);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.deepEqual(body.details[0].fieldViolations, [{ field: 'ports[1].port', description: '7000 is already service "api"\'s in this environment: each port of an environment belongs to one service' }]);
    assert.equal((await rest.request('/v1/environments/prod/services/worker')).status, 404);
    assert.equal((await rest.request('/v1/environments/staging/services', post({ ...BASE, name: 'worker', ports: [{ name: 'http', port: 7000 }] }))).status, 200);
    assert.deepEqual((await json(await rest.request('/v1/environments/prod/services/api'))).allow, [{ environment: 'staging' }]);
  });
});
