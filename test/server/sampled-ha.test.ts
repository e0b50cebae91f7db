/**
 * On a fleet larger than the auction's sample (maxCandidatesPerLot), an HA service still gets one
 * replica per host: sampling picks whom to ask, never whether the HA rule holds. And what the
 * server knows each host holds (HA groups, CPU) keeps later rounds honest against agents that
 * would take anything. Real Pod API, scripted agents on the real protocol.
 */
import assert from 'node:assert/strict';
import { InstanceState } from '../../gen/podium/v1/resources';
import { PodApiDriver, podApiPerTest, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';

describe('HA on a fleet larger than the sample', function () {
  this.timeout(60_000);
  let h: PodApiHarness;
  let d: PodApiDriver;

  before(async () => {
    h = await startPodApiHarness({ maxCandidatesPerLot: 3 });
    d = new PodApiDriver(h);
  });

  after(async () => {
    for (const a of d.agents) a.close();
    await h.close();
  });

  it('places every HA service of 5 replicas on 5 distinct hosts of 12, with 3 candidates sampled per lot, and its replacements too', async () => {
    const agents = await d.fleet(12);
    // Agents that bid for whatever fits, HA or not: the rule must be the server's, not their courtesy.
    for (const a of agents) {
      a.bidScript = (agent, call) => ({
        bids: call.lots.filter((l) => (l.resources?.cpuMillis ?? 0) <= agent.free().cpuMillis).map((l) => ({ lotId: l.id, price: 1, roundWeight: 100 })),
        declines: [],
      });
    }
    await d.createEnvironment('acme', 'prod');
    for (let i = 0; i < 6; i++) await d.createService('acme', 'prod', { name: `db${i}`, replicas: 5, ha: true });
    for (let i = 0; i < 6; i++) {
      const svc = await d.running('acme', 'prod', `db${i}`, 5, 30_000);
      const hosts = svc.instances.filter((x) => x.state === InstanceState.INSTANCE_STATE_RUNNING).map((x) => x.host);
      assert.equal(new Set(hosts).size, 5, `db${i} on ${hosts.join(', ')}`);
    }
    // One replica of each fails: its replacement is auctioned alone, in a later round, where only
    // the server's view of what each host already holds keeps it off the other replicas' hosts.
    for (let i = 0; i < 6; i++) {
      const svc = await d.getService('acme', 'prod', `db${i}`);
      const victim = svc.instances.find((x) => x.state === InstanceState.INSTANCE_STATE_RUNNING)!;
      d.agents.find((a) => a.hostId === victim.host)!.report(victim.id, InstanceState.INSTANCE_STATE_FAILED, 'exited 1');
    }
    for (let i = 0; i < 6; i++) {
      const svc = await poll(`db${i} replaced`, async () => {
        const s = await d.getService('acme', 'prod', `db${i}`);
        return s.instances.filter((x) => x.state === InstanceState.INSTANCE_STATE_RUNNING).length === 5 ? s : undefined;
      }, 30_000, 50);
      const hosts = svc.instances.filter((x) => x.state === InstanceState.INSTANCE_STATE_RUNNING).map((x) => x.host);
      assert.equal(new Set(hosts).size, 5, `db${i} after its replacement on ${hosts.join(', ')}`);
    }
    // The agents' own word: no agent holds two replicas of one group.
    for (const a of d.agents) {
      const groups = [...a.running.values()].map((r) => r.haGroup);
      assert.equal(new Set(groups).size, groups.length, `${a.hostId} holds ${groups.join(', ')}`);
    }
  });
});

describe("the server's view of what each host holds", function () {
  this.timeout(60_000);
  const pod = podApiPerTest();

  it('keeps a host from being over-committed across rounds, against agents that bid and accept anything', async () => {
    const agents = await pod.d.fleet(2, { capacity: { cpuMillis: 1000, memoryMib: 1024 } });
    for (const a of agents) {
      a.bidScript = (_agent, call) => ({ bids: call.lots.map((l) => ({ lotId: l.id, price: 1, roundWeight: 100 })), declines: [] });
      a.awardScript = () => ({ accepted: true });
    }
    await pod.d.createEnvironment('acme', 'prod');
    await pod.d.createService('acme', 'prod', { name: 'first', replicas: 2, resources: { cpuMillis: 600, memoryMib: 100 } });
    await pod.d.running('acme', 'prod', 'first', 2);
    // In a later round: 600 more on a host holding 600 of its 1000 is over-committed.
    await pod.d.createService('acme', 'prod', { name: 'second', replicas: 2, resources: { cpuMillis: 600, memoryMib: 100 } });
    const pending = await poll('the second service explained', async () => {
      const s = await pod.d.getService('acme', 'prod', 'second');
      return s.instances.every((i) => i.state === InstanceState.INSTANCE_STATE_PENDING) && /CPU/i.test(s.pendingReason) ? s : undefined;
    }, 15_000, 50).catch(async (err: Error) => {
      const s = await pod.d.getService('acme', 'prod', 'second');
      throw new Error(`${err.message}: ${s.pendingReason} ${JSON.stringify(s.instances.map((i) => [i.state, i.host]))}`);
    });
    assert.equal(pending.instances.length, 2);
    for (const a of agents) assert.equal(a.running.size, 1, `${a.hostId} runs ${[...a.running.keys()].join(', ')}`);
  });
});

