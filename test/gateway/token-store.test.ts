import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TENANT_NAME_RULE } from '../../certs';
import Database from 'better-sqlite3';
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
    assert.deepEqual(store.lookup(a), { tenant: 'acme', name: 'ci', role: 'customer' });
    assert.deepEqual(store.lookup(b), { tenant: 'acme', name: 'laptop', role: 'customer' });
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
    assert.deepEqual(store.lookup(token), { tenant: 'acme', name: 'ci', role: 'customer' });
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

  it('gives a token the role customer unless asked for admin, and lists the role', () => {
    const customer = store.create('acme', 'ci');
    const admin = store.create('default', 'ops', 'admin');
    assert.deepEqual(store.lookup(customer), { tenant: 'acme', name: 'ci', role: 'customer' });
    assert.deepEqual(store.lookup(admin), { tenant: 'default', name: 'ops', role: 'admin' });
    assert.deepEqual(store.list().map((r) => [r.name, r.role]), [['ci', 'customer'], ['ops', 'admin']]);
    assert.throws(() => store.create('acme', 'x', 'root' as never), /role must be customer or admin/);
    assert.equal(store.list().length, 2);
  });

  it('migrates a database of the first release: its tokens keep working, as customers', () => {
    const path = join(dir, 'first-release.db');
    const old = `pdm_${'B'.repeat(43)}`;
    const db = new Database(path);
    db.exec(`CREATE TABLE api_tokens (
      hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL
    ) STRICT;`);
    db.prepare('INSERT INTO api_tokens VALUES (?, ?, ?, ?)').run(createHash('sha256').update(old).digest('hex'), 'acme', 'old', '2024-05-01T12:00:00.000Z');
    db.close();

    for (let open = 0; open < 2; open++) {
      const migrated = TokenStore.open(path);
      try {
        assert.deepEqual(migrated.lookup(old), { tenant: 'acme', name: 'old', role: 'customer' });
        if (open === 0) migrated.create('default', 'ops', 'admin');
        assert.deepEqual(migrated.list().map((r) => [r.name, r.role]), [['old', 'customer'], ['ops', 'admin']]);
      } finally {
        migrated.close();
      }
    }
    const check = new Database(path);
    try {
      assert.equal(check.pragma('user_version', { simple: true }), 2);
      // The column refuses a role the gateway does not know, whoever writes the row.
      assert.throws(() => check.exec("UPDATE api_tokens SET role = 'root'"), { code: 'SQLITE_CONSTRAINT_CHECK' });
    } finally {
      check.close();
    }
  });

  it('refuses a database from a newer gateway rather than guess at its schema', () => {
    const path = join(dir, 'newer.db');
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    assert.throws(() => TokenStore.open(path), /version 99/);
  });
});
