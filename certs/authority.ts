/**
 * Podium's certificate authority as the rest of the code sees it: one self-signed ECDSA P-256 CA
 * per trust domain. Whoever holds an `Authority` can sign certificates for any identity, so it
 * lives only in the Pod API process; agents and the gateway need just `trustDomain` and
 * `caCertPem` (see `verifyPeer`).
 */
export interface Authority {
  /** e.g. "podium.local"; the CA certificate carries it as its URI SAN spiffe://<trustDomain>. */
  trustDomain: string;
  caCertPem: string;
  /** PKCS#8 or SEC1 PEM. A secret: never log it. */
  caKeyPem: string;
  /** SHA-256 of the CA certificate's DER, lowercase hex, no colons (what join tokens pin). */
  fingerprint: string;
}
