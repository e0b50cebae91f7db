/**
 * The storage module on both dialects: the same repositories, units of work and event feed, on a
 * real SQLite file and a real PostgreSQL database (a throwaway cluster started by the run).
 */
import assert from 'node:assert/strict';
import { Storage } from '../../server/storage/storage';
import type { EventRecord, ServiceRecord } from '../../server/storage/records';
import { DIALECTS, freshDatabase, type TestDatabase } from '../support/databases';
import { poll } from '../support/poll';

const svc = (name: string, replicas = 2): ServiceRecord => ({
  tenant: 'acme',
  environment: 'prod',
  name,
  spec: { image: 'img', command: [], replicas, ha: false, resources: { cpuMillis: 100, memoryMib: 64 }, placement: 'spread', ports: [], capabilities: [], allowFrom: [], readOnlyRoot: true, writablePaths: [] },
  createdAt: 1,
});

for (const dialect of DIALECTS) {
  describe(`storage on ${dialect}`, function () {
    this.timeout(60_000);
    let db: TestDatabase;
    let s: Storage;

    beforeEach(async () => {
      db = await freshDatabase(dialect);
      s = await Storage.open(db.target);
      await s.transaction(async (u) => {
        await u.environments.insert('acme', 'prod', 1);
      });
    });

    afterEach(async () => {
      await s.close();
      await db.drop();
    });

    it('commits a unit of work whole, or nothing of it', async () => {
      await assert.rejects(
        s.transaction(async (u) => {
          await u.services.insert(svc('web'));
          u.emit({ tenant: 'acme', type: 'service.created', service: 'web' });
          throw new Error('changed my mind');
        }),
        /changed my mind/,
      );
      assert.equal(await s.read((r) => r.services.get('acme', 'prod', 'web')), undefined);
      assert.equal(await s.read((r) => r.events.maxSequence()), 0);
      assert.equal(await s.transaction((u) => u.services.insert(svc('web'))), true);
      assert.equal(await s.transaction((u) => u.services.insert(svc('web'))), false, 'a second insert of the name is refused');
    });

    it('publishes events only after commit, in sequence order, and runs afterCommit callbacks then', async () => {
      const seen: EventRecord[] = [];
      s.feed.subscribe((e) => seen.push(e));
      let sawInside = -1;
      let after = 0;
      await s.transaction(async (u) => {
        u.emit({ tenant: 'acme', type: 'a' });
        u.emit({ tenant: 'acme', type: 'b' });
        u.afterCommit(() => after++);
        sawInside = seen.length;
      });
      await poll('events published', () => seen.length === 2);
      assert.equal(sawInside, 0, 'published before commit');
      assert.equal(after, 1);
      assert.deepEqual(seen.map((e) => e.type), ['a', 'b']);
      assert.ok(seen[0]!.sequence < seen[1]!.sequence);
      await assert.rejects(
        s.transaction(async (u) => {
          u.emit({ tenant: 'acme', type: 'rolled-back' });
          u.afterCommit(() => after++);
          throw new Error('no');
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(seen.length, 2);
      assert.equal(after, 1);
    });

    it('keeps concurrent units of work apart, and every event exactly once in order', async () => {
      const seen: number[] = [];
      s.feed.subscribe((e) => seen.push(e.sequence));
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          s.transaction(async (u) => {
            await u.services.insert(svc(`s${i}`));
            u.emit({ tenant: 'acme', type: 'service.created', service: `s${i}` });
          }),
        ),
      );
      await poll('20 events', () => seen.length === 20);
      assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
      assert.equal(new Set(seen).size, 20);
      assert.equal((await s.read((r) => r.services.list('acme', 'prod'))).length, 20);
    });

    it('serializes units that take the same lock, so a count can decide an insert', async () => {
      // Each unit inserts a replica only while fewer than 3 exist: without the lock, concurrent
      // units on PostgreSQL would all count 0 and all insert.
      await s.transaction((u) => u.services.insert(svc('db', 3)));
      await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          s.transaction(async (u) => {
            await u.lock('service:acme/prod/db');
            const n = (await u.instances.listOfService('acme', 'prod', 'db')).length;
            await new Promise((r) => setTimeout(r, 10));
            if (n < 3) await u.instances.insert({ id: `i${i}`, tenant: 'acme', environment: 'prod', service: 'db', haGroup: '', resources: { cpuMillis: 1, memoryMib: 6 }, message: '', createdAt: i });
          }),
        ),
      );
      assert.equal((await s.read((r) => r.instances.listOfService('acme', 'prod', 'db'))).length, 3);
    });

    it('reserves a pending instance once only', async () => {
      await s.transaction(async (u) => {
        await u.services.insert(svc('web', 1));
        await u.hosts.upsert({ id: 'h1', pod: 'p', provider: 'x', labels: { zone: 'a' }, capacity: { cpuMillis: 1000, memoryMib: 1024 }, apparmor: 1, state: 'up', lastHeartbeat: 5 }, 5);
        await u.hosts.upsert({ id: 'h2', pod: 'p', provider: 'x', labels: {}, capacity: { cpuMillis: 1000, memoryMib: 1024 }, apparmor: 1, state: 'up', lastHeartbeat: 5 }, 5);
        await u.instances.insert({ id: 'i1', tenant: 'acme', environment: 'prod', service: 'web', haGroup: '', resources: { cpuMillis: 100, memoryMib: 64 }, message: 'waiting', createdAt: 1 });
      });
      const results = await Promise.all(['h1', 'h2'].map((h) => s.transaction((u) => u.instances.reserve('i1', h, 9))));
      assert.deepEqual(results.sort(), [false, true]);
      const inst = (await s.read((r) => r.instances.get('i1')))!;
      assert.equal(inst.state, 'starting');
      assert.deepEqual((await s.read((r) => r.hosts.get('h1')))!.labels, { zone: 'a' });
    });

    it('reserves a round of awards in one go: only still-pending lots, each on its own host', async () => {
      const hosts = ['h1', 'h2', 'h3'];
      await s.transaction(async (u) => {
        await u.services.insert(svc('web', 300));
        for (const id of hosts) await u.hosts.upsert({ id, pod: 'p', provider: 'x', labels: {}, capacity: { cpuMillis: 100_000, memoryMib: 100_000 }, apparmor: 1, state: 'up', lastHeartbeat: 5 }, 5);
        for (let i = 0; i < 300; i++) await u.instances.insert({ id: `i${i}`, tenant: 'acme', environment: 'prod', service: 'web', haGroup: '', resources: { cpuMillis: 1, memoryMib: 1 }, message: 'waiting', createdAt: i });
        assert.ok(await u.instances.reserve('i7', 'h3', 8), 'already awarded before the round');
        await u.instances.delete('i8');
      });
      // 300 awards: a full slice of 256 and one of 44, padded to 64.
      const awards = Array.from({ length: 300 }, (_, i) => ({ id: `i${i}`, host: hosts[i % 3]! }));
      const reserved = await s.transaction((u) => u.instances.reserveAll(awards, 9));
      assert.equal(reserved.size, 298);
      assert.ok(!reserved.has('i7') && !reserved.has('i8'));
      const rows = await s.read((r) => r.instances.listOfService('acme', 'prod', 'web'));
      assert.equal(rows.length, 299);
      for (const r of rows) {
        const n = Number(r.id.slice(1));
        assert.equal(r.state, 'starting', r.id);
        assert.equal(r.host, n === 7 ? 'h3' : hosts[n % 3], r.id);
        if (n !== 7) assert.deepEqual([r.message, r.updatedAt], ['', 9], r.id);
      }
      assert.equal((await s.transaction((u) => u.instances.reserveAll(awards.slice(0, 5), 10))).size, 0, 'never twice');
    });

    it('writes a unit of many events with sequences in the order they were emitted', async () => {
      const seen: EventRecord[] = [];
      s.feed.subscribe((e) => seen.push(e));
      await s.transaction(async (u) => u.emit({ tenant: 'acme', type: 'first' }));
      const emitted = await s.transaction(async (u) => {
        // 203 = 128 + 64 + 8 + 2 + 1: five statements of different sizes.
        for (let i = 0; i < 203; i++) u.emit({ tenant: 'acme', type: `e${i}`, instance: `i${i}`, time: 1000 + i });
        return 203;
      });
      await s.feed.pump();
      assert.equal(seen.length, 1 + emitted);
      seen.forEach((e, k) => assert.equal(e.sequence, k + 1, `sequence of event ${k}`));
      assert.deepEqual(seen.slice(1).map((e) => [e.type, e.instance, e.time]), Array.from({ length: 203 }, (_, i) => [`e${i}`, `i${i}`, 1000 + i]));
      const stored = await s.read((r) => r.events.list('acme', '', 0));
      assert.deepEqual(stored.map((e) => [e.sequence, e.type]), seen.map((e) => [e.sequence, e.type]));
      // What the unit is told (and publishes without reading the store back): each event's own sequence.
      const written = await s.transaction((u) => u.events.insertAll(Array.from({ length: 77 }, (_, i) => ({ tenant: 'acme', type: `w${i}` })), 5));
      const back = new Map((await s.read((r) => r.events.list('acme', '', 204))).map((e) => [e.sequence, e.type]));
      assert.deepEqual(written.map((e) => back.get(e.sequence)), written.map((e) => e.type));
    });

    it('counts what a tenant asks for, and which services miss replicas', async () => {
      await s.transaction(async (u) => {
        await u.services.insert(svc('a', 3));
        await u.services.insert(svc('b', 1));
        await u.instances.insert({ id: 'b1', tenant: 'acme', environment: 'prod', service: 'b', haGroup: '', resources: { cpuMillis: 100, memoryMib: 64 }, message: '', createdAt: 1 });
        await u.quotas.set('acme', { cpuMillis: 10, memoryMib: 20, instances: 30 }, 1);
      });
      assert.deepEqual(await s.read((r) => r.services.tenantUsage('acme')), { instances: 4, cpuMillis: 400, memoryMib: 256 });
      assert.deepEqual(await s.read((r) => r.services.tenantUsage('nobody')), { instances: 0, cpuMillis: 0, memoryMib: 0 });
      assert.deepEqual((await s.read((r) => r.services.listUnderReplicated())).map((x) => x.name), ['a']);
      assert.deepEqual(await s.read((r) => r.quotas.get('acme')), { cpuMillis: 10, memoryMib: 20, instances: 30 });
      // A deleted service's share is given back; deleting one that is not there changes nothing.
      assert.equal(await s.transaction((u) => u.services.delete('acme', 'prod', 'a')), true);
      assert.equal(await s.transaction((u) => u.services.delete('acme', 'prod', 'a')), false);
      assert.deepEqual(await s.read((r) => r.services.tenantUsage('acme')), { instances: 1, cpuMillis: 100, memoryMib: 64 });
      // A create that rolls back leaves the usage as it was.
      await assert.rejects(
        s.transaction(async (u) => {
          await u.services.insert(svc('c', 5));
          throw new Error('rolled back');
        }),
        /rolled back/,
      );
      assert.deepEqual(await s.read((r) => r.services.tenantUsage('acme')), { instances: 1, cpuMillis: 100, memoryMib: 64 });
    });

    it('fills the tenant usage rows from the services there are when it migrates an older database', async () => {
      await s.transaction(async (u) => {
        await u.services.insert(svc('a', 3));
        await u.services.insert({ ...svc('b', 2), spec: { ...svc('b').spec, resources: { cpuMillis: 250, memoryMib: 512 } } });
        await u.environments.insert('globex', 'prod', 1);
        await u.services.insert({ ...svc('g', 1), tenant: 'globex' });
      });
      await s.close();
      // The database as a release before tenant_usage left it: the services, no usage rows.
      await db.sql(['DROP TABLE tenant_usage', 'DELETE FROM schema_migrations WHERE version = 6']);
      s = await Storage.open(db.target);
      assert.deepEqual(await s.read((r) => r.services.tenantUsage('acme')), { instances: 5, cpuMillis: 800, memoryMib: 1216 });
      assert.deepEqual(await s.read((r) => r.services.tenantUsage('globex')), { instances: 1, cpuMillis: 100, memoryMib: 64 });
    });

    it('reads a spec stored before the confinement options as read-only root with no writable paths', async () => {
      await s.transaction((u) => u.services.insert(svc('old', 1)));
      const old = { image: 'img', command: [], replicas: 1, ha: false, resources: { cpuMillis: 100, memoryMib: 64 } };
      await db.sql([`UPDATE services SET spec = '${JSON.stringify(old)}' WHERE name = 'old'`]);
      const got = (await s.read((r) => r.services.get('acme', 'prod', 'old')))!;
      assert.equal(got.spec.readOnlyRoot, true);
      assert.deepEqual(got.spec.writablePaths, []);
      await db.sql([`UPDATE services SET spec = '${JSON.stringify({ ...old, readOnlyRoot: false, writablePaths: ['/data'] })}' WHERE name = 'old'`]);
      const optedOut = (await s.read((r) => r.services.get('acme', 'prod', 'old')))!;
      assert.deepEqual([optedOut.spec.readOnlyRoot, optedOut.spec.writablePaths], [false, ['/data']]);
    });

    it('fences a unit of work by the lease epoch: after a takeover the old leader commits nothing', async () => {
      await s.transaction(async (u) => {
        await u.services.insert(svc('web', 1));
        await u.hosts.upsert({ id: 'h1', pod: 'p', provider: 'x', labels: {}, capacity: { cpuMillis: 1000, memoryMib: 1024 }, apparmor: 1, state: 'up', lastHeartbeat: 5 }, 5);
        await u.instances.insert({ id: 'i1', tenant: 'acme', environment: 'prod', service: 'web', haGroup: '', resources: { cpuMillis: 100, memoryMib: 64 }, message: '', createdAt: 1 });
      });
      const old = (await s.transaction((u) => u.lease.claim('old', 'a:1', 0)))!;
      // Another process (its own Storage on the same database) takes over at the next epoch.
      const other = await Storage.open(db.target);
      try {
        const next = await other.transaction(async (u) => u.lease.claim('new', 'b:1', (await u.lease.get())!.epoch));
        assert.equal(next, old + 1);
        await assert.rejects(
          s.transaction(async (u) => {
            await u.fence(old);
            await u.instances.reserve('i1', 'h1', 9);
            u.emit({ tenant: 'acme', type: 'instance.awarded', instance: 'i1' });
          }),
          (err: Error) => err.name === 'FencedError',
        );
        assert.equal((await s.read((r) => r.instances.get('i1')))!.state, 'pending', 'the fenced award was not written');
        assert.equal(await s.read((r) => r.events.maxSequence()), 0);
        await other.transaction(async (u) => {
          await u.fence(next!);
          assert.ok(await u.instances.reserve('i1', 'h1', 9));
        });
      } finally {
        await other.close();
      }
    });

    it('replays events after a sequence, per tenant and environment', async () => {
      await s.transaction(async (u) => {
        u.emit({ tenant: 'acme', type: 'x', environment: 'prod' });
        u.emit({ tenant: 'globex', type: 'y', environment: 'prod' });
        u.emit({ tenant: 'acme', type: 'z', environment: 'dev' });
      });
      const all = await s.read((r) => r.events.list(null, '', 0));
      assert.deepEqual(all.map((e) => e.type), ['x', 'y', 'z']);
      assert.deepEqual((await s.read((r) => r.events.list('acme', '', 0))).map((e) => e.type), ['x', 'z']);
      assert.deepEqual((await s.read((r) => r.events.list('acme', 'prod', 0))).map((e) => e.type), ['x']);
      assert.deepEqual((await s.read((r) => r.events.list(null, '', all[0]!.sequence))).map((e) => e.type), ['y', 'z']);
    });
  });
}
