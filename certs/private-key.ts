import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { EC_P256, webcrypto, x509 } from './x509';

/** Internal to certs/: moving ECDSA P-256 private keys between PEM, node KeyObject and WebCrypto. */

/**
 * Parses a PEM private key (PKCS#8 "PRIVATE KEY", or SEC1 "EC PRIVATE KEY" as openssl writes it)
 * and checks that it is an ECDSA P-256 key. Throws Error naming `what` otherwise. The error never
 * contains key material.
 */
export function readPrivateKey(pem: string, what: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new Error(`${what} is not a readable PEM private key`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error(`${what} is not an ECDSA P-256 key`);
  }
  return key;
}

/** A WebCrypto signing key for @peculiar/x509, from a PEM private key (see `readPrivateKey`). */
export async function importSigningKey(pem: string, what: string): Promise<webcrypto.CryptoKey> {
  const pkcs8 = readPrivateKey(pem, what).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', pkcs8, EC_P256, false, ['sign']);
}

/** PKCS#8 PEM of a WebCrypto private key (which must be extractable). */
export async function privateKeyToPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** DER SubjectPublicKeyInfo of the public half of a private key: to compare with a certificate's. */
export function publicKeyDerOf(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' });
}
