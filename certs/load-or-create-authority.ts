import { constants as fsConstants, promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { Authority } from './authority';
import { authorityFromPem, createCaPem } from './authority-from-pem';
import { fingerprintOf } from './fingerprint-of';
import { assertTrustDomain } from './spiffe-id';

const CERT_FILE = 'ca.crt';
const KEY_FILE = 'ca.key';

/**
 * Loads <dir>/ca.crt and <dir>/ca.key, or creates both when neither exists.
 *
 * Creating: the directory is made with mode 0700 (if it did not exist), the key file 0600, the
 * certificate 0644. The CA is self-signed, ECDSA P-256, valid from now − 60 s for 10 years, with
 * basicConstraints CA (critical, path length 0: it signs leaves only), keyUsage keyCertSign and
 * cRLSign (critical), and URI SAN spiffe://<trustDomain>. Files are written to temporary names
 * and linked into place, so a crash never leaves a half-written key and two processes racing to
 * create the CA end up sharing one.
 *
 * Loading refuses (throws Error, with the path) rather than repairs: a key file readable by group
 * or others, only one of the two files present, a key that does not match the certificate, a
 * certificate that is not a CA, not valid now, or made for another trust domain.
 */
export async function loadOrCreateAuthority(dir: string, trustDomain: string): Promise<Authority> {
  assertTrustDomain(trustDomain);
  const certPath = path.join(dir, CERT_FILE);
  const keyPath = path.join(dir, KEY_FILE);
  const [hasCert, hasKey] = await Promise.all([exists(certPath), exists(keyPath)]);
  if (hasCert && hasKey) return load(certPath, keyPath, trustDomain);
  if (hasCert !== hasKey) throw halfPresent(certPath, keyPath, hasCert);

  if (!(await exists(dir))) {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.chmod(dir, 0o700); // the umask may have taken bits away; it must not add any either
  }
  const created = await createCaPem(trustDomain);
  const tag = randomBytes(6).toString('hex');
  const tmpKey = path.join(dir, `.${KEY_FILE}.${tag}.tmp`);
  const tmpCert = path.join(dir, `.${CERT_FILE}.${tag}.tmp`);
  try {
    await writeNewFile(tmpKey, created.caKeyPem, 0o600);
    await writeNewFile(tmpCert, created.caCertPem, 0o644);
    try {
      // link() fails when ca.key exists: creating the key is the one exclusive step.
      await fs.link(tmpKey, keyPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      return await loadAfterLostRace(certPath, keyPath, trustDomain);
    }
    await fs.rename(tmpCert, certPath);
    await syncDir(dir);
  } finally {
    await Promise.all([fs.rm(tmpKey, { force: true }), fs.rm(tmpCert, { force: true })]);
  }
  return Object.freeze({ trustDomain, ...created, fingerprint: fingerprintOf(created.caCertPem) });
}

async function load(certPath: string, keyPath: string, trustDomain: string): Promise<Authority> {
  const keyStat = await fs.stat(keyPath);
  if ((keyStat.mode & 0o077) !== 0) {
    const mode = (keyStat.mode & 0o777).toString(8).padStart(4, '0');
    throw new Error(`CA key ${keyPath} is accessible by group or others (mode ${mode}); run chmod 600 on it`);
  }
  const [caCertPem, caKeyPem] = await Promise.all([fs.readFile(certPath, 'utf8'), fs.readFile(keyPath, 'utf8')]);
  return authorityFromPem(trustDomain, caCertPem, caKeyPem, { cert: `CA certificate ${certPath}`, key: `CA key ${keyPath}` });
}

/** Another process linked ca.key first; give it a moment to put ca.crt in place, then load. */
async function loadAfterLostRace(certPath: string, keyPath: string, trustDomain: string): Promise<Authority> {
  for (let attempt = 0; attempt < 50 && !(await exists(certPath)); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (!(await exists(certPath))) throw halfPresent(certPath, keyPath, false);
  return load(certPath, keyPath, trustDomain);
}

function halfPresent(certPath: string, keyPath: string, hasCert: boolean): Error {
  const [present, missing] = hasCert ? [certPath, keyPath] : [keyPath, certPath];
  return new Error(`found ${present} but not ${missing}; refusing to create a new CA over it (restore or remove it)`);
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Creates `file` (failing if it exists) with exactly `mode`, whatever the umask, and syncs it. */
async function writeNewFile(file: string, content: string, mode: number): Promise<void> {
  const handle = await fs.open(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
  try {
    await handle.chmod(mode);
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes the new directory entries durable (best effort where directories cannot be opened). */
async function syncDir(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // Not all platforms can fsync a directory; the files themselves are already synced.
  } finally {
    await handle?.close();
  }
}
