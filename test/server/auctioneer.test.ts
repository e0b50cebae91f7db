/**
 * The auctioneer between a real store (the run's dialect: SQLite or PostgreSQL) and hosts that
 * answer as the test tells them (a stand-in for the agent sessions, inside this unit test only): what happens to a lot when a
 * winner refuses, when it never answers, and when a host bids for a lot it was not called for.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import pino from 'pino';
import type { ServerMessage } from '../../gen/podium/v1/agent';
import { AppArmorMode } from '../../gen/podium/v1/resources';
import { seededRandom } from '../../server/auction';
import { Auctioneer } from '../../server/auctioneer';
import { ServerMetrics } from '../../server/metrics';
import { HostLiveness } from '../../server/host-liveness';
import { Orchestrator } from '../../server/orchestrator';
import { Storage, type ServiceRecord } from '../../server/storage';
import { freshDatabase, type TestDatabase } from '../support/databases';
import { poll } from '../support/poll';

type Answer = (host: string, msg: ServerMessage) => void;

describe('auctioneer', function () {
  this.timeout(20_000);
  let db: TestDatabase;
  let storage: Storage;
  let auctioneer: Auctioneer;
  let makeAuctioneer: (maxCandidatesPerLot: number, random?: () => number) => Auctioneer;
  const inbox = new Map<string, ServerMessage[]>();
  let answer: Answer = () => {};
  /** How long sending one call for bids takes the server's loop (a large fleet's send loop). */
  let callSendMs = 0;
  const hosts = ['h1', 'h2', 'h3'];
  /** Holds the event loop, as a busy Pod API does. */
  const busy = (ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end);
  };

  beforeEach(async () => {
    db = await freshDatabase();
    storage = await Storage.open(db.target);
    // The auctioneer commits only while it leads: this test process takes the lease.
    const epoch = (await storage.transaction((u) => u.lease.claim('auctioneer-test', 'nowhere:0', 0)))!;
    const leader = { epoch };
    const now = () => Date.now();
    await storage.transaction(async (u) => {
      for (const id of hosts) {
        await u.hosts.upsert(
          { id, pod: 'p', provider: 'local', labels: {}, capacity: { cpuMillis: 1000, memoryMib: 1024 }, apparmor: AppArmorMode.APP_ARMOR_MODE_ENFORCED, state: 'up', lastHeartbeat: now() },
          now(),
        );
      }
    });
    for (const id of hosts) inbox.set(id, []);
    const sessions = {
      get: (hostId: string) => ({
        hostId,
        meshAddress: '',
        send: (msg: ServerMessage) => {
          inbox.get(hostId)!.push(msg);
          if (msg.kind?.$case === 'callForBids') busy(callSendMs);
          setImmediate(() => answer(hostId, msg));
        },
        close: () => {},
      }),
      connectedHosts: () => new Set(hosts),
    };
    makeAuctioneer = (maxCandidatesPerLot, random = seededRandom(7)) => {
      const a = new Auctioneer(
        storage,
        leader,
        sessions,
        { batchSize: 16, batchWindowMs: 1, bidDeadlineMs: 300, awardTimeoutMs: 200, maxCandidatesPerLot, retryParkedMs: 100, avoidFailuresMs: 60_000, random, now },
        pino({ level: 'silent' }),
        new ServerMetrics(storage, () => hosts.length),
      );
      a.resume();
      return a;
    };
    auctioneer = makeAuctioneer(8);
    const svc: ServiceRecord = {
      tenant: 'acme',
      environment: 'prod',
      name: 'db',
      spec: { image: 'img', command: [], replicas: 2, ha: true, resources: { cpuMillis: 100, memoryMib: 64 }, placement: 'spread', ports: [], capabilities: [], allowFrom: [], readOnlyRoot: true, writablePaths: [] },
      createdAt: Date.now(),
    };
    const orchestrator = new Orchestrator(storage, new HostLiveness(), leader, { hostTtlMs: 10_000, restartBackoffMs: 1000, restartBackoffMaxMs: 1000, failureWindowMs: 60_000, now }, pino({ level: 'silent' }), () => {});
    await storage.transaction(async (u) => {
      await u.environments.insert('acme', 'prod', now());
      await u.services.insert(svc);
      await orchestrator.ensureReplicas(u, svc);
    });
  });

  afterEach(async () => {
    callSendMs = 0;
    auctioneer.stop();
    await storage.close();
    await db.drop();
  });

  /** Hosts bid their fixed price for every lot they are called for; awards are answered by `award`. */
  function bidding(prices: Record<string, number>, award: (host: string, lotId: string) => boolean | 'silent'): Answer {
    return (host, msg) => {
      const k = msg.kind;
      if (k?.$case === 'callForBids') {
        auctioneer.receiveBids(host, { roundId: k.callForBids.roundId, bids: k.callForBids.lots.map((l) => ({ lotId: l.id, price: prices[host]!, roundWeight: 0 })), declines: [] });
      } else if (k?.$case === 'award') {
        const a = award(host, k.award.lotId);
        if (a !== 'silent') auctioneer.receiveAwardReply(host, { lotId: k.award.lotId, accepted: a, reason: a ? '' : 'disk full' });
      }
    };
  }

  const instances = () => storage.read((r) => r.instances.listOfService('acme', 'prod', 'db'));
  const placement = async () => (await instances()).map((i) => `${i.state}@${i.host ?? '-'}`).sort();

  it('awards the two cheapest hosts, one replica each, in one round', async () => {
    answer = bidding({ h1: 1, h2: 2, h3: 3 }, () => true);
    auctioneer.kick();
    await poll('two awards', async () => (await placement()).every((p) => p.startsWith('starting')));
    assert.deepEqual(await placement(), ['starting@h1', 'starting@h2']);
    for (const h of hosts) assert.ok(inbox.get(h)!.filter((m) => m.kind?.$case === 'callForBids').length <= 1, `${h}: one call per round`);
  });

  it('sends a refused lot back to the queue without that host, and places it elsewhere', async () => {
    answer = bidding({ h1: 1, h2: 2, h3: 3 }, (host) => host !== 'h1');
    auctioneer.kick();
    await poll('placed on h2 and h3', async () => (await placement()).join() === 'starting@h2,starting@h3');
    const refused = (await instances()).find((i) => i.host === 'h3')!;
    assert.deepEqual(refused.excludedHosts, ['h1']);
    const events = (await storage.read((r) => r.events.list('acme', 'prod', 0))).map((e) => e.type);
    assert.ok(events.includes('instance.requeued'));
  });

  it('takes an award back when the winner never answers', async () => {
    answer = bidding({ h1: 1, h2: 2, h3: 3 }, (host) => (host === 'h2' ? 'silent' : true));
    auctioneer.kick();
    await poll('placed on h1 and h3', async () => (await placement()).join() === 'starting@h1,starting@h3', 5000);
  });

  it('counts only answers for the lots a host was called for, and only its first answer', async () => {
    // One candidate per lot, and a "random" that sends the first lot to h1 and the second to h2:
    // each host is called for one lot and not the other.
    auctioneer.stop();
    let draw = 0;
    auctioneer = makeAuctioneer(1, () => [0, 0.4][draw++ % 2]!);
    const ids = (await storage.read((r) => r.instances.listPendingKeys())).map((i) => i.id);
    const calledFor = new Map<string, Set<string>>();
    answer = (host, msg) => {
      const k = msg.kind;
      if (k?.$case === 'award') auctioneer.receiveAwardReply(host, { lotId: k.award.lotId, accepted: true, reason: '' });
      if (k?.$case !== 'callForBids') return;
      const mine = calledFor.get(host) ?? new Set<string>();
      for (const l of k.callForBids.lots) mine.add(l.id);
      calledFor.set(host, mine);
      const roundId = k.callForBids.roundId;
      // Each called host bids 10 for the lots it was called for and undercuts, at 0, the ones it
      // was not; then it tries to take everything back with a second answer.
      const called = new Set(k.callForBids.lots.map((l) => l.id));
      auctioneer.receiveBids(host, { roundId, bids: ids.map((lotId) => ({ lotId, price: called.has(lotId) ? 10 : 0, roundWeight: 0 })), declines: [] });
      auctioneer.receiveBids(host, { roundId, bids: [], declines: ids.map((lotId) => ({ lotId, reason: 'cpu' })) });
    };
    await poll('both lots placed', async () => {
      auctioneer.kick();
      return (await placement()).every((p) => p.startsWith('starting'));
    }, 10_000, 100);
    for (const inst of await instances()) {
      assert.ok(calledFor.get(inst.host!)?.has(inst.id), `${inst.id} went to ${inst.host}, which was never called for it`);
    }
  });

  /**
   * Hosts that bid over a socket, as agents do over their streams: a bid is read by the loop's I/O
   * phase, never in the turn it was written. Each host answers `answerAfterMs` after its call and
   * bids its number (h1: 1); `afterWrite` runs right after each answer is written.
   */
  async function bidsOverSocket(answerAfterMs: number, afterWrite: (host: string) => void = () => {}): Promise<() => Promise<void>> {
    const server: Server = createServer((conn) => {
      let buffered = '';
      conn.on('data', (chunk) => {
        buffered += chunk.toString();
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const { host, roundId, lots } = JSON.parse(buffered.slice(0, nl)) as { host: string; roundId: string; lots: string[] };
          buffered = buffered.slice(nl + 1);
          auctioneer.receiveBids(host, { roundId, bids: lots.map((lotId) => ({ lotId, price: Number(host.slice(1)), roundWeight: 0 })), declines: [] });
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client: Socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise<void>((resolve) => client.once('connect', resolve));
    answer = (host, msg) => {
      const k = msg.kind;
      if (k?.$case === 'callForBids') {
        const line = `${JSON.stringify({ host, roundId: k.callForBids.roundId, lots: k.callForBids.lots.map((l) => l.id) })}\n`;
        const write = () => {
          client.write(line);
          afterWrite(host);
        };
        if (answerAfterMs > 0) setTimeout(write, answerAfterMs);
        else write();
      } else if (k?.$case === 'award') auctioneer.receiveAwardReply(host, { lotId: k.award.lotId, accepted: true, reason: '' });
    };
    return async () => {
      client.destroy();
      await new Promise((resolve) => server.close(resolve));
    };
  }

  /** Starts the auction and expects both replicas on h1 and h2 (the lowest bids); then `close`. */
  async function placedByTheTwoCheapest(close: () => Promise<void>): Promise<void> {
    try {
      auctioneer.kick();
      await poll('two awards', async () => (await placement()).every((p) => p.startsWith('starting')), 8000);
      assert.deepEqual(await placement(), ['starting@h1', 'starting@h2']);
    } finally {
      await close();
    }
  }

  it('gives hosts the whole deadline from the last call sent, however long sending the calls took', async () => {
    // 3 × 200 ms of sending against a 300 ms deadline, hosts answering 100 ms after their call:
    // counted from before the sends, the deadline passed before any host could answer, in every round.
    callSendMs = 200;
    await placedByTheTwoCheapest(await bidsOverSocket(100));
  });

  it('reads the bids waiting in its sockets before a deadline that passed while the loop was busy', async () => {
    // The last answer written, the loop is held past the deadline before it reads any. Timers run
    // before I/O in a turn of the loop: closing the round in the timer itself drops every bid unread.
    await placedByTheTwoCheapest(await bidsOverSocket(0, (host) => host === 'h3' && busy(400)));
  });
});
