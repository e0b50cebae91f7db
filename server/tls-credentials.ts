/**
 * Server TLS that asks every client for a certificate but lets the handshake finish without one.
 * grpc-js's plain createSsl either does not ask at all or refuses certificate-less clients at the
 * handshake; Join must work before the caller has a certificate, so the check moves into each
 * handler (auth.ts), which verifies the certificate against the CA itself.
 *
 * The identity is held by a small provider, so that the server certificate can be replaced
 * (rotation) without restarting the listener.
 */
import { experimental, type ServerCredentials } from '@grpc/grpc-js';

type CaListener = Parameters<experimental.CertificateProvider['addCaCertificateListener']>[0];
type IdentityListener = Parameters<experimental.CertificateProvider['addIdentityCertificateListener']>[0];

export class StaticCertificateProvider implements experimental.CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  constructor(
    private ca: Buffer,
    private identity: { certificate: Buffer; privateKey: Buffer },
  ) {}

  /** Replaces the server's certificate and key; new handshakes use them. */
  setIdentity(certificate: Buffer, privateKey: Buffer): void {
    this.identity = { certificate, privateKey };
    for (const l of this.identityListeners) l(this.identity);
  }

  // Listeners hear the current value on the next tick, not synchronously: grpc-js registers its
  // watcher only after adding the listener, and a synchronous update would reach nobody.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    setImmediate(() => this.caListeners.has(listener) && listener({ caCertificate: this.ca }));
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    setImmediate(() => this.identityListeners.has(listener) && listener(this.identity));
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}

/** Credentials that request a client certificate without requiring one at the handshake. */
export function optionalClientCertCredentials(provider: StaticCertificateProvider): ServerCredentials {
  return experimental.createCertificateProviderServerCredentials(provider, provider, false);
}
