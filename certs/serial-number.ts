import { X509Certificate } from 'node:crypto';

/*
 * One spelling of a certificate serial everywhere: the revocation list, the database, the CLI
 * and the TLS listener must agree on it, yet node prints serials in upper case with whole leading
 * zero bytes kept (BN_bn2hex), operators paste them with colons, and randomSerialNumber writes
 * lower case. The canonical form is the integer in lower-case hex without leading zeros.
 */

const HEX = /^[0-9a-f]+$/;

/**
 * The canonical spelling of a serial number typed or printed anywhere: case, colons, spaces and
 * leading zeros do not matter ("0A:1B" and "a1b" are the same serial). Null when `text` is not a
 * hexadecimal number of at most 20 octets (RFC 5280's limit).
 */
export function canonicalSerial(text: string): string | null {
  if (typeof text !== 'string') return null;
  const hex = text.trim().toLowerCase().replace(/[:\s]/g, '');
  if (!HEX.test(hex) || hex.length > 40) return null;
  return hex.replace(/^0+(?=.)/, '');
}

/**
 * The canonical serial of a certificate given as PEM (the first of a bundle) or DER. Throws Error
 * when it is not a certificate.
 */
export function serialNumberOf(cert: string | Buffer): string {
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(cert);
  } catch {
    throw new Error('not a certificate: cannot read its serial number');
  }
  const serial = canonicalSerial(parsed.serialNumber);
  if (serial === null) throw new Error('the certificate has a serial number longer than 20 octets');
  return serial;
}
