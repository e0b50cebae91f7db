import type { Driver } from './driver';
import { MIGRATIONS, migrationText } from './migrations';
import { SqliteDriver } from './sqlite-driver';

const MIGRATION_LOCK = 'podium:migrations';

/** The schema versions a first release's gateway token file could have (PRAGMA user_version). */
const LEGACY_TOKEN_VERSIONS = 2;

function latestVersion(): number {
  return MIGRATIONS[MIGRATIONS.length - 1]!.version;
}

function newerSchema(found: number, known: number): Error {
  return new Error(`the database is at schema version ${found}, newer than this release of Podium knows (${known}): run a release that knows it`);
}

/**
 * Brings the schema up to date: every migration not yet in schema_migrations, in order, each in
 * its own transaction with its record. Two processes starting at once on PostgreSQL take turns
 * (an advisory lock); the second finds nothing left to do.
 *
 * SQLite files of the first releases kept their version in PRAGMA user_version: see
 * adoptLegacySqlite.
 */
export async function migrate(driver: Driver, now: () => number): Promise<void> {
  await driver.transaction(async ({ sql }) => {
    await sql.run(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`);
  });
  if (driver instanceof SqliteDriver) await adoptLegacySqlite(driver, now);
  // A database a newer release has migrated is refused, not guessed at: its tables may mean
  // what this release does not know.
  const applied = await driver.read((sql) => sql.get<{ v: number | null }>(`SELECT MAX(version) AS v FROM schema_migrations`));
  if (Number(applied?.v ?? 0) > latestVersion()) throw newerSchema(Number(applied!.v), latestVersion());
  for (const m of MIGRATIONS) {
    await driver.transaction(async (tx) => {
      await tx.lock(MIGRATION_LOCK);
      const done = await tx.sql.get(`SELECT version FROM schema_migrations WHERE version = $1`, [m.version]);
      if (done) return;
      // Statements one by one: node-pg's prepared queries take one statement, SQLite's too.
      for (const statement of splitStatements(migrationText(m, driver.dialect))) await tx.sql.run(statement);
      await tx.sql.run(`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, [m.version, now()]);
    });
  }
  if (driver instanceof SqliteDriver) await copyLegacyApiTokens(driver);
}

/**
 * SQLite files of the first releases kept their schema version in PRAGMA user_version. A Pod API
 * file's versions are the first ones of MIGRATIONS: they are recorded as applied. A gateway's
 * token file (api_tokens and no hosts; its own versions 1-2) gets the whole schema instead: its
 * table is set aside here, the migrations create the new one, and copyLegacyApiTokens moves the
 * tokens over, so that no customer's token stops working on upgrade.
 */
async function adoptLegacySqlite(driver: SqliteDriver, now: () => number): Promise<void> {
  const legacy = driver.legacyUserVersion();
  await driver.transaction(async ({ sql }) => {
    const tables = new Set((await sql.all<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('api_tokens', 'hosts')`)).map((t) => t.name));
    if (tables.has('api_tokens') && !tables.has('hosts')) {
      if (legacy > LEGACY_TOKEN_VERSIONS) throw newerSchema(legacy, LEGACY_TOKEN_VERSIONS);
      await sql.run(`ALTER TABLE api_tokens RENAME TO legacy_api_tokens`);
    } else if (legacy > 0) {
      if (legacy > latestVersion()) throw newerSchema(legacy, latestVersion());
      for (let v = 1; v <= legacy; v++) {
        await sql.run(`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [v, now()]);
      }
    } else {
      return;
    }
    await sql.run(`PRAGMA user_version = 0`);
  });
}

/** The tokens of a legacy gateway file into api_tokens (its times were RFC 3339 text, its roles optional). */
async function copyLegacyApiTokens(driver: SqliteDriver): Promise<void> {
  await driver.transaction(async ({ sql }) => {
    if (!(await sql.get(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'legacy_api_tokens'`))) return;
    const rows = await sql.all<{ hash: string; tenant: string; name: string; role?: string; created_at: string }>(`SELECT * FROM legacy_api_tokens`);
    for (const r of rows) {
      await sql.run(`INSERT INTO api_tokens (hash, tenant, name, role, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, [
        r.hash,
        r.tenant,
        r.name,
        r.role ?? 'customer',
        Date.parse(r.created_at) || 0,
      ]);
    }
    await sql.run(`DROP TABLE legacy_api_tokens`);
  });
}

/** Splits a migration script on the semicolons that end its statements (none occur in literals). */
export function splitStatements(script: string): string[] {
  return script
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
