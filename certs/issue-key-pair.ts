import type { Authority } from './authority';
import { createKeyAndCsr } from './create-key-and-csr';
import type { Identity } from './identity';
import { signCsr } from './sign-csr';

/**
 * `createKeyAndCsr` + `signCsr` in one step, for certificates the authority's own process hands
 * out (server, gateway and operator certificates). Same guarantees and errors as `signCsr`; the
 * key is PKCS#8 PEM and, unlike with a CSR, passes through the authority: prefer a CSR wherever
 * the key holder can make one.
 */
export async function issueKeyPair(
  ca: Authority,
  identity: Identity,
  lifetimeSeconds: number,
  serverNames?: { dns: string[]; ips: string[] },
): Promise<{ certPem: string; keyPem: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr(identity.name);
  const certPem = await signCsr(ca, csrPem, identity, lifetimeSeconds, serverNames);
  return { certPem, keyPem };
}
