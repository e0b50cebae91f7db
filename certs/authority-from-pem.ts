import { randomBytes, X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { Authority } from './authority';
import { fingerprintOf } from './fingerprint-of';
import { privateKeyToPem, publicKeyDerOf, readPrivateKey } from './private-key';
import { randomSerialNumber } from './random-serial-number';
import { assertTrustDomain } from './spiffe-id';
import { EC_P256, ECDSA_SHA256, webcrypto, x509 } from './x509';

/*
 * Ten years, because rotating the root means re-joining every host; the leaves it signs are short
 * lived instead. One minute of backdating absorbs clock skew between the machines.
 */
const CA_YEARS = 10;
const CLOCK_SKEW_MS = 60_000;

/**
 * A new CA for `trustDomain`: self-signed ECDSA P-256, valid from now − 60 s for 10 years, with
 * basicConstraints CA (critical, path length 0: it signs leaves only), keyUsage keyCertSign and
 * cRLSign (critical), and URI SAN spiffe://<trustDomain>. The key is PKCS#8 PEM: a secret.
 */
export async function createCaPem(trustDomain: string): Promise<{ caCertPem: string; caKeyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_YEARS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    // A distinct name per CA, so that an old and a new CA side by side (rotation) never get confused.
    name: [{ CN: [`Podium CA ${randomBytes(4).toString('hex')}`] }, { O: [trustDomain] }],
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter,
    keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { caCertPem: cert.toString('pem'), caKeyPem: await privateKeyToPem(keys.privateKey) };
}

/**
 * An Authority from a CA certificate and key, wherever they were kept (files, the database).
 * Refuses (throws Error naming `what`) rather than repairs: a key that does not match the
 * certificate, a certificate that is not a CA, not valid now, or made for another trust domain.
 */
export function authorityFromPem(trustDomain: string, caCertPem: string, caKeyPem: string, what = { cert: 'CA certificate', key: 'CA key' }): Authority {
  assertTrustDomain(trustDomain);
  let cert: NodeX509Certificate;
  try {
    cert = new NodeX509Certificate(caCertPem);
  } catch {
    throw new Error(`${what.cert} is not a PEM certificate`);
  }
  if (!cert.ca) throw new Error(`${what.cert} is not a CA certificate (basicConstraints)`);
  const key = readPrivateKey(caKeyPem, what.key);
  if (!publicKeyDerOf(key).equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new Error(`${what.key} does not belong to the certificate ${what.cert}`);
  }
  const parsed = new x509.X509Certificate(caCertPem);
  const now = new Date();
  if (now < parsed.notBefore || now > parsed.notAfter) {
    throw new Error(`${what.cert} is not valid now (valid from ${parsed.notBefore.toISOString()} to ${parsed.notAfter.toISOString()})`);
  }
  const uris = (parsed.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
  if (uris.length !== 1 || uris[0] !== `spiffe://${trustDomain}`) {
    throw new Error(`${what.cert} was not made for trust domain ${trustDomain} (its URI SAN: ${uris.join(', ') || 'none'})`);
  }
  return Object.freeze({ trustDomain, caCertPem, caKeyPem, fingerprint: fingerprintOf(caCertPem) });
}
