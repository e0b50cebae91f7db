/**
 * API tokens of the Customer API. A token is shown once, when it is created; the store keeps
 * only its SHA-256, so that a copy of the database (a backup, a stolen disk) lets no one in.
 * Looking a token up is looking its hash up: the secret is never compared byte by byte, so the
 * lookup leaks nothing a timing attack could use.
 *
 * Tokens are `pdm_` + 32 random bytes in base64url: 256 bits, so that a hash needs no salt and
 * no slow KDF; the prefix lets secret scanners recognise a leaked token.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync } from 'node:fs';
import Database from 'better-sqlite3';
import { isTenantName, TENANT_NAME_RULE } from '../certs';

export const TOKEN_PREFIX = 'pdm_';

const TOKEN_BYTES = 32;
/** base64url of 32 bytes, without padding. */
const TOKEN_PATTERN = /^pdm_[A-Za-z0-9_-]{43}$/;
const NAME_PATTERN = /^[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?$/;

export interface TokenIdentity {
  tenant: string;
  name: string;
}

export interface TokenRecord extends TokenIdentity {
  /** RFC 3339, UTC. */
  createdAt: string;
}

export class TokenStore {
  private constructor(private readonly db: Database.Database) {}

  /**
   * Opens (creating if need be) the token database at `path`, in WAL mode with synchronous=FULL:
   * a token acknowledged as created survives a crash. The file is made readable by its owner only.
   */
  static open(path: string): TokenStore {
    const db = new Database(path);
    try {
      if (path !== ':memory:' && !path.startsWith('file:')) chmodSync(path, 0o600);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      db.exec(`
        CREATE TABLE IF NOT EXISTS api_tokens (
          hash       TEXT PRIMARY KEY,  -- sha256 of the token, lowercase hex
          tenant     TEXT NOT NULL,
          name       TEXT NOT NULL UNIQUE,
          created_at TEXT NOT NULL
        ) STRICT;
      `);
    } catch (err) {
      db.close();
      throw err;
    }
    return new TokenStore(db);
  }

  /**
   * Creates a token for `tenant` under a `name` unique in the store (printable ASCII, at most
   * 128 characters) and returns it: the only time the token exists outside its holder's hands.
   * Throws, storing nothing, if the tenant is not a tenant name (certs/tenant-name, the rule the
   * Pod API holds `podium-tenant` to: a token it would refuse is never made) or the name is
   * malformed or taken.
   */
  create(tenant: string, name: string): string {
    if (!isTenantName(tenant)) throw new Error(`tenant must be ${TENANT_NAME_RULE}`);
    if (!NAME_PATTERN.test(name)) throw new Error('token name must be 1 to 128 printable ASCII characters');
    const token = TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url');
    try {
      this.db
        .prepare('INSERT INTO api_tokens (hash, tenant, name, created_at) VALUES (?, ?, ?, ?)')
        .run(hashToken(token), tenant, name, new Date().toISOString());
    } catch (err) {
      if (isUniqueViolation(err)) throw new Error(`a token named "${name}" already exists`);
      throw err;
    }
    return token;
  }

  /** Who a token stands for, or null if it is malformed, unknown or revoked. */
  lookup(token: string): TokenIdentity | null {
    if (typeof token !== 'string' || !TOKEN_PATTERN.test(token)) return null;
    const row = this.db.prepare('SELECT tenant, name FROM api_tokens WHERE hash = ?').get(hashToken(token)) as
      | TokenIdentity
      | undefined;
    return row ? { tenant: row.tenant, name: row.name } : null;
  }

  /** Revokes the token of that name; false if there was none. Takes effect on the next request. */
  revoke(name: string): boolean {
    return this.db.prepare('DELETE FROM api_tokens WHERE name = ?').run(name).changes > 0;
  }

  /** Every token's tenant, name and creation time (never the token or its hash), oldest first. */
  list(): TokenRecord[] {
    const rows = this.db
      .prepare('SELECT tenant, name, created_at AS createdAt FROM api_tokens ORDER BY created_at, name')
      .all() as TokenRecord[];
    return rows.map((r) => ({ tenant: r.tenant, name: r.name, createdAt: r.createdAt }));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE';
}
