/**
 * A service's confinement options, as a customer declares them through the REST API: the real
 * gateway in front of the real Pod API (on SQLite, or PostgreSQL with PODIUM_TEST_DATABASE).
 * A root filesystem is read-only unless the customer opts out, and GET says which; the writable
 * paths are plain absolute directories outside the kernel's trees, each once, and a bad one is a
 * 400 naming the field with nothing stored. The award carries both to the winning host.
 */
import { strict as assert } from 'node:assert';
import { poll } from '../support/poll';
import { customerRest, json, post } from '../support/gateway-harness';
import type { ScriptedAgent } from '../support/scripted-agent';

const BASE = { image: 'busybox', replicas: 1, resources: { cpuMillis: 100, memoryMib: 64 } };

describe('gateway: service confinement (read-only root, writable paths) over REST', function () {
  this.timeout(30_000);
  const rest = customerRest(['prod']);
  let agent: ScriptedAgent;
  before(async () => {
    [agent] = (await rest.d.fleet(1)) as [ScriptedAgent];
  });

  const cases: Array<[string, string[], Array<{ field: string; description: RegExp }>]> = [
    ['a relative path', ['var/lib/data'], [{ field: 'writablePaths[0]', description: /must be an absolute path/ }]],
    ['the root itself', ['/'], [{ field: 'writablePaths[0]', description: /must not be "\/"/ }]],
    ['a path under /proc', ['/data', '/proc/sys/kernel'], [{ field: 'writablePaths[1]', description: /must not be under \/proc/ }]],
    ['/sys', ['/sys'], [{ field: 'writablePaths[0]', description: /must not be under \/sys/ }]],
    ['a path under /dev', ['/dev/shm'], [{ field: 'writablePaths[0]', description: /must not be under \/dev/ }]],
    ['a ".." component', ['/var/lib/../../etc'], [{ field: 'writablePaths[0]', description: /"\." or "\.\." components/ }]],
    ['characters a profile cannot hold', ['/data/** rwix,'], [{ field: 'writablePaths[0]', description: /may hold only/ }]],
    ['a path twice (a trailing "/" is the same path)', ['/data', '/srv', '/data/'], [{ field: 'writablePaths[2]', description: /duplicates writablePaths\[0\]/ }]],
    ['more than 16 paths', Array.from({ length: 17 }, (_, i) => `/data/${i}`), [{ field: 'writablePaths', description: /more than 16/ }]],
  ];

  cases.forEach(([what, writablePaths, expected], n) => {
    it(`refuses ${what} with a 400 naming the field, and stores nothing`, async () => {
      const name = `bad-${n}`;
      const res = await rest.request('/v1/environments/prod/services', post({ ...BASE, name, writablePaths }));
      const body = await json(res);
      assert.equal(res.status, 400, JSON.stringify(body));
      const violations: Array<{ field: string; description: string }> = body.details[0].fieldViolations;
      assert.deepEqual(violations.map((v) => v.field), expected.map((e) => e.field));
      violations.forEach((v, i) => assert.match(v.description, expected[i]!.description, v.field));
      assert.equal((await rest.request(`/v1/environments/prod/services/${name}`)).status, 404);
    });
  });

  const awardOf = (service: string) => poll(`the award of ${service}`, () => agent.messages('award').find((m) => m.award.spec?.service === service)?.award);

  it('a service that says nothing gets a read-only root, and GET says so; the award carries it', async () => {
    assert.equal((await rest.request('/v1/environments/prod/services', post({ ...BASE, name: 'plain' }))).status, 200);
    const got = await json(await rest.request('/v1/environments/prod/services/plain'));
    assert.equal(got.readOnlyRoot, true);
    assert.deepEqual(got.writablePaths, []);
    const award = await awardOf('plain');
    assert.equal(award.spec?.readOnlyRoot, true);
    assert.deepEqual(award.spec?.writablePaths, []);
  });

  it('stores writable paths without a trailing "/", in the order given, and carries them to the host', async () => {
    const res = await rest.request('/v1/environments/prod/services', post({ ...BASE, name: 'db', writablePaths: ['/var/lib/data/', '/var/log/db'] }));
    assert.equal(res.status, 200, JSON.stringify(await res.clone().json()));
    const got = await json(await rest.request('/v1/environments/prod/services/db'));
    assert.equal(got.readOnlyRoot, true);
    assert.deepEqual(got.writablePaths, ['/var/lib/data', '/var/log/db']);
    const listed = (await json(await rest.request('/v1/environments/prod/services'))).services.find((s: { name: string }) => s.name === 'db');
    assert.deepEqual([listed.readOnlyRoot, listed.writablePaths], [true, ['/var/lib/data', '/var/log/db']]);
    const award = await awardOf('db');
    assert.equal(award.spec?.readOnlyRoot, true);
    assert.deepEqual(award.spec?.writablePaths, ['/var/lib/data', '/var/log/db']);
  });

  it('readOnlyRoot false is an explicit opt-out: stored, shown in GET and carried in the award', async () => {
    const res = await rest.request('/v1/environments/prod/services', post({ ...BASE, name: 'legacy', readOnlyRoot: false }));
    assert.equal(res.status, 200, JSON.stringify(await res.clone().json()));
    const got = await json(await rest.request('/v1/environments/prod/services/legacy'));
    assert.equal(got.readOnlyRoot, false);
    assert.equal((await awardOf('legacy')).spec?.readOnlyRoot, false);
  });
});
