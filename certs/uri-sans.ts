/**
 * The URI names of a certificate's subjectAltName as node prints it (`X509Certificate.subjectAltName`,
 * `PeerCertificate.subjectaltname`: "DNS:a, URI:spiffe://…"), in order. Empty when there are none,
 * and when node had to quote a name (it contains ", " or a quote): such a list cannot be split
 * safely, and no certificate of ours carries one.
 */
export function uriSansOf(subjectAltName: string | undefined): string[] {
  const san = subjectAltName ?? '';
  if (san.includes('"')) return [];
  return san.split(', ').filter((n) => n.startsWith('URI:')).map((n) => n.slice('URI:'.length));
}
