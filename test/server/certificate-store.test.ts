/**
 * The store's join tokens and certificates on a real SQLite file: what a Join, a Renew and a
 * revocation write, and what a second process (a second connection, as the CLI is) sees of it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { revokeHost } from '../../server/revocation';
import { Store, type NewCertificate } from '../../server/store';

const HOUR = 3_600_000;

describe('store: join tokens and certificates', () => {
  let dir: string;
  let store: Store;
  const now = 1_000_000;
  const cert = (serial: string, name = 'h1', notAfter = now + HOUR): NewCertificate => ({
    serial, role: 'agent', name, notBefore: now - 60_000, notAfter, issuedBy: 'test',
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podium-certstore-'));
    store = Store.open(join(dir, 'podium.db'));
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a Join consumes a use only while one is left and the token has not expired', () => {
    store.insertJoinToken({ id: 't1', secretHash: 'x', role: 'agent', expiresAt: now + HOUR, uses: 2 }, now);
    assert.deepEqual(store.recordJoin('t1', cert('a1', 'h1'), now), { ok: true, replaced: [] });
    assert.deepEqual(store.recordJoin('t1', cert('a2', 'h2'), now), { ok: true, replaced: [] });
    assert.deepEqual(store.recordJoin('t1', cert('a3', 'h3'), now), { ok: false, reason: 'token' });
    store.insertJoinToken({ id: 't2', secretHash: 'x', role: 'agent', expiresAt: now + 10 }, now);
    assert.deepEqual(store.recordJoin('t2', cert('a4', 'h4'), now + 10), { ok: false, reason: 'token' });
    assert.equal(store.getCertificate('a3'), undefined);
    assert.equal(store.getCertificate('a4'), undefined);
  });

  it('a host with a valid certificate is taken: refused (nothing written) unless the token replaces', () => {
    store.insertJoinToken({ id: 't1', secretHash: 'x', role: 'agent', expiresAt: now + HOUR, hostId: 'h1' }, now);
    store.insertJoinToken({ id: 't2', secretHash: 'x', role: 'agent', expiresAt: now + HOUR, hostId: 'h1' }, now);
    store.insertJoinToken({ id: 't3', secretHash: 'x', role: 'agent', expiresAt: now + HOUR, hostId: 'h1', replace: true }, now);
    store.recordJoin('t1', cert('a1'), now);
    const refused = store.recordJoin('t2', cert('a2'), now);
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.reason, 'taken');
    assert.equal(store.getJoinToken('t2')!.used, 0);
    assert.equal(store.getCertificate('a2'), undefined);

    const before = store.revocationRevision();
    const replaced = store.recordJoin('t3', cert('a3'), now);
    assert.ok(replaced.ok);
    assert.deepEqual(replaced.ok && replaced.replaced.map((c) => c.serial), ['a1']);
    assert.equal(store.revocationRevision(), before + 1);
    assert.deepEqual(store.listValidCertificates('agent', 'h1', now).map((c) => c.serial), ['a3']);
    // An expired certificate does not hold the host.
    store.insertJoinToken({ id: 't4', secretHash: 'x', role: 'agent', expiresAt: now + 10 * HOUR, hostId: 'h9' }, now);
    store.recordCertificate(cert('old', 'h9', now + 1), now);
    assert.ok(store.recordJoin('t4', cert('new', 'h9'), now + 2).ok);
  });

  it('a renewal of a revoked certificate is refused; the revision is seen by another connection', () => {
    store.recordCertificate(cert('a1'), now);
    assert.equal(store.recordRenewal('a1', cert('a2'), now), true);
    const other = Store.open(join(dir, 'podium.db'));
    try {
      assert.equal(other.revocationRevision(), 0);
      assert.deepEqual(other.revokeCertificates({ serial: 'a1' }, 'test', now).map((c) => c.serial), ['a1']);
      assert.equal(store.revocationRevision(), 1);
      assert.deepEqual(store.listRevokedAfter(0, now).map((c) => [c.serial, c.revision]), [['a1', 1]]);
      assert.deepEqual(store.listRevokedAfter(1, now), []);
      assert.equal(store.recordRenewal('a1', cert('a3'), now), false);
      assert.equal(store.getCertificate('a3'), undefined);
      // Revoking again changes nothing, not even the revision.
      assert.deepEqual(other.revokeCertificates({ serial: 'a1' }, 'again', now), []);
      assert.equal(store.revocationRevision(), 1);
      assert.equal(store.getCertificate('a1')!.revokeReason, 'test');
    } finally {
      other.close();
    }
  });

  it('revokeHost revokes, marks down, loses the placed instances and uses up bound tokens, in one go', () => {
    store.upsertHost({ id: 'h1', pod: 'p', provider: 'local', labels: {}, capacity: { cpuMillis: 1000, memoryMib: 1000 }, apparmor: 1, state: 'up', lastHeartbeat: now }, now);
    store.insertEnvironment('acme', 'prod', now);
    store.insertService({ tenant: 'acme', environment: 'prod', name: 'web', spec: { image: 'i', command: [], replicas: 1, ha: false, resources: { cpuMillis: 1, memoryMib: 6 }, placement: 'spread' }, createdAt: now });
    store.insertInstance({ id: 'i1', tenant: 'acme', environment: 'prod', service: 'web', haGroup: '', resources: { cpuMillis: 1, memoryMib: 6 }, message: '', createdAt: now });
    assert.ok(store.reserveInstance('i1', 'h1', now));
    store.recordCertificate(cert('a1'), now);
    store.recordCertificate(cert('a2'), now);
    store.insertJoinToken({ id: 't1', secretHash: 'x', role: 'agent', expiresAt: now + HOUR, hostId: 'h1', uses: 3 }, now);

    const done = revokeHost(store, 'h1', 'test', now)!;
    assert.deepEqual(done.revoked.map((c) => c.serial).sort(), ['a1', 'a2']);
    assert.deepEqual(done.lost.map((i) => i.id), ['i1']);
    assert.equal(store.getHost('h1')!.state, 'down');
    assert.equal(store.getInstance('i1')!.state, 'lost');
    assert.equal(store.getJoinToken('t1')!.used, 3);
    assert.equal(store.revocationRevision(), 1);
    assert.deepEqual(store.listEvents(null, '', 0).map((e) => e.type), ['host.revoked', 'instance.lost']);
    assert.equal(revokeHost(store, 'nobody', 'test', now), undefined);
  });
});
