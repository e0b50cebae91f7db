/**
 * The host proxy on loopback (issue 8), without Docker: two proxies ("host A" and "host B") with
 * real workload certificates from a real CA, real TCP and real TLS 1.3 between them. Loopback
 * addresses stand in for the containers: the caller connects from 127.0.0.2 (the instance the
 * proxy knows at that address), the target container listens on 127.0.0.3.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createKeyAndCsr, issueKeyPair, signEndpointCsr, signWorkloadCsr, spiffeIdFor, type Authority } from '../../certs';
import type { EnvironmentRegistry } from '../../gen/podium/v1/agent';
import { PortProtocol } from '../../gen/podium/v1/resources';
import { MeshDirectory } from '../../agent/mesh/directory';
import { MeshProxy, targetServerName, type LocalInstances } from '../../agent/mesh/proxy';
import { testAuthority } from '../certs/helpers';
import { poll } from '../support/poll';

interface Held {
  keyPem: string;
  certPem: string;
  serial: string;
}

async function workloadCert(ca: Authority, tenant: string, environment: string, service: string, lifetimeSeconds = 600, host = 'host-a'): Promise<Held> {
  const { keyPem, csrPem } = await createKeyAndCsr(service);
  const certPem = await signWorkloadCsr(ca, csrPem, { tenant, environment, service }, host, lifetimeSeconds);
  return { keyPem, certPem, serial: new X509Certificate(certPem).serialNumber };
}

/** The target "container": answers every chunk with `<name>:<chunk>`. */
function echo(name: string, host: string): Promise<net.Server> {
  const server = net.createServer((s) => s.on('data', (d) => s.write(`${name}:${d.toString()}`)));
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}

const portOf = (s: net.Server | tls.Server) => (s.address() as net.AddressInfo).port;

/** Connects from `from` to `to:port`, sends `text`, and returns what came back before the close. */
function exchange(from: string, to: string, port: number, text: string, waitMs = 1_500): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect({ host: to, port, localAddress: from }, () => s.write(text));
    s.on('data', (d) => {
      got += d.toString();
      if (got.length >= text.length) s.end();
    });
    const done = () => resolve(got);
    s.on('close', done);
    s.on('error', () => undefined);
    setTimeout(() => s.destroy(), waitMs);
  });
}

/** A TLS client straight to a proxy's mesh port, as another proxy would connect: did it get through? */
function direct(port: number, servername: string, client: Held | { keyPem: string; certPem: string }, caPem: string): Promise<{ reply: string; error?: string }> {
  return new Promise((resolve) => {
    let reply = '';
    const s = tls.connect({ host: '127.0.0.1', port, servername, key: client.keyPem, cert: client.certPem, ca: caPem, checkServerIdentity: () => undefined }, () => s.write('hi'));
    s.on('data', (d) => (reply += d.toString()));
    s.on('error', (err) => resolve({ reply, error: err.message }));
    s.on('close', () => resolve({ reply }));
    setTimeout(() => s.destroy(), 1_500);
  });
}

/** Snapshots as the Pod API sends them: each newer than the one before. */
let version = 0;
const snapshot = (tenant: string, environment: string, services: EnvironmentRegistry['services']): EnvironmentRegistry => ({ tenant, environment, version: ++version, gone: false, services });

describe('mesh proxy on loopback', function () {
  this.timeout(30_000);
  let ca: Authority;
  let caPem: string;
  let api: net.Server;
  let apiPort: number;
  const ids = new Map<string, Held>();
  const logA: string[] = [];
  const logB: string[] = [];
  let a: MeshProxy;
  let b: MeshProxy;
  let dirA: MeshDirectory;
  let dirB: MeshDirectory;
  let regB: Registry;
  let meshB: number;

  const localA: LocalInstances = {
    targets: () => [],
    callerAt: (tenant, environment, address) =>
      tenant === 'acme' && environment === 'prod' && address === '127.0.0.2' ? 'web-1' : tenant === 'acme' && environment === 'staging' && address === '127.0.0.5' ? 'web-s' : undefined,
  };
  let eofTargets: Array<{ instanceId: string; address: string }> = [];
  const localB: LocalInstances = {
    targets: (tenant, environment, service) =>
      tenant === 'acme' && environment === 'prod' && service === 'api' ? [{ instanceId: 'api-1', address: '127.0.0.3' }] : service === 'eof' ? eofTargets : [],
    callerAt: () => undefined,
  };
  const apiService = (endpoints: string[], allowFromEnvironments: string[] = []) => ({
    name: 'api',
    ports: [{ name: 'http', port: apiPort, protocol: PortProtocol.PORT_PROTOCOL_TCP }],
    endpoints: endpoints.map((meshAddress, i) => ({ instanceId: `api-${i + 1}`, host: `h${i}`, meshAddress })),
    allowFromEnvironments,
    environment: 'prod',
    published: undefined,
  });
  const refusals = async (reg: Registry, direction: string, reason: string) =>
    (await reg.getSingleMetric('podium_mesh_refused_total')!.get()).values.find((v) => v.labels.direction === direction && v.labels.reason === reason)?.value ?? 0;

  before(async () => {
    ca = await testAuthority();
    caPem = ca.caCertPem;
    ids.set('web-1', await workloadCert(ca, 'acme', 'prod', 'web'));
    ids.set('api-1', await workloadCert(ca, 'acme', 'prod', 'api'));
    ids.set('web-s', await workloadCert(ca, 'acme', 'staging', 'web'));
    api = await echo('api', '127.0.0.3');
    apiPort = portOf(api);
    const identities = { get: (id: string) => ids.get(id) };
    dirA = new MeshDirectory();
    dirB = new MeshDirectory();
    regB = new Registry();
    a = new MeshProxy({ trustDomain: 'podium.local', caPem, identities, directory: dirA, local: localA, registry: new Registry() }, pino({ level: 'debug' }, { write: (l: string) => void logA.push(l) }));
    b = new MeshProxy({ trustDomain: 'podium.local', caPem, identities, directory: dirB, local: localB, registry: regB }, pino({ level: 'debug' }, { write: (l: string) => void logB.push(l) }));
    await a.listen('127.0.0.1', 0);
    meshB = await b.listen('127.0.0.1', 0);
    dirB.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`])]));
    dirA.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`])]));
    await a.openLocal('acme', 'prod', '127.0.0.1');
  });

  after(async () => {
    await a?.close();
    await b?.close();
    api?.close();
  });

  it('carries a caller\'s connection to the target container through both proxies over mutual TLS', async () => {
    assert.equal(await exchange('127.0.0.2', '127.0.0.1', apiPort, 'ping'), 'api:ping');
    assert.ok(logB.some((l) => l.includes('mesh: admitted') && l.includes('spiffe://podium.local/tenant/acme/env/prod/service/web')), 'B admitted web\'s identity');
  });

  it('passes a half-close on: a caller that ended its side still gets the answer', async () => {
    // The target answers only once the caller has ended (as an HTTP/1.0 server reading to EOF).
    const eof = net.createServer({ allowHalfOpen: true }, (s) => {
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('end', () => s.end(`read ${got.length} bytes`));
    });
    await new Promise<void>((r) => eof.listen(apiPort + 1 === 65536 ? 0 : apiPort + 1, '127.0.0.3', () => r()));
    try {
      const port = portOf(eof);
      const svc = { name: 'eof', ports: [{ name: 'tcp', port, protocol: PortProtocol.PORT_PROTOCOL_TCP }], endpoints: [{ instanceId: 'eof-1', host: 'b', meshAddress: `127.0.0.1:${meshB}` }], allowFromEnvironments: [], published: undefined, environment: 'prod' };
      ids.set('eof-1', await workloadCert(ca, 'acme', 'prod', 'eof'));
      eofTargets = [{ instanceId: 'eof-1', address: '127.0.0.3' }];
      dirA.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`]), svc]));
      const reply = await poll('the answer after the caller\'s end', () => new Promise<string | undefined>((resolve) => {
        let got = '';
        const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }, () => s.end('x'.repeat(1000)));
        s.on('data', (d) => (got += d.toString()));
        s.on('close', () => resolve(got || undefined));
        s.on('error', () => resolve(undefined));
      }), 3_000, 50);
      assert.equal(reply, 'read 1000 bytes');
    } finally {
      eof.close();
      eofTargets = [];
    }
  });

  it('refuses a local caller that is no instance of the environment, before any byte goes out', async () => {
    const before = await refusals(regB, 'inbound', 'not-allowed');
    assert.equal(await exchange('127.0.0.9', '127.0.0.1', apiPort, 'ping'), '');
    assert.ok(logA.some((l) => l.includes('"reason":"unknown-caller"') && l.includes('127.0.0.9')));
    assert.equal(await refusals(regB, 'inbound', 'not-allowed'), before, 'nothing reached B');
  });

  it('refuses another tenant\'s workload at the target proxy, logging its identity', async () => {
    const globex = await workloadCert(ca, 'globex', 'prod', 'web');
    const got = await direct(meshB, targetServerName({ tenant: 'acme', environment: 'prod', service: 'api', port: apiPort }), globex, caPem);
    assert.equal(got.reply, '');
    assert.ok(logB.some((l) => l.includes('"reason":"not-allowed"') && l.includes('spiffe://podium.local/tenant/globex/env/prod/service/web')));
  });

  it('refuses another environment of the tenant unless the target allows it', async () => {
    const staging = await workloadCert(ca, 'acme', 'staging', 'web');
    const sni = targetServerName({ tenant: 'acme', environment: 'prod', service: 'api', port: apiPort });
    assert.equal((await direct(meshB, sni, staging, caPem)).reply, '');
    assert.ok(logB.some((l) => l.includes('"reason":"not-allowed"') && l.includes('tenant/acme/env/staging/service/web')));
    dirB.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`], ['staging'])]));
    assert.equal((await direct(meshB, sni, staging, caPem)).reply, 'api:hi');
    dirB.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`])]));
  });

  it('gives a staging container the prod service that allows staging, under its own name, and carries it', async () => {
    // Staging's snapshot lists prod's api as an import (what the Pod API sends when api allows it).
    const imported = { ...apiService([`127.0.0.1:${meshB}`], ['staging']), environment: 'prod' };
    dirA.apply(snapshot('acme', 'staging', [imported]));
    await a.openLocal('acme', 'staging', '127.0.0.4');
    try {
      // B does not allow staging yet: the import is carried to B, which refuses it.
      const seen = logB.length;
      assert.equal(await exchange('127.0.0.5', '127.0.0.4', apiPort, 'ping'), '');
      assert.ok(logB.slice(seen).some((l) => l.includes('"reason":"not-allowed"') && l.includes('tenant/acme/env/staging/service/web')));
      dirB.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`], ['staging'])]));
      assert.equal(await exchange('127.0.0.5', '127.0.0.4', apiPort, 'ping'), 'api:ping');
      // Only staging's own containers speak through staging's endpoint: prod's web is not one.
      assert.equal(await exchange('127.0.0.2', '127.0.0.4', apiPort, 'ping'), '');
    } finally {
      a.closeLocal('acme', 'staging');
      dirB.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`])]));
    }
  });

  it('refuses a certificate of another CA, an expired one, and a host\'s identity', async () => {
    const sni = targetServerName({ tenant: 'acme', environment: 'prod', service: 'api', port: apiPort });
    const forged = await workloadCert(await testAuthority(), 'acme', 'prod', 'web');
    let seen = logB.length;
    assert.equal((await direct(meshB, sni, forged, caPem)).reply, '');
    assert.ok(logB.slice(seen).some((l) => l.includes('"reason":"untrusted"') && l.includes('tenant/acme/env/prod/service/web')), 'refused, with the identity it claimed');

    const expiring = await workloadCert(ca, 'acme', 'prod', 'web', 1);
    await new Promise((r) => setTimeout(r, 1_200));
    seen = logB.length;
    assert.equal((await direct(meshB, sni, expiring, caPem)).reply, '');
    assert.ok(logB.slice(seen).some((l) => l.includes('"reason":"untrusted"') && l.includes('CERT_HAS_EXPIRED')), 'refused as expired');

    const hostId = spiffeIdFor('podium.local', 'agent', 'host-x');
    const host = await issueKeyPair(ca, { role: 'agent', name: 'host-x', spiffeId: hostId }, 600);
    assert.equal((await direct(meshB, sni, host, caPem)).reply, '');
    assert.ok(logB.some((l) => l.includes('"reason":"not-a-workload"') && l.includes(hostId)));
  });

  it('cannot finish a handshake for a service the host does not run', async () => {
    const got = await direct(meshB, targetServerName({ tenant: 'acme', environment: 'prod', service: 'db', port: 5432 }), ids.get('web-1')!, caPem);
    assert.ok(got.error, 'no certificate to answer with');
  });

  it('tries the next endpoint when one fails, and refuses a peer that is not the target', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
    const deadAddress = `127.0.0.1:${portOf(dead)}`;
    dead.close();
    dirA.apply(snapshot('acme', 'prod', [apiService([deadAddress, `127.0.0.1:${meshB}`])]));
    // Round robin: one of two connections starts at the dead endpoint; both get through.
    assert.equal(await exchange('127.0.0.2', '127.0.0.1', apiPort, 'one'), 'api:one');
    assert.equal(await exchange('127.0.0.2', '127.0.0.1', apiPort, 'two'), 'api:two');
    assert.ok(logA.some((l) => l.includes('trying the next') && l.includes(deadAddress)));

    // A host that answers with a valid certificate of the platform, but not the target's.
    const web = ids.get('web-1')!;
    const rogue = tls.createServer({ key: web.keyPem, cert: web.certPem }, (s) => s.end('rogue'));
    await new Promise<void>((r) => rogue.listen(0, '127.0.0.1', () => r()));
    try {
      dirA.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${portOf(rogue)}`])]));
      assert.equal(await exchange('127.0.0.2', '127.0.0.1', apiPort, 'ping'), '');
      assert.ok(logA.some((l) => l.includes('is not spiffe://podium.local/tenant/acme/env/prod/service/api')));
    } finally {
      rogue.close();
      dirA.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`])]));
    }
  });

  it('refuses a revoked host\'s workload certificates, as caller and as target, and closes what they carry', async () => {
    const sni = targetServerName({ tenant: 'acme', environment: 'prod', service: 'api', port: apiPort });
    const fromR = await workloadCert(ca, 'acme', 'prod', 'web', 600, 'host-r');
    assert.equal((await direct(meshB, sni, fromR, caPem)).reply, 'api:hi', 'admitted before the revocation');
    // A connection of host-r's proxy that is open when the revocation arrives is closed.
    const live: tls.TLSSocket = tls.connect({ host: '127.0.0.1', port: meshB, servername: sni, key: fromR.keyPem, cert: fromR.certPem, ca: caPem, checkServerIdentity: () => undefined });
    live.on('error', () => undefined);
    live.resume();
    await new Promise<void>((r) => live.once('secureConnect', () => r()));
    await new Promise<void>((r) => live.write('x', () => setTimeout(r, 100)));
    const closed = new Promise<void>((r) => live.once('close', () => r()));
    b.revokeHosts([{ host: 'host-r', revokedAtMs: Date.now() }]);
    await closed;
    const seen = logB.length;
    assert.equal((await direct(meshB, sni, fromR, caPem)).reply, '');
    assert.ok(logB.slice(seen).some((l) => l.includes('"reason":"revoked"') && l.includes('"host":"host-r"') && l.includes('tenant/acme/env/prod/service/web')), 'refused, naming the host and the identity');
    // Another host's certificate for the same workload is still admitted.
    assert.equal((await direct(meshB, sni, await workloadCert(ca, 'acme', 'prod', 'web', 600, 'host-s'), caPem)).reply, 'api:hi');

    // As the target: a proxy answering with host-r's certificate of api is not called.
    const apiOfR = await workloadCert(ca, 'acme', 'prod', 'api', 600, 'host-r');
    const rogue = tls.createServer({ key: apiOfR.keyPem, cert: apiOfR.certPem }, (s) => s.end('from host-r'));
    await new Promise<void>((r) => rogue.listen(0, '127.0.0.1', () => r()));
    try {
      dirA.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${portOf(rogue)}`])]));
      assert.equal(await exchange('127.0.0.2', '127.0.0.1', apiPort, 'ping'), 'from host-r', 'called before A hears of the revocation');
      a.revokeHosts([{ host: 'host-r', revokedAtMs: Date.now() }]);
      assert.equal(await exchange('127.0.0.2', '127.0.0.1', apiPort, 'ping'), '');
      assert.ok(logA.some((l) => l.includes('host host-r is revoked')));
    } finally {
      rogue.close();
      dirA.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`])]));
    }
  });

  it('serves a published endpoint on the edge port by its name, forwarding to a local instance, and stops when it is unpublished', async () => {
    const edge = await b.listenEdge('127.0.0.1', 0);
    const { keyPem, csrPem } = await createKeyAndCsr('web.prod.acme.example');
    const certificatePem = await signEndpointCsr(ca, csrPem, 'web.prod.acme.example', 600);
    const published = { hostname: 'web.prod.acme.example', port: apiPort, certificatePem, privateKeyPem: keyPem };
    const https = (servername: string) =>
      new Promise<{ reply: string; error?: string }>((resolve) => {
        let reply = '';
        const s = tls.connect({ host: '127.0.0.1', port: edge, servername, ca: caPem }, () => s.write('GET'));
        s.on('data', (d) => {
          reply += d.toString();
          s.end();
        });
        s.on('error', (err) => resolve({ reply, error: err.message }));
        s.on('close', () => resolve({ reply }));
        setTimeout(() => s.destroy(), 1_500);
      });
    dirB.apply(snapshot('acme', 'prod', [{ ...apiService([`127.0.0.1:${meshB}`]), published }]));
    try {
      // Verified against the platform's CA for the name asked for (tls.connect checks the name).
      assert.deepEqual(await https('web.prod.acme.example'), { reply: 'api:GET' });
      const unknown = await https('db.prod.acme.example');
      assert.ok(unknown.error, 'a name not published here fails the handshake');
      assert.equal(unknown.reply, '');
    } finally {
      dirB.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`])]));
    }
    const after = await https('web.prod.acme.example');
    assert.ok(after.error && after.reply === '', 'unpublished: no answer');
  });

  it('opens a listener for a service the registry adds and closes it when the service goes', async () => {
    const other = 20000 + (apiPort % 10000);
    const svc = { name: 'cache', ports: [{ name: 'redis', port: other, protocol: PortProtocol.PORT_PROTOCOL_TCP }], endpoints: [], allowFromEnvironments: [], published: undefined, environment: 'prod' };
    dirA.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`]), svc]));
    await poll('the new listener', () => new Promise<boolean>((r) => {
      const s = net.connect({ host: '127.0.0.1', port: other }, () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    }), 2_000, 20);
    dirA.apply(snapshot('acme', 'prod', [apiService([`127.0.0.1:${meshB}`])]));
    await poll('the listener closed', () => new Promise<boolean>((r) => {
      const s = net.connect({ host: '127.0.0.1', port: other }, () => (s.destroy(), r(false)));
      s.on('error', () => r(true));
    }), 2_000, 20);
  });
});
