import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { TENANT_NAME_RULE } from '../../certs';
import { TokenStore } from '../../gateway';
import { authenticate } from '../../gateway/authenticate';
import { GatewayError } from '../../gateway/gateway-error';

/** The token table as the first release made it, before tenant names had one rule. */
const FIRST_SCHEMA = `
  CREATE TABLE api_tokens (
    hash       TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
  ) STRICT;`;

describe('gateway authenticate', () => {
  let dir: string;
  let store: TokenStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podium-authenticate-'));
  });

  afterEach(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a token stored before the tenant rule for a tenant the Pod API would refuse, naming the rule', async () => {
    const path = join(dir, 'tokens.db');
    const legacy = `pdm_${'A'.repeat(43)}`;
    const db = new Database(path);
    db.exec(FIRST_SCHEMA);
    db.prepare('INSERT INTO api_tokens VALUES (?, ?, ?, ?)').run(createHash('sha256').update(legacy).digest('hex'), 'Acme Corp', 'old', new Date().toISOString());
    db.close();

    store = await TokenStore.open(path);
    await assert.rejects(
      authenticate(`Bearer ${legacy}`, store),
      (err: unknown) =>
        err instanceof GatewayError &&
        err.code === status.UNAUTHENTICATED &&
        err.message.includes(TENANT_NAME_RULE) &&
        !err.message.includes(legacy) &&
        /create a new token/.test(err.message),
    );
    const fresh = await store.create('acme', 'new');
    assert.equal((await authenticate(`Bearer ${fresh}`, store)).tenant, 'acme');
  });
});
