/**
 * Standby Pod API processes taking over, on real processes and a real PostgreSQL (issue 6): two
 * `podium server` processes on one database, scripted agents (the real AgentService protocol) that
 * follow the leader, and an operator creating services in a loop. PostgreSQL only: one SQLite
 * file has one process.
 */
import assert from 'node:assert/strict';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import type { PodApiClient } from '../../gen/podium/v1/pod_api';
import { InstanceState, Service, type Event } from '../../gen/podium/v1/resources';
import { as, call } from '../support/pod-api-harness';
import { PodApiProcesses, type PodApiProcess } from '../support/pod-api-processes';
import { poll } from '../support/poll';
import { ScriptedAgent } from '../support/scripted-agent';
import { readRows } from '../support/databases';

const KILLS = 10;

async function fleetOf(p: PodApiProcesses, n: number, bidDelayMs = 0): Promise<ScriptedAgent[]> {
  const agents: ScriptedAgent[] = [];
  const addresses = p.members.map((m) => m.address);
  for (let i = 0; i < n; i++) {
    const a = await ScriptedAgent.join(addresses[0]!, await p.joinToken(), { reconnectMs: 200, alsoAt: addresses.slice(1), capacity: { cpuMillis: 100_000, memoryMib: 100_000 } });
    if (bidDelayMs > 0) {
      // The first call for bids is answered late (its leader is stopped meanwhile); later ones at once.
      const honest = a.bidScript;
      let first = true;
      a.bidScript = (agent, c) => {
        const answer = honest(agent, c);
        if (!first || answer === 'silent') return answer;
        first = false;
        setTimeout(() => agent.send({ kind: { $case: 'bids', bids: { roundId: c.roundId, ...answer } } }), bidDelayMs);
        return 'silent';
      };
    }
    a.connect();
    agents.push(a);
  }
  await poll('the agents welcomed by the leader', () => agents.every((a) => a.sessions > 0), 30_000);
  return agents;
}

/** No instance is run by two agents at once. */
function assertNoDoubleRun(agents: readonly ScriptedAgent[]): void {
  const owner = new Map<string, string>();
  for (const a of agents) {
    for (const id of a.running.keys()) {
      assert.ok(!owner.has(id), `instance ${id} runs on ${owner.get(id)} and ${a.hostId}`);
      owner.set(id, a.hostId);
    }
  }
}

/** A create that waits up to 3 s for its process to be reachable, as a client that retries would. */
function create(client: PodApiClient, name: string, ha: boolean): Promise<Service> {
  const service = Service.fromPartial({ name, image: 'img', replicas: ha ? 2 : 1, ha, resources: { cpuMillis: 10, memoryMib: 8 } });
  return call(client, 'createService', { environment: 'prod', service }, ready('acme'), 1500);
}

/** Tenant metadata for a call that waits for its channel to connect rather than failing at once. */
function ready(tenant: string): Metadata {
  const md = as(tenant);
  md.setOptions({ waitForReady: true });
  return md;
}

describe('failover: standby Pod API processes on PostgreSQL', function () {
  this.timeout(600_000);

  it(`survives ${KILLS} SIGKILLs of the leader: nothing acknowledged lost, nothing run twice, HA kept apart, placements back within 10 s`, async () => {
    const p = new PodApiProcesses(2);
    const agents: ScriptedAgent[] = [];
    let stopLoop = false;
    try {
      await p.start();
      agents.push(...(await fleetOf(p, 3)));
      const clients = p.members.map((m) => p.client(m));
      await call(clients[0]!, 'createEnvironment', { environment: { name: 'prod' } }, as('acme'));

      // Creates in a loop, to whichever process answers; only acknowledged ones are counted.
      const acked: Array<{ name: string; ha: boolean; at: number }> = [];
      let refused = 0;
      const errors: string[] = [];
      const errorCounts = new Map<string, number>();
      let n = 0;
      const oneLoop = async () => {
        while (!stopLoop) {
          const name = `s${n++}`;
          const ha = n % 3 === 0;
          let done = false;
          for (let attempt = 0; attempt < clients.length && !done; attempt++) {
            try {
              await create(clients[(n + attempt) % clients.length]!, name, ha);
              acked.push({ name, ha, at: Date.now() });
              done = true;
            } catch (err) {
              // Not acknowledged: a process that is down (UNAVAILABLE), or one whose answer was
              // cut (the create may still have been stored: then a retry says ALREADY_EXISTS).
              const key = `client ${(n + attempt) % clients.length}: ${(err as ServiceError).code} ${(err as ServiceError).details.replace(/127\.0\.0\.1:\d+/, 'ADDR').slice(0, 80)}`;
              errorCounts.set(key, (errorCounts.get(key) ?? 0) + 1);
              if (errors.length < 5) errors.push(`${(err as ServiceError).code} ${(err as ServiceError).details}`);
              if ((err as ServiceError).code === 6) {
                acked.push({ name, ha, at: Date.now() });
                done = true;
              }
            }
          }
          if (!done) refused++;
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      // Three clients creating at once, each to whichever process answers.
      const loop = Promise.all([oneLoop(), oneLoop(), oneLoop()]);
      const sampler = setInterval(() => assertNoDoubleRun(agents), 100);

      const takeovers: number[] = [];
      const resumed: number[] = [];
      try {
        for (let k = 0; k < KILLS; k++) {
          const before = await poll('a leader', () => p.leader(), 30_000);
          await poll('some placements under this leader', async () => {
            const rows = await readRows(p.database, `SELECT count(*)::int AS n FROM events WHERE type = 'instance.awarded' AND message LIKE '%epoch ${before.epoch},%'`);
            return Number(rows[0]!.n) > 0;
          }, 30_000);
          const killedAt = Date.now();
          await p.kill(before.member, 'SIGKILL');
          const after = await poll('a new leader', async () => {
            const l = await p.leader();
            return l && l.epoch > before.epoch ? l : undefined;
          }, 30_000, 50);
          takeovers.push(Date.now() - killedAt);
          // Placements resume: a service created after the kill runs.
          await poll('a placement after the kill', async () => {
            const rows = await readRows(
              p.database,
              `SELECT count(*)::int AS n FROM events WHERE type = 'instance.running' AND time > ${killedAt} AND message = ''`,
            );
            return Number(rows[0]!.n) > 0;
          }, 30_000, 50);
          resumed.push(Date.now() - killedAt);
          // Back, as a standby, and up before the next kill.
          p.startMember(before.member);
          await poll('the restarted process standing by', async () => {
            const text = await fetch(`http://127.0.0.1:${before.member.metricsPort}/metrics`).then((r) => r.text(), () => '');
            return /^podium_leader 0$/m.test(text);
          }, 30_000, 100);
          void after;
        }
      } finally {
        stopLoop = true;
        await loop;
        clearInterval(sampler);
        process.stdout.write(`      (creates: ${acked.length} acknowledged, ${refused} refused; errors: ${JSON.stringify([...errorCounts])})\n`);
      }

      // Everything acknowledged exists, runs once, and HA replicas are apart.
      const leader = (await poll('a leader at the end', () => p.leader(), 30_000))!;
      const client = p.client(leader.member);
      const names = new Set((await call<object, { services: Service[] }>(client, 'listServices', { environment: 'prod' }, ready('acme'))).services.map((s) => s.name));
      for (const a of acked) assert.ok(names.has(a.name), `acknowledged service ${a.name} is missing`);
      let lagging: string[] = [];
      await poll('every acknowledged service running', async () => {
        const { services } = await call<object, { services: Service[] }>(client, 'listServices', { environment: 'prod' }, ready('acme'));
        lagging = services
          .filter((s) => s.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING).length !== s.replicas)
          .map((s) => `${s.name}: ${s.instances.map((i) => `${i.id}@${i.host}=${InstanceState[i.state]}`).join(' ')} (${s.pendingReason})`);
        return lagging.length === 0;
      }, 60_000, 500).catch((err) => {
        throw new Error(`${(err as Error).message}; not running: ${lagging.slice(0, 5).join('; ')}`);
      });
      const { services } = await call<object, { services: Service[] }>(client, 'listServices', { environment: 'prod' }, ready('acme'));
      for (const s of services.filter((x) => x.ha)) {
        const hosts = s.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING).map((i) => i.host);
        assert.equal(new Set(hosts).size, hosts.length, `HA service ${s.name} has two replicas on one host: ${hosts}`);
      }
      assertNoDoubleRun(agents);
      const running = services.flatMap((s) => s.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING).map((i) => i.id));
      const held = agents.flatMap((a) => [...a.running.keys()]);
      assert.deepEqual([...held].sort(), [...running].sort(), 'the agents run exactly what the store has running');
      client.close();
      for (const c of clients) c.close();

      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      process.stdout.write(
        `      (${KILLS} kills: takeover median ${median(takeovers)} ms, max ${Math.max(...takeovers)} ms; placements back median ${median(resumed)} ms, max ${Math.max(...resumed)} ms; ` +
          `${acked.length} creates acknowledged, ${refused} refused by both; ${services.length} services, ${running.length} instances running; first errors: ${errors.join(' | ')})\n`,
      );
      for (const ms of resumed) assert.ok(ms < 10_000, `placements resumed ${ms} ms after a kill`);
    } finally {
      stopLoop = true;
      for (const a of agents) a.close();
      await p.stop();
    }
  });

  it('fences a leader that stalled past its lease: when it wakes it commits no award', async () => {
    // Two agents bid at once; a third says nothing to the first call, so the leader holds the two
    // bids while it waits out the bid deadline: it is stopped then, its awards still to commit.
    const p = new PodApiProcesses(2);
    const agents: ScriptedAgent[] = [];
    try {
      await p.start();
      agents.push(...(await fleetOf(p, 2)));
      const [quiet] = await fleetOf(p, 1, 60_000);
      agents.push(quiet!);
      const stalled = (await p.leader())!;
      const client = p.client(p.members.find((m) => m !== stalled.member)!);
      await call(client, 'createEnvironment', { environment: { name: 'prod' } }, as('acme'));
      await create(client, 'db', true);
      await poll('calls for bids sent', () => agents.every((a) => a.messages('callForBids').length > 0), 10_000, 10);
      await new Promise((r) => setTimeout(r, 150)); // the two bids are in
      p.signal(stalled.member, 'SIGSTOP');
      const next = await poll('the standby leads', async () => {
        const l = await p.leader();
        return l && l.epoch > stalled.epoch ? l : undefined;
      }, 30_000, 100);
      // The stalled one wakes at once, its bids in and its round to finish, while the lots are
      // still pending (the agents have not noticed the stall yet): only the fence stops it.
      p.signal(stalled.member, 'SIGCONT');
      await poll('the woken one steps down', () => /no longer leading/.test(p.log(stalled.member)), 15_000, 100);
      // The new leader places the service once the agents have followed it.
      await poll('placed by the new leader', async () => {
        const svc = await call<object, Service>(client, 'getService', { environment: 'prod', service: 'db' }, as('acme'));
        return svc.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING).length === 2;
      }, 30_000, 100);
      // It had its awards to commit when it woke, and committed none.
      assert.match(p.log(stalled.member), /"bids":2,"awards":0|auction round failed/, 'the woken leader reached its awards');
      const awards = await readRows(p.database, `SELECT instance, message FROM events WHERE type = 'instance.awarded' ORDER BY sequence`);
      assert.equal(awards.length, 2, `two awards in all: ${JSON.stringify(awards)}`);
      for (const a of awards) assert.match(String(a.message), new RegExp(`epoch ${next.epoch},`), 'awarded by the new leader only');
      assert.equal(new Set(awards.map((a) => a.instance)).size, 2, 'no lot awarded twice');
      assertNoDoubleRun(agents);
      client.close();
    } finally {
      for (const a of agents) a.close();
      await p.stop();
    }
  });

  it('a WatchEvents client following from sequence N sees every event once, in order, through a takeover', async () => {
    const p = new PodApiProcesses(2);
    const agents: ScriptedAgent[] = [];
    try {
      await p.start();
      agents.push(...(await fleetOf(p, 2)));
      const first = (await p.leader())!;
      const standby = p.members.find((m) => m !== first.member)!;
      const client = p.client(standby);
      await call(client, 'createEnvironment', { environment: { name: 'prod' } }, as('acme'));
      await create(client, 'before', false);
      const from = Number((await readRows(p.database, `SELECT max(sequence)::int AS s FROM events`))[0]!.s);

      // Two followers: one on the standby (which becomes the leader), one on the leader (killed:
      // it resumes on the other process from the last sequence it saw).
      const seen: Record<'stays' | 'moves', number[]> = { stays: [], moves: [] };
      const follow = (m: PodApiProcess, key: 'stays' | 'moves', after: number): Promise<void> =>
        new Promise((resolve) => {
          const c = p.client(m);
          const stream = c.watchEvents({ environment: '', afterSequence: after }, new Metadata());
          stream.on('data', (e: Event) => seen[key].push(e.sequence));
          stream.on('error', () => {
            c.close();
            resolve();
          });
          stream.on('end', () => {
            c.close();
            resolve();
          });
          streams.push(stream);
        });
      const streams: Array<{ cancel(): void }> = [];
      void follow(standby, 'stays', from);
      const moving = follow(first.member, 'moves', from);
      for (let i = 0; i < 5; i++) await create(client, `pre${i}`, false);
      await p.kill(first.member, 'SIGKILL');
      await moving;
      void follow(standby, 'moves', seen.moves.length > 0 ? seen.moves[seen.moves.length - 1]! : from);
      await poll('the standby leads', async () => (await p.leader())?.member === standby, 30_000, 50);
      for (let i = 0; i < 5; i++) await create(client, `post${i}`, false);
      // An operator naming no tenant follows every event: both must see exactly what the store
      // holds after N, each once, in order. The agents keep the fleet busy (awards, starts), so
      // the store may still be growing: compare until both match it, or fail with the last diff.
      await poll('both followers caught up with the store, each event once and in order', async () => {
        const expected = (await readRows(p.database, `SELECT sequence FROM events WHERE sequence > ${from} ORDER BY sequence`)).map((r) => Number(r.sequence));
        assert.deepEqual(seen.stays, expected, 'the follower on the process that took over');
        assert.deepEqual(seen.moves, expected, 'the follower that lost its process and resumed on the other');
        return true;
      }, 30_000, 100);
      for (const s of streams) s.cancel();
      client.close();
    } finally {
      for (const a of agents) a.close();
      await p.stop();
    }
  });
});
