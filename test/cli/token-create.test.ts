/**
 * `podium token create`, run as a user runs it (`node bin/podium …`), and the token it prints
 * used through the real gateway in front of the real Pod API.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TENANT_NAME_RULE } from '../../certs';
import { TokenStore } from '../../gateway';
import { startGatewayHarness } from '../support/gateway-harness';
import { startPodApiHarness } from '../support/pod-api-harness';

const BIN = join(__dirname, '..', '..', '..', 'bin', 'podium');
const run = promisify(execFile);

/** Runs the CLI; resolves with its exit code and output, whether it succeeded or not. */
async function podium(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('cli: podium token create, list and revoke', function () {
  this.timeout(30_000);
  let dir: string;
  let db: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podium-token-cli-'));
    db = join(dir, 'tokens.db');
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses --tenant "Acme Corp", naming --tenant and the rule, and stores nothing', async () => {
    const r = await podium('token', 'create', '--token-db', db, '--tenant', 'Acme Corp', '--name', 'ci');
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /--tenant/);
    assert.ok(r.stderr.includes(TENANT_NAME_RULE), r.stderr);
    if (existsSync(db)) {
      const store = await TokenStore.open(db);
      try {
        assert.deepEqual(await store.list(), []);
      } finally {
        await store.close();
      }
    }
  });

  it('prints a token for a valid tenant that works end to end, and an admin token with --admin', async () => {
    const r = await podium('token', 'create', '--token-db', db, '--tenant', 'acme-corp', '--name', 'ci');
    assert.equal(r.code, 0, r.stderr);
    const token = r.stdout.trim();
    assert.match(token, /^pdm_[A-Za-z0-9_-]{43}$/);

    const h = await startPodApiHarness();
    const gw = await startGatewayHarness(h, { tokenDbPath: db }).catch(async (err) => {
      await h.close();
      throw err;
    });
    try {
      let res = await gw.request(token, '/v1/environments', { method: 'POST', body: JSON.stringify({ name: 'prod' }) });
      assert.equal(res.status, 200, await res.clone().text());
      res = await gw.request(token, '/v1/environments');
      assert.equal(res.status, 200);
      const body = (await res.json()) as { environments: Array<{ name: string; tenant: string }> };
      assert.deepEqual(body.environments.map((e) => [e.tenant, e.name]), [['acme-corp', 'prod']]);

      // A customer token, so the fleet is not its to see; --admin makes one that may.
      assert.equal((await gw.request(token, '/v1/hosts')).status, 403);
      const admin = await podium('token', 'create', '--token-db', db, '--tenant', 'default', '--name', 'ops', '--admin');
      assert.equal(admin.code, 0, admin.stderr);
      res = await gw.request(admin.stdout.trim(), '/v1/hosts');
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { hosts: [] });
    } finally {
      await gw.close();
      await h.close();
    }
  });

  it('lists tokens without their secrets, and a revoked token is refused by a running gateway at its next request', async () => {
    const made = await podium('token', 'create', '--token-db', db, '--tenant', 'acme', '--name', 'ci');
    assert.equal(made.code, 0, made.stderr);
    const token = made.stdout.trim();
    assert.equal((await podium('token', 'create', '--token-db', db, '--tenant', 'acme', '--name', 'ops', '--admin')).code, 0);

    const listed = await podium('token', 'list', '--token-db', db);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = listed.stdout.trim().split('\n').map((l) => l.split('\t'));
    assert.deepEqual(rows.map((r) => r.slice(0, 3)), [['ci', 'acme', 'customer'], ['ops', 'acme', 'admin']]);
    for (const r of rows) assert.ok(!Number.isNaN(Date.parse(r[3]!)), `a creation time: ${r[3]}`);
    assert.ok(!listed.stdout.includes(token) && !listed.stdout.includes('pdm_'), 'no secret is printed');

    const h = await startPodApiHarness();
    const gw = await startGatewayHarness(h, { tokenDbPath: db }).catch(async (err) => {
      await h.close();
      throw err;
    });
    try {
      assert.equal((await gw.request(token, '/v1/environments')).status, 200);
      const revoked = await podium('token', 'revoke', '--token-db', db, '--name', 'ci');
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.equal((await gw.request(token, '/v1/environments')).status, 401, 'refused once revoked, with no restart');
      const again = await podium('token', 'revoke', '--token-db', db, '--name', 'ci');
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /no API token is named "ci"/);
      assert.deepEqual((await podium('token', 'list', '--token-db', db)).stdout.trim().split('\t').slice(0, 1), ['ops']);
    } finally {
      await gw.close();
      await h.close();
    }
  });
});
