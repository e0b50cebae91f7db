import type { Driver } from './driver';
import { MIGRATIONS, migrationText } from './migrations';
import { SqliteDriver } from './sqlite-driver';

const MIGRATION_LOCK = 'podium:migrations';

/**
 * Brings the schema up to date: every migration not yet in schema_migrations, in order, each in
 * its own transaction with its record. Two processes starting at once on PostgreSQL take turns
 * (an advisory lock); the second finds nothing left to do.
 *
 * SQLite files of the first releases kept their version in PRAGMA user_version: those versions
 * are recorded as applied (their migrations are the first ones of MIGRATIONS) before going on.
 */
export async function migrate(driver: Driver, now: () => number): Promise<void> {
  await driver.transaction(async ({ sql }) => {
    await sql.run(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`);
  });
  if (driver instanceof SqliteDriver) {
    const legacy = driver.legacyUserVersion();
    if (legacy > 0) {
      await driver.transaction(async ({ sql }) => {
        for (let v = 1; v <= legacy; v++) {
          await sql.run(`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [v, now()]);
        }
      });
    }
  }
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
}

/** Splits a migration script on the semicolons that end its statements (none occur in literals). */
export function splitStatements(script: string): string[] {
  return script
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
