import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/*
 * A private key sealed for storage where others can read (the database every Pod API process
 * shares): AES-256-GCM under a 32-byte key that lives outside the database, in a key file given
 * to each Pod API process. "PDMS1.<nonce>.<ciphertext>.<tag>", base64url parts. The additional
 * data binds the sealed key to its use and trust domain, so a sealed key cannot be moved to
 * another row or trust domain and opened there.
 */

const PREFIX = 'PDMS1';

/** Seals `plaintext` (a PEM key) under `key` (32 bytes) for `purpose`, e.g. "ca-key:podium.local". */
export function sealSecret(plaintext: string, key: Buffer, purpose: string): string {
  if (key.length !== 32) throw new Error('the sealing key must be 32 bytes');
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(purpose));
  const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [PREFIX, nonce.toString('base64url'), sealed.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

/**
 * Opens what sealSecret made. Throws Error (without any of the secret) when the format is wrong,
 * the key is another one, or the text was altered.
 */
export function openSealedSecret(sealed: string, key: Buffer, purpose: string): string {
  const parts = sealed.split('.');
  if (parts.length !== 4 || parts[0] !== PREFIX) throw new Error('the sealed secret is not in the PDMS1 format');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(parts[1]!, 'base64url'));
    decipher.setAAD(Buffer.from(purpose));
    decipher.setAuthTag(Buffer.from(parts[3]!, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(parts[2]!, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new Error('the sealed secret cannot be opened with this key file (another key, or altered)');
  }
}
