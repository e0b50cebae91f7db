import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fingerprintOf, loadOrCreateAuthority } from '../../certs';
import { x509 } from '../../certs/x509';
import { pemToDer, tempDir } from './helpers';

describe('certs: loadOrCreateAuthority', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir()));
  afterEach(() => cleanup());

  it('creates the CA once and reloads the same one', async () => {
    const caDir = path.join(dir, 'ca');
    const first = await loadOrCreateAuthority(caDir, 'podium.local');
    const again = await loadOrCreateAuthority(caDir, 'podium.local');
    assert.equal(again.fingerprint, first.fingerprint);
    assert.equal(again.caCertPem, first.caCertPem);
    assert.equal(again.caKeyPem, first.caKeyPem);
    assert.equal(again.trustDomain, 'podium.local');
    assert.equal(readFileSync(path.join(caDir, 'ca.crt'), 'utf8'), first.caCertPem);
    // Only ca.crt and ca.key: no temporary files left behind.
    assert.deepEqual(readdirSync(caDir).sort(), ['ca.crt', 'ca.key']);
  });

  it('writes the directory 0700, the key 0600 and the certificate 0644', async () => {
    const caDir = path.join(dir, 'nested', 'ca');
    const previous = process.umask(0o022);
    try {
      await loadOrCreateAuthority(caDir, 'podium.local');
    } finally {
      process.umask(previous);
    }
    assert.equal(statSync(caDir).mode & 0o777, 0o700);
    assert.equal(statSync(path.join(caDir, 'ca.key')).mode & 0o777, 0o600);
    assert.equal(statSync(path.join(caDir, 'ca.crt')).mode & 0o777, 0o644);
  });

  it('fingerprint is the SHA-256 of the DER, lowercase hex', async () => {
    const ca = await loadOrCreateAuthority(path.join(dir, 'ca'), 'podium.local');
    const expected = createHash('sha256').update(pemToDer(ca.caCertPem)).digest('hex');
    assert.match(ca.fingerprint, /^[0-9a-f]{64}$/);
    assert.equal(ca.fingerprint, expected);
    assert.equal(fingerprintOf(ca.caCertPem), expected);
  });

  it('makes a self-signed P-256 CA for ten years with CA constraints and keyCertSign', async () => {
    const ca = await loadOrCreateAuthority(path.join(dir, 'ca'), 'example.test');
    const cert = new X509Certificate(ca.caCertPem);
    assert.equal(cert.ca, true);
    assert.equal(cert.checkIssued(cert), true);
    assert.equal(cert.verify(cert.publicKey), true);
    assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(cert.subjectAltName, 'URI:spiffe://example.test');
    const years = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (365.25 * 86400_000);
    assert.ok(years > 9.99 && years < 10.01, `validity ${years} years`);
    const ku = new x509.X509Certificate(ca.caCertPem).getExtension(x509.KeyUsagesExtension);
    assert.ok(ku !== null && ku.critical && (ku.usages & x509.KeyUsageFlags.keyCertSign) !== 0);
  });

  it('refuses a CA key readable by others', async () => {
    const caDir = path.join(dir, 'ca');
    await loadOrCreateAuthority(caDir, 'podium.local');
    chmodSync(path.join(caDir, 'ca.key'), 0o644);
    await assert.rejects(loadOrCreateAuthority(caDir, 'podium.local'), /accessible by group or others.*chmod 600/);
  });

  it('refuses a CA made for another trust domain', async () => {
    const caDir = path.join(dir, 'ca');
    await loadOrCreateAuthority(caDir, 'podium.local');
    await assert.rejects(loadOrCreateAuthority(caDir, 'other.local'), /not made for trust domain other\.local/);
  });

  it('refuses a key that does not belong to the certificate', async () => {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    await loadOrCreateAuthority(a, 'podium.local');
    const other = await loadOrCreateAuthority(b, 'podium.local');
    writeFileSync(path.join(a, 'ca.key'), other.caKeyPem, { mode: 0o600 });
    await assert.rejects(loadOrCreateAuthority(a, 'podium.local'), /does not belong to the certificate/);
  });

  it('refuses to create a new CA when only one of the files is there', async () => {
    const caDir = path.join(dir, 'ca');
    await loadOrCreateAuthority(caDir, 'podium.local');
    unlinkSync(path.join(caDir, 'ca.crt'));
    await assert.rejects(loadOrCreateAuthority(caDir, 'podium.local'), /found .*ca\.key but not .*ca\.crt/);
  });

  it('two concurrent creators end up with one CA', async () => {
    const caDir = path.join(dir, 'ca');
    const all = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateAuthority(caDir, 'podium.local')));
    assert.equal(new Set(all.map((a) => a.fingerprint)).size, 1);
    assert.equal(fingerprintOf(readFileSync(path.join(caDir, 'ca.crt'), 'utf8')), all[0]!.fingerprint);
  });

  it('rejects an invalid trust domain', async () => {
    await assert.rejects(loadOrCreateAuthority(path.join(dir, 'ca'), 'Podium Local'), /invalid trust domain/);
  });
});
