/**
 * The agent: one per host. It keeps a session with the Pod API (reconnecting with jittered
 * backoff), bids for lots from what only it knows, runs the containers it wins through the Docker
 * Engine API, and reports what it observes.
 *
 * Its own bookkeeping (`held`) is the truth it bids from: the resources of every container it runs
 * or has accepted, rebuilt from the engine's containers (by label) at start, so a restarted agent
 * bids from what is really there.
 */
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  AgentServiceClient,
  type AgentMessage,
  type Award,
  type CallForBids,
  type ContainerSpec,
  type Reconcile,
  type ServerMessage,
} from '../gen/podium/v1/agent';
import { AppArmorMode, InstanceState, PlacementPolicy, type Resources } from '../gen/podium/v1/resources';
import { priceLot, roundWeight } from './price-lot';
import type { AgentIdentity } from './identity';
import { AgentMetrics } from './metrics';
import {
  checkProfile,
  containerBody,
  containerName,
  generateProfile,
  loadProfile,
  networkName,
  profileName,
  type DockerEngine,
} from './runtime';

/** How long a failed image pull keeps a host from trying that image again. */
const IMAGE_RETRY_MS = 60_000;

export interface AgentOptions {
  serverAddress: string;
  pod: string;
  provider: string;
  labels: Record<string, string>;
  capacity: Resources;
  apparmor: AppArmorMode;
  /** Reconnect backoff bounds; each wait is a random point up to the current bound. */
  backoffMinMs: number;
  backoffMaxMs: number;
  /** How often running containers are checked for exits. */
  watchIntervalMs: number;
}

interface Held {
  instanceId: string;
  resources: Resources;
  tenant: string;
  haGroup: string;
  containerId: string;
  /** The last state reported to the server, so that only changes are sent. */
  reported: InstanceState;
}

export class Agent {
  private stream: ClientDuplexStream<AgentMessage, ServerMessage> | null = null;
  private client: AgentServiceClient | null = null;
  private readonly held = new Map<string, Held>();
  private heartbeat: NodeJS.Timeout | null = null;
  private watcher: NodeJS.Timeout | null = null;
  private stopped = false;
  private backoff: number;
  /** Images this host is pulling, or failed to pull (and until when it will not try again). */
  private readonly images = new Map<string, { pulling: true } | { pulling: false; retryAt: number }>();
  private connected = false;
  readonly metrics = new AgentMetrics({ connected: () => this.connected, containers: () => this.held.size });

  constructor(
    private identity: AgentIdentity,
    private readonly engine: DockerEngine,
    private readonly opts: AgentOptions,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    this.backoff = opts.backoffMinMs;
  }

  get hostId(): string {
    return this.identity.hostId;
  }

  /** Rebuilds its bookkeeping from the engine, then keeps a session open until stop(). */
  async start(): Promise<void> {
    await this.engine.ping();
    for (const c of await this.engine.listContainers({ 'podium.host': this.hostId })) {
      const id = c.labels['podium.instance'];
      if (!id) continue;
      const info = await this.engine.inspectContainer(c.id);
      this.held.set(id, {
        instanceId: id,
        containerId: c.id,
        tenant: c.labels['podium.tenant'] ?? '',
        haGroup: c.labels['podium.ha-group'] ?? '',
        resources: {
          cpuMillis: Math.round((info?.HostConfig?.NanoCpus ?? 0) / 1e6),
          memoryMib: Math.round((info?.HostConfig?.Memory ?? 0) / (1024 * 1024)),
        },
        reported: c.running ? InstanceState.INSTANCE_STATE_RUNNING : InstanceState.INSTANCE_STATE_FAILED,
      });
    }
    this.watcher = setInterval(() => void this.watchContainers(), this.opts.watchIntervalMs);
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
    if (this.watcher) clearInterval(this.watcher);
    this.stream?.cancel();
    this.client?.close();
  }

  private send(msg: AgentMessage): void {
    this.stream?.write(msg);
  }

  private connect(): void {
    if (this.stopped) return;
    this.client?.close();
    const creds = credentials.createSsl(
      Buffer.from(this.identity.caPem),
      Buffer.from(this.identity.keyPem),
      Buffer.from(this.identity.certPem),
    );
    this.client = new AgentServiceClient(this.opts.serverAddress, creds, {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    });
    const stream = this.client.connect();
    this.stream = stream;
    let ended = false;
    const onEnd = (why: string) => {
      if (ended) return;
      ended = true;
      this.connected = false;
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = null;
      if (this.stream === stream) this.stream = null;
      if (this.stopped) return;
      // Jittered exponential backoff: a fleet that lost its server does not return in lockstep.
      const wait = Math.round(this.opts.backoffMinMs + this.random() * (this.backoff - this.opts.backoffMinMs));
      this.backoff = Math.min(this.opts.backoffMaxMs, this.backoff * 2);
      this.log.warn({ why, retryInMs: wait }, 'session ended');
      setTimeout(() => this.connect(), wait);
    };
    stream.on('data', (msg: ServerMessage) => {
      this.onMessage(msg).catch((err) => this.log.error({ err }, 'handling a server message failed'));
    });
    stream.on('error', (err) => onEnd(err.message));
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
          inventory: [...this.held.values()].map((h) => ({
            instanceId: h.instanceId,
            containerId: h.containerId,
            running: h.reported === InstanceState.INSTANCE_STATE_RUNNING,
          })),
        },
      },
    });
  }

  private async onMessage(msg: ServerMessage): Promise<void> {
    const kind = msg.kind;
    if (!kind) return;
    switch (kind.$case) {
      case 'welcome': {
        this.connected = true;
        this.backoff = this.opts.backoffMinMs;
        if (this.heartbeat) clearInterval(this.heartbeat);
        this.heartbeat = setInterval(() => this.send({ kind: { $case: 'heartbeat', heartbeat: {} } }), kind.welcome.heartbeatIntervalMs);
        this.log.info({ host: kind.welcome.hostId }, 'session open');
        return;
      }
      case 'reconcile':
        return this.reconcile(kind.reconcile);
      case 'callForBids':
        return this.bid(kind.callForBids);
      case 'award':
        return this.award(kind.award);
      case 'stopInstance':
        return this.remove(kind.stopInstance.instanceId, 'the server asked');
    }
  }

  private async reconcile(r: Reconcile): Promise<void> {
    for (const id of r.removeInstanceIds) await this.remove(id, 'not placed on this host');
    for (const id of r.keepInstanceIds) {
      const h = this.held.get(id);
      // Tell the server what it is now, whatever was reported before the session began.
      if (h && h.containerId) this.report(h, h.reported, h.reported === InstanceState.INSTANCE_STATE_RUNNING ? '' : 'container not running', true);
    }
  }

  /** Free resources by its own bookkeeping. */
  private free(): Resources {
    let cpu = this.opts.capacity.cpuMillis;
    let mem = this.opts.capacity.memoryMib;
    for (const h of this.held.values()) {
      cpu -= h.resources.cpuMillis;
      mem -= h.resources.memoryMib;
    }
    return { cpuMillis: cpu, memoryMib: mem };
  }

  /**
   * Whether the image is here. When it is not, a pull starts in the background (bids have a
   * deadline; a pull can take minutes) and the host declines until the image has arrived. A failed
   * pull is not retried for IMAGE_RETRY_MS, so a missing image does not cost a pull per round.
   */
  private async imageReady(ref: string): Promise<boolean> {
    if (await this.engine.imageExists(ref).catch(() => false)) return true;
    const known = this.images.get(ref);
    if (known && (known.pulling || known.retryAt > Date.now())) return false;
    this.images.set(ref, { pulling: true });
    this.engine.pullImage(ref).then(
      () => {
        this.images.delete(ref);
        this.log.info({ image: ref }, 'image pulled');
      },
      (err: Error) => {
        this.images.set(ref, { pulling: false, retryAt: Date.now() + IMAGE_RETRY_MS });
        this.log.warn({ image: ref, err: err.message }, 'image pull failed');
      },
    );
    return false;
  }

  /** ONE sealed answer per call: a price for each lot it can take, a reason for each it cannot. */
  private async bid(call: CallForBids): Promise<void> {
    const bids: Array<{ lotId: string; price: number; roundWeight: number }> = [];
    const declines: Array<{ lotId: string; reason: string }> = [];
    const free = this.free();
    const ready = new Map<string, boolean>();
    for (const lot of call.lots) {
      const need = lot.resources ?? { cpuMillis: 0, memoryMib: 0 };
      if (this.opts.apparmor === AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE) {
        declines.push({ lotId: lot.id, reason: 'no-apparmor' });
        continue;
      }
      if (need.cpuMillis > free.cpuMillis) {
        declines.push({ lotId: lot.id, reason: 'cpu' });
        continue;
      }
      if (need.memoryMib > free.memoryMib) {
        declines.push({ lotId: lot.id, reason: 'memory' });
        continue;
      }
      const held = [...this.held.values()];
      if (lot.haGroup && held.some((h) => h.haGroup === lot.haGroup)) {
        declines.push({ lotId: lot.id, reason: 'ha' });
        continue;
      }
      if (!ready.has(lot.image)) ready.set(lot.image, await this.imageReady(lot.image));
      if (!ready.get(lot.image)) {
        declines.push({ lotId: lot.id, reason: 'image' });
        continue;
      }
      const policy = lot.placement === PlacementPolicy.PLACEMENT_POLICY_BINPACK ? 'binpack' : 'spread';
      bids.push({
        lotId: lot.id,
        price: priceLot({
          freeAfter: { cpuMillis: free.cpuMillis - need.cpuMillis, memoryMib: free.memoryMib - need.memoryMib },
          capacity: this.opts.capacity,
          imageCached: true,
          sameGroupCount: lot.haGroup ? held.filter((h) => h.haGroup === lot.haGroup).length : 0,
          sameTenantCount: held.filter((h) => h.tenant === lot.tenant).length,
          policy,
        }),
        roundWeight: roundWeight(policy),
      });
    }
    this.metrics.answers.inc({ answer: 'bid' }, bids.length);
    for (const d of declines) this.metrics.answers.inc({ answer: d.reason });
    this.send({ kind: { $case: 'bids', bids: { roundId: call.roundId, bids, declines } } });
  }

  /** Accepts (and reserves) or refuses an award, then starts the container. */
  private async award(a: Award): Promise<void> {
    const spec = a.spec;
    const reply = (accepted: boolean, reason = '') => {
      this.metrics.awards.inc({ accepted: String(accepted) });
      this.send({ kind: { $case: 'awardReply', awardReply: { lotId: a.lotId, accepted, reason } } });
    };
    if (!spec || !spec.resources) return reply(false, 'award without a container spec');
    const free = this.free();
    if (this.opts.apparmor === AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE) return reply(false, 'no AppArmor on this host');
    if (this.held.has(spec.instanceId)) return reply(true); // a repeated award: already ours
    if (spec.resources.cpuMillis > free.cpuMillis || spec.resources.memoryMib > free.memoryMib) {
      return reply(false, 'no longer fits');
    }
    const held: Held = {
      instanceId: spec.instanceId,
      resources: spec.resources,
      tenant: spec.tenant,
      haGroup: spec.haGroup,
      containerId: '',
      reported: InstanceState.INSTANCE_STATE_STARTING,
    };
    this.held.set(spec.instanceId, held);
    reply(true);
    try {
      held.containerId = await this.run(spec);
      this.report(held, InstanceState.INSTANCE_STATE_RUNNING, '');
    } catch (err) {
      this.log.warn({ instance: spec.instanceId, err: (err as Error).message }, 'container failed to start');
      this.report(held, InstanceState.INSTANCE_STATE_FAILED, (err as Error).message);
    }
  }

  /** Profile checked by the real apparmor_parser; loaded and applied only where the kernel enforces it. */
  private async run(spec: ContainerSpec): Promise<string> {
    if (!(await this.engine.imageExists(spec.image))) throw new Error(`image ${spec.image} is not on this host and no registry is configured`);
    const profile = profileName(spec);
    const text = generateProfile(profile, {});
    await checkProfile(text);
    let applied: string | null = null;
    if (this.opts.apparmor === AppArmorMode.APP_ARMOR_MODE_ENFORCED) {
      await loadProfile(text);
      applied = profile;
    }
    const network = networkName(this.hostId, spec.tenant, spec.environment);
    await this.engine.ensureNetwork(network, { 'podium.host': this.hostId, 'podium.tenant': spec.tenant, 'podium.environment': spec.environment });
    const name = containerName(spec, this.hostId);
    const body = containerBody(spec, { hostId: this.hostId, network, apparmorProfile: applied });
    let id: string;
    try {
      id = await this.engine.createContainer(name, body);
    } catch (err) {
      // A container of that name left by a crash mid-start: it is ours, replace it.
      if ((err as { statusCode?: number }).statusCode !== 409) throw err;
      await this.engine.removeContainer(name);
      id = await this.engine.createContainer(name, body);
    }
    await this.engine.startContainer(id);
    return id;
  }

  private async remove(instanceId: string, why: string): Promise<void> {
    const h = this.held.get(instanceId);
    const ids = h?.containerId
      ? [h.containerId]
      : (await this.engine.listContainers({ 'podium.host': this.hostId, 'podium.instance': instanceId })).map((c) => c.id);
    for (const id of ids) {
      await this.engine.stopContainer(id, 5);
      await this.engine.removeContainer(id);
    }
    this.held.delete(instanceId);
    this.log.info({ instance: instanceId, why }, 'container removed');
  }

  private report(h: Held, state: InstanceState, message: string, force = false): void {
    if (!force && h.reported === state) return;
    h.reported = state;
    this.send({
      kind: { $case: 'instanceStatus', instanceStatus: { instanceId: h.instanceId, state, containerId: h.containerId, message } },
    });
  }

  /** Reports containers that exited since the last look. */
  private async watchContainers(): Promise<void> {
    try {
      const seen = new Map((await this.engine.listContainers({ 'podium.host': this.hostId })).map((c) => [c.labels['podium.instance'] ?? '', c]));
      for (const h of this.held.values()) {
        if (h.reported !== InstanceState.INSTANCE_STATE_RUNNING) continue;
        const c = seen.get(h.instanceId);
        if (c?.running) continue;
        let why = 'container disappeared';
        if (c) {
          const info = await this.engine.inspectContainer(c.id).catch(() => undefined);
          why = info?.State ? `container ${info.State.Status} with exit code ${info.State.ExitCode}${info.State.OOMKilled ? ' (out of memory)' : ''}` : `container ${c.state}`;
        }
        this.report(h, InstanceState.INSTANCE_STATE_FAILED, why);
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not list containers');
    }
  }
}
