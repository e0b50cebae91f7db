import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { canonicalSerial, issueKeyPair, serialNumberOf } from '../../certs';
import { identity, testAuthority } from './helpers';

describe('certs: serial numbers in one spelling', () => {
  it('ignores case, colons, spaces and leading zeros; refuses what is not a serial', () => {
    assert.equal(canonicalSerial('0A:1B:FF'), 'a1bff');
    assert.equal(canonicalSerial(' 00 0a1bff '), 'a1bff');
    assert.equal(canonicalSerial('a1bff'), 'a1bff');
    assert.equal(canonicalSerial('0'), '0');
    assert.equal(canonicalSerial('00'), '0');
    for (const bad of ['', 'xyz', '12-34', 'f'.repeat(41)]) assert.equal(canonicalSerial(bad), null, bad);
  });

  it('reads the same serial from PEM, from DER and from what node TLS prints', async () => {
    const ca = await testAuthority();
    for (let i = 0; i < 8; i++) {
      const pair = await issueKeyPair(ca, identity('podium.local', 'operator', `op-${i}`), 60);
      const node = new X509Certificate(pair.certPem);
      assert.equal(serialNumberOf(pair.certPem), canonicalSerial(node.serialNumber));
      assert.equal(serialNumberOf(node.raw), serialNumberOf(pair.certPem));
      assert.match(serialNumberOf(pair.certPem), /^[1-9a-f][0-9a-f]*$/);
    }
    assert.throws(() => serialNumberOf('not a certificate'), /not a certificate/);
  });
});
