/**
 * Joining over real gRPC and real TLS against an in-process Pod API: the agent pins the CA by the
 * fingerprint in its token, gets a certificate naming its host, and renews it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createJoinToken, verifyPeer, validityOf } from '../../certs';
import { X509Certificate } from 'node:crypto';
import { joinFleet, loadIdentity, pinCa, renew, saveIdentity } from '../../agent/identity';
import { SERVER_DEFAULTS, startServer, type RunningServer } from '../../server';
import { createStoredJoinToken } from '../../cli';

describe('agent identity: join with CA pinning, and renewal', function () {
  this.timeout(30_000);
  const dir = mkdtempSync(join(tmpdir(), 'podium-join-'));
  let server: RunningServer;
  let address: string;

  before(async () => {
    server = await startServer({
      ...SERVER_DEFAULTS,
      dataDir: join(dir, 'server'),
      port: 0,
      seed: 1,
      logger: pino({ level: 'silent' }),
    });
    address = `127.0.0.1:${server.port}`;
  });

  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pins the CA whose fingerprint the token carries', async () => {
    const pem = await pinCa(address, server.ca.fingerprint);
    assert.equal(pem.trim(), server.ca.caCertPem.trim());
  });

  it('joins: the certificate names the host as a SPIFFE id and verifies against the CA', async () => {
    const token = await createStoredJoinToken(join(dir, 'server'), 'podium.local', 'agent', 60_000, { hostId: 'edge-7' });
    const id = await joinFleet(address, token, 'edge-7');
    assert.equal(id.hostId, 'edge-7');
    const der = new X509Certificate(id.certPem).raw;
    assert.deepEqual(verifyPeer(server.ca, der), { role: 'agent', name: 'edge-7', spiffeId: 'spiffe://podium.local/host/edge-7' });

    saveIdentity(join(dir, 'agent'), id);
    assert.equal(statSync(join(dir, 'agent', 'agent.key')).mode & 0o777, 0o600);
    assert.deepEqual(loadIdentity(join(dir, 'agent')), id);

    const renewed = await renew(address, id);
    assert.notEqual(renewed.keyPem, id.keyPem);
    assert.equal(verifyPeer(server.ca, new X509Certificate(renewed.certPem).raw)?.name, 'edge-7');
    assert.ok(validityOf(renewed.certPem).notAfter >= validityOf(id.certPem).notAfter);
  });

  it('gets its host id from the server with an unbound token, and may not ask for one', async () => {
    const unbound = await createStoredJoinToken(join(dir, 'server'), 'podium.local', 'agent', 60_000);
    await assert.rejects(joinFleet(address, unbound, 'edge-8'), /INVALID_ARGUMENT: host_id: the token is not bound to a host id; make one with --host-id/);
    const id = await joinFleet(address, unbound, '');
    assert.match(id.hostId, /^host-[0-9a-f]{8}$/);
    assert.equal(verifyPeer(server.ca, new X509Certificate(id.certPem).raw)?.name, id.hostId);
  });

  it('checks --host-id against the id the token is bound to', async () => {
    const bound = await createStoredJoinToken(join(dir, 'server'), 'podium.local', 'agent', 60_000, { hostId: 'edge-9' });
    await assert.rejects(joinFleet(address, bound, 'edge-10'), /INVALID_ARGUMENT: host_id: this join token is bound to host id "edge-9"/);
    assert.equal((await joinFleet(address, bound, '')).hostId, 'edge-9');
  });

  it('refuses a server whose CA is not the one in the token, before sending anything', async () => {
    const foreign = createJoinToken('ab'.repeat(32), 'agent').token;
    await assert.rejects(joinFleet(address, foreign, 'x'), /did not present the CA/);
  });

  it('is refused with a wrong secret or an expired token', async () => {
    const real = await createStoredJoinToken(join(dir, 'server'), 'podium.local', 'agent', 60_000);
    const forged = real.replace(/[^.]+$/, 'A'.repeat(43));
    await assert.rejects(joinFleet(address, forged, ''), /UNAUTHENTICATED: join token is unknown, expired, used up or wrong/);
    const expired = await createStoredJoinToken(join(dir, 'server'), 'podium.local', 'agent', -1);
    await assert.rejects(joinFleet(address, expired, ''), /UNAUTHENTICATED: join token is unknown, expired, used up or wrong/);
  });
});
