import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { issueKeyPair, verifyPeer, type Authority, type Identity } from '../../certs';
import { identity, testAuthority } from './helpers';

/*
 * The certificates against node's real TLS stack (OpenSSL), which grpc-js uses underneath: a
 * server with requestCert and our CA, a client presenting its certificate.
 */

const TD = 'podium.local';

interface Handshake {
  clientAuthorized: boolean;
  serverAuthorized: boolean;
  serverAuthorizationError: string | undefined;
  serverSawClient: Identity | null;
  clientSawServer: Identity | null;
}

interface Pair {
  certPem: string;
  keyPem: string;
}

async function withServer<T>(
  ca: Authority,
  server: Pair,
  run: (port: number, srv: tls.Server) => Promise<T>,
  rejectUnauthorized = true,
): Promise<T> {
  const srv = tls.createServer({
    key: server.keyPem,
    cert: server.certPem,
    ca: ca.caCertPem,
    requestCert: true,
    rejectUnauthorized,
  });
  srv.on('secureConnection', (socket) => socket.end('ok'));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  try {
    return await run((srv.address() as AddressInfo).port, srv);
  } finally {
    srv.close();
  }
}

async function handshake(
  ca: Authority,
  server: Pair,
  client: Pair,
  servername?: string,
  rejectUnauthorized = true,
): Promise<Handshake> {
  return withServer(ca, server, async (port, srv) => {
    type ServerView = { authorized: boolean; error: string | undefined; peer: Identity | null };
    const serverSide = new Promise<ServerView>((resolve) => {
      srv.once('secureConnection', (socket: tls.TLSSocket) =>
        resolve({
          authorized: socket.authorized,
          error: socket.authorizationError?.toString(),
          peer: verifyPeer(ca, socket.getPeerCertificate().raw),
        }),
      );
    });
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: ca.caCertPem,
      key: client.keyPem,
      cert: client.certPem,
      ...(servername !== undefined ? { servername } : {}),
    });
    socket.on('error', () => undefined); // the server ends the connection right away
    await once(socket, 'secureConnect');
    const clientAuthorized = socket.authorized;
    const clientSawServer = verifyPeer(ca, socket.getPeerCertificate().raw);
    const { authorized, error, peer } = await serverSide;
    socket.destroy();
    return {
      clientAuthorized,
      serverAuthorized: authorized,
      serverAuthorizationError: error,
      serverSawClient: peer,
      clientSawServer,
    };
  }, rejectUnauthorized);
}

describe('certs: interoperability with node TLS', function () {
  this.timeout(20_000);
  let ca: Authority;
  let otherCa: Authority;
  let server: Pair;
  let client: Pair;
  before(async () => {
    ca = await testAuthority(TD);
    otherCa = await testAuthority(TD);
    server = await issueKeyPair(ca, identity(TD, 'server', 'pod-api'), 3600, {
      dns: ['localhost'],
      ips: ['127.0.0.1'],
    });
    client = await issueKeyPair(ca, identity(TD, 'agent', 'host-1'), 3600);
  });

  it('mutual TLS to 127.0.0.1 is authorized on both sides, and each side learns the other identity', async () => {
    const h = await handshake(ca, server, client);
    assert.equal(h.clientAuthorized, true);
    assert.equal(h.serverAuthorized, true);
    assert.deepEqual(h.serverSawClient, {
      role: 'agent',
      name: 'host-1',
      spiffeId: 'spiffe://podium.local/host/host-1',
    });
    assert.deepEqual(h.clientSawServer?.role, 'server');
  });

  it('the server certificate also holds for the name localhost', async () => {
    const h = await handshake(ca, server, client, 'localhost');
    assert.equal(h.clientAuthorized, true);
    assert.equal(h.serverAuthorized, true);
  });

  it('a client certificate from another CA is refused at the handshake', async () => {
    const stranger = await issueKeyPair(otherCa, identity(TD, 'agent', 'host-1'), 3600);
    // What OpenSSL thinks of it: not authorized, for a verification reason.
    const seen = await handshake(ca, server, stranger, undefined, false);
    assert.equal(seen.serverAuthorized, false);
    assert.match(String(seen.serverAuthorizationError), /SIGNATURE|UNABLE_TO|VERIFY/);
    assert.equal(seen.serverSawClient, null);
    // With rejectUnauthorized (how the Pod API runs) the connection is closed and never served.
    await withServer(ca, server, async (port, srv) => {
      let served = 0;
      srv.on('secureConnection', () => served++);
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        ca: ca.caCertPem,
        key: stranger.keyPem,
        cert: stranger.certPem,
      });
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
      socket.on('error', () => undefined);
      await once(socket, 'close');
      assert.equal(served, 0);
      assert.equal(received, '');
    });
  });

  it('a client that is not refused receives the reply (control for the test above)', async () => {
    await withServer(ca, server, async (port) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        ca: ca.caCertPem,
        key: client.keyPem,
        cert: client.certPem,
      });
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
      await once(socket, 'close');
      assert.equal(received, 'ok');
    });
  });

  it('an agent certificate cannot act as a TLS server (no serverAuth)', async () => {
    await withServer(ca, client, async (port) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.caCertPem, checkServerIdentity: () => undefined });
      const [err] = (await once(socket, 'error')) as [Error & { code?: string }];
      socket.destroy();
      assert.match(String(err.code ?? err.message), /INVALID_PURPOSE|unsupported certificate purpose/i);
    });
  });

  it('a server certificate is refused for a name it was not issued for', async () => {
    await withServer(ca, server, async (port) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        servername: 'evil.example',
        ca: ca.caCertPem,
        key: client.keyPem,
        cert: client.certPem,
      });
      const [err] = (await once(socket, 'error')) as [Error & { code?: string }];
      socket.destroy();
      assert.equal(err.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    });
  });
});
