/**
 * The agent's core: everything it does for the Pod API but the session itself. It takes the
 * server's messages one at a time (`handle`), bids, runs the containers it wins through the
 * container engine and sends what it observes through an outbound port (`send`), so that the
 * session (agent.ts) can reconnect under it and a unit test can drive it without gRPC.
 *
 * Its own bookkeeping (`held`) is the truth it bids from: the resources of every container it runs
 * or has accepted, rebuilt from the engine's containers (by label) at start, so a restarted agent
 * bids from what is really there.
 */
import type { Logger } from 'pino';
import type { AgentMessage, Award, CallForBids, ContainerReport, ContainerSpec, Reconcile, ServerMessage } from '../gen/podium/v1/agent';
import { AppArmorMode, InstanceState, type Resources } from '../gen/podium/v1/resources';
import { priceLot } from './price-lot';
import type { ContainerEngine } from './container-engine';
import type { AgentMetrics } from './metrics';
import { checkProfile, containerBody, containerName, generateProfile, loadProfile, networkName, profileName } from './runtime';

/** How long a failed image pull keeps a host from trying that image again. */
const IMAGE_RETRY_MS = 60_000;

export interface AgentCoreOptions {
  hostId: string;
  capacity: Resources;
  apparmor: AppArmorMode;
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

export class AgentCore {
  private readonly held = new Map<string, Held>();
  private watcher: NodeJS.Timeout | null = null;
  /** Images this host is pulling, or failed to pull (and until when it will not try again). */
  private readonly images = new Map<string, { pulling: true } | { pulling: false; retryAt: number }>();

  constructor(
    private readonly engine: ContainerEngine,
    private readonly opts: AgentCoreOptions,
    private readonly send: (msg: AgentMessage) => void,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
  ) {}

  get hostId(): string {
    return this.opts.hostId;
  }

  /** How many instances it runs or has accepted. */
  get size(): number {
    return this.held.size;
  }

  /** Rebuilds its bookkeeping from the engine and starts watching the containers. */
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
    this.watcher = setInterval(() => void this.checkContainers(), this.opts.watchIntervalMs);
  }

  stop(): void {
    if (this.watcher) clearInterval(this.watcher);
    this.watcher = null;
  }

  /** The inventory for a hello: every instance it holds, and whether its container runs. */
  inventory(): ContainerReport[] {
    return [...this.held.values()].map((h) => ({
      instanceId: h.instanceId,
      containerId: h.containerId,
      running: h.reported === InstanceState.INSTANCE_STATE_RUNNING,
    }));
  }

  /** One server message (welcome is the session's). */
  async handle(msg: ServerMessage): Promise<void> {
    const kind = msg.kind;
    if (!kind) return;
    switch (kind.$case) {
      case 'reconcile':
        return this.reconcile(kind.reconcile);
      case 'callForBids':
        return this.bid(kind.callForBids);
      case 'award':
        return this.award(kind.award);
      case 'stopInstance':
        return this.remove(kind.stopInstance.instanceId, 'the server asked');
      case 'welcome':
        return;
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
    const bids: Array<{ lotId: string; price: number }> = [];
    const declines: Array<{ lotId: string; reason: string }> = [];
    const free = this.free();
    const ready = new Map<string, boolean>();
    for (const lot of call.lots) {
      const need = lot.resources ?? { cpuMillis: 0, memoryMib: 0 };
      if (this.opts.apparmor === AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE) {
        declines.push({ lotId: lot.id, reason: 'no-apparmor' });
        continue;
      }
      if (need.cpuMillis > free.cpuMillis || need.memoryMib > free.memoryMib) {
        declines.push({ lotId: lot.id, reason: 'capacity' });
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
      bids.push({
        lotId: lot.id,
        price: priceLot({
          freeAfter: { cpuMillis: free.cpuMillis - need.cpuMillis, memoryMib: free.memoryMib - need.memoryMib },
          capacity: this.opts.capacity,
          imageCached: true,
          sameGroupCount: lot.haGroup ? held.filter((h) => h.haGroup === lot.haGroup).length : 0,
          sameTenantCount: held.filter((h) => h.tenant === lot.tenant).length,
        }),
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
  async checkContainers(): Promise<void> {
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
