/**
 * GroupCommit on its own (a unit test of one module: the commit function is a recorder), and the
 * status reports of a busy host through it on a real Pod API: applied in the order it sent them
 * (on PostgreSQL, where a commit lasts long enough for a burst to queue behind it, in shared
 * commits; scripts/test runs this on both dialects).
 */
import assert from 'node:assert/strict';
import { InstanceState } from '../../gen/podium/v1/resources';
import { GroupCommit } from '../../server/group-commit';
import { podApiPerTest } from '../support/pod-api-harness';
import { readRows } from '../support/databases';
import { poll } from '../support/poll';

describe('GroupCommit', () => {
  it('commits what came in one turn of the event loop together, and what came meanwhile in the next unit, in order', async () => {
    const units: number[][] = [];
    let release: () => void = () => undefined;
    const g = new GroupCommit<number, string>(async (items) => {
      units.push([...items]);
      if (units.length === 1) await new Promise<void>((r) => (release = r));
      return items.map((i) => `done ${i}`);
    });
    const first = [g.submit(0), g.submit(1)];
    assert.deepEqual(units, [], 'not before the turn ends');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(units, [[0, 1]], 'what came in the same turn, at the end of that turn');
    const rest = [2, 3, 4].map((i) => g.submit(i));
    release();
    assert.deepEqual(await Promise.all([...first, ...rest]), ['done 0', 'done 1', 'done 2', 'done 3', 'done 4']);
    assert.deepEqual(units, [[0, 1], [2, 3, 4]]);
  });

  it('keeps batches to the maximum, in submission order', async () => {
    const units: number[][] = [];
    const g = new GroupCommit<number, number>(async (items) => {
      units.push([...items]);
      await new Promise((r) => setImmediate(r));
      return items;
    }, 2);
    await Promise.all([0, 1, 2, 3, 4].map((i) => g.submit(i)));
    assert.deepEqual(units, [[0, 1], [2, 3], [4]]);
  });

  it('fails only the bad write of a failed batch: the others are tried alone and commit', async () => {
    const committed: number[] = [];
    let release: () => void = () => undefined;
    let calls = 0;
    const g = new GroupCommit<number, number>(async (items) => {
      if (calls++ === 0) await new Promise<void>((r) => (release = r));
      if (items.includes(2)) throw new Error('2 is bad');
      committed.push(...items);
      return items;
    });
    const all = [0, 1, 2, 3].map((i) => g.submit(i).then((v) => `ok ${v}`, (e: Error) => e.message));
    await new Promise((r) => setImmediate(r));
    release();
    assert.deepEqual(await Promise.all(all), ['ok 0', 'ok 1', '2 is bad', 'ok 3']);
    assert.deepEqual(committed, [0, 1, 3]);
  });
});

describe('status reports of a busy host, group-committed', function () {
  this.timeout(60_000);
  const pod = podApiPerTest();

  it("applies each host's reports in the order it sent them, even when they share a commit", async () => {
    const [agent] = await pod.d.fleet(1, { capacity: { cpuMillis: 64_000, memoryMib: 64 * 1024 } });
    await pod.d.createEnvironment('acme', 'prod');
    await pod.d.createService('acme', 'prod', { name: 'web', replicas: 20, resources: { cpuMillis: 10, memoryMib: 16 } });
    const svc = await pod.d.running('acme', 'prod', 'web', 20);
    // A burst, sent without waiting: for every instance, failed then running again. Applied in
    // order, each ends running; applied out of order, some would end failed.
    for (const i of svc.instances) {
      agent!.report(i.id, InstanceState.INSTANCE_STATE_STARTING, 'restarting');
      agent!.report(i.id, InstanceState.INSTANCE_STATE_RUNNING, 'back');
    }
    await poll('every report recorded', async () => Number((await readRows(pod.h.database, `SELECT count(*) AS n FROM events WHERE message IN ('restarting', 'back')`))[0]!.n) === 40, 15_000, 20);
    const after = await pod.d.getService('acme', 'prod', 'web');
    assert.ok(
      after.instances.every((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING && i.message === 'back'),
      JSON.stringify(after.instances.map((i) => [i.state, i.message])),
    );
    const rows = await readRows(pod.h.database, `SELECT instance, type FROM events WHERE message IN ('restarting', 'back') ORDER BY sequence`);
    assert.equal(rows.length, 40, 'every report recorded, once');
    for (const i of svc.instances) {
      assert.deepEqual(rows.filter((r) => r.instance === i.id).map((r) => r.type), ['instance.starting', 'instance.running'], `in order for ${i.id}`);
    }
  });
});
