/**
 * What the `podium certs` commands do, as functions (the CLI, podium dev and the tests call them):
 * join tokens, client certificates straight from the CA, revocations. Each works on the Pod API's
 * database whether the server runs or not.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalSerial, createJoinToken, issueKeyPair, spiffeIdFor, type Role } from '../certs';
import { certificateRecord, DEFAULT_REVOKE_REASON, nameViolation, reasonViolation, revokeCertificate, revokeHost } from '../server';
import { ConfigError } from './config';
import { withAuthority, withStorage, type StateLocation } from './server-state';

export interface JoinTokenOptions {
  /** How many Joins the token allows (default 1). */
  uses?: number;
  /** Binds the token to this host id (agents only): a Join gets exactly it. */
  hostId?: string;
  /** The Join may take over `hostId` while it holds a valid certificate, revoking that. */
  replace?: boolean;
}

/**
 * Stores a new join token's hash in the server's database and returns the token (printed once,
 * never stored). Throws ConfigError naming the flag when the options do not make sense: `uses`
 * not a positive integer, `hostId` not a valid host id or given for another role than agent,
 * `replace` without `hostId` (there would be no host to replace).
 */
export async function createStoredJoinToken(at: StateLocation, trustDomain: string, role: Role, ttlMs: number, opts: JoinTokenOptions = {}): Promise<string> {
  const uses = opts.uses ?? 1;
  if (!Number.isInteger(uses) || uses <= 0) throw new ConfigError('--uses', `expected a positive integer, got ${uses}`);
  const hostId = opts.hostId ?? '';
  if (hostId) {
    if (role !== 'agent') throw new ConfigError('--host-id', `only agent tokens are bound to a host id, not ${role} tokens`);
    const v = nameViolation('--host-id', hostId);
    if (v) throw new ConfigError(v.field, v.description);
  }
  if (opts.replace && !hostId) throw new ConfigError('--replace', 'needs --host-id: the host the token may take over');
  if (typeof at === 'string') mkdirSync(at, { recursive: true, mode: 0o700 });
  return withAuthority(at, trustDomain, async (storage, ca) => {
    const t = createJoinToken(ca.fingerprint, role);
    await storage.transaction((u) =>
      u.joinTokens.insert({ id: t.id, secretHash: t.secretHash, role, expiresAt: Date.now() + ttlMs, uses, hostId, replace: Boolean(opts.replace) }, Date.now()),
    );
    return t.token;
  });
}

/**
 * `podium certs revoke`: writes the revocation to the server's database (a running server takes
 * it up within a second) and returns what to print. Exactly one of `host` and `serial`. Throws
 * ConfigError for bad flags, Error for an unknown host or serial.
 */
export async function revokeFromCli(at: StateLocation, what: { host?: string; serial?: string; reason: string }): Promise<string> {
  if ((what.host === undefined) === (what.serial === undefined)) throw new ConfigError('--host/--serial', 'give exactly one of them');
  const reason = what.reason.trim() || DEFAULT_REVOKE_REASON;
  const bad = reasonViolation(reason);
  if (bad) throw new ConfigError('--reason', bad.description);
  if (typeof at === 'string' && !existsSync(join(at, 'podium.db'))) throw new ConfigError('--data-dir', `no server state at ${join(at, 'podium.db')}`);
  if (what.host !== undefined) {
    const v = nameViolation('--host', what.host);
    if (v) throw new ConfigError(v.field, v.description);
  }
  const serial = what.serial === undefined ? null : canonicalSerial(what.serial);
  if (what.serial !== undefined && serial === null) throw new ConfigError('--serial', 'expected a certificate serial number in hex');
  return withStorage(at, async (storage) => {
    if (what.host !== undefined) {
      const done = await revokeHost(storage, what.host, reason);
      if (!done) throw new Error(`host "${what.host}" is not known to this Pod API`);
      const serials = done.revoked.map((c) => c.serial);
      return (
        `revoked host ${what.host}: ${serials.length} certificate${serials.length === 1 ? '' : 's'}${serials.length ? ` (${serials.join(', ')})` : ''}; ` +
        `${done.lost.length} instance${done.lost.length === 1 ? '' : 's'} to be placed again`
      );
    }
    const done = await revokeCertificate(storage, serial!, reason);
    if (!done) throw new Error(`no certificate with serial ${serial} was issued by this Pod API`);
    const c = done.certificate;
    return done.already
      ? `certificate ${serial} (${c.role} ${c.name}) was already revoked at ${new Date(c.revokedAt!).toISOString()}`
      : `revoked certificate ${serial} (${c.role} ${c.name})`;
  });
}

/** Writes <role>.crt, <role>.key (0600) and ca.crt into `out`, and records the certificate in the server's database. */
export async function issueClientCertificate(at: StateLocation, trustDomain: string, role: Role, name: string, out: string, lifetimeSeconds: number): Promise<void> {
  if (typeof at === 'string') mkdirSync(at, { recursive: true, mode: 0o700 });
  const { pair, caPem } = await withAuthority(at, trustDomain, async (storage, ca) => {
    const identity = { role, name, spiffeId: spiffeIdFor(trustDomain, role, name) };
    const issued = await issueKeyPair(ca, identity, lifetimeSeconds);
    await storage.transaction((u) => u.certificates.insert(certificateRecord(issued.certPem, identity, 'podium certs issue'), Date.now()));
    return { pair: issued, caPem: ca.caCertPem };
  });
  mkdirSync(out, { recursive: true, mode: 0o700 });
  writeFileSync(join(out, `${role}.key`), pair.keyPem, { mode: 0o600 });
  writeFileSync(join(out, `${role}.crt`), pair.certPem, { mode: 0o644 });
  writeFileSync(join(out, 'ca.crt'), caPem, { mode: 0o644 });
}

