import { X509Certificate } from 'node:crypto';

/**
 * notBefore/notAfter of a PEM certificate (the first one of a bundle), as Dates with the
 * certificate's one-second precision. Throws Error when `certPem` is not a certificate.
 * Read by node's own parser: every Join and Renew records the validity of what it signed, and the
 * JavaScript ASN.1 parser cost a millisecond of the event loop each time.
 */
export function validityOf(certPem: string): { notBefore: Date; notAfter: Date } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new Error('not a PEM certificate: cannot read its validity');
  }
  // validFrom/validTo are OpenSSL's "Mmm dd hh:mm:ss yyyy GMT", which Date parses.
  return { notBefore: new Date(Date.parse(cert.validFrom)), notAfter: new Date(Date.parse(cert.validTo)) };
}
