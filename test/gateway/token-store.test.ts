import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { TENANT_NAME_RULE } from '../../certs';
import { TokenStore } from '../../gateway';
import { DIALECTS, freshDatabase, type TestDatabase } from '../support/databases';

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

for (const dialect of DIALECTS) {
  describe(`gateway TokenStore (${dialect})`, () => {
    let db: TestDatabase;
    let store: TokenStore;

    beforeEach(async () => {
      db = await freshDatabase(dialect);
      store = await TokenStore.open(db.target);
    });

    afterEach(async () => {
      await store.close();
      await db.drop();
    });

    it('creates pdm_ tokens of 32 random bytes and looks them up', async () => {
      const a = await store.create('acme', 'ci');
      const b = await store.create('acme', 'laptop');
      assert.match(a, /^pdm_[A-Za-z0-9_-]{43}$/);
      assert.notEqual(a, b);
      assert.deepEqual(await store.lookup(a), { tenant: 'acme', name: 'ci', role: 'customer' });
      assert.deepEqual(await store.lookup(b), { tenant: 'acme', name: 'laptop', role: 'customer' });
      assert.equal(await store.lookup(`${a.slice(0, -1)}x`), null);
      assert.equal(await store.lookup(''), null);
    });

    it('revokes by name', async () => {
      const token = await store.create('acme', 'ci');
      assert.equal(await store.revoke('ci'), true);
      assert.equal(await store.lookup(token), null);
      assert.equal(await store.revoke('ci'), false);
    });

    it('refuses a name twice, keeping the first token, and lists names without secrets', async () => {
      const token = await store.create('acme', 'ci');
      await assert.rejects(store.create('globex', 'ci'), /a token named "ci" already exists/);
      assert.deepEqual(await store.lookup(token), { tenant: 'acme', name: 'ci', role: 'customer' });
      const list = await store.list();
      assert.equal(list.length, 1);
      assert.equal(list[0]!.tenant, 'acme');
      assert.equal(list[0]!.name, 'ci');
      assert.ok(Math.abs(Date.parse(list[0]!.createdAt) - Date.now()) < 60_000);
      assert.equal(JSON.stringify(list).includes(token), false);
    });

    it('refuses a tenant outside the tenant-name rule, naming the rule, and stores nothing', async () => {
      for (const tenant of ['Acme Corp', 'Acme', '1acme', 'acme-', '', 'a'.repeat(41)]) {
        await assert.rejects(
          store.create(tenant, 'ci'),
          (err: Error) => err.message.startsWith('tenant ') && err.message.includes(TENANT_NAME_RULE),
          JSON.stringify(tenant),
        );
      }
      assert.deepEqual(await store.list(), []);
    });

    it('gives a token the role customer unless asked for admin, and lists the role', async () => {
      const customer = await store.create('acme', 'ci');
      const admin = await store.create('default', 'ops', 'admin');
      assert.deepEqual(await store.lookup(customer), { tenant: 'acme', name: 'ci', role: 'customer' });
      assert.deepEqual(await store.lookup(admin), { tenant: 'default', name: 'ops', role: 'admin' });
      assert.deepEqual((await store.list()).map((r) => [r.name, r.role]), [['ci', 'customer'], ['ops', 'admin']]);
      await assert.rejects(store.create('acme', 'x', 'root' as never), /role must be customer or admin/);
      assert.equal((await store.list()).length, 2);
    });

    it('is one set of tokens for every store on the database: made on one, revoked on another', async () => {
      const other = await TokenStore.open(db.target);
      try {
        const token = await store.create('acme', 'ci');
        assert.deepEqual(await other.lookup(token), { tenant: 'acme', name: 'ci', role: 'customer' });
        assert.equal(await other.revoke('ci'), true);
        assert.equal(await store.lookup(token), null);
      } finally {
        await other.close();
      }
    });
  });
}

describe('gateway TokenStore on a SQLite file', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podium-tokens-'));
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps only hashes, in a WAL database readable by its owner only, that survives reopening', async () => {
    const path = join(dir, 'tokens.db');
    let store = await TokenStore.open(path);
    const token = await store.create('acme', 'ci');
    await store.close();
    const bytes = Buffer.concat(
      ['tokens.db', 'tokens.db-wal'].map((f) => {
        try {
          return readFileSync(join(dir, f));
        } catch {
          return Buffer.alloc(0);
        }
      }),
    );
    assert.equal(bytes.includes(token), false);
    assert.equal(bytes.includes(token.slice(4)), false);
    assert.ok(bytes.includes(hash(token)), 'the hash is what is stored');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    store = await TokenStore.open(path);
    try {
      assert.deepEqual(await store.lookup(token), { tenant: 'acme', name: 'ci', role: 'customer' });
    } finally {
      await store.close();
    }
  });

  /** A token file as a first release made it: its own table, its own version in user_version. */
  function legacyFile(path: string, version: 0 | 2, rows: Array<[token: string, tenant: string, name: string, role?: string]>): void {
    const db = new Database(path);
    db.exec(`CREATE TABLE api_tokens (hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL) STRICT;`);
    if (version === 2) db.exec(`ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'customer'`);
    for (const [token, tenant, name, role] of rows) {
      if (version === 2) db.prepare('INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?)').run(hash(token), tenant, name, '2024-05-01T12:00:00.000Z', role ?? 'customer');
      else db.prepare('INSERT INTO api_tokens VALUES (?, ?, ?, ?)').run(hash(token), tenant, name, '2024-05-01T12:00:00.000Z');
    }
    db.pragma(`user_version = ${version}`);
    db.close();
  }

  for (const version of [0, 2] as const) {
    it(`adopts a first release's token file (user_version ${version}): its tokens keep working, with their roles and times`, async () => {
      const path = join(dir, `v${version}.db`);
      const old = `pdm_${'B'.repeat(43)}`;
      const ops = `pdm_${'C'.repeat(43)}`;
      legacyFile(path, version, version === 2 ? [[old, 'acme', 'old'], [ops, 'default', 'ops', 'admin']] : [[old, 'acme', 'old']]);
      for (let open = 0; open < 2; open++) {
        const migrated = await TokenStore.open(path);
        try {
          assert.deepEqual(await migrated.lookup(old), { tenant: 'acme', name: 'old', role: 'customer' });
          if (version === 2) assert.deepEqual(await migrated.lookup(ops), { tenant: 'default', name: 'ops', role: 'admin' });
          if (open === 0) await migrated.create('acme', 'new');
          const list = await migrated.list();
          assert.deepEqual(list.map((r) => r.name), version === 2 ? ['old', 'ops', 'new'] : ['old', 'new']);
          assert.equal(list[0]!.createdAt, '2024-05-01T12:00:00.000Z');
        } finally {
          await migrated.close();
        }
      }
      const check = new Database(path);
      try {
        // The old table is gone, and the new one refuses a role the gateway does not know.
        assert.deepEqual(check.prepare(`SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'legacy_api_tokens'`).get(), { n: 0 });
        assert.throws(() => check.exec("UPDATE api_tokens SET role = 'root'"), { code: 'SQLITE_CONSTRAINT_CHECK' });
      } finally {
        check.close();
      }
    });
  }

  it('refuses a token file from a newer release rather than guess at its schema, its tokens left as they were', async () => {
    const path = join(dir, 'newer.db');
    legacyFile(path, 0, [[`pdm_${'D'.repeat(43)}`, 'acme', 'x']]);
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    await assert.rejects(TokenStore.open(path), /schema version 99, newer than this release/);
    const check = new Database(path);
    try {
      assert.deepEqual(check.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all(), [{ name: 'api_tokens' }, { name: 'schema_migrations' }]);
    } finally {
      check.close();
    }
  });
});
