import { x509 } from './x509';

/**
 * notBefore/notAfter of a PEM certificate (the first one of a bundle), as Dates with the
 * certificate's one-second precision. Throws Error when `certPem` is not a certificate.
 */
export function validityOf(certPem: string): { notBefore: Date; notAfter: Date } {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(certPem);
  } catch {
    throw new Error('not a PEM certificate: cannot read its validity');
  }
  return { notBefore: cert.notBefore, notAfter: cert.notAfter };
}
