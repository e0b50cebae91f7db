/**
 * The fleet's certificate authority, kept in the database so that every Pod API process (a leader
 * and its standbys) signs and verifies with the same one. The CA key is stored sealed under a key
 * file that each process is given (`--ca-key-file`), never in plain: a copy of the database
 * alone (a backup) cannot sign.
 *
 * The first process to start creates the CA; a process that finds one stored opens it. Two
 * processes starting at once both try to store theirs and keep whichever was stored first. A data
 * directory from before (ca/ca.crt and ca/ca.key on disk) is imported on its first start.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { authorityFromPem, createCaPem, fingerprintOf, loadOrCreateAuthority, openSealedSecret, sealSecret, type Authority } from '../certs';
import type { Storage } from './storage';

const purpose = (trustDomain: string) => `podium-ca-key:${trustDomain}`;

/**
 * The authority stored in `storage`, creating (or importing from `legacyDir`) and storing it when
 * there is none. Throws when the stored one is of another trust domain, or its key cannot be
 * opened with `sealingKey` (another key file).
 */
export async function loadOrCreateStoredAuthority(storage: Storage, trustDomain: string, sealingKey: Buffer, legacyDir?: string): Promise<Authority> {
  const stored = await storage.read((r) => r.authority.get());
  if (!stored) {
    const fresh =
      legacyDir && existsSync(join(legacyDir, 'ca.key'))
        ? await loadOrCreateAuthority(legacyDir, trustDomain)
        : { trustDomain, ...(await createCaPem(trustDomain)) };
    await storage.transaction((u) =>
      u.authority.insertIfAbsent({ trustDomain, certPem: fresh.caCertPem, keyEncrypted: sealSecret(fresh.caKeyPem, sealingKey, purpose(trustDomain)) }, Date.now()),
    );
    // Whoever stored first: read it back, so that every process ends with the same CA.
    return loadOrCreateStoredAuthority(storage, trustDomain, sealingKey);
  }
  if (stored.trustDomain !== trustDomain) {
    throw new Error(`the database holds the authority of trust domain ${stored.trustDomain}, not ${trustDomain}`);
  }
  let keyPem: string;
  try {
    keyPem = openSealedSecret(stored.keyEncrypted, sealingKey, purpose(trustDomain));
  } catch (err) {
    throw new Error(`the CA key in the database cannot be opened: ${(err as Error).message}; every Pod API process needs the same --ca-key-file`);
  }
  const authority = authorityFromPem(trustDomain, stored.certPem, keyPem, { cert: 'the CA certificate in the database', key: 'the CA key in the database' });
  if (authority.fingerprint !== fingerprintOf(stored.certPem)) throw new Error('the CA certificate changed while it was read');
  return authority;
}
