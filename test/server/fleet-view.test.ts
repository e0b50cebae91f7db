/**
 * The auction's fleet view in memory (server/fleet-view.ts), on both dialects: fed by the store's
 * own event feed, it agrees with a fresh read of every host after any committed change; an award
 * is counted before its event; and a round reads only the hosts that changed, not the fleet.
 */
import assert from 'node:assert/strict';
import { AppArmorMode } from '../../gen/podium/v1/resources';
import type { HostView } from '../../server/auction';
import { FleetView } from '../../server/fleet-view';
import { Storage, type HostRecord } from '../../server/storage';
import { DIALECTS, freshDatabase, type TestDatabase } from '../support/databases';
import { poll } from '../support/poll';

const INSECURE = AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE;

/** What the view must say: every host and what it holds, read from the store now. */
async function fresh(storage: Storage, connected: (id: string) => boolean): Promise<object[]> {
  const [hosts, allocation] = await storage.read(async (r) => [await r.hosts.list(), await r.instances.allocationByHost()] as const);
  return hosts.map((h) => ({
    id: h.id,
    capacity: h.capacity,
    labels: h.labels,
    allocated: { cpuMillis: allocation.get(h.id)?.cpuMillis ?? 0, memoryMib: allocation.get(h.id)?.memoryMib ?? 0 },
    haGroups: [...(allocation.get(h.id)?.haGroups ?? [])].sort(),
    alive: h.state === 'up' && connected(h.id),
    acceptsWork: h.apparmor === INSECURE,
  }));
}

function shown(views: readonly HostView[]): object[] {
  return views.map((v) => ({
    id: v.id,
    capacity: v.capacity,
    labels: v.labels,
    allocated: v.allocated,
    haGroups: [...v.haGroups].sort(),
    alive: v.alive,
    acceptsWork: v.acceptsWork,
  }));
}

for (const dialect of DIALECTS) {
  describe(`fleet view in memory, on ${dialect}`, function () {
    this.timeout(60_000);
    let db: TestDatabase;
    let storage: Storage;
    let view: FleetView;
    const connected = new Set<string>();
    const isConnected = (id: string) => connected.has(id);
    let unsubscribe: () => void;

    const host = (id: string, cpuMillis = 4000, state: HostRecord['state'] = 'up'): Omit<HostRecord, 'joinedAt'> => ({
      id, pod: 'p', provider: '', labels: { zone: id.slice(-1) }, capacity: { cpuMillis, memoryMib: 8192 }, apparmor: INSECURE, state, lastHeartbeat: 0,
    });
    let seq = 0;
    /** An instance of `service` placed on `hostId` (starting), committed with its award event. */
    async function placed(hostId: string, service = 'web', haGroup = '', cpuMillis = 100): Promise<string> {
      const id = `i${++seq}`;
      await storage.transaction(async (u) => {
        await u.instances.insert({ id, tenant: 'acme', environment: 'prod', service, haGroup, resources: { cpuMillis, memoryMib: 64 }, message: '', createdAt: seq });
        assert.ok(await u.instances.reserve(id, hostId, seq));
        u.emit({ tenant: 'acme', type: 'instance.awarded', environment: 'prod', service, instance: id, host: hostId });
      });
      view.reserved(hostId, { cpuMillis, memoryMib: 64 }, haGroup);
      return id;
    }
    /** The view agrees with the store once the feed has delivered what was committed. */
    async function agrees(what: string): Promise<void> {
      const want = await fresh(storage, isConnected);
      await poll(what, async () => JSON.stringify(shown(await view.views())) === JSON.stringify(want), 5_000, 20);
    }

    beforeEach(async () => {
      db = await freshDatabase(dialect);
      storage = await Storage.open(db.target);
      view = new FleetView(storage, isConnected);
      unsubscribe = storage.feed.subscribe((e) => view.eventCommitted(e));
      connected.clear();
      await storage.transaction(async (u) => {
        for (let i = 0; i < 50; i++) await u.hosts.upsert(host(`h${String(i).padStart(2, '0')}`), 0);
      });
      for (let i = 0; i < 50; i++) connected.add(`h${String(i).padStart(2, '0')}`);
    });
    afterEach(async () => {
      unsubscribe();
      await storage.close();
      await db.drop();
    });

    it('agrees with a fresh read after awards, failures, losses, deletions and a new capacity', async () => {
      await agrees('the first read');
      const a = await placed('h00', 'web', 'g1');
      await placed('h00', 'web', 'g2');
      const b = await placed('h01', 'db', 'g1', 500);
      await placed('h02', 'db');
      await agrees('after awards');

      // A container failed (a status report): its capacity is free again.
      await storage.transaction(async (u) => {
        assert.ok(await u.instances.updateStatus(a, 'h00', 'failed', 'c1', 'exit 1', 100));
        u.emit({ tenant: 'acme', type: 'instance.failed', environment: 'prod', service: 'web', instance: a, host: 'h00' });
      });
      await agrees('after a failure');

      // A host went down: its instances are lost.
      await storage.transaction(async (u) => {
        await u.hosts.markDown('h01', null);
        u.emit({ tenant: '', type: 'host.down', host: 'h01' });
        for (const i of await u.instances.markLostOnHost('h01', 200)) u.emit({ tenant: i.tenant, type: 'instance.lost', instance: i.id, host: 'h01' });
      });
      await agrees('after a host went down');
      assert.equal((await view.views()).find((v) => v.id === 'h01')!.alive, false);
      assert.ok(b);

      // A service deleted (by any process): what it held is free.
      await storage.transaction(async (u) => {
        for (const i of await u.instances.deleteOfService('acme', 'prod', 'db')) u.emit({ tenant: 'acme', type: 'instance.deleted', instance: i.id, host: i.host ?? '' });
      });
      await agrees('after a deletion');

      // A host said hello with another capacity: the sessions tell the view.
      await storage.transaction((u) => u.hosts.upsert(host('h03', 16_000), 300));
      view.hostChanged('h03');
      await agrees('after a new capacity');

      // A new host joined.
      await storage.transaction(async (u) => {
        await u.hosts.upsert(host('h99'), 400);
        u.emit({ tenant: '', type: 'host.joined', host: 'h99' });
      });
      connected.add('h99');
      await agrees('after a join');
      assert.equal((await view.views()).at(-1)!.id, 'h99', 'hosts in id order');

      // A session that closes is seen at once: liveness is asked, not cached.
      connected.delete('h04');
      assert.equal((await view.views()).find((v) => v.id === 'h04')!.alive, false);
    });

    it('counts an award before its event is heard, so that no round offers that capacity twice', async () => {
      await view.views();
      unsubscribe(); // no event reaches the view: only `reserved` can tell it
      await placed('h05', 'web', 'g7', 3900);
      const h05 = (await view.views()).find((v) => v.id === 'h05')!;
      assert.deepEqual(h05.allocated, { cpuMillis: 3900, memoryMib: 64 });
      assert.ok(h05.haGroups.has('g7'));
    });

    it('reads only the hosts that changed: one award on a fleet of 50 reads one host', async () => {
      await view.views();
      assert.equal(view.hostsRead, 50);
      await view.views();
      assert.equal(view.hostsRead, 50, 'nothing changed: nothing read');
      const id = await placed('h07');
      await storage.transaction(async (u) => {
        await u.instances.updateStatus(id, 'h07', 'failed', 'c', 'exit 2', 500);
        u.emit({ tenant: 'acme', type: 'instance.failed', instance: id, host: 'h07' });
      });
      await poll('the failure read', async () => (await view.views()).find((v) => v.id === 'h07')!.allocated.cpuMillis === 0, 5_000, 20);
      assert.equal(view.hostsRead, 51);
    });

    it('reads everything again after reset (a new leader), and a failed read is tried again', async () => {
      await view.views();
      view.reset();
      await view.views();
      assert.equal(view.hostsRead, 100);
      // Changed behind its back, with the event: the mark survives a read that fails.
      await storage.transaction(async (u) => {
        await u.hosts.markDown('h08', null);
        u.emit({ tenant: '', type: 'host.down', host: 'h08' });
      });
      const read = storage.read.bind(storage);
      let failOnce = true;
      storage.read = ((fn) => {
        if (failOnce) {
          failOnce = false;
          return Promise.reject(new Error('database went away'));
        }
        return read(fn);
      }) as Storage['read'];
      await poll('the mark', async () => {
        try {
          return (await view.views()).find((v) => v.id === 'h08')!.alive === false;
        } catch {
          return false;
        }
      }, 5_000, 20);
      assert.equal(failOnce, false, 'a read failed on the way');
    });
  });
}
