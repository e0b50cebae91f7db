import { createHash, X509Certificate } from 'node:crypto';

/**
 * SHA-256 of a PEM certificate's DER, lowercase hex without colons (64 characters). This is what
 * a join token pins. For a PEM bundle, the first certificate counts. Throws Error when `certPem`
 * holds no parsable certificate.
 */
export function fingerprintOf(certPem: string): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new Error('not a PEM certificate: cannot compute its fingerprint');
  }
  return createHash('sha256').update(cert.raw).digest('hex');
}
