/**
 * Finding: "A join token takes over a live host. Tokens are reusable for their whole TTL and Join
 * accepts any --host-id. A second agent joining as local-1 got its lots; the real local-1 then
 * reconciled with `remove: 41` and killed all its containers."
 *
 * Shown here over real gRPC and TLS against an in-process Pod API, with scripted agents that join
 * through the real Join: a token is good for its uses only (one by default, also under a race);
 * the host id comes from the token or the server; a live host cannot be joined again, so it keeps
 * its instances; only a --replace token takes it over, and that closes the old session.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { status, type ServiceError } from '@grpc/grpc-js';
import { parseJoinToken, serialNumberOf } from '../../certs';
import { joinFleet, renew } from '../../agent/identity';
import { createStoredJoinToken } from '../../cli';
import { InstanceState, Service } from '../../gen/podium/v1/resources';
import { as, call, startPodApiHarness, TEST_TRUST_DOMAIN, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { ScriptedAgent } from '../support/scripted-agent';

const BIN = join(__dirname, '..', '..', '..', 'bin', 'podium');
const INVALID_TOKEN = /UNAUTHENTICATED: join token is unknown, expired, used up or wrong/;

describe('host identity: join tokens that cannot take over a host', function () {
  this.timeout(30_000);
  let h: PodApiHarness;
  const agents: ScriptedAgent[] = [];

  beforeEach(async () => {
    h = await startPodApiHarness();
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) a.close();
    await h.close();
  });

  async function connected(token: string, hostId = ''): Promise<ScriptedAgent> {
    const a = await ScriptedAgent.join(h.address, token, {}, hostId);
    agents.push(a);
    a.connect();
    await a.welcomed();
    return a;
  }

  /** A service of `replicas` small replicas in tenant acme, waited for until all run. */
  async function runningService(name: string, replicas: number): Promise<Service> {
    await call(h.operator, 'createEnvironment', { environment: { name: 'prod' } }, as('acme')).catch(() => undefined);
    await call(h.operator, 'createService', {
      environment: 'prod',
      service: Service.fromPartial({ name, image: 'img', replicas, resources: { cpuMillis: 100, memoryMib: 64 } }),
    }, as('acme'));
    return poll(`${replicas} replicas of ${name} running`, async () => {
      const s = await call<object, Service>(h.operator, 'getService', { environment: 'prod', service: name }, as('acme'));
      return s.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING).length === replicas ? s : undefined;
    });
  }

  it('a token is good for one Join by default, and for --uses N joins with N', async () => {
    const once = await h.joinToken();
    await joinFleet(h.address, once, '');
    await assert.rejects(joinFleet(h.address, once, ''), INVALID_TOKEN);

    const twice = await h.joinToken({ uses: 2 });
    const first = await joinFleet(h.address, twice, '');
    const second = await joinFleet(h.address, twice, '');
    assert.notEqual(first.hostId, second.hostId);
    await assert.rejects(joinFleet(h.address, twice, ''), INVALID_TOKEN);
    const stored = (await h.server.storage.read((r) => r.joinTokens.get(parseJoinToken(twice).id)))!;
    assert.deepEqual([stored.uses, stored.used], [2, 2]);
  });

  it('two concurrent Joins with a one-use token: exactly one gets a certificate', async () => {
    const token = await h.joinToken();
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => joinFleet(h.address, token, '')));
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1, `exactly one Join succeeds: ${JSON.stringify(results.map((r) => r.status))}`);
    for (const r of results) if (r.status === 'rejected') assert.match(String(r.reason), INVALID_TOKEN);
    assert.equal((await h.server.storage.read((r) => r.joinTokens.get(parseJoinToken(token).id)))!.used, 1);
    const winner = (won[0] as PromiseFulfilledResult<{ hostId: string }>).value.hostId;
    assert.equal((await h.server.storage.read((r) => r.certificates.list('agent', winner))).length, 1);
  });

  it('the finding: while host X runs instances, a Join as X is refused and X keeps them', async () => {
    const x = await connected(await h.joinToken({ hostId: 'x-host' }), 'x-host');
    await runningService('web', 2);
    assert.equal(x.running.size, 2);

    // An unbound token cannot name a host at all.
    await assert.rejects(joinFleet(h.address, await h.joinToken(), 'x-host'), (e: ServiceError) => {
      assert.equal(e.code, status.INVALID_ARGUMENT);
      assert.match(e.details, /^host_id: the token is not bound to a host id; make one with --host-id$/);
      return true;
    });
    // A token bound to X (but not made to replace it) cannot take X while X holds a valid certificate.
    const bound = await h.joinToken({ hostId: 'x-host' });
    await assert.rejects(joinFleet(h.address, bound, ''), (e: ServiceError) => {
      assert.equal(e.code, status.FAILED_PRECONDITION);
      assert.match(e.details, /host "x-host" already holds a valid certificate; revoke it first \(podium certs revoke --host x-host\) or join with a token made with --replace/);
      return true;
    });
    // Nothing half-written: no certificate, and the refused Join did not use the token up.
    assert.equal((await h.server.storage.read((r) => r.certificates.list('agent', 'x-host'))).length, 1);
    assert.equal((await h.server.storage.read((r) => r.joinTokens.get(parseJoinToken(bound).id)))!.used, 0);

    // X is untouched: its session is open, it was never told to remove anything, its replicas run on it.
    const svc = await call<object, Service>(h.operator, 'getService', { environment: 'prod', service: 'web' }, as('acme'));
    assert.deepEqual(svc.instances.map((i) => [i.host, i.state]), [['x-host', InstanceState.INSTANCE_STATE_RUNNING], ['x-host', InstanceState.INSTANCE_STATE_RUNNING]]);
    assert.equal(x.ended, null);
    assert.equal(x.running.size, 2);
    assert.deepEqual(x.messages('reconcile').flatMap((m) => m.reconcile.removeInstanceIds), []);
    assert.deepEqual(x.messages('stopInstance'), []);
  });

  it('a --replace token takes X over: X\'s certificate is revoked and its session closed', async () => {
    const x = await connected(await h.joinToken({ hostId: 'x-host' }), 'x-host');
    await runningService('web', 1);
    const oldSerial = serialNumberOf(x.identity.certPem);

    // The Join alone closes X's session (the successor has not connected yet, so nothing else could).
    const t0 = Date.now();
    const successorId = await joinFleet(h.address, await h.joinToken({ hostId: 'x-host', replace: true }), 'x-host');
    await poll('the old session of x-host closed', () => x.ended !== null, 5_000, 10);
    process.stdout.write(`      (old session closed ${x.endedAt! - t0} ms after the replacing Join began)\n`);
    assert.ok(x.endedAt! - t0 < 1_000);
    assert.match(x.ended!, /UNAVAILABLE/, 'the connection was cut');
    assert.ok((await h.server.storage.read((r) => r.certificates.get(oldSerial)))!.revokedAt !== null);
    assert.equal((await h.server.storage.read((r) => r.certificates.get(oldSerial)))!.revokeReason, 'replaced by a new join');
    const successor = ScriptedAgent.withIdentity(h.address, successorId);
    agents.push(successor);
    successor.connect();
    await successor.welcomed();
    assert.equal(successor.hostId, 'x-host');

    // The replaced agent cannot come back with its old certificate.
    x.connect();
    await poll('the replaced agent refused', () => x.ended !== null, 10_000, 20);
    assert.match(x.ended!, /UNAVAILABLE/);
    assert.equal(x.messages('welcome').length, 1, 'only the first session was ever welcomed');
  });

  it('a gateway or operator certificate cannot open an agent session', async () => {
    for (const role of ['gateway', 'operator'] as const) {
      const pair = await h.clientKeyPair(role, `not-a-host-${role}`);
      const impostor = ScriptedAgent.withIdentity(h.address, { hostId: `not-a-host-${role}`, ...pair });
      agents.push(impostor);
      impostor.connect();
      await poll(`${role} refused`, () => impostor.ended !== null, 10_000, 20);
      assert.match(impostor.ended!, /PERMISSION_DENIED: role \w+ may not call this method/);
      assert.equal(impostor.messages('welcome').length, 0);
    }
  });

  it('Renew records the new certificate; the old one stays valid until it expires', async () => {
    const first = await joinFleet(h.address, await h.joinToken({ hostId: 'r-host' }), 'r-host');
    const second = await renew(h.address, first);
    const certs = await h.server.storage.read((r) => r.certificates.list('agent', 'r-host'));
    assert.deepEqual(certs.map((c) => [c.serial, c.revokedAt]).sort(), [
      [serialNumberOf(first.certPem), null],
      [serialNumberOf(second.certPem), null],
    ].sort());
    assert.equal(certs.find((c) => c.serial === serialNumberOf(second.certPem))!.issuedBy, `renewal of ${serialNumberOf(first.certPem)}`);
    for (const id of [first, second]) {
      const a = ScriptedAgent.withIdentity(h.address, id);
      agents.push(a);
      a.connect();
      await a.welcomed();
      a.close();
    }
  });

  it('join-token refuses options that make no sense, naming the flag', async () => {
    const mk = (opts: Parameters<typeof createStoredJoinToken>[4], role: 'agent' | 'gateway' = 'agent') =>
      createStoredJoinToken({ dataDir: h.dataDir, database: h.database }, TEST_TRUST_DOMAIN, role, 60_000, opts);
    await assert.rejects(mk({ uses: 0 }), /--uses: expected a positive integer/);
    await assert.rejects(mk({ replace: true }), /--replace: needs --host-id/);
    await assert.rejects(mk({ hostId: 'Not A Name' }), /--host-id: must be 1-40 characters/);
    await assert.rejects(mk({ hostId: 'gw-1' }, 'gateway'), /--host-id: only agent tokens are bound to a host id/);

    // The real CLI: the flags reach the store.
    const { stdout } = await promisify(execFile)(process.execPath, [
      BIN, 'certs', 'join-token', '--data-dir', h.dataDir, '--database', h.database, '--uses', '3', '--host-id', 'cli-host', '--replace', '--ttl', '5m',
    ]);
    const stored = (await h.server.storage.read((r) => r.joinTokens.get(parseJoinToken(stdout.trim()).id)))!;
    assert.deepEqual([stored.uses, stored.used, stored.hostId, stored.replace], [3, 0, 'cli-host', true]);
    assert.ok(Math.abs(stored.expiresAt - (Date.now() + 5 * 60_000)) < 30_000);
  });
});
