/**
 * A lot that a round could not place, because a host was missing, must not stay parked when that
 * host arrives while the round is still waiting for bids (seen in the failover suite: an HA
 * replica left pending with "2 down" after its hosts were back). Real Pod API, scripted agents.
 */
import assert from 'node:assert/strict';
import type { CallForBids } from '../../gen/podium/v1/agent';
import { InstanceState } from '../../gen/podium/v1/resources';
import { defaultBids } from '../support/scripted-agent';
import { podApiPerTest } from '../support/pod-api-harness';
import { poll } from '../support/poll';

describe('a host that arrives while a round waits for bids', function () {
  this.timeout(30_000);
  // A bid deadline long enough for a second host to join during the round.
  const pod = podApiPerTest({ bidDeadlineMs: 10_000, pendingRetryMs: 60_000 });

  it('gets the HA replica that round had no host for', async () => {
    const [first] = await pod.d.fleet(1);
    // The first host holds its bids until the second host is up.
    const held: CallForBids[] = [];
    first!.bidScript = (_agent, call) => {
      held.push(call);
      return 'silent';
    };
    await pod.d.createEnvironment('acme', 'prod');
    await pod.d.createService('acme', 'prod', { name: 'db', replicas: 2, ha: true });
    await poll('the round waits for bids', () => held.length > 0, 10_000, 10);
    first!.bidScript = defaultBids;

    await pod.d.fleet(1); // the second host: its hello is a fleet change, during the round
    const call = held[0]!;
    const answer = defaultBids(first!, call);
    assert.notEqual(answer, 'silent');
    if (answer !== 'silent') first!.send({ kind: { $case: 'bids', bids: { roundId: call.roundId, ...answer } } });

    // That round places one replica on the first host and has no host for the other; the next
    // round, which the fleet change asked for, places it on the second.
    const svc = await pod.d.running('acme', 'prod', 'db', 2, 10_000);
    assert.equal(new Set(svc.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING).map((i) => i.host)).size, 2);
  });
});
