/**
 * A host agent without Docker, for tests of the Pod API: it joins through the real
 * CertificateService.Join (pinning the CA by the token's fingerprint), opens the real
 * AgentService.Connect stream over mutual TLS with its own certificate, and answers calls for bids
 * and awards as its script says. By default it behaves like an honest agent with a simulated
 * capacity: it bids for what fits, accepts awards that still fit, and reports them running.
 *
 * Everything it receives is kept in `received`, so a test can assert on the protocol itself.
 */
import { credentials, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import {
  AgentServiceClient,
  type AgentMessage,
  type Award,
  type Bids,
  type CallForBids,
  type ServerMessage,
} from '../../gen/podium/v1/agent';
import { AppArmorMode, InstanceState, PlacementPolicy, type Resources } from '../../gen/podium/v1/resources';
import { joinFleet, type AgentIdentity } from '../../agent/identity';
import { priceLot, roundWeight } from '../../agent/price-lot';
import { LEADER_METADATA_KEY, RETRY_AFTER_METADATA_KEY, ServerAddresses } from '../../agent/server-addresses';
import { poll } from './poll';

export interface ScriptedAgentOptions {
  pod?: string;
  provider?: string;
  labels?: Record<string, string>;
  capacity?: Resources;
  apparmor?: AppArmorMode;
  /** Heartbeat interval; 0 sends none (a silent host). Defaults to the server's Welcome. */
  heartbeatMs?: number;
  /**
   * Reconnect by itself when the session ends, as the real agent does: to the leader a standby
   * named, else to the next of its addresses, after `reconnectMs`. Off by default (most tests
   * decide when a host comes back).
   */
  reconnectMs?: number;
  /** More Pod API processes to try in turn, after the address it joined at. */
  alsoAt?: readonly string[];
  /** The proxy address its hello advertises; none by default. */
  meshAddress?: string;
}

/** What the agent answers to a call for bids; the default prices by load. */
export type BidScript = (agent: ScriptedAgent, call: CallForBids) => Omit<Bids, 'roundId'> | 'silent';
/** Whether to accept an award; the default accepts when it fits. */
export type AwardScript = (agent: ScriptedAgent, award: Award) => { accepted: boolean; reason?: string; state?: InstanceState } | 'silent';

export class ScriptedAgent {
  readonly received: ServerMessage[] = [];
  /** Instances this agent accepted and still runs, with their resources. */
  readonly running = new Map<string, Resources & { haGroup: string }>();
  bidScript: BidScript = defaultBids;
  awardScript: AwardScript = defaultAward;
  private client: AgentServiceClient | null = null;
  private stream: ClientDuplexStream<AgentMessage, ServerMessage> | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  /** Every heartbeat interval the server gave, in order (at welcome and after). */
  readonly heartbeatIntervals: number[] = [];
  heartbeatsSent = 0;
  /** Set when the stream ended, with the reason. */
  ended: string | null = null;
  /** When the stream ended (Date.now()), to measure how fast the server closed it. */
  endedAt: number | null = null;
  readonly options: Required<ScriptedAgentOptions>;

  private readonly servers: ServerAddresses;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private closedByTest = false;
  /** Sessions opened so far (welcomed), one per connection. */
  sessions = 0;
  /** Sessions the server's admission deferred (told when to come back), and the last one's error. */
  deferrals = 0;
  lastDeferral: string | null = null;

  private constructor(
    readonly address: string,
    readonly identity: AgentIdentity,
    opts: ScriptedAgentOptions,
  ) {
    this.options = {
      pod: opts.pod ?? 'test',
      provider: opts.provider ?? 'local',
      labels: opts.labels ?? {},
      capacity: opts.capacity ?? { cpuMillis: 2000, memoryMib: 2048 },
      apparmor: opts.apparmor ?? AppArmorMode.APP_ARMOR_MODE_ENFORCED,
      heartbeatMs: opts.heartbeatMs ?? -1,
      reconnectMs: opts.reconnectMs ?? -1,
      alsoAt: opts.alsoAt ?? [],
      meshAddress: opts.meshAddress ?? '',
    };
    this.servers = new ServerAddresses([address, ...this.options.alsoAt]);
  }

  /** The Pod API process it connects to now. */
  get server(): string {
    return this.servers.current();
  }

  get hostId(): string {
    return this.identity.hostId;
  }

  /** Joins with `token` (real Join, CA pinned) and returns a disconnected agent. */
  static async join(address: string, token: string, opts: ScriptedAgentOptions = {}, hostId = ''): Promise<ScriptedAgent> {
    const identity = await joinFleet(address, token, hostId);
    return new ScriptedAgent(address, identity, opts);
  }

  /** An agent with an identity obtained elsewhere (e.g. a stolen or forged certificate). */
  static withIdentity(address: string, identity: AgentIdentity, opts: ScriptedAgentOptions = {}): ScriptedAgent {
    return new ScriptedAgent(address, identity, opts);
  }

  /** Opens the session: Hello with capacity and the inventory of what it runs. */
  connect(): void {
    this.close();
    this.open();
  }

  /** A new stream; on the connection it has (a session admission deferred: the same server) when
   *  `reuse` and there is one, as the real agent does, else on a new one. */
  private open(reuse = false): void {
    this.closedByTest = false;
    this.ended = null;
    this.endedAt = null;
    if (!reuse || this.client === null) {
      this.client?.close();
      const creds = credentials.createSsl(Buffer.from(this.identity.caPem), Buffer.from(this.identity.keyPem), Buffer.from(this.identity.certPem));
      // As the real agent: a stalled server is noticed by keepalive (agent/agent.ts).
      this.client = new AgentServiceClient(this.servers.current(), creds, { 'grpc.keepalive_time_ms': 3_000, 'grpc.keepalive_timeout_ms': 3_000 });
    }
    const stream = this.client.connect();
    this.stream = stream;
    stream.on('data', (msg: ServerMessage) => this.onMessage(msg));
    // A stream this agent has since replaced (or cancelled) must not end the current one.
    stream.on('error', (err: ServiceError) => {
      if (this.stream !== stream) return;
      const retryAfter = err.metadata?.get(RETRY_AFTER_METADATA_KEY)?.[0];
      this.end(err.message, String(err.metadata?.get(LEADER_METADATA_KEY)?.[0] ?? '') || undefined, retryAfter === undefined ? undefined : Number(retryAfter));
    });
    stream.on('end', () => this.stream === stream && this.end('server closed the stream'));
    this.send({
      kind: {
        $case: 'hello',
        hello: {
          pod: this.options.pod,
          provider: this.options.provider,
          capacity: this.options.capacity,
          labels: this.options.labels,
          apparmor: this.options.apparmor,
          inventory: [...this.running.keys()].map((instanceId) => ({ instanceId, containerId: `c-${instanceId}`, running: true })),
          meshAddress: this.options.meshAddress,
        },
      },
    });
  }

  /** Ends the session (the host goes silent; its record stays), and any reconnecting. */
  close(): void {
    this.closedByTest = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.stream?.cancel();
    this.stream = null;
    this.client?.close();
    this.client = null;
  }

  send(msg: AgentMessage): void {
    this.stream?.write(msg);
  }

  /** Reports an instance's state, as the real agent does after observing its container. */
  report(instanceId: string, state: InstanceState, message = ''): void {
    if (state !== InstanceState.INSTANCE_STATE_RUNNING && state !== InstanceState.INSTANCE_STATE_STARTING) this.running.delete(instanceId);
    this.send({ kind: { $case: 'instanceStatus', instanceStatus: { instanceId, state, containerId: `c-${instanceId}`, message } } });
  }

  /** Resources not taken by what it runs. */
  free(): Resources {
    let cpuMillis = this.options.capacity.cpuMillis;
    let memoryMib = this.options.capacity.memoryMib;
    for (const r of this.running.values()) {
      cpuMillis -= r.cpuMillis;
      memoryMib -= r.memoryMib;
    }
    return { cpuMillis, memoryMib };
  }

  /** Messages of one kind received so far. */
  messages<K extends NonNullable<ServerMessage['kind']>['$case']>(kind: K): Extract<NonNullable<ServerMessage['kind']>, { $case: K }>[] {
    return this.received.map((m) => m.kind).filter((k): k is Extract<NonNullable<ServerMessage['kind']>, { $case: K }> => k?.$case === kind);
  }

  /** Resolves once the session is open (Welcome received). */
  async welcomed(timeoutMs = 10_000): Promise<void> {
    await poll(`welcome for ${this.hostId}`, () => this.messages('welcome').length > 0 || (this.ended !== null && Promise.reject(new Error(this.ended))), timeoutMs, 20);
  }

  private end(why: string, leaderHint?: string, retryAfterMs?: number): void {
    // Once per stream: grpc-js may emit 'end' after 'error' for the same stream.
    if (this.ended !== null) return;
    this.ended = why;
    this.endedAt = Date.now();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (retryAfterMs !== undefined) {
      this.deferrals++;
      this.lastDeferral = why;
    }
    if (this.options.reconnectMs >= 0 && !this.closedByTest) {
      // As the real agent: told when to come back (admission), it comes back then, to the same server.
      if (retryAfterMs === undefined) this.servers.failed(leaderHint);
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        if (this.closedByTest) return;
        if (retryAfterMs !== undefined) this.open(true);
        else this.connect();
      }, retryAfterMs ?? this.options.reconnectMs);
    }
  }

  /** Heartbeats every `ms` as told, unless the script fixed its own interval. */
  private heartbeatEvery(ms: number): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.heartbeatIntervals.push(ms);
    const every = this.options.heartbeatMs >= 0 ? this.options.heartbeatMs : ms;
    if (every > 0) {
      this.heartbeat = setInterval(() => {
        this.heartbeatsSent++;
        this.send({ kind: { $case: 'heartbeat', heartbeat: {} } });
      }, every);
    }
  }

  private onMessage(msg: ServerMessage): void {
    this.received.push(msg);
    const kind = msg.kind;
    if (!kind) return;
    switch (kind.$case) {
      case 'welcome': {
        this.sessions++;
        this.heartbeatEvery(kind.welcome.heartbeatIntervalMs);
        return;
      }
      case 'heartbeatInterval':
        this.heartbeatEvery(kind.heartbeatInterval.heartbeatIntervalMs);
        return;
      case 'callForBids': {
        const answer = this.bidScript(this, kind.callForBids);
        if (answer !== 'silent') this.send({ kind: { $case: 'bids', bids: { roundId: kind.callForBids.roundId, ...answer } } });
        return;
      }
      case 'award': {
        const a = kind.award;
        const decision = this.awardScript(this, a);
        if (decision === 'silent') return;
        this.send({ kind: { $case: 'awardReply', awardReply: { lotId: a.lotId, accepted: decision.accepted, reason: decision.reason ?? '' } } });
        if (!decision.accepted || !a.spec) return;
        this.running.set(a.spec.instanceId, { ...(a.spec.resources ?? { cpuMillis: 0, memoryMib: 0 }), haGroup: a.spec.haGroup });
        this.report(a.spec.instanceId, decision.state ?? InstanceState.INSTANCE_STATE_RUNNING);
        return;
      }
      case 'stopInstance':
        this.running.delete(kind.stopInstance.instanceId);
        return;
      case 'reconcile':
        for (const id of kind.reconcile.removeInstanceIds) this.running.delete(id);
        // As the real agent: what it keeps, it reports again, whatever was said before the session.
        for (const id of kind.reconcile.keepInstanceIds) if (this.running.has(id)) this.report(id, InstanceState.INSTANCE_STATE_RUNNING);
        return;
    }
  }
}

/** Bids for every lot that fits what is free, priced by the load after placing it. */
export const defaultBids: BidScript = (agent, call) => {
  const free = agent.free();
  const cap = agent.options.capacity;
  const bids: Bids['bids'] = [];
  const declines: Bids['declines'] = [];
  for (const lot of call.lots) {
    const need = lot.resources ?? { cpuMillis: 0, memoryMib: 0 };
    if (need.cpuMillis > free.cpuMillis) declines.push({ lotId: lot.id, reason: 'cpu' });
    else if (need.memoryMib > free.memoryMib) declines.push({ lotId: lot.id, reason: 'memory' });
    else if (lot.haGroup && [...agent.running.values()].some((r) => r.haGroup === lot.haGroup)) declines.push({ lotId: lot.id, reason: 'ha' });
    else {
      // The real agent's reference pricing, so that placement tests see what real agents bid.
      const policy = lot.placement === PlacementPolicy.PLACEMENT_POLICY_BINPACK ? 'binpack' : 'spread';
      const sameGroupCount = lot.haGroup ? [...agent.running.values()].filter((r) => r.haGroup === lot.haGroup).length : 0;
      const freeAfter = { cpuMillis: free.cpuMillis - need.cpuMillis, memoryMib: free.memoryMib - need.memoryMib };
      const price = priceLot({ freeAfter, capacity: cap, imageCached: true, sameGroupCount, sameTenantCount: 0, policy });
      bids.push({ lotId: lot.id, price, roundWeight: roundWeight(policy) });
    }
  }
  return { bids, declines };
};

/** Accepts an award when it still fits. */
export const defaultAward: AwardScript = (agent, award) => {
  const need = award.spec?.resources ?? { cpuMillis: 0, memoryMib: 0 };
  const free = agent.free();
  if (need.cpuMillis > free.cpuMillis || need.memoryMib > free.memoryMib) return { accepted: false, reason: 'no longer fits' };
  return { accepted: true };
};
