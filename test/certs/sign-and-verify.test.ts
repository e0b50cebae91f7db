import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import {
  createKeyAndCsr,
  issueKeyPair,
  signCsr,
  spiffeIdFor,
  validityOf,
  verifyPeer,
  type Authority,
} from '../../certs';
import { importSigningKey } from '../../certs/private-key';
import { EC_P256, ECDSA_SHA256, webcrypto, x509 } from '../../certs/x509';
import { identity, pemToDer, testAuthority } from './helpers';

const TD = 'podium.local';
const HOUR = 3600;

describe('certs: signCsr and verifyPeer', () => {
  let ca: Authority;
  let otherCa: Authority;
  before(async () => {
    ca = await testAuthority(TD);
    otherCa = await testAuthority(TD); // same trust domain, different key
  });

  it('a signed agent certificate verifies and yields its identity', async () => {
    const { csrPem } = await createKeyAndCsr('host-1');
    const who = identity(TD, 'agent', 'host-1');
    const certPem = await signCsr(ca, csrPem, who, HOUR);
    assert.deepEqual(verifyPeer(ca, pemToDer(certPem)), {
      role: 'agent',
      name: 'host-1',
      spiffeId: 'spiffe://podium.local/host/host-1',
    });
    // verifyPeer needs only the public half of the authority.
    assert.notEqual(verifyPeer({ trustDomain: TD, caCertPem: ca.caCertPem }, pemToDer(certPem)), null);
  });

  it('puts exactly the promised fields into the certificate', async () => {
    const { csrPem } = await createKeyAndCsr('host-2');
    const before = Date.now();
    const certPem = await signCsr(ca, csrPem, identity(TD, 'agent', 'host-2'), HOUR);
    const cert = new X509Certificate(certPem);
    assert.equal(cert.subject, 'CN=host-2');
    assert.equal(cert.subjectAltName, 'URI:spiffe://podium.local/host/host-2');
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']); // node lists the extended key usages: clientAuth only
    assert.equal(cert.ca, false);
    const { notBefore, notAfter } = validityOf(certPem);
    assert.ok(Math.abs(notBefore.getTime() - (before - 60_000)) < 2_000, 'notBefore is now - 60 s');
    assert.ok(Math.abs(notAfter.getTime() - (before + HOUR * 1000)) < 2_000, 'notAfter is now + lifetime');
    const parsed = new x509.X509Certificate(certPem);
    const ku = parsed.getExtension(x509.KeyUsagesExtension);
    assert.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(parsed.getExtension(x509.BasicConstraintsExtension)?.ca, false);
  });

  it('gives each certificate a different random serial', async () => {
    const { csrPem } = await createKeyAndCsr('host-3');
    const a = new X509Certificate(await signCsr(ca, csrPem, identity(TD, 'agent', 'host-3'), HOUR));
    const b = new X509Certificate(await signCsr(ca, csrPem, identity(TD, 'agent', 'host-3'), HOUR));
    assert.notEqual(a.serialNumber, b.serialNumber);
    assert.ok(a.serialNumber.length >= 16, `serial ${a.serialNumber} has at least 64 bits`);
  });

  it('a server certificate gets serverAuth and its DNS and IP names', async () => {
    const { certPem } = await issueKeyPair(ca, identity(TD, 'server', 'pod-api'), HOUR, {
      dns: ['localhost'],
      ips: ['127.0.0.1', '::1'],
    });
    const cert = new X509Certificate(certPem);
    assert.deepEqual([...cert.keyUsage].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(
      cert.subjectAltName,
      'URI:spiffe://podium.local/server/pod-api, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.deepEqual(verifyPeer(ca, cert.raw)?.role, 'server');
  });

  it('a certificate from another CA is refused', async () => {
    const { certPem } = await issueKeyPair(otherCa, identity(TD, 'agent', 'host-1'), HOUR);
    assert.equal(verifyPeer(ca, pemToDer(certPem)), null);
    assert.notEqual(verifyPeer(otherCa, pemToDer(certPem)), null); // and it is a good certificate otherwise
  });

  it('an expired certificate is refused, and one not yet valid', async () => {
    const { certPem } = await issueKeyPair(ca, identity(TD, 'agent', 'host-1'), 2);
    const der = pemToDer(certPem);
    assert.notEqual(verifyPeer(ca, der, new Date()), null);
    assert.equal(verifyPeer(ca, der, new Date(Date.now() + 10_000)), null);
    assert.equal(verifyPeer(ca, der, new Date(Date.now() - 5 * 60_000)), null);
  });

  it('a certificate for another trust domain is refused even from the right key', async () => {
    const foreign: Authority = { ...ca, trustDomain: 'elsewhere.local' };
    const { certPem } = await issueKeyPair(foreign, identity('elsewhere.local', 'agent', 'host-1'), HOUR);
    assert.equal(verifyPeer(ca, pemToDer(certPem)), null);
  });

  it('the CA certificate itself and garbage are not peers', () => {
    assert.equal(verifyPeer(ca, pemToDer(ca.caCertPem)), null);
    assert.equal(verifyPeer(ca, Buffer.from('not a certificate')), null);
    assert.equal(verifyPeer(ca, Buffer.alloc(0)), null);
  });

  it('a certificate from our CA key with other than exactly one URI SAN is refused', async () => {
    // Made by hand with the CA key: signCsr never produces these, verifyPeer must still refuse them.
    const caCert = new x509.X509Certificate(ca.caCertPem);
    const signingKey = await importSigningKey(ca.caKeyPem, 'test CA key');
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const make = async (uris: string[]) =>
      Buffer.from(
        (
          await x509.X509CertificateGenerator.create({
            subject: [{ CN: ['host-1'] }],
            issuer: caCert.subjectName,
            notBefore: new Date(Date.now() - 60_000),
            notAfter: new Date(Date.now() + 3600_000),
            publicKey: keys.publicKey,
            signingKey,
            signingAlgorithm: ECDSA_SHA256,
            extensions: uris.length
              ? [new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: 'url' as const, value })))]
              : [],
          })
        ).rawData,
      );
    const one = await make(['spiffe://podium.local/host/host-1']);
    assert.equal(verifyPeer(ca, one)?.name, 'host-1'); // control: the hand-made certificate is otherwise fine
    assert.equal(verifyPeer(ca, await make([])), null);
    const two = await make(['spiffe://podium.local/host/host-1', 'spiffe://podium.local/server/pod-api']);
    assert.equal(verifyPeer(ca, two), null);
    assert.equal(verifyPeer(ca, await make(['spiffe://podium.local/tenant/a/env/b/service/c'])), null);
  });

  it('a tampered certificate is refused', async () => {
    const { certPem } = await issueKeyPair(ca, identity(TD, 'agent', 'host-1'), HOUR);
    const der = pemToDer(certPem);
    const at = der.indexOf(Buffer.from('host-1'));
    assert.ok(at > 0);
    der[at + 5] = '9'.charCodeAt(0); // host-1 -> host-9 in the signed subject
    assert.equal(verifyPeer(ca, der), null);
  });

  it('a CSR that asks for extra names and usages gets only the identity', async () => {
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const greedy = await x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: ['pod-api'] }],
      keys,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: spiffeIdFor(TD, 'server', 'pod-api') },
          { type: 'dns', value: 'evil.example' },
          { type: 'ip', value: '10.0.0.1' },
        ]),
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      ],
    });
    const certPem = await signCsr(ca, greedy.toString('pem'), identity(TD, 'agent', 'host-7'), HOUR);
    const cert = new X509Certificate(certPem);
    assert.equal(cert.subjectAltName, 'URI:spiffe://podium.local/host/host-7');
    assert.equal(cert.subject, 'CN=host-7');
    assert.equal(cert.ca, false);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.deepEqual(verifyPeer(ca, cert.raw)?.spiffeId, 'spiffe://podium.local/host/host-7');
  });

  it('a CSR whose signature does not verify is refused', async () => {
    const { csrPem } = await createKeyAndCsr('host-1');
    const der = Buffer.from(x509.PemConverter.decodeFirst(csrPem));
    const at = der.indexOf(Buffer.from('host-1'));
    der[at + 5] = '2'.charCodeAt(0); // change the signed subject
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    await assert.rejects(
      signCsr(ca, tampered, identity(TD, 'agent', 'host-1'), HOUR),
      /bad CSR: its signature does not verify/,
    );
  });

  it('a CSR that is not a CSR is refused with a clear message', async () => {
    const who = identity(TD, 'agent', 'host-1');
    await assert.rejects(signCsr(ca, 'hello', who, HOUR), /bad CSR: not exactly one PEM "CERTIFICATE REQUEST"/);
    await assert.rejects(signCsr(ca, ca.caCertPem, who, HOUR), /bad CSR: not exactly one PEM/);
    const { csrPem } = await createKeyAndCsr('host-1');
    await assert.rejects(signCsr(ca, csrPem + csrPem, who, HOUR), /bad CSR: not exactly one PEM/);
    await assert.rejects(signCsr(ca, 'x'.repeat(20_000), who, HOUR), /bad CSR: larger than/);
  });

  it('a CSR with a key other than P-256 is refused', async () => {
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: ['host-1'] }],
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
    });
    await assert.rejects(
      signCsr(ca, csr.toString('pem'), identity(TD, 'agent', 'host-1'), HOUR),
      /bad CSR: the key must be ECDSA P-256/,
    );
  });

  it('refuses an inconsistent identity, a bad lifetime and server names for other roles', async () => {
    const { csrPem } = await createKeyAndCsr('host-1');
    const lying = { role: 'agent' as const, name: 'host-1', spiffeId: 'spiffe://podium.local/server/pod-api' };
    await assert.rejects(
      signCsr(ca, csrPem, lying, HOUR),
      /identity\.spiffeId must be spiffe:\/\/podium\.local\/host\/host-1/,
    );
    await assert.rejects(signCsr(ca, csrPem, identity(TD, 'agent', 'host-1'), 0), /lifetimeSeconds/);
    await assert.rejects(signCsr(ca, csrPem, identity(TD, 'agent', 'host-1'), Number.NaN), /lifetimeSeconds/);
    await assert.rejects(
      signCsr(ca, csrPem, identity(TD, 'agent', 'host-1'), HOUR, { dns: ['localhost'], ips: [] }),
      /only for role 'server'/,
    );
    await assert.rejects(
      signCsr(ca, csrPem, identity(TD, 'server', 'pod-api'), HOUR, { dns: ['bad name'], ips: [] }),
      /invalid DNS name/,
    );
    await assert.rejects(
      signCsr(ca, csrPem, identity(TD, 'server', 'pod-api'), HOUR, { dns: [], ips: ['300.1.1.1'] }),
      /invalid IP address/,
    );
  });

  it('createKeyAndCsr returns a PKCS#8 P-256 key and a CSR with only the CN', async () => {
    const { keyPem, csrPem } = await createKeyAndCsr('host-1');
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----/);
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    assert.equal(csr.subject, 'CN=host-1');
    assert.equal(csr.extensions.length, 0);
    assert.equal(await csr.verify(), true);
  });
});
