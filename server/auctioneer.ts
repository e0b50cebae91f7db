/**
 * Runs auction rounds: the glue between the pure auction core (server/auction), the store and the
 * agent sessions. One round at a time, so that each round sees the awards of the one before.
 *
 *   pending instances ─► fair batch ─► lots ─► planRound ─► one CallForBids per candidate host
 *     ▲    ▲ parked until the fleet changes                             │ bids until the deadline
 *     │    └──── pending, with the reason ◄──┐                           ▼
 *     │ refused / timed out                  └──── determineWinners (re-checks every rule)
 *     └──────── award ◄─ reserve in SQLite ◄───────────┘
 *
 * The round's lots are taken per tenant and per service in turn (takeFairBatch), never oldest
 * first across the fleet, and a lot no host could take is parked (LotParking) until the fleet
 * changes instead of taking a place in every round: one tenant's unplaceable lots cannot delay
 * another's placement. The host views come from the FleetView (in memory, the changed hosts read
 * again) at the start of the round and again after the bids arrive, because hosts may have gone
 * away meanwhile; reservation only succeeds on a still-pending instance, so no lot is awarded
 * twice.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { AwardReply, Bids, ContainerSpec } from '../gen/podium/v1/agent';
import { PlacementPolicy } from '../gen/podium/v1/resources';
import type { AgentSessions, AuctionInbox } from './agent-sessions';

/** What the auctioneer needs of the sessions: reaching a host, and knowing who is connected. */
export type SessionDirectory = Pick<AgentSessions, 'get' | 'connectedHosts'>;
import {
  determineWinners,
  EMPTY_CURSOR,
  LotParking,
  planRound,
  takeFairBatch,
  type BidView,
  type DeclineView,
  type FairCursor,
  type LotView,
  type QueuedLot,
} from './auction';
import { FleetView } from './fleet-view';
import { PendingLots } from './pending-lots';
import type { ServerMetrics } from './metrics';
import { fenced, type LeaderEpoch } from './leader-fence';
import type { InstanceRecord, ServiceRecord, Storage } from './storage';

export interface AuctioneerOptions {
  /** Most lots in one round. */
  batchSize: number;
  /** How long to wait for more lots before a round starts. */
  batchWindowMs: number;
  /** How long candidates have to bid. */
  bidDeadlineMs: number;
  /** How long a winner has to accept an award before the lot goes back to the queue. */
  awardTimeoutMs: number;
  maxCandidatesPerLot: number;
  /** A round's lots sample their candidates from this many hosts of the fleet, drawn per round
   *  (PlanOptions.windowHosts); absent: from the whole fleet. */
  windowHosts?: number;
  /** A lot parked for a reason only agents know ('image', 'no-bid') is tried again after this. */
  retryParkedMs: number;
  /** Failures of a service on a host this recent make its new lots avoid that host. */
  avoidFailuresMs: number;
  random: () => number;
  now: () => number;
}

interface PendingRound {
  id: string;
  /** Hosts called and not yet answered, with the lots each was called for. */
  waitingFor: Map<string, ReadonlySet<string>>;
  bids: BidView[];
  declines: DeclineView[];
  done: () => void;
}

export class Auctioneer implements AuctionInbox {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private again = false;
  private stopped = false;
  /** Not leading: no rounds. Starts paused until leadership resumes it. */
  private paused = true;
  private round: PendingRound | null = null;
  private readonly awaitingReply = new Map<string, { hostId: string; timer: NodeJS.Timeout }>();
  private roundCounter = 0;
  private readonly parking = new LotParking();
  private cursor: FairCursor = EMPTY_CURSOR;
  private readonly fleet: FleetView;
  private readonly queue: PendingLots;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly storage: Storage,
    private readonly leader: LeaderEpoch,
    private readonly sessions: SessionDirectory,
    private readonly opts: AuctioneerOptions,
    private readonly log: Logger,
    private readonly metrics: ServerMetrics,
  ) {
    this.fleet = new FleetView(storage, (hostId) => sessions.get(hostId) !== undefined);
    this.queue = new PendingLots(storage, opts.now);
    // Every committed event, from any process, in sequence order.
    this.unsubscribe = storage.feed.subscribe((e) => this.eventCommitted(e));
  }

  /**
   * Stops starting rounds (this process no longer leads); a round in flight cannot commit its
   * awards (they are fenced). Awards awaiting replies are forgotten: the new leader reconciles.
   */
  pause(): void {
    this.paused = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const a of this.awaitingReply.values()) clearTimeout(a.timer);
    this.awaitingReply.clear();
  }

  /** Rounds may start again (this process leads). The fleet is read afresh: another process may
   *  have led meanwhile. */
  resume(): void {
    this.fleet.reset();
    this.queue.reset();
    this.paused = false;
  }

  /** A committed event, from any process: the host it names is read again by the next round, and
   *  the lot it names joins or leaves the queue. */
  private eventCommitted(e: { type: string; host?: string; instance?: string }): void {
    this.fleet.eventCommitted(e);
    this.queue.eventCommitted(e);
  }

  /** A host's record changed (its hello): read again by the next round. */
  hostChanged(hostId: string): void {
    this.fleet.hostChanged(hostId);
  }

  /** Asks for a round soon. Cheap to call often: calls within one batch window share a round. */
  kick(): void {
    if (this.stopped || this.paused) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runRound();
    }, this.opts.batchWindowMs);
  }

  /**
   * The fleet changed (a host joined or came back, capacity was freed, an award came back): lots
   * parked for want of a host may fit now. Starts a round.
   */
  fleetChanged(): void {
    this.parking.fleetChanged();
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    if (this.timer) clearTimeout(this.timer);
    for (const a of this.awaitingReply.values()) clearTimeout(a.timer);
    this.awaitingReply.clear();
    this.round?.done();
  }

  receiveBids(hostId: string, bids: Bids): void {
    const r = this.round;
    const called = r && bids.roundId === r.id ? r.waitingFor.get(hostId) : undefined;
    if (!r || !called) return; // late, stray or a second answer: ignored
    r.waitingFor.delete(hostId);
    // Only answers for the lots this host was called for count: a bid is never a way in.
    for (const b of bids.bids) {
      if (called.has(b.lotId) && Number.isFinite(b.price)) r.bids.push({ hostId, lotId: b.lotId, price: b.price, roundWeight: b.roundWeight });
    }
    for (const d of bids.declines) if (called.has(d.lotId)) r.declines.push({ hostId, lotId: d.lotId, reason: d.reason });
    if (r.waitingFor.size === 0) r.done();
  }

  receiveAwardReply(hostId: string, reply: AwardReply): void {
    const waiting = this.awaitingReply.get(reply.lotId);
    if (!waiting || waiting.hostId !== hostId) return;
    clearTimeout(waiting.timer);
    this.awaitingReply.delete(reply.lotId);
    this.metrics.awardReplies.inc({ accepted: String(reply.accepted) });
    if (!reply.accepted) this.release(reply.lotId, hostId, `host ${hostId} refused the award: ${reply.reason || 'no reason given'}`);
  }

  private async runRound(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      await this.oneRound();
    } catch (err) {
      this.log.error({ err }, 'auction round failed');
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    }
  }

  private async oneRound(): Promise<void> {
    const started = this.opts.now();
    // Before anything of the fleet is read: a change from here on un-parks what this round parks.
    const fleetAsOf = this.parking.fleetEpoch;
    const queued = await this.queue.current();
    this.parking.retain(queued);
    const eligible: QueuedLot[] = [];
    for (const k of queued.values()) {
      if (this.parking.eligible(k.id, started)) eligible.push({ id: k.id, tenant: k.tenant, service: serviceKey(k), haGroup: k.haGroup });
    }
    if (eligible.length === 0) return;
    const taken = takeFairBatch(eligible, this.opts.batchSize, this.cursor);
    this.cursor = taken.cursor;
    // More eligible lots than one round holds: the next round starts as soon as this one ends.
    if (taken.batch.length < eligible.length) this.again = true;
    // Only this round's lots are read whole (and only those still pending).
    const pending = await this.queue.take(taken.batch.map((q) => q.id));
    if (pending.length === 0) {
      this.again = true;
      return;
    }
    const services = new Map<string, { svc: ServiceRecord; avoid: ReadonlySet<string> }>();
    const lots: LotView[] = [];
    for (const inst of pending) {
      const key = serviceKey(inst);
      let entry = services.get(key);
      if (!entry) {
        const svc = await this.storage.read((r) => r.services.get(inst.tenant, inst.environment, inst.service));
        if (!svc) continue;
        const failedOn = await this.storage.read((r) => r.instances.failedHostsOfService(inst.tenant, inst.environment, inst.service, started - this.opts.avoidFailuresMs));
        const avoid = new Set(failedOn);
        services.set(key, (entry = { svc, avoid }));
      }
      lots.push(lotOf(inst, entry.svc, entry.avoid));
    }
    const id = `r-${++this.roundCounter}-${randomBytes(3).toString('hex')}`;
    const endTimer = this.metrics.rounds.startTimer();
    const log = this.log.child({ round: id });
    const plan = planRound(await this.fleet.views(), lots, { maxCandidatesPerLot: this.opts.maxCandidatesPerLot, random: this.opts.random, windowHosts: this.opts.windowHosts });

    const round: PendingRound = { id, waitingFor: new Map(), bids: [], declines: [], done: () => {} };
    const bidsIn = new Promise<void>((resolve) => (round.done = resolve));
    const lotById = new Map(lots.map((l) => [l.id, l]));
    for (const [hostId, lotIds] of plan.calls) {
      const session = this.sessions.get(hostId);
      if (!session) continue;
      round.waitingFor.set(hostId, new Set(lotIds));
      session.send({
        kind: {
          $case: 'callForBids',
          callForBids: {
            roundId: id,
            deadlineMs: this.opts.bidDeadlineMs,
            lots: lotIds.map((l) => {
              const lot = lotById.get(l)!;
              return {
                id: lot.id,
                tenant: lot.tenant,
                environment: lot.environment,
                service: lot.service,
                haGroup: lot.haGroup,
                resources: lot.resources,
                image: lot.image,
                placement: lot.policy === 'binpack' ? PlacementPolicy.PLACEMENT_POLICY_BINPACK : PlacementPolicy.PLACEMENT_POLICY_SPREAD,
              };
            }),
          },
        },
      });
    }
    if (round.waitingFor.size > 0) {
      this.round = round;
      // The deadline counts from the last call sent (8,000 calls take the loop most of a second),
      // and ends only after the answers already arrived by then are read: timers run before I/O
      // in a turn of the loop, so a loop busy past the deadline would otherwise drop every bid
      // waiting in its sockets (at 10,000 hosts, round after round with none).
      const timer = setTimeout(() => setImmediate(() => round.done()), this.opts.bidDeadlineMs);
      await bidsIn;
      clearTimeout(timer);
      this.round = null;
    }
    if (this.stopped) return;

    // Rebuilt: hosts may have gone down or lost their session while bids were out.
    const result = determineWinners(await this.fleet.views(), lots, round.bids, round.declines);
    const now = this.opts.now();
    const explanations = new Map([...plan.unplaceable, ...result.pending]);
    const instById = new Map(pending.map((p) => [p.id, p]));
    // One fenced unit of work: the explanations and the awards. A leader that lost its lease
    // while the bids were out commits nothing (FencedError), and a lot deleted meanwhile is not
    // reserved (reserve only takes a still-pending instance).
    const sent = await this.storage.transaction(async (u) => {
      await fenced(u, this.leader);
      for (const [lotId, why] of explanations) await u.instances.setPendingMessage(lotId, why.text);
      const out: Array<{ lotId: string; hostId: string; spec: ContainerSpec }> = [];
      // One statement for the round's reservations; a lot deleted meanwhile is not among them.
      const reserved = await u.instances.reserveAll(result.awards.map((a) => ({ id: a.lotId, host: a.hostId })), now);
      for (const award of result.awards) {
        const inst = instById.get(award.lotId)!;
        if (!reserved.has(award.lotId)) continue;
        u.emit({
          tenant: inst.tenant,
          type: 'instance.awarded',
          environment: inst.environment,
          service: inst.service,
          instance: inst.id,
          host: award.hostId,
          message: `round ${id}, epoch ${this.leader.epoch}, price ${award.price.toFixed(3)}`,
          time: now,
        });
        const { svc } = services.get(serviceKey(inst))!;
        out.push({ lotId: award.lotId, hostId: award.hostId, spec: containerSpecOf(inst, svc) });
      }
      return out;
    });
    // Counted at once: the next round must not offer this capacity again before the events come.
    for (const a of sent) {
      const inst = instById.get(a.lotId)!;
      this.fleet.reserved(a.hostId, inst.resources, inst.haGroup);
      this.queue.taken(a.lotId);
    }
    for (const [lotId, why] of explanations) this.parking.park(lotId, why, now, this.opts.retryParkedMs, fleetAsOf);
    for (const a of sent) {
      const timer = setTimeout(() => {
        this.awaitingReply.delete(a.lotId);
        this.metrics.awardReplies.inc({ accepted: 'false' });
        this.release(a.lotId, a.hostId, `host ${a.hostId} did not answer the award in time`);
      }, this.opts.awardTimeoutMs);
      this.awaitingReply.set(a.lotId, { hostId: a.hostId, timer });
      this.sessions.get(a.hostId)?.send({ kind: { $case: 'award', award: { lotId: a.lotId, spec: a.spec } } });
    }
    endTimer();
    this.metrics.lots.inc({ outcome: 'awarded' }, sent.length);
    this.metrics.lots.inc({ outcome: 'pending' }, explanations.size);
    log.info(
      { lots: lots.length, candidates: plan.calls.size, bids: round.bids.length, awards: sent.length, pending: explanations.size, parked: this.parking.size, queued: queued.size },
      'auction round',
    );
  }

  /** A refused or timed-out award: the lot goes back to the queue without that host. */
  private release(lotId: string, hostId: string, message: string): void {
    void this.storage
      .transaction(async (u) => {
        await fenced(u, this.leader);
        const inst = await u.instances.get(lotId);
        if (!inst || inst.host !== hostId || inst.state !== 'starting') return false;
        await u.instances.requeue(lotId, hostId, message, this.opts.now());
        u.emit({ tenant: inst.tenant, type: 'instance.requeued', environment: inst.environment, service: inst.service, instance: lotId, host: hostId, message });
        return true;
      })
      .then(
        (released) => {
          if (!released) return;
          this.log.warn({ lot: lotId, host: hostId }, message);
          // What the host had reserved for the lot is free again.
          this.fleetChanged();
        },
        (err) => this.log.warn({ lot: lotId, host: hostId, err: (err as Error).message }, 'could not send the lot back to the queue'),
      );
  }
}

function serviceKey(i: Pick<InstanceRecord, 'tenant' | 'environment' | 'service'>): string {
  return `${i.tenant}/${i.environment}/${i.service}`;
}

function lotOf(inst: InstanceRecord, svc: ServiceRecord, avoidHosts: ReadonlySet<string>): LotView {
  return {
    id: inst.id,
    tenant: inst.tenant,
    environment: inst.environment,
    service: inst.service,
    haGroup: inst.haGroup,
    resources: inst.resources,
    image: svc.spec.image,
    constraints: {},
    excludedHosts: new Set(inst.excludedHosts),
    policy: svc.spec.placement,
    avoidHosts,
  };
}

function containerSpecOf(inst: InstanceRecord, svc: ServiceRecord): ContainerSpec {
  return {
    instanceId: inst.id,
    tenant: inst.tenant,
    environment: inst.environment,
    service: inst.service,
    image: svc.spec.image,
    command: svc.spec.command,
    resources: inst.resources,
    haGroup: inst.haGroup,
    capabilities: svc.spec.capabilities,
    readOnlyRoot: svc.spec.readOnlyRoot,
    writablePaths: svc.spec.writablePaths,
  };
}
