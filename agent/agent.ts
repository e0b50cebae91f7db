/**
 * The agent: one per host. It keeps a session with the Pod API (reconnecting with jittered
 * backoff), bids for lots from what only it knows, runs the containers it wins through the Docker
 * Engine API, and reports what it observes.
 *
 * This file is the session: one AgentService.Connect stream at a time, heartbeats, backoff, the
 * certificate it connects with. What the agent does with the server's messages is the core's
 * (agent-core.ts), which outlives every session.
 */
import { X509Certificate } from 'node:crypto';
import { credentials, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { uriSansOf } from '../certs';
import { AgentServiceClient, type AgentMessage, type ServerMessage } from '../gen/podium/v1/agent';
import type { AppArmorMode, Resources } from '../gen/podium/v1/resources';
import { AgentCore } from './agent-core';
import type { ContainerEngine } from './container-engine';
import type { AgentIdentity } from './identity';
import { AgentMetrics } from './metrics';
import { LEADER_METADATA_KEY, RETRY_AFTER_METADATA_KEY, ServerAddresses } from './server-addresses';
import type { SubnetPool } from './subnet-pool';

export interface AgentOptions {
  /** Pod API processes to try, in turn; a standby names the leader, tried next. */
  serverAddresses: readonly string[];
  pod: string;
  provider: string;
  labels: Record<string, string>;
  capacity: Resources;
  apparmor: AppArmorMode;
  /** Reconnect backoff bounds; each wait is a random point up to the current bound. */
  backoffMinMs: number;
  backoffMaxMs: number;
  /** How often the containers are checked in full; the engine's event stream comes first. */
  watchIntervalMs: number;
  /** Where the environments' network subnets come from. */
  subnetPool: SubnetPool;
  /** The host's proxy: where it listens for other hosts' proxies, and the address they reach it
   *  by (its port is the one it listens on). None: the host runs no proxy. */
  mesh?: { listenHost: string; listenPort: number; advertiseHost: string; edge?: { host: string; port: number } };
}

export class Agent {
  private stream: ClientDuplexStream<AgentMessage, ServerMessage> | null = null;
  private client: AgentServiceClient | null = null;
  /** The identity the client was made with: a renewed certificate needs a new connection. */
  private clientFor: AgentIdentity | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private stopped = false;
  private backoff: number;
  private readonly servers: ServerAddresses;
  private connected = false;
  readonly metrics: AgentMetrics = new AgentMetrics({ connected: () => this.connected, containers: () => this.agentCore.size });
  private readonly agentCore: AgentCore;

  constructor(
    private identity: AgentIdentity,
    engine: ContainerEngine,
    private readonly opts: AgentOptions,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    this.backoff = opts.backoffMinMs;
    this.servers = new ServerAddresses(opts.serverAddresses);
    this.agentCore = new AgentCore(
      engine,
      {
        hostId: identity.hostId,
        capacity: opts.capacity,
        apparmor: opts.apparmor,
        watchIntervalMs: opts.watchIntervalMs,
        subnetPool: opts.subnetPool,
        caPem: identity.caPem,
        mesh: opts.mesh ? { listenHost: opts.mesh.listenHost, listenPort: opts.mesh.listenPort, trustDomain: trustDomainOf(identity.certPem), edge: opts.mesh.edge } : undefined,
      },
      (msg) => this.send(msg),
      this.metrics,
      log,
    );
  }

  get hostId(): string {
    return this.identity.hostId;
  }

  /** The core: its instances, networks and container watch (for tests and metrics). */
  get core(): AgentCore {
    return this.agentCore;
  }

  /** Rebuilds its bookkeeping from the engine, then keeps a session open until stop(). */
  async start(): Promise<void> {
    await this.agentCore.start();
    this.connect();
  }

  /** Replaces the certificate (after renewal); the next session uses it. */
  setIdentity(identity: AgentIdentity): void {
    this.identity = identity;
    this.stream?.cancel();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.agentCore.stop();
    this.stream?.cancel();
    this.client?.close();
  }

  private send(msg: AgentMessage): void {
    this.stream?.write(msg);
  }

  /** Opens a session; with `reuse`, on the connection it has (a deferral: same server, same
   *  certificate), saving a TLS handshake on both sides for every host of a reconnect storm. */
  private connect(reuse = false): void {
    if (this.stopped) return;
    const address = this.servers.current();
    if (!reuse || this.client === null || this.clientFor !== this.identity) {
      this.client?.close();
      const creds = credentials.createSsl(
        Buffer.from(this.identity.caPem),
        Buffer.from(this.identity.keyPem),
        Buffer.from(this.identity.certPem),
      );
      // A Pod API process that stops answering with the connection open (it stalled, and a standby
      // took over) is noticed by HTTP/2 keepalive: within 6 s the agent moves on to the next one.
      this.client = new AgentServiceClient(address, creds, {
        'grpc.keepalive_time_ms': 3_000,
        'grpc.keepalive_timeout_ms': 3_000,
      });
      this.clientFor = this.identity;
    }
    const stream = this.client.connect();
    this.stream = stream;
    let ended = false;
    const onEnd = (why: string, leaderHint?: string, retryAfterMs?: number) => {
      if (ended) return;
      ended = true;
      this.connected = false;
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = null;
      if (this.stream === stream) this.stream = null;
      if (this.stopped) return;
      if (retryAfterMs !== undefined) {
        // The server's admission gave this host a slot: back to the same server then, not earlier
        // (it would be sent back) and not at a backoff of its own (the slot would pass unused).
        const wait = retryAfterMs + Math.round(this.random() * 20);
        this.log.info({ server: address, retryInMs: wait }, 'session deferred by the server; coming back at its slot');
        setTimeout(() => this.connect(true), wait);
        return;
      }
      // The next address (or the leader a standby named). Jittered exponential backoff once every
      // address has failed: a fleet that lost its server does not return in lockstep.
      const roundFailed = this.servers.failed(leaderHint);
      const wait = roundFailed || this.servers.all().length === 1 ? Math.round(this.opts.backoffMinMs + this.random() * (this.backoff - this.opts.backoffMinMs)) : Math.round(this.opts.backoffMinMs * this.random());
      if (roundFailed || this.servers.all().length === 1) this.backoff = Math.min(this.opts.backoffMaxMs, this.backoff * 2);
      this.log.warn({ why, server: address, next: this.servers.current(), retryInMs: wait }, 'session ended');
      setTimeout(() => this.connect(), wait);
    };
    stream.on('data', (msg: ServerMessage) => {
      this.onMessage(msg).catch((err) => this.log.error({ err }, 'handling a server message failed'));
    });
    stream.on('error', (err: ServiceError) => onEnd(err.message, leaderOf(err), retryAfterOf(err)));
    stream.on('end', () => onEnd('server closed the stream'));
    this.send({
      kind: {
        $case: 'hello',
        hello: {
          pod: this.opts.pod,
          provider: this.opts.provider,
          capacity: this.opts.capacity,
          labels: this.opts.labels,
          apparmor: this.opts.apparmor,
          inventory: this.agentCore.inventory(),
          // Where the other hosts' proxies reach this one; none when it runs no proxy.
          meshAddress: this.opts.mesh && this.agentCore.meshPort > 0 ? `${this.opts.mesh.advertiseHost}:${this.agentCore.meshPort}` : '',
        },
      },
    });
  }

  private heartbeatEvery(ms: number): void {
    if (!(ms > 0)) return; // not an interval: the one we have stays
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => this.send({ kind: { $case: 'heartbeat', heartbeat: {} } }), ms);
  }

  private async onMessage(msg: ServerMessage): Promise<void> {
    const kind = msg.kind;
    if (!kind) return;
    switch (kind.$case) {
      case 'welcome': {
        this.connected = true;
        this.backoff = this.opts.backoffMinMs;
        this.heartbeatEvery(kind.welcome.heartbeatIntervalMs);
        this.log.info({ host: kind.welcome.hostId }, 'session open');
        return;
      }
      case 'heartbeatInterval': {
        // The Pod API scaled the interval to the fleet: heartbeat at the new one from now on.
        this.heartbeatEvery(kind.heartbeatInterval.heartbeatIntervalMs);
        this.log.info({ heartbeatIntervalMs: kind.heartbeatInterval.heartbeatIntervalMs }, 'heartbeat interval changed');
        return;
      }
      default:
        return this.agentCore.handle(msg);
    }
  }
}

/** The trust domain of the host's own certificate (spiffe://<td>/host/<id>). */
function trustDomainOf(certPem: string): string {
  const uri = uriSansOf(new X509Certificate(certPem).subjectAltName).find((n) => n.startsWith('spiffe://'));
  const td = uri?.slice('spiffe://'.length).split('/')[0];
  if (!td) throw new Error('the agent certificate carries no SPIFFE id');
  return td;
}

/** When the server's admission said to come back, if it deferred the session. */
function retryAfterOf(err: ServiceError): number | undefined {
  const v = err.metadata?.get(RETRY_AFTER_METADATA_KEY)?.[0];
  const ms = v === undefined ? NaN : Number(v);
  return Number.isFinite(ms) && ms >= 0 ? Math.min(ms, 10 * 60_000) : undefined;
}

/** The leader's address a standby named when it refused the session, if any. */
function leaderOf(err: ServiceError): string | undefined {
  const v = err.metadata?.get(LEADER_METADATA_KEY)?.[0];
  return v === undefined ? undefined : String(v);
}
