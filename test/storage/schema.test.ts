/**
 * The two dialects' migrations give the same schema: after the last migration, SQLite and
 * PostgreSQL have the same tables with the same columns, so that a repository's SQL means the
 * same on both.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import pg from 'pg';
import { Storage } from '../../server/storage/storage';
import { freshDatabase } from '../support/databases';

async function sqliteColumns(path: string): Promise<string[]> {
  const db = new Database(path, { readonly: true });
  try {
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as Array<{ name: string }>;
    return tables.flatMap((t) => (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(t.name) as Array<{ name: string }>).map((c) => `${t.name}.${c.name}`)).sort();
  } finally {
    db.close();
  }
}

async function postgresColumns(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ t: string; c: string }>(
      `SELECT table_name AS t, column_name AS c FROM information_schema.columns WHERE table_schema = 'public'`,
    );
    return rows.map((r) => `${r.t}.${r.c}`).sort();
  } finally {
    await c.end();
  }
}

describe('schema', function () {
  this.timeout(60_000);

  it('is the same tables and columns on SQLite and PostgreSQL after the last migration', async () => {
    const lite = await freshDatabase('sqlite');
    const post = await freshDatabase('postgres');
    try {
      for (const target of [lite.target, post.target]) await (await Storage.open(target, { followEvents: false })).close();
      const a = await sqliteColumns(lite.target);
      const b = await postgresColumns(post.target);
      assert.ok(a.includes('tenant_usage.cpu_millis'), 'the last migration ran');
      assert.deepEqual(a, b);
    } finally {
      await lite.drop();
      await post.drop();
    }
  });
});
