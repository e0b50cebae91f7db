/**
 * The Pod API's own TLS listener. It asks every client for a certificate but lets the handshake
 * finish without one (Join must work before the caller has a certificate), refuses a client whose
 * certificate has been revoked before gRPC ever sees the connection, and hands every other
 * established connection to the gRPC server (`accept`, a grpc-js connection injector).
 *
 * Why not grpc-js's own TLS: it gives no hook between the handshake and the first RPC, and no
 * way to find and close the connections of one client certificate. Here every live connection is
 * tracked by the serial of its peer certificate, so that a revocation closes the revoked peer's
 * streams at once rather than when its certificate expires.
 *
 * The chain is verified against the CA by node (socket.authorized), and again, with the identity
 * read from the SAN, per RPC (auth.ts); a connection without a valid certificate is served, and
 * every RPC but Join refuses it.
 */
import type * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { canonicalSerial } from '../certs';

export interface TlsIdentity {
  /** PEM: the server certificate followed by the CA, so that a joining agent can pin the CA. */
  certificate: Buffer;
  privateKey: Buffer;
}

export interface RefusedPeer {
  serial: string;
  role: string;
  name: string;
}

export interface TlsListenerOptions {
  host: string;
  /** 0 picks a free port (see `port`). */
  port: number;
  caPem: string;
  identity: TlsIdentity;
  /** The revoked certificate with this canonical serial, or undefined when it is not revoked. */
  revoked: (serial: string) => RefusedPeer | undefined;
  /** Takes an established, admitted connection (grpc-js `injectConnection`). */
  accept: (socket: tls.TLSSocket) => void;
  /** Told of every connection refused for a revoked certificate (metrics). */
  onRefused?: (peer: RefusedPeer) => void;
  log: Logger;
}

export class TlsListener {
  /** Every TCP connection, from accept on: close() must also end those still in their handshake. */
  private readonly connections = new Set<net.Socket>();
  private readonly bySerial = new Map<string, Set<tls.TLSSocket>>();

  private constructor(
    private readonly server: tls.Server,
    private readonly opts: TlsListenerOptions,
  ) {
    server.on('connection', (socket: net.Socket) => {
      this.connections.add(socket);
      socket.once('close', () => this.connections.delete(socket));
    });
    server.on('secureConnection', (socket) => this.admit(socket));
    // A failed handshake (a scanner, a client that does not trust us) is the client's problem.
    server.on('tlsClientError', (err) => opts.log.debug({ err: err.message }, 'TLS handshake failed'));
  }

  /** Listens; resolves once bound. */
  static listen(opts: TlsListenerOptions): Promise<TlsListener> {
    const server = tls.createServer({
      ...secureContextOptions(opts.caPem, opts.identity),
      requestCert: true,
      // Join is called without a client certificate; every other RPC checks the peer itself.
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
    });
    const listener = new TlsListener(server, opts);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        server.on('error', (err) => opts.log.error({ err }, 'TLS listener error'));
        resolve(listener);
      });
    });
  }

  /** The bound port (the real one when 0 was asked for). */
  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** Replaces the server certificate (rotation); new handshakes get it, live connections stay. */
  setIdentity(identity: TlsIdentity): void {
    this.server.setSecureContext(secureContextOptions(this.opts.caPem, identity));
  }

  /** Destroys every live connection whose client certificate has one of `serials`; returns how many. */
  closeConnectionsOf(serials: Iterable<string>): number {
    let n = 0;
    for (const serial of serials) {
      for (const socket of this.bySerial.get(serial) ?? []) {
        socket.destroy();
        n++;
      }
    }
    return n;
  }

  /** Stops listening and destroys every connection left, handshaking or not; resolves when the listener has closed. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.connections) socket.destroy();
    return closed;
  }

  private admit(socket: tls.TLSSocket): void {
    socket.on('error', (err) => this.opts.log.debug({ err: err.message }, 'client connection error'));
    const peer = socket.getPeerCertificate();
    const serial = peer && peer.serialNumber ? canonicalSerial(peer.serialNumber) : null;
    if (serial !== null) {
      const revoked = this.opts.revoked(serial);
      if (revoked) {
        this.opts.log.warn(
          { serial, role: revoked.role, name: revoked.name, remote: socket.remoteAddress },
          'refused a revoked client certificate at the handshake',
        );
        this.opts.onRefused?.(revoked);
        socket.destroy();
        return;
      }
    }
    if (serial !== null) {
      let set = this.bySerial.get(serial);
      if (!set) this.bySerial.set(serial, (set = new Set()));
      set.add(socket);
      socket.once('close', () => {
        set!.delete(socket);
        if (set!.size === 0 && this.bySerial.get(serial) === set) this.bySerial.delete(serial);
      });
    }
    this.opts.accept(socket);
  }
}

function secureContextOptions(caPem: string, identity: TlsIdentity): tls.SecureContextOptions {
  return { ca: caPem, cert: identity.certificate, key: identity.privateKey };
}
