import { createHash, timingSafeEqual } from 'node:crypto';

/*
 * Join-token secrets are 32 random bytes, so a plain SHA-256 is enough to store them: there is
 * nothing to brute-force that a slow hash would protect. The server keeps only the hash.
 */

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/** SHA-256 of the UTF-8 bytes of `secret`, lowercase hex (64 characters). */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/**
 * True when `hashSecret(secret) === hash`, compared in constant time (crypto.timingSafeEqual) so
 * that response times tell nothing about how much of a guess was right. False, never an
 * exception, when `hash` is not a 64-character lowercase hex string.
 */
export function secretMatches(secret: string, hash: string): boolean {
  if (typeof secret !== 'string' || typeof hash !== 'string' || !HEX_SHA256.test(hash)) return false;
  return timingSafeEqual(Buffer.from(hashSecret(secret), 'hex'), Buffer.from(hash, 'hex'));
}
