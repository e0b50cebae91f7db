/**
 * A throwaway PKI for the gateway's tests, made with the project's certs/ library: one CA in a
 * temporary directory, a server certificate for 127.0.0.1 (the in-test Pod API) and a client
 * certificate with role `gateway`, valid one hour.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueKeyPair, loadOrCreateAuthority, spiffeIdFor } from '../../certs';

export interface KeyAndCert {
  certPem: string;
  keyPem: string;
}

export interface TestPki {
  caPem: string;
  server: KeyAndCert;
  gateway: KeyAndCert;
}

const TD = 'podium.test';

export async function createTestPki(): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'podium-gateway-pki-'));
  try {
    const ca = await loadOrCreateAuthority(join(dir, 'ca'), TD);
    const server = await issueKeyPair(ca, { role: 'server', name: 'pod-api', spiffeId: spiffeIdFor(TD, 'server', 'pod-api') }, 3600, {
      dns: ['localhost'],
      ips: ['127.0.0.1'],
    });
    const gateway = await issueKeyPair(ca, { role: 'gateway', name: 'gateway', spiffeId: spiffeIdFor(TD, 'gateway', 'gateway') }, 3600);
    return { caPem: ca.caCertPem, server, gateway };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
