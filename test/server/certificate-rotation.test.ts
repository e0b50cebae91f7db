/**
 * The Pod API's own certificate is short-lived: while running it is re-issued at half its
 * lifetime, and new handshakes get the new one (real TLS on loopback).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import pino from 'pino';
import { SERVER_DEFAULTS, startServer, type RunningServer } from '../../server';
import { poll } from '../support/poll';

function presented(port: number, ca: string): Promise<{ serial: string; validTo: Date }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, ALPNProtocols: ['h2'] }, () => {
      const cert = s.getPeerCertificate();
      s.end();
      resolve({ serial: cert.serialNumber, validTo: new Date(cert.valid_to) });
    });
    s.on('error', reject);
  });
}

describe('server certificate rotation', function () {
  this.timeout(30_000);
  const dir = mkdtempSync(join(tmpdir(), 'podium-rotation-'));
  let server: RunningServer;

  before(async () => {
    server = await startServer({ ...SERVER_DEFAULTS, dataDir: dir, port: 0, seed: 1, certLifetimeSeconds: 4, logger: pino({ level: 'silent' }) });
  });

  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('presents a new certificate, verified by the CA, after half the lifetime', async () => {
    const first = await presented(server.port, server.ca.caCertPem);
    const next = await poll('a rotated certificate', async () => {
      const now = await presented(server.port, server.ca.caCertPem);
      return now.serial !== first.serial ? now : undefined;
    }, 10_000, 250);
    assert.ok(next.validTo > first.validTo);
  });
});
