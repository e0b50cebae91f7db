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

describe('cli: podium token create', function () {
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
      const store = TokenStore.open(db);
      try {
        assert.deepEqual(store.list(), []);
      } finally {
        store.close();
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
});
