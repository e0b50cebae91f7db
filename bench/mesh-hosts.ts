// bench:mesh-hosts — what the host proxies cost between two hosts of the test bed (two network
// namespaces on a bridge, as the end-to-end tests run them): on host 2 an echo server and a sink
// with the target's proxy, on host 1 the caller with its proxy; the same measures as bench:mesh
// (bench/mesh-measure.ts) over the proxied path (caller -> proxy on host 1 -> TLS 1.3 over the
// bridge -> proxy on host 2 -> target) and beside it over a direct TCP connection from the same
// caller address to the same target across the bridge. Needs root (it brings up a test bed of two
// hosts and takes it down). Prints one JSON object.
// Run: npm run bench:mesh-hosts -- [--requests 5000] [--connections 300] [--mib 256]
import { spawn } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { authorityFromPem, createCaPem, createKeyAndCsr, signWorkloadCsr, type Authority } from '../certs';
import { MeshDirectory } from '../agent/mesh/directory';
import { MeshProxy, type LocalInstances } from '../agent/mesh/proxy';
import { inHost, testbedDown, testbedUp } from '../cli';
import { PortProtocol } from '../gen/podium/v1/resources';
import { connections, listen, roundTrips, stats, targets, throughput } from './mesh-measure';
import { flag, machine, round1, runMain } from './sim/placements';

const TD = 'podium.local';

interface Held {
  keyPem: string;
  certPem: string;
  serial: string;
}

interface Config {
  caPem: string;
  ids: Record<string, Held>;
  /** This side's host address on the bridge. */
  address: string;
  /** The caller's: the target side's ports and proxy. */
  target?: { address: string; apiPort: number; sinkPort: number; meshPort: number };
  requests: number;
  connections: number;
  mib: number;
}

async function workloadCert(ca: Authority, service: string, host: string): Promise<Held> {
  const { keyPem, csrPem } = await createKeyAndCsr(service);
  const certPem = await signWorkloadCsr(ca, csrPem, { tenant: 'acme', environment: 'prod', service }, host, 3600);
  return { keyPem, certPem, serial: new X509Certificate(certPem).serialNumber };
}

function services(apiPort: number, sinkPort: number, meshAddress: string) {
  const endpoints = [{ instanceId: 'x', host: 'target', meshAddress }];
  return [
    { name: 'api', environment: 'prod', ports: [{ name: 'tcp', port: apiPort, protocol: PortProtocol.PORT_PROTOCOL_TCP }], endpoints, allowFromEnvironments: [], published: undefined },
    { name: 'sink', environment: 'prod', ports: [{ name: 'tcp', port: sinkPort, protocol: PortProtocol.PORT_PROTOCOL_TCP }], endpoints, allowFromEnvironments: [], published: undefined },
  ];
}

function proxyOf(cfg: Config, directory: MeshDirectory, local: LocalInstances): MeshProxy {
  return new MeshProxy({ trustDomain: TD, caPem: cfg.caPem, identities: { get: (id) => cfg.ids[id] }, directory, local }, pino({ level: 'error' }));
}

/** Host 2: the target, its proxy; prints its ports and waits to be ended. */
async function targetSide(cfg: Config): Promise<void> {
  const { echo, sink } = targets();
  const apiPort = await listen(echo, cfg.address);
  const sinkPort = await listen(sink, cfg.address);
  const directory = new MeshDirectory();
  const proxy = proxyOf(cfg, directory, { targets: (_t, _e, svc) => [{ instanceId: `${svc}-1`, address: cfg.address }], callerAt: () => undefined });
  const meshPort = await proxy.listen(cfg.address, 0);
  directory.apply({ tenant: 'acme', environment: 'prod', version: 1, gone: false, services: services(apiPort, sinkPort, `${cfg.address}:${meshPort}`) });
  process.stdout.write(`${JSON.stringify({ apiPort, sinkPort, meshPort })}\n`);
  await new Promise(() => undefined);
}

/** Host 1: the caller and its proxy; measures both paths and prints them. */
async function callerSide(cfg: Config): Promise<void> {
  const t = cfg.target!;
  const directory = new MeshDirectory();
  const proxy = proxyOf(cfg, directory, { targets: () => [], callerAt: (_t, _e, address) => (address === cfg.address ? 'web-1' : undefined) });
  await proxy.listen(cfg.address, 0);
  directory.apply({ tenant: 'acme', environment: 'prod', version: 1, gone: false, services: services(t.apiPort, t.sinkPort, `${t.address}:${t.meshPort}`) });
  // The caller's local endpoints on its own host address (a container's would be its network's gateway).
  await proxy.openLocal('acme', 'prod', cfg.address);
  const from = cfg.address;
  await roundTrips(t.apiPort, t.address, 200, from);
  await roundTrips(t.apiPort, cfg.address, 200, from);
  const rtDirect = stats(await roundTrips(t.apiPort, t.address, cfg.requests, from));
  const rtProxied = stats(await roundTrips(t.apiPort, cfg.address, cfg.requests, from));
  const connDirect = stats(await connections(t.apiPort, t.address, cfg.connections, from));
  const connProxied = stats(await connections(t.apiPort, cfg.address, cfg.connections, from));
  const tpDirect = await throughput(t.sinkPort, t.address, cfg.mib, from);
  const tpProxied = await throughput(t.sinkPort, cfg.address, cfg.mib, from);
  await proxy.close();
  process.stdout.write(
    `${JSON.stringify({
      roundTripMs: { proxied: rtProxied, direct: rtDirect, p50Ratio: round1(rtProxied.p50 / rtDirect.p50) },
      newConnectionMs: { proxied: connProxied, direct: connDirect, p50Ratio: round1(connProxied.p50 / connDirect.p50) },
      throughputMiBps: { proxied: round1(tpProxied), direct: round1(tpDirect), ratio: Math.round((tpProxied / tpDirect) * 100) / 100 },
    })}\n`,
  );
}

/** Starts this script in `role` inside a host's namespace; resolves with its first line of output. */
function side(host: Parameters<typeof inHost>[0], role: string, cfgFile: string): { firstLine: Promise<string>; stop(): void } {
  const { command, args } = inHost(host, [process.execPath, __filename, '--role', role, '--config', cfgFile]);
  const p = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const firstLine = new Promise<string>((resolve, reject) => {
    p.stdout.on('data', (d) => {
      out += d.toString();
      const i = out.indexOf('\n');
      if (i >= 0) resolve(out.slice(0, i));
    });
    p.once('exit', (code) => reject(new Error(`${role} exited with ${code} before it said anything`)));
  });
  return { firstLine, stop: () => p.kill('SIGTERM') };
}

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

runMain(async () => {
  const role = arg('role');
  if (role) {
    const cfg = JSON.parse(readFileSync(arg('config')!, 'utf8')) as Config;
    return role === 'target' ? targetSide(cfg) : callerSide(cfg);
  }
  const name = `bm${randomBytes(2).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'podium-bench-mesh-'));
  const tb = await testbedUp(name, 2, { subnet: 'auto', owner: process.pid });
  try {
    const [callerHost, targetHost] = tb.hosts as [(typeof tb.hosts)[number], (typeof tb.hosts)[number]];
    const pems = await createCaPem(TD);
    const ca = authorityFromPem(TD, pems.caCertPem, pems.caKeyPem);
    const ids = {
      'web-1': await workloadCert(ca, 'web', callerHost.name),
      'api-1': await workloadCert(ca, 'api', targetHost.name),
      'sink-1': await workloadCert(ca, 'sink', targetHost.name),
    };
    const base = { caPem: ca.caCertPem, ids, requests: flag('requests', 5000), connections: flag('connections', 300), mib: flag('mib', 256) };
    const targetCfg = join(dir, 'target.json');
    writeFileSync(targetCfg, JSON.stringify({ ...base, address: targetHost.address }), { mode: 0o600 });
    const target = side(targetHost, 'target', targetCfg);
    try {
      const ports = JSON.parse(await target.firstLine) as { apiPort: number; sinkPort: number; meshPort: number };
      const callerCfg = join(dir, 'caller.json');
      writeFileSync(callerCfg, JSON.stringify({ ...base, address: callerHost.address, target: { address: targetHost.address, ...ports } }), { mode: 0o600 });
      const caller = side(callerHost, 'caller', callerCfg);
      const result = JSON.parse(await caller.firstLine.finally(() => caller.stop()));
      process.stdout.write(
        `${JSON.stringify({
          bench: 'mesh-hosts',
          path: `caller on ${callerHost.name} -> its proxy -> TLS 1.3 over the bridge -> proxy on ${targetHost.name} -> target; direct: the same caller address to the same target over TCP`,
          ...result,
          requests: base.requests,
          connections: base.connections,
          mib: base.mib,
          machine: machine(),
        })}\n`,
      );
    } finally {
      target.stop();
    }
  } finally {
    await testbedDown(name);
    rmSync(dir, { recursive: true, force: true });
  }
});
