/**
 * Databases for tests, in both dialects. SQLite: a file in a temporary directory. PostgreSQL: one
 * throwaway cluster for the whole mocha run (started on first use, stopped by root-hooks.ts after
 * the last suite), and a fresh database in it for each caller, dropped afterwards.
 *
 * PODIUM_TEST_DATABASE=postgres makes the suites that run a Pod API (the harness) run on
 * PostgreSQL; scripts/test runs them once on each dialect.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { startLocalPostgres, type LocalPostgres } from '../../server/storage/local-postgres';

export type TestDialect = 'sqlite' | 'postgres';
export const DIALECTS: readonly TestDialect[] = ['sqlite', 'postgres'];

/** The dialect the Pod API suites run on in this run. */
export function testDialect(): TestDialect {
  const d = process.env.PODIUM_TEST_DATABASE ?? 'sqlite';
  if (d !== 'sqlite' && d !== 'postgres') throw new Error(`PODIUM_TEST_DATABASE must be sqlite or postgres, got ${d}`);
  return d;
}

let cluster: Promise<LocalPostgres> | undefined;

/** The run's PostgreSQL cluster, started on first use. Never stop it yourself. */
export function sharedPostgres(): Promise<LocalPostgres> {
  cluster ??= startLocalPostgres(mkdtempSync('/tmp/podium-test-pg-'));
  return cluster;
}

/** Stops the run's cluster, if one was started, and removes its directory. */
export async function stopSharedPostgres(): Promise<void> {
  if (!cluster) return;
  const started = cluster;
  cluster = undefined;
  const pgc = await started.catch(() => undefined);
  if (!pgc) return;
  await pgc.stop();
  rmSync(pgc.dataDir, { recursive: true, force: true });
}

export interface TestDatabase {
  /** What Storage.open and --database take. */
  readonly target: string;
  /** Runs statements on it directly, on a connection of its own, as an older release or an operator would. */
  sql(statements: readonly string[]): Promise<void>;
  drop(): Promise<void>;
}

/** A new, empty database of `dialect`. */
export async function freshDatabase(dialect: TestDialect = testDialect()): Promise<TestDatabase> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'podium-db-'));
    const target = join(dir, 'podium.db');
    return {
      target,
      sql: async (statements) => {
        const db = new Database(target);
        try {
          for (const statement of statements) db.exec(statement);
        } finally {
          db.close();
        }
      },
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const server = await sharedPostgres();
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server.url.replace(/\/podium$/, '/postgres') });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const target = server.url.replace(/\/podium$/, `/${name}`);
  return {
    target,
    sql: async (statements) => {
      const c = new pg.Client({ connectionString: target });
      await c.connect();
      try {
        for (const statement of statements) await c.query(statement);
      } finally {
        await c.end();
      }
    },
    drop: async () => {
      const c = new pg.Client({ connectionString: server.url.replace(/\/podium$/, '/postgres') });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * Rows of a query, read from outside the Pod API on a connection of the test's own (for
 * observing what the server wrote). On PostgreSQL `xmin` may be selected: it changes with every
 * update of a row, even one that writes the same values.
 */
export async function readRows(target: string, sql: string): Promise<Record<string, unknown>[]> {
  if (/^postgres(ql)?:\/\//.test(target)) {
    const c = new pg.Client({ connectionString: target });
    await c.connect();
    try {
      return (await c.query(sql)).rows;
    } finally {
      await c.end();
    }
  }
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(target.replace(/^sqlite:/, ''), { readonly: true });
  try {
    return db.prepare(sql).all() as Record<string, unknown>[];
  } finally {
    db.close();
  }
}
