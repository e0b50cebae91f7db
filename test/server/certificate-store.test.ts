/**
 * Join tokens, certificates and revocations in the store, on both dialects: what a Join, a Renew
 * and a revocation write, and what a second process (a second Storage on the same database, as
 * the CLI is) sees of it. The Join's whole unit of work is tested through the real Join
 * (host-identity.test.ts); here are the repositories' own contracts.
 */
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { joinWrites, type JoinWrite } from '../../server/certificate-service';
import { revokeHost } from '../../server/revocation';
import { Storage, type NewCertificate } from '../../server/storage';
import { DIALECTS, freshDatabase, type TestDatabase } from '../support/databases';

const HOUR = 3_600_000;

for (const dialect of DIALECTS) {
  describe(`store: join tokens and certificates, on ${dialect}`, function () {
    this.timeout(30_000);
    let db: TestDatabase;
    let storage: Storage;
    const now = 1_000_000;
    const cert = (serial: string, name = 'h1', notAfter = now + HOUR): NewCertificate => ({
      serial, role: 'agent', name, notBefore: now - 60_000, notAfter, issuedBy: 'test',
    });

    beforeEach(async () => {
      db = await freshDatabase(dialect);
      storage = await Storage.open(db.target);
    });
    afterEach(async () => {
      await storage.close();
      await db.drop();
    });

    it('Joins submitted together share one commit, and one refused fails only itself', async () => {
      await storage.transaction(async (u) => {
        await u.joinTokens.insert({ id: 'five', secretHash: 'x', role: 'agent', expiresAt: now + HOUR, uses: 5 }, now);
        await u.joinTokens.insert({ id: 'ten', secretHash: 'x', role: 'agent', expiresAt: now + HOUR, uses: 10 }, now);
        for (const t of ['x1', 'x2', 'x3']) await u.joinTokens.insert({ id: t, secretHash: 'x', role: 'agent', expiresAt: now + HOUR, hostId: 'taken' }, now);
        await u.certificates.insert(cert('aa', 'taken'), now);
      });
      const token = async (id: string) => (await storage.read((r) => r.joinTokens.get(id)))!;
      const write = async (tokenId: string, name: string, serial: string): Promise<JoinWrite> => ({
        token: await token(tokenId), role: 'agent', name, record: cert(serial, name), spiffeId: `spiffe://t/host/${name}`, now,
      });
      let commits = 0;
      const counted = Object.create(storage) as Storage;
      counted.transaction = (fn) => {
        commits++;
        return storage.transaction(fn);
      };
      const writer = joinWrites(counted);

      // Ten good Joins at once: one commit.
      const good = await Promise.all(Array.from({ length: 10 }, (_, i) => write('ten', `g${i}`, `b${i}`)));
      const results = await Promise.all(good.map((w) => writer.submit(w)));
      assert.equal(commits, 1);
      assert.deepEqual(results, good.map(() => []));

      // Twelve on a five-use token and three for a host id that is taken, at once: five certificates.
      const mixed = [
        ...(await Promise.all(Array.from({ length: 12 }, (_, i) => write('five', `h${i}`, `c${i}`)))),
        ...(await Promise.all(['x1', 'x2', 'x3'].map((t, i) => write(t, 'taken', `d${i}`)))),
      ];
      const settled = await Promise.allSettled(mixed.map((w) => writer.submit(w)));
      const codes = settled.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as { code: number }).code));
      assert.deepEqual(codes.slice(0, 12).filter((c) => c === 'ok').length, 5);
      assert.ok(codes.slice(0, 12).every((c) => c === 'ok' || c === status.UNAUTHENTICATED), String(codes));
      assert.deepEqual(codes.slice(12), [status.FAILED_PRECONDITION, status.FAILED_PRECONDITION, status.FAILED_PRECONDITION]);
      assert.equal((await token('five')).used, 5);
      for (const t of ['x1', 'x2', 'x3']) assert.equal((await token(t)).used, 0, `the refused Join with ${t} used nothing`);
      assert.equal((await storage.read((r) => r.certificates.list('agent', 'taken'))).length, 1);
      const named = await Promise.all(mixed.slice(0, 12).map((w) => storage.read((r) => r.certificates.list('agent', w.name))));
      assert.equal(named.filter((c) => c.length === 1).length, 5);
      assert.equal(named.filter((c) => c.length > 1).length, 0);
    });

    it('a token gives a use only while one is left and it has not expired, once per use even under a race', async () => {
      await storage.transaction(async (u) => {
        await u.joinTokens.insert({ id: 't1', secretHash: 'x', role: 'agent', expiresAt: now + HOUR, uses: 2 }, now);
        await u.joinTokens.insert({ id: 't2', secretHash: 'x', role: 'agent', expiresAt: now + 10 }, now);
      });
      const uses = await Promise.all(Array.from({ length: 5 }, () => storage.transaction((u) => u.joinTokens.consume('t1', now))));
      assert.equal(uses.filter(Boolean).length, 2);
      assert.equal((await storage.read((r) => r.joinTokens.get('t1')))!.used, 2);
      assert.equal(await storage.transaction((u) => u.joinTokens.consume('t2', now + 10)), false, 'expired');
    });

    it('revoking moves the revision once per write, is seen by another process, and leaves the first reason', async () => {
      await storage.transaction(async (u) => {
        await u.certificates.insert(cert('a1'), now);
        await u.certificates.insert(cert('a2'), now);
      });
      const other = await Storage.open(db.target);
      try {
        assert.equal(await other.read((r) => r.certificates.revision()), 0);
        const revoked = await other.transaction((u) => u.certificates.revoke({ role: 'agent', name: 'h1' }, 'test', now));
        assert.deepEqual(revoked.map((c) => c.serial).sort(), ['a1', 'a2']);
        assert.equal(await storage.read((r) => r.certificates.revision()), 1, 'one revision for the write, however many rows');
        assert.deepEqual((await storage.read((r) => r.certificates.listRevokedAfter(0, now))).map((c) => [c.serial, c.revision]), [['a1', 1], ['a2', 1]]);
        assert.deepEqual(await storage.read((r) => r.certificates.listRevokedAfter(1, now)), []);
        assert.deepEqual(await other.transaction((u) => u.certificates.revoke({ serial: 'a1' }, 'again', now)), []);
        assert.equal(await storage.read((r) => r.certificates.revision()), 1, 'revoking again changes nothing');
        assert.equal((await storage.read((r) => r.certificates.get('a1')))!.revokeReason, 'test');
        assert.deepEqual(await storage.read((r) => r.certificates.listValid('agent', 'h1', now)), []);
      } finally {
        await other.close();
      }
    });

    it('an expired certificate is no longer valid, and no longer listed as revoked', async () => {
      await storage.transaction(async (u) => {
        await u.certificates.insert(cert('old', 'h9', now + 1), now);
        await u.certificates.revoke({ serial: 'old' }, 'test', now);
      });
      assert.deepEqual(await storage.read((r) => r.certificates.listValid('agent', 'h9', now + 2)), []);
      assert.deepEqual(await storage.read((r) => r.certificates.listRevokedAfter(0, now + 2)), []);
    });

    it('revokeHost revokes, marks down, loses the placed instances and uses up bound tokens, in one unit of work', async () => {
      await storage.transaction(async (u) => {
        await u.hosts.upsert({ id: 'h1', pod: 'p', provider: 'local', labels: {}, capacity: { cpuMillis: 1000, memoryMib: 1000 }, apparmor: 1, state: 'up', lastHeartbeat: now }, now);
        await u.environments.insert('acme', 'prod', now);
        await u.services.insert({ tenant: 'acme', environment: 'prod', name: 'web', spec: { image: 'i', command: [], replicas: 1, ha: false, resources: { cpuMillis: 10, memoryMib: 6 }, placement: 'spread', ports: [], capabilities: [], allowFrom: [], readOnlyRoot: true, writablePaths: [] }, createdAt: now });
        await u.instances.insert({ id: 'i1', tenant: 'acme', environment: 'prod', service: 'web', haGroup: '', resources: { cpuMillis: 10, memoryMib: 6 }, message: '', createdAt: now });
        assert.ok(await u.instances.reserve('i1', 'h1', now));
        await u.certificates.insert(cert('a1'), now);
        await u.certificates.insert(cert('a2'), now);
        await u.joinTokens.insert({ id: 't1', secretHash: 'x', role: 'agent', expiresAt: now + HOUR, hostId: 'h1', uses: 3 }, now);
      });
      const done = (await revokeHost(storage, 'h1', 'test', now))!;
      assert.deepEqual(done.revoked.map((c) => c.serial).sort(), ['a1', 'a2']);
      assert.deepEqual(done.lost.map((i) => i.id), ['i1']);
      const [host, inst, token, events] = await storage.read(async (r) => [
        await r.hosts.get('h1'),
        await r.instances.get('i1'),
        await r.joinTokens.get('t1'),
        await r.events.list(null, '', 0),
      ] as const);
      assert.equal(host!.state, 'down');
      assert.equal(inst!.state, 'lost');
      assert.equal(token!.used, 3);
      assert.deepEqual(events.map((e) => e.type), ['host.revoked', 'instance.lost']);
      assert.equal(await revokeHost(storage, 'nobody', 'test', now), undefined);
    });
  });
}
