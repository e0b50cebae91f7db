/**
 * authorize() on its own: the revocation check behind the TLS listener's. The call is a stand-in
 * for grpc-js's (only getAuthContext and metadata are read); the certificates are real.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { Metadata, status } from '@grpc/grpc-js';
import { issueKeyPair, serialNumberOf, spiffeIdFor, type Authority } from '../../certs';
import { authorize, type ServerSurfaceCall } from '../../server/auth';
import { PodiumError } from '../../server/errors';
import { testAuthority } from '../certs/helpers';

function callWith(certPem: string): ServerSurfaceCall {
  const cert = new X509Certificate(certPem);
  return {
    metadata: new Metadata(),
    // What grpc-js hands over for an authorized TLS peer: node's getPeerCertificate().
    getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: { raw: cert.raw, serialNumber: cert.serialNumber } as never }),
  };
}

describe('server auth: authorize', () => {
  let ca: Authority;
  before(async () => {
    ca = await testAuthority();
  });

  it('refuses a revoked certificate even when the listener let it through', async () => {
    const pair = await issueKeyPair(ca, { role: 'agent', name: 'h1', spiffeId: spiffeIdFor('podium.local', 'agent', 'h1') }, 60);
    const revoked = new Set<string>();
    const trust = { trustDomain: ca.trustDomain, caCertPem: ca.caCertPem, isRevoked: (s: string) => revoked.has(s) };
    assert.equal(authorize(callWith(pair.certPem), trust, ['agent']).name, 'h1');
    revoked.add(serialNumberOf(pair.certPem));
    assert.throws(
      () => authorize(callWith(pair.certPem), trust, ['agent']),
      (e: PodiumError) => e.code === status.UNAUTHENTICATED && e.message === 'this client certificate has been revoked',
    );
  });

  it('refuses a caller without a certificate, and a role not on the list', async () => {
    const trust = { trustDomain: ca.trustDomain, caCertPem: ca.caCertPem, isRevoked: () => false };
    const none: ServerSurfaceCall = { metadata: new Metadata(), getAuthContext: () => ({}) };
    assert.throws(() => authorize(none, trust, ['agent']), (e: PodiumError) => e.code === status.UNAUTHENTICATED);
    const gw = await issueKeyPair(ca, { role: 'gateway', name: 'gw', spiffeId: spiffeIdFor('podium.local', 'gateway', 'gw') }, 60);
    assert.throws(() => authorize(callWith(gw.certPem), trust, ['agent']), (e: PodiumError) => e.code === status.PERMISSION_DENIED);
  });
});
