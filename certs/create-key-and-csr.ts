import { privateKeyToPem } from './private-key';
import { EC_P256, ECDSA_SHA256, webcrypto, x509 } from './x509';

/**
 * A new ECDSA P-256 key and a PKCS#10 CSR for it, signed by that key, with subject CN=commonName
 * and nothing else (no requested extensions: the authority decides what goes into the
 * certificate). `keyPem` is PKCS#8 PEM and never leaves the process that called this, except to
 * its own key file. Throws Error when `commonName` is empty or longer than 64 characters.
 */
export async function createKeyAndCsr(commonName: string): Promise<{ keyPem: string; csrPem: string }> {
  if (typeof commonName !== 'string' || commonName.length === 0 || commonName.length > 64) {
    throw new Error('createKeyAndCsr: commonName must be 1-64 characters');
  }
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [commonName] }],
    keys,
    signingAlgorithm: ECDSA_SHA256,
  });
  return { keyPem: await privateKeyToPem(keys.privateKey), csrPem: csr.toString('pem') };
}
