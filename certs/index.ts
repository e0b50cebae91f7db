/*
 * certs/ — Podium's X.509 authority. A leaf library: it imports nothing from server/, agent/ or
 * gateway/, and no gRPC.
 *
 * Design note.
 *
 * One self-signed ECDSA P-256 CA per trust domain signs every certificate of the platform: the
 * Pod API's (role server), the gateway's, operators' and each agent's (role agent, named after its
 * host). Workload identities for the hosts' mTLS proxies use the same trust domain.
 *
 * Why pinning by fingerprint. A joining agent has nothing yet to trust the Pod API with. The join
 * token it is given carries the SHA-256 fingerprint of the CA certificate, so the agent accepts
 * the CA it is shown only if its hash matches, before it sends the token's secret or its CSR.
 * There is no trust on first use: someone who sits between the agent and the Pod API cannot swap
 * in their own CA without also having forged the token, which travelled out of band.
 *
 * Why short lifetimes. Leaves live hours to days and renew at a random point between 50 % and
 * 80 % of their life (renewalTime), so a stolen key is useful only briefly, renewal is routine
 * and exercised constantly rather than a yearly surprise, and a fleet does not renew in lockstep.
 * The CA lives ten years because replacing it means re-joining every host.
 *
 * Why identity only from the URI SAN. The authority writes the SAN itself from the identity the
 * Pod API decided on (signCsr never copies anything a CSR asks for), and verifyPeer reads the
 * identity back only from there, parsed strictly (exactly one URI, our trust domain, one of four
 * shapes). The CN is informational, and nothing in a message body ever names its sender: a caller
 * is who its certificate says, so an agent can act only as its own host.
 *
 * Keys are ECDSA P-256 throughout: small, fast to generate on every renewal, and accepted by
 * node's TLS and therefore grpc-js.
 */

export type { Role, Identity } from './identity';
export type { Authority } from './authority';
export { loadOrCreateAuthority } from './load-or-create-authority';
export { authorityFromPem, createCaPem } from './authority-from-pem';
export { openSealedSecret, sealSecret } from './sealed-key';
export { loadOrCreateKeyFile, readKeyFile } from './key-file';
export { spiffeIdFor, workloadSpiffeId, parseSpiffeId, parseWorkloadId } from './spiffe-id';
export { isTenantName, TENANT_NAME_RULE } from './tenant-name';
export { createKeyAndCsr } from './create-key-and-csr';
export { signCsr, signEndpointCsr, signWorkloadCsr, workloadHostOf, type Workload } from './sign-csr';
export { issueKeyPair } from './issue-key-pair';
export { verifyPeer } from './verify-peer';
export { uriSansOf } from './uri-sans';
export { fingerprintOf } from './fingerprint-of';
export { createJoinToken, parseJoinToken } from './join-token';
export { hashSecret, secretMatches } from './hash-secret';
export { renewalTime } from './renewal-time';
export { validityOf } from './validity-of';
export { canonicalSerial, serialNumberOf } from './serial-number';
