/**
 * The token database's schema, in versions (SQLite's `user_version`). Each step runs once, in
 * order, in one transaction with the bump of the version; a step is never edited once shipped,
 * only followed by another.
 */
export const TOKEN_MIGRATIONS: readonly string[] = [
  // 1: the first release. Its databases have user_version 0 and this table already, hence
  // IF NOT EXISTS: for them the step only records the version.
  `
  CREATE TABLE IF NOT EXISTS api_tokens (
    hash       TEXT PRIMARY KEY,  -- sha256 of the token, lowercase hex
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
  ) STRICT;
  `,
  // 2: token roles. Every token made before roles becomes a customer: an upgrade gives no one
  // the fleet view; an operator makes admin tokens on purpose (podium token create --admin).
  `
  ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin'));
  `,
];
