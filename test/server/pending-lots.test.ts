/**
 * The auction's queue of pending lots in memory (server/pending-lots.ts), on both dialects, fed by
 * the store's own event feed: lots announced by committed events join it and leave it, a round
 * reads whole only the lots it takes (a pending row that no event announced is seen only at the
 * resync, which shows the backlog is not read again each round), and a lot that stopped being
 * pending behind its back is never handed out.
 */
import assert from 'node:assert/strict';
import { AppArmorMode } from '../../gen/podium/v1/resources';
import { PendingLots } from '../../server/pending-lots';
import { Storage } from '../../server/storage';
import { DIALECTS, freshDatabase, type TestDatabase } from '../support/databases';

for (const dialect of DIALECTS) {
  describe(`pending lots in memory, on ${dialect}`, function () {
    this.timeout(60_000);
    let db: TestDatabase;
    let storage: Storage;
    let queue: PendingLots;
    let clock = 0;
    let unsubscribe: () => void;
    let seq = 0;

    /** A pending lot of `service`, committed with its `instance.pending` event unless `silent`. */
    async function lot(service = 'web', silent = false): Promise<string> {
      const id = `i${++seq}`;
      await storage.transaction(async (u) => {
        await u.instances.insert({ id, tenant: 'acme', environment: 'prod', service, haGroup: '', resources: { cpuMillis: 100, memoryMib: 64 }, message: 'waiting', createdAt: seq });
        if (!silent) u.emit({ tenant: 'acme', type: 'instance.pending', environment: 'prod', service, instance: id });
      });
      return id;
    }

    /** Awards a lot to h1, with its event unless `silent`. */
    async function award(id: string, silent = false): Promise<void> {
      await storage.transaction(async (u) => {
        assert.ok(await u.instances.reserve(id, 'h1', 1));
        if (!silent) u.emit({ tenant: 'acme', type: 'instance.awarded', environment: 'prod', service: 'web', instance: id, host: 'h1' });
      });
    }

    // Every commit so far published first: a commit that comes while the feed is reading the store
    // (its poll, another process) is published by that read, a moment after the commit returns.
    const ids = async () => {
      await storage.feed.pump();
      return [...(await queue.current()).keys()].sort();
    };

    beforeEach(async () => {
      db = await freshDatabase(dialect);
      storage = await Storage.open(db.target);
      await storage.transaction(async (u) => {
        await u.environments.insert('acme', 'prod', 0);
        await u.hosts.upsert({ id: 'h1', pod: 'p', provider: '', labels: {}, capacity: { cpuMillis: 4000, memoryMib: 8192 }, apparmor: AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE, state: 'up', lastHeartbeat: 0 }, 0);
      });
      clock = 0;
      queue = new PendingLots(storage, () => clock, 60_000);
      unsubscribe = storage.feed.subscribe((e) => queue.eventCommitted(e));
    });

    afterEach(async () => {
      unsubscribe();
      await storage.close();
      await db.drop();
    });

    it('reads the store whole once, then keeps itself by events until the resync', async () => {
      const a = await lot();
      const b = await lot('api');
      assert.deepEqual(await ids(), [a, b].sort());
      // A row no event announced (as the CLI's write to the file would be until the feed polls):
      // not seen, because the backlog is not read again.
      const quiet = await lot('web', true);
      clock += 59_000;
      assert.deepEqual(await ids(), [a, b].sort());
      clock += 1_000;
      assert.deepEqual(await ids(), [a, b, quiet].sort(), 'the resync reads it');
    });

    it('takes in lots announced by events and lets go of those awarded or deleted', async () => {
      const a = await lot();
      assert.deepEqual(await ids(), [a]);
      const b = await lot();
      const c = await lot('api');
      assert.deepEqual(await ids(), [a, b, c].sort());
      assert.deepEqual((await queue.current()).get(c), { id: c, tenant: 'acme', environment: 'prod', service: 'api', haGroup: '' });
      await award(a);
      await storage.transaction(async (u) => {
        await u.instances.delete(b);
        u.emit({ tenant: 'acme', type: 'instance.deleted', environment: 'prod', service: 'web', instance: b });
      });
      assert.deepEqual(await ids(), [c]);
      // Requeued: pending again, and back in the queue.
      await storage.transaction(async (u) => {
        await u.instances.requeue(a, 'h1', 'refused', 2);
        u.emit({ tenant: 'acme', type: 'instance.requeued', environment: 'prod', service: 'web', instance: a, host: 'h1' });
      });
      assert.deepEqual(await ids(), [a, c].sort());
    });

    it('hands out only lots still pending, in the order asked, and drops the others', async () => {
      const a = await lot();
      const b = await lot();
      const c = await lot();
      assert.deepEqual(await ids(), [a, b, c].sort());
      await award(b, true); // behind the queue's back: no event
      const taken = await queue.take([c, b, a]);
      assert.deepEqual(taken.map((i) => i.id), [c, a]);
      assert.equal(taken[0]!.message, 'waiting', 'the whole row');
      assert.deepEqual(await ids(), [a, c].sort());
    });

    it('after a reset (another process may have led) reads the store whole again', async () => {
      const a = await lot();
      assert.deepEqual(await ids(), [a]);
      const quiet = await lot('web', true);
      queue.reset();
      assert.deepEqual(await ids(), [a, quiet].sort());
    });
  });
}
