/**
 * The agent's identity: a key, a short-lived certificate and the CA, kept in its data directory.
 *
 * First start: the agent has only a join token, which carries the SHA-256 fingerprint of the Pod
 * API's CA. It takes the certificate chain the server presents, keeps the CA only if its
 * fingerprint is the one in the token (no trust on first use), and from then on verifies the
 * server against that CA like any TLS client. Then it sends a CSR with the token and stores the
 * certificate it gets back. Its private key never leaves the host.
 */
import { credentials, Metadata } from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { CertificateServiceClient } from '../gen/podium/v1/certificate';
import { createKeyAndCsr, fingerprintOf, parseJoinToken } from '../certs';

export interface AgentIdentity {
  hostId: string;
  keyPem: string;
  certPem: string;
  caPem: string;
}

const FILES = { key: 'agent.key', cert: 'agent.crt', ca: 'ca.crt', host: 'host-id' } as const;

function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** Atomic write: a crash never leaves half a key or certificate behind. */
function writeAtomic(path: string, data: string, mode: number): void {
  writeFileSync(`${path}.tmp`, data, { mode });
  renameSync(`${path}.tmp`, path);
}

export function loadIdentity(dir: string): AgentIdentity | null {
  const p = (f: string) => join(dir, f);
  if (![FILES.key, FILES.cert, FILES.ca, FILES.host].every((f) => existsSync(p(f)))) return null;
  return {
    hostId: readFileSync(p(FILES.host), 'utf8').trim(),
    keyPem: readFileSync(p(FILES.key), 'utf8'),
    certPem: readFileSync(p(FILES.cert), 'utf8'),
    caPem: readFileSync(p(FILES.ca), 'utf8'),
  };
}

export function saveIdentity(dir: string, id: AgentIdentity): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeAtomic(join(dir, FILES.key), id.keyPem, 0o600);
  writeAtomic(join(dir, FILES.cert), id.certPem, 0o644);
  writeAtomic(join(dir, FILES.ca), id.caPem, 0o644);
  writeAtomic(join(dir, FILES.host), `${id.hostId}\n`, 0o644);
}

/**
 * Connects to `address`, and returns the PEM of the certificate in the presented chain whose
 * SHA-256 fingerprint is `fingerprint`. Throws when no certificate in the chain matches: the
 * server is not the one the token was made for.
 */
export function pinCa(address: string, fingerprint: string, timeoutMs = 10_000): Promise<string> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    // Verification is off only for this one look at the chain; nothing is sent on this socket.
    // An IP address is not a server name (RFC 6066): only a DNS name goes into SNI.
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], servername: isIP(host) ? undefined : host });
    const timer = setTimeout(() => socket.destroy(new Error(`no TLS handshake with ${address} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      let cert: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      const seen = new Set<string>();
      let found: string | null = null;
      while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256);
        const pem = new X509Certificate(cert.raw).toString();
        if (fingerprintOf(pem) === fingerprint) {
          found = pem;
          break;
        }
        cert = cert.issuerCertificate;
      }
      socket.end();
      if (found) resolve(found);
      else reject(new Error(`the server at ${address} did not present the CA whose fingerprint is in the join token`));
    });
  });
}

/**
 * Joins the fleet with a token; returns the new identity (not yet saved). `requestedHostId` is a
 * check, not a claim: the server gives the id the token is bound to (or one it picks for an
 * unbound token, which then must be joined with an empty `requestedHostId`), and the join fails
 * unless what comes back is the id asked for.
 */
export async function joinFleet(address: string, token: string, requestedHostId: string): Promise<AgentIdentity> {
  const { fingerprint } = parseJoinToken(token);
  const caPem = await pinCa(address, fingerprint);
  const { keyPem, csrPem } = await createKeyAndCsr(requestedHostId || 'agent');
  const client = new CertificateServiceClient(address, credentials.createSsl(Buffer.from(caPem)));
  try {
    const res = await new Promise<{ certificatePem: string; caPem: string; hostId: string }>((resolve, reject) =>
      client.join({ token, csrPem, hostId: requestedHostId }, new Metadata(), { deadline: Date.now() + 15_000 }, (err, r) => (err ? reject(err) : resolve(r!))),
    );
    if (fingerprintOf(res.caPem) !== fingerprint) throw new Error('the Join answer carries a CA other than the pinned one');
    if (requestedHostId && res.hostId !== requestedHostId) {
      throw new Error(`joined as host ${res.hostId}, not ${requestedHostId} as asked`);
    }
    return { hostId: res.hostId, keyPem, certPem: res.certificatePem, caPem };
  } finally {
    client.close();
  }
}

/** Renews the certificate over mutual TLS with the current one. */
export async function renew(address: string, id: AgentIdentity): Promise<AgentIdentity> {
  const { keyPem, csrPem } = await createKeyAndCsr(id.hostId);
  const client = new CertificateServiceClient(
    address,
    credentials.createSsl(Buffer.from(id.caPem), Buffer.from(id.keyPem), Buffer.from(id.certPem)),
  );
  try {
    const res = await new Promise<{ certificatePem: string }>((resolve, reject) =>
      client.renew({ csrPem }, new Metadata(), { deadline: Date.now() + 15_000 }, (err, r) => (err ? reject(err) : resolve(r!))),
    );
    return { ...id, keyPem, certPem: res.certificatePem };
  } finally {
    client.close();
  }
}
