/**
 * The server's end of AgentService.Connect: one session per connected host.
 *
 * A session opens with Hello. The server records the host as up, answers Welcome, and reconciles:
 * what the host runs against what the store says it should run. A container the store does not
 * place on this host is removed; an instance the store places here but the host does not have goes
 * back to the auction. Only then does the host take part in rounds, so nothing is double-run for
 * longer than this reconciliation.
 *
 * The host is the one named in the agent's certificate: a message can never speak for another.
 */
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { AgentMessage, Bids, AwardReply, Hello, InstanceStatus, ServerMessage } from '../gen/podium/v1/agent';
import { AppArmorMode, InstanceState } from '../gen/podium/v1/resources';
import { RETRY_AFTER_METADATA_KEY } from '../agent/server-addresses';
import type { SessionAdmission } from './admission';
import { authorize, type CaTrust } from './auth';
import { PodiumError, toServiceError } from './errors';
import type { HostLiveness } from './host-liveness';
import { GroupCommit } from './group-commit';
import type { HeartbeatPacing } from './heartbeat-pacing';
import { fenced, type LeaderEpoch } from './leader-fence';
import type { InstanceStateName, Storage, UnitOfWork } from './storage';
import type { WorkloadCertificates } from './workload-certificates';

export interface AgentSession {
  readonly hostId: string;
  /** Where its proxy takes mTLS from other hosts' proxies (its hello's), '' when none. */
  readonly meshAddress: string;
  send(msg: ServerMessage): void;
  close(reason: string): void;
}

/** What the sessions hand to the auction. */
export interface AuctionInbox {
  receiveBids(hostId: string, bids: Bids): void;
  receiveAwardReply(hostId: string, reply: AwardReply): void;
  kick(): void;
  /** A host joined or came back, or capacity was freed: parked lots may fit now. */
  fleetChanged(): void;
  /** What this host is (capacity, labels, AppArmor) or holds may have changed: read it again. */
  hostChanged(hostId: string): void;
}

/** Who hears of sessions opening and ending (the service registry). */
export interface SessionObserver {
  hostChanged(hostId: string): void;
}

const REPORTED_STATES: Partial<Record<InstanceState, InstanceStateName>> = {
  [InstanceState.INSTANCE_STATE_STARTING]: 'starting',
  [InstanceState.INSTANCE_STATE_RUNNING]: 'running',
  [InstanceState.INSTANCE_STATE_FAILED]: 'failed',
};

type StatusOutcome = 'not-ours' | 'unchanged' | 'updated';

interface HelloWrite {
  hostId: string;
  hello: Hello;
  inventory: Map<string, Hello['inventory'][number]>;
  now: number;
}

interface ReportedStatus {
  hostId: string;
  state: InstanceStateName;
  status: InstanceStatus;
  now: number;
}

export class AgentSessions {
  private readonly sessions = new Map<string, AgentSession>();
  private expected: { hosts: number; until: number } | null = null;
  /** Heartbeats heard since the start (a metric). */
  heartbeatsHeard = 0;
  auction: AuctionInbox | null = null;
  registry: SessionObserver | null = null;
  /** Told of every session that opens (it sends the revoked hosts). */
  revokedHosts: { opened(session: AgentSession): void } | null = null;
  /** Status reports of every session, committed together while a commit is under way. */
  private readonly statusWrites = new GroupCommit<ReportedStatus, StatusOutcome>((batch) =>
    this.storage.transaction(async (u) => {
      await fenced(u, this.leader);
      const out: StatusOutcome[] = [];
      for (const r of batch) out.push(await recordStatus(u, r));
      return out;
    }),
  );

  /** Hellos of every session, committed together: a fleet reconnecting after a restart is a
   *  burst of them, and one fsync each was the costliest part of the storm. */
  private readonly helloWrites = new GroupCommit<HelloWrite, string[]>((batch) =>
    this.storage.transaction(async (u) => {
      await fenced(u, this.leader);
      const out: string[][] = [];
      for (const w of batch) out.push(await reconcileHost(u, w));
      return out;
    }),
  );

  constructor(
    private readonly storage: Storage,
    private readonly leader: LeaderEpoch,
    private readonly ca: CaTrust,
    private readonly liveness: HostLiveness,
    private readonly opts: { pacing: HeartbeatPacing; now: () => number; admission?: SessionAdmission; workloads?: WorkloadCertificates },
    private readonly log: Logger,
  ) {}

  get(hostId: string): AgentSession | undefined {
    return this.sessions.get(hostId);
  }

  /** Every open session. */
  all(): IterableIterator<AgentSession> {
    return this.sessions.values();
  }

  connectedHosts(): ReadonlySet<string> {
    return new Set(this.sessions.keys());
  }

  /** Hosts expected back (those that were up before a restart): the heartbeat interval is scaled
   *  to them until `until`, not to the few that have reconnected yet. */
  expectFleet(hosts: number, until: number): void {
    this.expected = { hosts, until };
    this.repace();
  }

  /** The fleet grew or shrank: when the heartbeat interval changes with it, every host is told. */
  private repace(): void {
    const now = this.opts.now();
    if (this.expected && now >= this.expected.until) this.expected = null;
    const next = this.opts.pacing.fleetSize(Math.max(this.sessions.size, this.expected?.hosts ?? 0), now);
    if (next === null) return;
    this.log.info({ hosts: this.sessions.size, heartbeatIntervalMs: next }, 'heartbeat interval scaled to the fleet');
    for (const s of this.sessions.values()) s.send({ kind: { $case: 'heartbeatInterval', heartbeatInterval: { heartbeatIntervalMs: next } } });
  }

  closeAll(reason: string): void {
    for (const s of this.sessions.values()) s.close(reason);
  }

  /** Tells a host to stop and remove an instance's container, if the host is connected. */
  stopInstance(hostId: string, instanceId: string): void {
    this.sessions.get(hostId)?.send({ kind: { $case: 'stopInstance', stopInstance: { instanceId } } });
  }

  /** The Connect handler. Roles: agent. */
  connect(call: ServerDuplexStream<AgentMessage, ServerMessage>): void {
    let hostId: string;
    try {
      hostId = authorize(call, this.ca, ['agent']).name;
    } catch (err) {
      call.emit('error', toServiceError(err, this.log));
      return;
    }
    const log = this.log.child({ host: hostId });
    const decision = this.opts.admission?.admit(hostId, this.opts.now());
    if (decision && !decision.admitted) {
      // Its slot is also its deadline: the TTL counts from when it was told to come back.
      this.liveness.holdUntil(hostId, this.opts.now() + decision.retryAfterMs);
      const refused = toServiceError(
        new PodiumError(status.RESOURCE_EXHAUSTED, `too many hosts connecting at once: come back in ${decision.retryAfterMs} ms (your slot is kept)`),
        log,
      );
      refused.metadata!.set(RETRY_AFTER_METADATA_KEY, String(decision.retryAfterMs));
      call.emit('error', refused);
      return;
    }
    let session: AgentSession | null = null;
    let closed = false;
    const send = (msg: ServerMessage) => {
      if (!closed) call.write(msg);
    };
    const fail = (err: unknown) => {
      if (closed) return;
      closed = true;
      call.emit('error', toServiceError(err, log));
    };

    // A session's messages are handled in order: everything waits for hello's unit of work to
    // commit (the host is reconciled before it can take part in a round, and a heartbeat never
    // finds it not yet up), and status reports are committed in the order they came.
    let helloDone: Promise<void> | null = null;
    call.on('data', (msg: AgentMessage) => {
      const kind = msg.kind;
      if (!kind) return;
      if (kind.$case === 'hello') {
        if (helloDone) return fail(new PodiumError(status.FAILED_PRECONDITION, 'hello sent twice'));
        const opened: AgentSession = {
          hostId,
          meshAddress: kind.hello.meshAddress,
          send,
          close: (reason) => {
            if (closed) return;
            closed = true;
            // Out of the directory at once: no round may call a session that is going away.
            if (this.sessions.get(hostId) === opened) {
              this.sessions.delete(hostId);
              this.repace();
              this.registry?.hostChanged(hostId);
            }
            log.info({ reason }, 'closing agent session');
            call.end();
          },
        };
        helloDone = this.hello(hostId, kind.hello, send, log).then(
          () => {
            if (closed) return;
            session = opened;
            const previous = this.sessions.get(hostId);
            this.sessions.set(hostId, opened);
            previous?.close('replaced by a new session of the same host');
            this.repace();
            // Its capacity (and what it freed by reconciling) is new to the auction.
            this.auction?.hostChanged(hostId);
            this.auction?.fleetChanged();
            this.revokedHosts?.opened(opened);
            this.registry?.hostChanged(hostId);
          },
          (err) => fail(err),
        );
        return;
      }
      if (!helloDone) return fail(new PodiumError(status.FAILED_PRECONDITION, 'the first message must be hello'));
      if (kind.$case === 'instanceStatus') {
        // Submitted in the order they came, without waiting for the previous one to commit: the
        // group commit keeps the order, and a burst of reports shares one commit.
        void helloDone.then(() => (session ? this.instanceStatus(hostId, kind.instanceStatus, send, log) : undefined)).catch(fail);
        return;
      }
      void helloDone.then(() => {
        if (!session || closed) return;
        switch (kind.$case) {
          case 'heartbeat':
            this.heartbeatsHeard++;
            // A host marked down while its stream stayed open (it stalled past the TTL) has had its
            // replicas placed elsewhere: it must reconnect, so that hello reconciles it.
            // In memory only: a heartbeat is never a database write.
            if (!this.liveness.seen(hostId, this.opts.now())) session.close('host was marked down: reconnect and reconcile');
            return;
          case 'bids':
            this.auction?.receiveBids(hostId, kind.bids);
            return;
          case 'awardReply':
            this.auction?.receiveAwardReply(hostId, kind.awardReply);
            return;
          case 'workloadCertificateRequest': {
            const req = kind.workloadCertificateRequest;
            const workloads = this.opts.workloads;
            if (!workloads) {
              send({ kind: { $case: 'workloadCertificate', workloadCertificate: { instanceId: req.instanceId, certificatePem: '', spiffeId: '', refused: 'this Pod API issues no workload certificates' } } });
              return;
            }
            void workloads.answer(hostId, req).then((workloadCertificate) => send({ kind: { $case: 'workloadCertificate', workloadCertificate } }));
            return;
          }
        }
      });
    });
    const gone = () => {
      closed = true;
      if (session && this.sessions.get(hostId) === session) {
        this.sessions.delete(hostId);
        log.info('agent disconnected');
        this.repace();
        this.registry?.hostChanged(hostId);
      }
    };
    call.on('end', () => {
      gone();
      call.end();
    });
    call.on('error', gone);
    call.on('cancelled', gone);
  }

  private async hello(hostId: string, hello: Hello, send: (m: ServerMessage) => void, log: Logger): Promise<void> {
    const now = this.opts.now();
    const inventory = new Map(hello.inventory.map((c) => [c.instanceId, c]));
    const keep = await this.helloWrites.submit({ hostId, hello, inventory, now });
    this.liveness.up(hostId, now);
    const kept = new Set(keep);
    const remove = [...inventory.keys()].filter((id) => !kept.has(id));
    log.info(
      { capacity: hello.capacity, apparmor: AppArmorMode[hello.apparmor], keep: keep.length, remove: remove.length },
      'agent connected',
    );
    send({ kind: { $case: 'welcome', welcome: { hostId, heartbeatIntervalMs: this.opts.pacing.intervalMs } } });
    send({ kind: { $case: 'reconcile', reconcile: { keepInstanceIds: keep, removeInstanceIds: remove } } });
  }

  private async instanceStatus(hostId: string, s: InstanceStatus, send: (m: ServerMessage) => void, log: Logger): Promise<void> {
    const state = REPORTED_STATES[s.state];
    if (!state) throw new PodiumError(status.INVALID_ARGUMENT, `instance_status.state: ${InstanceState[s.state] ?? s.state} cannot be reported`);
    const outcome = await this.statusWrites.submit({ hostId, state, status: s, now: this.opts.now() });
    if (outcome === 'not-ours') {
      send({ kind: { $case: 'stopInstance', stopInstance: { instanceId: s.instanceId } } });
      return;
    }
    if (outcome === 'unchanged') return;
    if (state === 'failed') {
      // The container could not start or has exited: it is removed, and the orchestrator places a
      // replacement after a backoff (the failed row stays, for the customer to see why). Its
      // resources are free again.
      send({ kind: { $case: 'stopInstance', stopInstance: { instanceId: s.instanceId } } });
      this.auction?.fleetChanged();
    }
    log.info({ instance: s.instanceId, state, container: s.containerId, message: s.message }, 'instance status');
  }
}

/** One host's hello into the store, in the batch's unit of work: the host up, and what the store
 *  places on it reconciled with what it runs. Returns the instances it keeps. */
async function reconcileHost(u: UnitOfWork, w: HelloWrite): Promise<string[]> {
  const { hostId, hello, inventory, now } = w;
  const kept: string[] = [];
  const before = await u.hosts.get(hostId);
  await u.hosts.upsert(
    {
      id: hostId,
      pod: hello.pod || 'default',
      provider: hello.provider || 'local',
      labels: hello.labels,
      capacity: { cpuMillis: hello.capacity?.cpuMillis ?? 0, memoryMib: hello.capacity?.memoryMib ?? 0 },
      apparmor: hello.apparmor,
      state: 'up',
      lastHeartbeat: now,
    },
    now,
  );
  if (!before || before.state === 'down') u.emit({ tenant: '', type: before ? 'host.up' : 'host.joined', host: hostId, time: now });
  await u.instances.clearExclusions(hostId);
  for (const inst of await u.instances.listOnHost(hostId)) {
    const placed = inst.state === 'starting' || inst.state === 'running';
    const report = inventory.get(inst.id);
    if (placed && report) {
      kept.push(inst.id);
      // The host says it runs it: a RUNNING report lost with a previous leader (or session)
      // is taken from the inventory, as a status report would be.
      if (report.running && inst.state === 'starting') {
        await u.instances.updateStatus(inst.id, hostId, 'running', report.containerId, '', now);
        u.emit({ tenant: inst.tenant, type: 'instance.running', environment: inst.environment, service: inst.service, instance: inst.id, host: hostId, message: '', time: now });
      }
    } else if (placed) {
      await u.instances.requeue(inst.id, null, 'its container was missing when the host reconnected', now);
      u.emit({ tenant: inst.tenant, type: 'instance.requeued', environment: inst.environment, service: inst.service, instance: inst.id, host: hostId, message: 'container missing on reconnect', time: now });
    } else {
      // lost (the host was down and the replica was placed again elsewhere) or failed
      await u.instances.delete(inst.id);
    }
  }
  return kept;
}

/** One status report into the store, in the batch's unit of work. */
async function recordStatus(u: UnitOfWork, r: ReportedStatus): Promise<StatusOutcome> {
  const { hostId, state, status: s, now } = r;
  const inst = await u.instances.get(s.instanceId);
  // Not this host's to run (deleted, or placed elsewhere after this host was down): remove it.
  if (!inst || inst.host !== hostId) return 'not-ours';
  if (inst.state === state && inst.containerId === s.containerId && inst.message === s.message) return 'unchanged';
  if (!(await u.instances.updateStatus(inst.id, hostId, state, s.containerId, s.message, now))) return 'unchanged';
  u.emit({ tenant: inst.tenant, type: `instance.${state}`, environment: inst.environment, service: inst.service, instance: inst.id, host: hostId, message: s.message, time: now });
  return 'updated';
}
