/**
 * The Pod API's own TLS listener, seen from outside: every service still answers through it
 * (reflection and health with the real grpcurl), and close() ends every connection, including
 * one that never finished its TLS handshake and a stream that never ends by itself. (Before,
 * such a connection kept `podium server` from exiting on SIGTERM.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import * as net from 'node:net';
import { promisify } from 'node:util';
import { startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';

const GRPCURL = join(__dirname, '..', '..', '..', '..', 'shared', 'bin', 'grpcurl');
const run = promisify(execFile);

describe('the Pod API TLS listener', function () {
  this.timeout(30_000);
  let h: PodApiHarness | undefined;

  beforeEach(async () => {
    h = await startPodApiHarness();
  });
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('serves reflection and health to grpcurl, with and without a client certificate', async () => {
    const certs = join(h!.dir, 'operator');
    const tls = ['-cacert', join(certs, 'ca.crt'), '-cert', join(certs, 'operator.crt'), '-key', join(certs, 'operator.key')];
    const { stdout } = await run(GRPCURL, [...tls, h!.address, 'list']);
    assert.deepEqual(stdout.trim().split('\n').sort(), [
      'grpc.health.v1.Health',
      'podium.v1.AgentService',
      'podium.v1.CertificateService',
      'podium.v1.PodApi',
    ]);
    const health = await run(GRPCURL, ['-cacert', join(certs, 'ca.crt'), h!.address, 'grpc.health.v1.Health/Check']);
    assert.equal(JSON.parse(health.stdout).status, 'SERVING');
    const hosts = await run(GRPCURL, [...tls, h!.address, 'podium.v1.PodApi/ListHosts']);
    assert.deepEqual(JSON.parse(hosts.stdout), {});
  });

  it('close() ends a connection still in its handshake and a stream that never ends by itself', async () => {
    const mine = h!;
    h = undefined; // closed here, not in afterEach
    const [host, port] = [mine.address.slice(0, mine.address.lastIndexOf(':')), Number(mine.address.slice(mine.address.lastIndexOf(':') + 1))];
    const half = net.connect(port, host);
    const halfClosed = new Promise<void>((resolve) => half.once('close', () => resolve()));
    half.on('error', () => undefined);
    await new Promise<void>((resolve) => half.once('connect', () => resolve()));
    const watch = mine.operator.watchEvents({ environment: '', afterSequence: 0 });
    const watchEnded = new Promise<void>((resolve) => watch.once('error', () => resolve()));
    await new Promise<void>((resolve) => watch.once('metadata', () => resolve()));
    await mine.close();
    await halfClosed;
    await watchEnded;
  });
});
