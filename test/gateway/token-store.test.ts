import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TENANT_NAME_RULE } from '../../certs';
import { TokenStore } from '../../gateway';

describe('gateway TokenStore', () => {
  let dir: string;
  let store: TokenStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podium-tokens-'));
    store = TokenStore.open(join(dir, 'tokens.db'));
  });

  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates pdm_ tokens of 32 random bytes and looks them up', () => {
    const a = store.create('acme', 'ci');
    const b = store.create('acme', 'laptop');
    assert.match(a, /^pdm_[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a, b);
    assert.deepEqual(store.lookup(a), { tenant: 'acme', name: 'ci' });
    assert.deepEqual(store.lookup(b), { tenant: 'acme', name: 'laptop' });
    assert.equal(store.lookup(`${a.slice(0, -1)}x`), null);
    assert.equal(store.lookup(''), null);
  });

  it('revokes by name', () => {
    const token = store.create('acme', 'ci');
    assert.equal(store.revoke('ci'), true);
    assert.equal(store.lookup(token), null);
    assert.equal(store.revoke('ci'), false);
  });

  it('refuses a name twice and lists names without secrets', () => {
    const token = store.create('acme', 'ci');
    assert.throws(() => store.create('globex', 'ci'), /already exists/);
    const list = store.list();
    assert.equal(list.length, 1);
    assert.equal(list[0].tenant, 'acme');
    assert.equal(list[0].name, 'ci');
    assert.ok(!Number.isNaN(Date.parse(list[0].createdAt)));
    assert.equal(JSON.stringify(list).includes(token), false);
  });

  it('keeps only hashes, in a WAL database readable by its owner only, that survives reopening', () => {
    const token = store.create('acme', 'ci');
    store.close();
    const bytes = Buffer.concat(['tokens.db', 'tokens.db-wal'].map((f) => {
      try {
        return readFileSync(join(dir, f));
      } catch {
        return Buffer.alloc(0);
      }
    }));
    assert.equal(bytes.includes(token), false);
    assert.equal(bytes.includes(token.slice(4)), false);
    assert.equal(statSync(join(dir, 'tokens.db')).mode & 0o777, 0o600);
    store = TokenStore.open(join(dir, 'tokens.db'));
    assert.deepEqual(store.lookup(token), { tenant: 'acme', name: 'ci' });
  });

  it('refuses a tenant outside the tenant-name rule, naming the rule, and stores nothing', () => {
    for (const tenant of ['Acme Corp', 'Acme', '1acme', 'acme-', '', 'a'.repeat(41)]) {
      assert.throws(
        () => store.create(tenant, 'ci'),
        (err: Error) => err.message.startsWith('tenant ') && err.message.includes(TENANT_NAME_RULE),
        JSON.stringify(tenant),
      );
    }
    assert.deepEqual(store.list(), []);
  });
});
