/**
 * Revocation, over real gRPC and TLS against an in-process Pod API with scripted agents: a revoked
 * agent's stream ends within a second, it is refused at the handshake from then on (the TLS
 * connection closes before a single HTTP/2 byte), its instances are placed on another host; the
 * revocation is in SQLite and survives a restart; `podium certs revoke` (the real CLI, another
 * process, the same data directory) takes effect within a second.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { promisify } from 'node:util';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { serialNumberOf } from '../../certs';
import { joinFleet } from '../../agent/identity';
import type { RevokeHostResponse } from '../../gen/podium/v1/pod_api';
import { PodApiClient } from '../../gen/podium/v1/pod_api';
import { HostState, InstanceState, Service, type Host } from '../../gen/podium/v1/resources';
import { as, call, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { ScriptedAgent } from '../support/scripted-agent';

const BIN = join(__dirname, '..', '..', '..', 'bin', 'podium');
const run = promisify(execFile);

/**
 * Opens a raw TLS connection with a client certificate, offering h2, and reports whether the server
 * spoke (an admitted connection gets the server's HTTP/2 SETTINGS at once) or closed it silently.
 */
function tlsOutcome(address: string, pair: { keyPem: string; certPem: string; caPem: string }): Promise<{ handshake: boolean; bytes: number; closedByServer: boolean }> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    let handshake = false;
    let bytes = 0;
    const s = tls.connect({
      host: address.slice(0, i),
      port: Number(address.slice(i + 1)),
      ca: pair.caPem,
      key: pair.keyPem,
      cert: pair.certPem,
      ALPNProtocols: ['h2'],
      servername: 'localhost',
    });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ handshake, bytes, closedByServer: false });
    }, 5_000);
    s.on('secureConnect', () => (handshake = true));
    s.on('data', (d: Buffer) => {
      bytes += d.length;
      // The server spoke: it admitted the connection. No need to wait any longer.
      clearTimeout(timer);
      s.destroy();
      resolve({ handshake, bytes, closedByServer: false });
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ handshake, bytes, closedByServer: bytes === 0 });
    });
    s.on('error', (err) => !handshake && reject(err));
  });
}

describe('revocation: refused at the handshake, live sessions closed within a second', function () {
  this.timeout(60_000);
  let h: PodApiHarness;
  const agents: ScriptedAgent[] = [];

  beforeEach(async () => {
    h = await startPodApiHarness();
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) a.close();
    await h.close();
  });

  /**
   * A joined, connected agent. `silent` sends no heartbeats: a host marked down closes its own
   * session at its next heartbeat, and a test of the connection being cut must not lean on that.
   */
  async function connected(hostId: string, opts: { silent?: boolean } = {}): Promise<ScriptedAgent> {
    const a = await ScriptedAgent.join(h.address, await h.joinToken({ hostId }), opts.silent ? { heartbeatMs: 0 } : {}, hostId);
    agents.push(a);
    a.connect();
    await a.welcomed();
    return a;
  }

  async function service(name: string): Promise<Service> {
    return call<object, Service>(h.operator, 'getService', { environment: 'prod', service: name }, as('acme'));
  }

  async function deploy(name: string, replicas: number, on: string): Promise<void> {
    await call(h.operator, 'createEnvironment', { environment: { name: 'prod' } }, as('acme')).catch(() => undefined);
    await call(h.operator, 'createService', {
      environment: 'prod',
      service: Service.fromPartial({ name, image: 'img', replicas, resources: { cpuMillis: 100, memoryMib: 64 } }),
    }, as('acme'));
    await poll(`${replicas} replicas of ${name} running on ${on}`, async () =>
      (await service(name)).instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING && i.host === on).length === replicas);
  }

  it('RevokeHost: the stream ends within 1 s, the reconnect is refused at the handshake, the instances move', async () => {
    const a = await connected('host-a', { silent: true });
    await deploy('web', 2, 'host-a');
    const b = await connected('host-b');
    const pairA = { keyPem: a.identity.keyPem, certPem: a.identity.certPem, caPem: a.identity.caPem };
    const pairB = { keyPem: b.identity.keyPem, certPem: b.identity.certPem, caPem: b.identity.caPem };

    const t0 = Date.now();
    const res = await call<object, RevokeHostResponse>(h.operator, 'revokeHost', { host: 'host-a', reason: 'key leaked' });
    await poll('the stream of host-a ended', () => a.ended !== null, 5_000, 5);
    const ms = a.endedAt! - t0;
    process.stdout.write(`      (host-a's stream ended ${ms} ms after RevokeHost was called)\n`);
    assert.ok(ms < 1_000, `the stream ended after ${ms} ms`);
    assert.match(a.ended!, /UNAVAILABLE/, 'the connection was cut, not the stream ended by the session');
    assert.deepEqual(res, { revokedSerials: [serialNumberOf(a.identity.certPem)], lostInstances: 2 });
    assert.equal(b.ended, null);

    // Refused at the handshake: the connection closes before the server says a word of HTTP/2,
    // while a valid certificate gets the server's SETTINGS at once.
    assert.deepEqual(await tlsOutcome(h.address, pairA), { handshake: true, bytes: 0, closedByServer: true });
    assert.equal((await tlsOutcome(h.address, pairB)).bytes > 0, true);
    const refused = (await h.server.metrics.refusedHandshakes.get()).values.find((v) => v.labels.role === 'agent')?.value ?? 0;
    assert.ok(refused >= 1, 'the refusal is counted');
    a.connect();
    await poll('the reconnect refused', () => a.ended !== null, 10_000, 20);
    assert.match(a.ended!, /UNAVAILABLE/);
    assert.equal(a.messages('welcome').length, 1);

    // Re-auctioned onto host-b; host-a is down; the events say why.
    await poll('both replicas running on host-b', async () =>
      (await service('web')).instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING && i.host === 'host-b').length === 2);
    const hosts = await call<object, { hosts: Host[] }>(h.operator, 'listHosts', {});
    assert.equal(hosts.hosts.find((x) => x.id === 'host-a')!.state, HostState.HOST_STATE_DOWN);
    const events = (await h.server.storage.read((r) => r.events.list(null, '', 0))).filter((e) => e.host === 'host-a').map((e) => e.type);
    assert.ok(events.includes('host.revoked'));
    assert.equal(events.filter((t) => t === 'instance.lost').length, 2);
    assert.ok((await h.server.storage.read((r) => r.events.list(null, '', 0))).find((e) => e.type === 'host.revoked')!.message.startsWith('key leaked'));
  });

  it('RevokeHost is for operators; an unknown host is NOT_FOUND and bad input names the field', async () => {
    await connected('host-a');
    const gateway = new PodApiClient(h.address, await h.clientCredentials('gateway', 'gw'));
    try {
      await assert.rejects(call(gateway, 'revokeHost', { host: 'host-a' }, as('acme')), (e: ServiceError) => e.code === status.PERMISSION_DENIED);
    } finally {
      gateway.close();
    }
    await assert.rejects(call(h.operator, 'revokeHost', { host: 'no-such-host' }), (e: ServiceError) => {
      assert.equal(e.code, status.NOT_FOUND);
      assert.equal(e.details, 'host "no-such-host" not found');
      return true;
    });
    await assert.rejects(call(h.operator, 'revokeHost', { host: 'Bad Name' }), (e: ServiceError) => e.code === status.INVALID_ARGUMENT && /^host: /.test(e.details));
    await assert.rejects(call(h.operator, 'revokeHost', { host: 'host-a', reason: 'x'.repeat(201) }), (e: ServiceError) => e.code === status.INVALID_ARGUMENT && /^reason: must be at most 200/.test(e.details));
    // Nothing was revoked by any of these.
    assert.equal((await h.server.storage.read((r) => r.certificates.listValid('agent', 'host-a', Date.now()))).length, 1);
    assert.equal((await h.server.storage.read((r) => r.hosts.get('host-a')))!.state, 'up');
  });

  it('the revocation survives a restart; a revoked host comes back only with a new token', async () => {
    const staleToken = await h.joinToken({ hostId: 'host-a', uses: 2 });
    const a = await ScriptedAgent.join(h.address, staleToken, {}, 'host-a');
    agents.push(a);
    a.connect();
    await a.welcomed();
    await call(h.operator, 'revokeHost', { host: 'host-a' });
    await poll('host-a cut off', () => a.ended !== null, 5_000, 10);

    await h.restart();
    const pair = { keyPem: a.identity.keyPem, certPem: a.identity.certPem, caPem: a.identity.caPem };
    assert.deepEqual(await tlsOutcome(h.address, pair), { handshake: true, bytes: 0, closedByServer: true });
    a.connect();
    await poll('refused after the restart', () => a.ended !== null, 10_000, 20);
    assert.match(a.ended!, /UNAVAILABLE/);

    // The token made before the revocation had a use left: the revocation used it up.
    await assert.rejects(joinFleet(h.address, staleToken, ''), /UNAUTHENTICATED: join token is unknown, expired, used up or wrong/);
    // A new token brings the host back, as a new identity.
    const back = await ScriptedAgent.join(h.address, await h.joinToken({ hostId: 'host-a' }), {}, 'host-a');
    agents.push(back);
    back.connect();
    await back.welcomed();
    assert.equal((await h.server.storage.read((r) => r.hosts.get('host-a')))!.state, 'up');
  });

  it('a revocation by the real CLI, in another process, takes effect within 1 s', async () => {
    const a = await connected('host-a', { silent: true });
    const { stdout } = await run(process.execPath, [BIN, 'certs', 'revoke', '--data-dir', h.dataDir, '--database', h.database, '--host', 'host-a', '--reason', 'decommissioned']);
    const cliDone = Date.now();
    assert.match(stdout, new RegExp(`^revoked host host-a: 1 certificate \\(${serialNumberOf(a.identity.certPem)}\\); 0 instances to be placed again`));
    await poll('the stream of host-a ended', () => a.ended !== null, 5_000, 5);
    const ms = a.endedAt! - cliDone;
    process.stdout.write(`      (host-a's stream ended ${ms} ms after podium certs revoke exited)\n`);
    assert.ok(ms < 1_000, `the stream ended ${ms} ms after the CLI`);
    assert.match(a.ended!, /UNAVAILABLE/, 'the connection was cut, not the stream ended by the session');
    assert.equal((await h.server.storage.read((r) => r.hosts.get('host-a')))!.state, 'down');
  });

  it('the CLI revokes one certificate by serial (any case, with colons): an operator connection is cut', async () => {
    // Issued by the real `podium certs issue`, which records what it issues.
    const out = join(h.dir, 'ops-2');
    await run(process.execPath, [BIN, 'certs', 'issue', '--data-dir', h.dataDir, '--database', h.database, '--role', 'operator', '--name', 'ops-2', '--out', out, '--lifetime', '1h']);
    const read = (f: string) => readFileSync(join(out, f), 'utf8');
    const pair = { caPem: read('ca.crt'), keyPem: read('operator.key'), certPem: read('operator.crt'), serial: serialNumberOf(read('operator.crt')) };
    assert.equal((await h.server.storage.read((r) => r.certificates.get(pair.serial)))?.issuedBy, 'podium certs issue');
    const client = new PodApiClient(h.address, credentials.createSsl(Buffer.from(pair.caPem), Buffer.from(pair.keyPem), Buffer.from(pair.certPem)));
    try {
      await call(client, 'listHosts', {});
      const typed = `00:${pair.serial.toUpperCase().match(/.{1,2}/g)!.join(':')}`;
      const { stdout } = await run(process.execPath, [BIN, 'certs', 'revoke', '--data-dir', h.dataDir, '--database', h.database, '--serial', typed]);
      assert.equal(stdout.trim(), `revoked certificate ${pair.serial} (operator ops-2)`);
      await poll('the operator refused', async () => {
        try {
          await call(client, 'listHosts', {}, new Metadata(), 2_000);
          return false;
        } catch (err) {
          return (err as ServiceError).code === status.UNAVAILABLE;
        }
      }, 5_000, 50);
      const again = await run(process.execPath, [BIN, 'certs', 'revoke', '--data-dir', h.dataDir, '--database', h.database, '--serial', pair.serial]);
      assert.match(again.stdout, /was already revoked at/);
      await assert.rejects(run(process.execPath, [BIN, 'certs', 'revoke', '--data-dir', h.dataDir, '--database', h.database, '--serial', 'abc123']), /no certificate with serial abc123/);
      await assert.rejects(run(process.execPath, [BIN, 'certs', 'revoke', '--data-dir', h.dataDir, '--database', h.database]), /give exactly one of them/);
      // The harness's own operator was not touched.
      await call(h.operator, 'listHosts', {});
    } finally {
      client.close();
    }
  });
});
