// bench:mesh — what the host proxies cost a connection: two MeshProxy instances ("host A" and
// "host B") on loopback with real workload certificates and TLS 1.3 between them, a caller
// connecting from 127.0.0.2 to A's local listener, the target an echo server on 127.0.0.3. Beside
// each figure, the baseline: the same client straight to the echo server over TCP.
// Measured: request/response round trips of 64 bytes on one open connection (p50, p99), a new
// connection per request (connect, one round trip, close), and bulk throughput one way.
// Prints one JSON object. Run: npm run bench:mesh -- [--requests 5000] [--connections 300] [--mib 256]
import { X509Certificate } from 'node:crypto';
import pino from 'pino';
import { authorityFromPem, createCaPem, createKeyAndCsr, signWorkloadCsr, type Authority } from '../certs';
import { MeshDirectory } from '../agent/mesh/directory';
import { MeshProxy } from '../agent/mesh/proxy';
import { PortProtocol } from '../gen/podium/v1/resources';
import { connections, listen, roundTrips, stats, targets, throughput } from './mesh-measure';
import { flag, machine, round1, runMain } from './sim/placements';

const REQUESTS = flag('requests', 5000);
const CONNECTIONS = flag('connections', 300);
const MIB = flag('mib', 256);

async function workloadCert(ca: Authority, service: string) {
  const { keyPem, csrPem } = await createKeyAndCsr(service);
  const certPem = await signWorkloadCsr(ca, csrPem, { tenant: 'acme', environment: 'prod', service }, 'bench-host', 3600);
  return { keyPem, certPem, serial: new X509Certificate(certPem).serialNumber };
}

runMain(async () => {
  const td = 'podium.local';
  const pems = await createCaPem(td);
  const ca = authorityFromPem(td, pems.caCertPem, pems.caKeyPem);
  const ids = new Map([
    ['web-1', await workloadCert(ca, 'web')],
    ['api-1', await workloadCert(ca, 'api')],
    ['sink-1', await workloadCert(ca, 'sink')],
  ]);
  const { echo, sink } = targets();
  const apiPort = await listen(echo, '127.0.0.3');
  const sinkPort = await listen(sink, '127.0.0.3');
  const log = pino({ level: 'error' });
  const identities = { get: (id: string) => ids.get(id) };
  const dirA = new MeshDirectory();
  const dirB = new MeshDirectory();
  const a = new MeshProxy({ trustDomain: td, caPem: ca.caCertPem, identities, directory: dirA, local: { targets: () => [], callerAt: (_t, _e, addr) => (addr === '127.0.0.2' ? 'web-1' : undefined) } }, log);
  const b = new MeshProxy(
    {
      trustDomain: td,
      caPem: ca.caCertPem,
      identities,
      directory: dirB,
      local: { targets: (_t, _e, svc) => (svc === 'api' ? [{ instanceId: 'api-1', address: '127.0.0.3' }] : svc === 'sink' ? [{ instanceId: 'sink-1', address: '127.0.0.3' }] : []), callerAt: () => undefined },
    },
    log,
  );
  const meshB = await b.listen('127.0.0.1', 0);
  await a.listen('127.0.0.1', 0);
  const endpoints = [{ instanceId: 'x', host: 'b', meshAddress: `127.0.0.1:${meshB}` }];
  const services = [
    { name: 'api', ports: [{ name: 'tcp', port: apiPort, protocol: PortProtocol.PORT_PROTOCOL_TCP }], endpoints, allowFromEnvironments: [], published: undefined, environment: 'prod' },
    { name: 'sink', ports: [{ name: 'tcp', port: sinkPort, protocol: PortProtocol.PORT_PROTOCOL_TCP }], endpoints, allowFromEnvironments: [], published: undefined, environment: 'prod' },
  ];
  for (const d of [dirA, dirB]) d.apply({ tenant: 'acme', environment: 'prod', version: 1, gone: false, services });
  await a.openLocal('acme', 'prod', '127.0.0.1');

  // Warm both paths (JIT, TLS session setup code), then measure each beside the other.
  await roundTrips(apiPort, '127.0.0.3', 200, '127.0.0.2');
  await roundTrips(apiPort, '127.0.0.1', 200, '127.0.0.2');
  const rtDirect = stats(await roundTrips(apiPort, '127.0.0.3', REQUESTS, '127.0.0.2'));
  const rtProxied = stats(await roundTrips(apiPort, '127.0.0.1', REQUESTS, '127.0.0.2'));
  const connDirect = stats(await connections(apiPort, '127.0.0.3', CONNECTIONS, '127.0.0.2'));
  const connProxied = stats(await connections(apiPort, '127.0.0.1', CONNECTIONS, '127.0.0.2'));
  const tpDirect = await throughput(sinkPort, '127.0.0.3', MIB, '127.0.0.2');
  const tpProxied = await throughput(sinkPort, '127.0.0.1', MIB, '127.0.0.2');

  await a.close();
  await b.close();
  echo.close();
  sink.close();
  process.stdout.write(
    `${JSON.stringify({
      bench: 'mesh',
      path: 'caller -> proxy A -> TLS 1.3 -> proxy B -> target, all on loopback',
      roundTripMs: { proxied: rtProxied, direct: rtDirect, p50Ratio: round1(rtProxied.p50 / rtDirect.p50) },
      newConnectionMs: { proxied: connProxied, direct: connDirect, p50Ratio: round1(connProxied.p50 / connDirect.p50) },
      throughputMiBps: { proxied: round1(tpProxied), direct: round1(tpDirect), ratio: Math.round((tpProxied / tpDirect) * 100) / 100 },
      requests: REQUESTS,
      connections: CONNECTIONS,
      mib: MIB,
      machine: machine(),
    })}\n`,
  );
});
