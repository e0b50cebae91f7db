import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadOrCreateAuthority, spiffeIdFor, type Authority, type Identity, type Role } from '../../certs';

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'podium-certs-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A throwaway authority for `trustDomain` in its own temporary directory. */
export async function testAuthority(trustDomain = 'podium.local'): Promise<Authority> {
  const { dir, cleanup } = tempDir();
  try {
    return await loadOrCreateAuthority(path.join(dir, 'ca'), trustDomain);
  } finally {
    cleanup();
  }
}

export function identity(trustDomain: string, role: Role, name: string): Identity {
  return { role, name, spiffeId: spiffeIdFor(trustDomain, role, name) };
}

/** DER bytes of the first certificate in a PEM string, decoded by hand (independent of certs/). */
export function pemToDer(pem: string): Buffer {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (m === null) throw new Error('no certificate in PEM');
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}
