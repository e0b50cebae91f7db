import { randomBytes } from 'node:crypto';
import { hashSecret } from './hash-secret';
import { isRole, type Role } from './identity';

/*
 * A join token is "PDMJ1.<fingerprint>.<id>.<secret>":
 *   PDMJ1        format and version, so a token is recognisable in a paste and can evolve;
 *   fingerprint  SHA-256 of the CA certificate (64 lowercase hex): the agent pins the Pod API's CA
 *                by it before sending anything, so there is no trust on first use;
 *   id           8 random bytes, hex: lets the server find the token without comparing secrets;
 *   secret       32 random bytes, base64url (43 characters): proves possession; stored only hashed.
 * '.' cannot occur in any part, so splitting on it is unambiguous.
 */

const PREFIX = 'PDMJ1';
const FINGERPRINT = /^[0-9a-f]{64}$/;
const ID = /^[0-9a-f]{16}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;

/**
 * A new join token for `role`. `token` goes to the operator once and is never stored; the server
 * stores `id`, `secretHash` and `role`. Throws Error when the fingerprint is not 64 lowercase hex
 * or the role is unknown.
 */
export function createJoinToken(
  fingerprint: string,
  role: Role,
): { token: string; id: string; secretHash: string; role: Role } {
  if (typeof fingerprint !== 'string' || !FINGERPRINT.test(fingerprint)) {
    throw new Error('createJoinToken: fingerprint must be 64 lowercase hex characters (see fingerprintOf)');
  }
  if (!isRole(role)) throw new Error(`createJoinToken: unknown role ${JSON.stringify(String(role))}`);
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { token: `${PREFIX}.${fingerprint}.${id}.${secret}`, id, secretHash: hashSecret(secret), role };
}

/**
 * Splits a join token into its parts. Surrounding whitespace (from a paste) is ignored. Throws
 * Error("join token is malformed: …") naming the first part that is wrong; the message never
 * repeats any of the token's text, since the token is a secret.
 */
export function parseJoinToken(token: string): { fingerprint: string; id: string; secret: string } {
  const malformed = (what: string): Error => new Error(`join token is malformed: ${what}`);
  if (typeof token !== 'string') throw malformed('not a string');
  const parts = token.trim().split('.');
  if (parts.length !== 4) throw malformed(`expected 4 parts separated by '.', found ${parts.length}`);
  const [prefix, fingerprint, id, secret] = parts as [string, string, string, string];
  if (prefix !== PREFIX) throw malformed(`it does not start with ${PREFIX}`);
  if (!FINGERPRINT.test(fingerprint)) throw malformed('the CA fingerprint is not 64 lowercase hex characters');
  if (!ID.test(id)) throw malformed('the token id is not 16 lowercase hex characters');
  // 43 base64url characters carry 258 bits; only the canonical spelling of 32 bytes is accepted.
  if (!SECRET.test(secret) || Buffer.from(secret, 'base64url').toString('base64url') !== secret) {
    throw malformed('the secret is not 43 base64url characters (32 bytes)');
  }
  return { fingerprint, id, secret };
}
