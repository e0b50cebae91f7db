import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { Identity } from './identity';
import { parseSpiffeId } from './spiffe-id';
import { x509 } from './x509';

/** A peer certificate of ours is well under 2 KiB; refuse to parse anything huge. */
const MAX_CERT_BYTES = 16 * 1024;

/** The last CA parsed: verifyPeer runs per call, and the CA practically never changes. */
let anchorCache: { pem: string; cert: NodeX509Certificate; notBefore: Date; notAfter: Date } | undefined;

function anchorFor(caCertPem: string): NonNullable<typeof anchorCache> {
  if (anchorCache?.pem !== caCertPem) {
    const parsed = new x509.X509Certificate(caCertPem);
    anchorCache = {
      pem: caCertPem,
      cert: new NodeX509Certificate(caCertPem),
      notBefore: parsed.notBefore,
      notAfter: parsed.notAfter,
    };
  }
  return anchorCache;
}

/**
 * Verifies a peer certificate and returns the identity in its URI SAN, or null when any check
 * fails (it never throws). `der` is the raw DER as node TLS and grpc-js give it
 * (`getPeerCertificate().raw`, `getAuthContext().sslPeerCertificate.raw`).
 *
 * Checks, all of which must hold: the certificate parses; it is not a CA; its issuer is this CA
 * (`checkIssued`) and its signature verifies with the CA's public key; `now` lies within its
 * validity and within the CA's; it has exactly one URI SAN, and that is a role identity of
 * `ca.trustDomain` (see `parseSpiffeId`). The subject CN is ignored: identity comes only from the
 * SAN. Needs no private key, so agents and the gateway can call it. Synchronous.
 *
 * It does not check revocation; the caller consults its revocation list by serial or identity.
 */
export function verifyPeer(
  ca: { trustDomain: string; caCertPem: string },
  der: Buffer,
  now: Date = new Date(),
): Identity | null {
  try {
    if (!Buffer.isBuffer(der) || der.length === 0 || der.length > MAX_CERT_BYTES) return null;
    const anchor = anchorFor(ca.caCertPem);
    if (!anchor.cert.ca) return null;
    const cert = new NodeX509Certificate(der);
    if (cert.ca) return null;
    if (!cert.checkIssued(anchor.cert) || !cert.verify(anchor.cert.publicKey)) return null;

    const t = now.getTime();
    const parsed = new x509.X509Certificate(new Uint8Array(der));
    if (!(t >= parsed.notBefore.getTime() && t <= parsed.notAfter.getTime())) return null;
    if (!(t >= anchor.notBefore.getTime() && t <= anchor.notAfter.getTime())) return null;

    const uris = (parsed.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? []).filter(
      (n) => n.type === 'url',
    );
    if (uris.length !== 1) return null;
    return parseSpiffeId(ca.trustDomain, uris[0]!.value);
  } catch {
    return null;
  }
}
