import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { uriSansOf } from './uri-sans';
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
  const v = verified(ca, der);
  if (!v) return null;
  const t = now.getTime();
  return t >= v.notBefore && t <= v.notAfter ? v.identity : null;
}

/**
 * What verification found that does not depend on the time: the identity and the window in which
 * the certificate (and the CA) are valid. Cached per CA and certificate, since every call of a
 * connection presents the same certificate (parsing it was 8 % of a busy Pod API's time); the
 * window is checked on every call.
 */
interface Verified {
  identity: Identity;
  notBefore: number;
  notAfter: number;
}

const MAX_CACHED = 20_000;
let verifiedCache: { pem: string; trustDomain: string; entries: Map<string, Verified | null> } | undefined;

function verified(ca: { trustDomain: string; caCertPem: string }, der: Buffer): Verified | null {
  if (!Buffer.isBuffer(der) || der.length === 0 || der.length > MAX_CERT_BYTES) return null;
  if (verifiedCache?.pem !== ca.caCertPem || verifiedCache.trustDomain !== ca.trustDomain) {
    verifiedCache = { pem: ca.caCertPem, trustDomain: ca.trustDomain, entries: new Map() };
  }
  const key = der.toString('base64');
  const hit = verifiedCache.entries.get(key);
  if (hit !== undefined) return hit;
  const v = verifyUncached(ca, der);
  if (verifiedCache.entries.size >= MAX_CACHED) verifiedCache.entries.clear();
  verifiedCache.entries.set(key, v);
  return v;
}

function verifyUncached(ca: { trustDomain: string; caCertPem: string }, der: Buffer): Verified | null {
  try {
    const anchor = anchorFor(ca.caCertPem);
    if (!anchor.cert.ca) return null;
    const cert = new NodeX509Certificate(der);
    if (cert.ca) return null;
    if (!cert.checkIssued(anchor.cert) || !cert.verify(anchor.cert.publicKey)) return null;

    // Node's own parser (native), not the JavaScript ASN.1 one: after a restart every host's
    // certificate is new to the cache, and parsing them was the costliest step of a reconnect
    // storm. A name node has to quote (it holds a separator or a quote) is never one of ours.
    const uris = uriSansOf(cert.subjectAltName);
    if (uris.length !== 1) return null;
    const identity = parseSpiffeId(ca.trustDomain, uris[0]!);
    if (!identity) return null;
    const notBefore = Date.parse(cert.validFrom);
    const notAfter = Date.parse(cert.validTo);
    if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter)) return null;
    return {
      identity,
      notBefore: Math.max(notBefore, anchor.notBefore.getTime()),
      notAfter: Math.min(notAfter, anchor.notAfter.getTime()),
    };
  } catch {
    return null;
  }
}
