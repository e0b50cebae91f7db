/**
 * API tokens of the Customer API. A token is shown once, when it is created; the store keeps
 * only its SHA-256, so that a copy of the database (a backup, a stolen disk) lets no one in.
 * Looking a token up is looking its hash up: the secret is never compared byte by byte, so the
 * lookup leaks nothing a timing attack could use.
 *
 * Tokens are `pdm_` + 32 random bytes in base64url: 256 bits, so that a hash needs no salt and
 * no slow KDF; the prefix lets secret scanners recognise a leaked token.
 *
 * Each token has a role: `customer` (the default) acts for its tenant only; `admin` also sees
 * the fleet (ListHosts), which shows every tenant's usage. The gateway passes the role to the
 * Pod API, which decides what it allows.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync } from 'node:fs';
import Database from 'better-sqlite3';
import { isTenantName, TENANT_NAME_RULE } from '../certs';
import { TOKEN_MIGRATIONS } from './token-migrations';

export const TOKEN_PREFIX = 'pdm_';

const TOKEN_BYTES = 32;
/** base64url of 32 bytes, without padding. */
const TOKEN_PATTERN = /^pdm_[A-Za-z0-9_-]{43}$/;
const NAME_PATTERN = /^[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?$/;

/** What a token may do beyond acting for its tenant: `admin` also sees the fleet. */
export type TokenRole = 'customer' | 'admin';

export const TOKEN_ROLES: readonly TokenRole[] = Object.freeze(['customer', 'admin']);

export interface TokenIdentity {
  tenant: string;
  name: string;
  role: TokenRole;
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
      migrate(db);
    } catch (err) {
      db.close();
      throw err;
    }
    return new TokenStore(db);
  }

  /**
   * Creates a token for `tenant` with `role` under a `name` unique in the store (printable
   * ASCII, at most 128 characters) and returns it: the only time the token exists outside its
   * holder's hands. Throws, storing nothing, if the tenant is not a tenant name (certs/tenant-name,
   * the rule the Pod API holds `podium-tenant` to: a token it would refuse is never made), the
   * role is unknown, or the name is malformed or taken.
   */
  create(tenant: string, name: string, role: TokenRole = 'customer'): string {
    if (!isTenantName(tenant)) throw new Error(`tenant must be ${TENANT_NAME_RULE}`);
    if (!NAME_PATTERN.test(name)) throw new Error('token name must be 1 to 128 printable ASCII characters');
    if (!TOKEN_ROLES.includes(role)) throw new Error(`role must be ${TOKEN_ROLES.join(' or ')}`);
    const token = TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url');
    try {
      this.db
        .prepare('INSERT INTO api_tokens (hash, tenant, name, role, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(hashToken(token), tenant, name, role, new Date().toISOString());
    } catch (err) {
      if (isUniqueViolation(err)) throw new Error(`a token named "${name}" already exists`);
      throw err;
    }
    return token;
  }

  /** Who a token stands for, or null if it is malformed, unknown or revoked. */
  lookup(token: string): TokenIdentity | null {
    if (typeof token !== 'string' || !TOKEN_PATTERN.test(token)) return null;
    const row = this.db.prepare('SELECT tenant, name, role FROM api_tokens WHERE hash = ?').get(hashToken(token)) as
      | TokenIdentity
      | undefined;
    return row ? { tenant: row.tenant, name: row.name, role: row.role } : null;
  }

  /** Revokes the token of that name; false if there was none. Takes effect on the next request. */
  revoke(name: string): boolean {
    return this.db.prepare('DELETE FROM api_tokens WHERE name = ?').run(name).changes > 0;
  }

  /** Every token's tenant, name, role and creation time (never the token or its hash), oldest first. */
  list(): TokenRecord[] {
    const rows = this.db
      .prepare('SELECT tenant, name, role, created_at AS createdAt FROM api_tokens ORDER BY created_at, name')
      .all() as TokenRecord[];
    return rows.map((r) => ({ tenant: r.tenant, name: r.name, role: r.role, createdAt: r.createdAt }));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * Brings the schema up to the last of TOKEN_MIGRATIONS. Each step re-reads the version inside
 * an immediate (write-locked) transaction, so a CLI and a gateway opening the file at once do
 * not both run it. A database from a newer release is refused rather than guessed at.
 */
function migrate(db: Database.Database): void {
  const version = (): number => db.pragma('user_version', { simple: true }) as number;
  const found = version();
  if (found > TOKEN_MIGRATIONS.length) {
    throw new Error(`the token database is at schema version ${found}, newer than this gateway knows (${TOKEN_MIGRATIONS.length})`);
  }
  const step = db.transaction((index: number) => {
    if (version() !== index) return;
    db.exec(TOKEN_MIGRATIONS[index]!);
    db.pragma(`user_version = ${index + 1}`);
  });
  for (let index = found; index < TOKEN_MIGRATIONS.length; index++) step.immediate(index);
}

function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE';
}
