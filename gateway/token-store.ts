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
 *
 * The tokens are kept by the storage module (server/storage), like the rest of Podium's state: in
 * a SQLite file of the gateway's own by default, or in the Pod API's PostgreSQL, where every
 * gateway sees the same tokens and a revocation holds at once on all of them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { isTenantName, TENANT_NAME_RULE } from '../certs';
import { Storage } from '../server/storage';

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
  private constructor(private readonly storage: Storage) {}

  /**
   * Opens the tokens at `target`: a SQLite file (created if missing, its owner's only; WAL and
   * synchronous=FULL, so that a token acknowledged as created survives a crash) or a
   * `postgres://` URL. The schema is brought up to date, a first release's token file included.
   */
  static async open(target: string): Promise<TokenStore> {
    return new TokenStore(await Storage.open(target, { processName: `gateway-${process.pid}`, followEvents: false }));
  }

  /**
   * Creates a token for `tenant` with `role` under a `name` unique in the store (printable
   * ASCII, at most 128 characters) and returns it: the only time the token exists outside its
   * holder's hands. Throws, storing nothing, if the tenant is not a tenant name (certs/tenant-name,
   * the rule the Pod API holds `podium-tenant` to: a token it would refuse is never made), the
   * role is unknown, or the name is malformed or taken.
   */
  async create(tenant: string, name: string, role: TokenRole = 'customer'): Promise<string> {
    if (!isTenantName(tenant)) throw new Error(`tenant must be ${TENANT_NAME_RULE}`);
    if (!NAME_PATTERN.test(name)) throw new Error('token name must be 1 to 128 printable ASCII characters');
    if (!TOKEN_ROLES.includes(role)) throw new Error(`role must be ${TOKEN_ROLES.join(' or ')}`);
    const token = TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url');
    const created = await this.storage.transaction((u) => u.apiTokens.insert({ hash: hashToken(token), tenant, name, role, createdAt: Date.now() }));
    if (!created) throw new Error(`a token named "${name}" already exists`);
    return token;
  }

  /** Who a token stands for, or null if it is malformed, unknown or revoked. */
  async lookup(token: string): Promise<TokenIdentity | null> {
    if (typeof token !== 'string' || !TOKEN_PATTERN.test(token)) return null;
    const row = await this.storage.read((r) => r.apiTokens.byHash(hashToken(token)));
    return row ? { tenant: row.tenant, name: row.name, role: row.role as TokenRole } : null;
  }

  /** Revokes the token of that name; false if there was none. Takes effect on the next request. */
  revoke(name: string): Promise<boolean> {
    return this.storage.transaction((u) => u.apiTokens.deleteByName(name));
  }

  /** Every token's tenant, name, role and creation time (never the token or its hash), oldest first. */
  async list(): Promise<TokenRecord[]> {
    const rows = await this.storage.read((r) => r.apiTokens.list());
    return rows.map((r) => ({ tenant: r.tenant, name: r.name, role: r.role as TokenRole, createdAt: new Date(r.createdAt).toISOString() }));
  }

  close(): Promise<void> {
    return this.storage.close();
  }
}

function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
