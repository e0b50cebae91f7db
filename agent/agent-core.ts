/**
 * The agent's core: everything it does for the Pod API but the session itself. It takes the
 * server's messages one at a time (`handle`) and sends through an outbound port (`send`), so that
 * the session (agent.ts) can reconnect under it and a unit test can drive it without gRPC.
 *
 * It routes: an award, a stopInstance, a reconcile go to the instance they name (instance.ts, a
 * state machine per instance); what the engine shows goes there too, as observations from the
 * container watch (container-watch.ts). Its bookkeeping is those instances and nothing else: what
 * it holds for bidding (bidding.ts) is the instances that still hold resources, rebuilt from the
 * engine's containers (by label) at start, so a restarted agent bids from what is really there.
 * The environments' networks are a resource of their own (environment-networks.ts).
 */
import type { Logger } from 'pino';
import { workloadSpiffeId } from '../certs';
import type { AgentMessage, Award, CallForBids, ContainerReport, ContainerSpec, Reconcile, ServerMessage } from '../gen/podium/v1/agent';
import { AppArmorMode, type Resources } from '../gen/podium/v1/resources';
import { answerCallForBids, freeResources, shortOf, type Holding } from './bidding';
import type { ContainerEngine } from './container-engine';
import { ContainerWatch } from './container-watch';
import { EnvironmentNetworks } from './environment-networks';
import { ImagePulls } from './image-pulls';
import { Instance } from './instance';
import type { AgentMetrics } from './metrics';
import { ObservationClock, type Observation } from './observation';
import {
  DockerEngineError,
  LABEL_ENVIRONMENT,
  LABEL_HA_GROUP,
  LABEL_HOST,
  LABEL_INSTANCE,
  LABEL_SERVICE,
  LABEL_TENANT,
  checkProfile,
  containerBody,
  containerName,
  loadProfile,
  networkName,
  serviceProfile,
} from './runtime';
import { formatIpv4Cidr, parseIpv4Cidr } from './subnet-pool';
import type { SubnetPool } from './subnet-pool';
import { WorkloadIdentities } from './workload-identities';
import { MeshDirectory } from './mesh/directory';
import { MeshProxy } from './mesh/proxy';
import { meshEnvironment } from './mesh/environment';

/** Seconds a container gets to stop on SIGTERM before it is killed. */
const STOP_GRACE_SECONDS = 5;

export interface AgentCoreOptions {
  hostId: string;
  capacity: Resources;
  apparmor: AppArmorMode;
  /** The environments' subnets come from here. */
  subnetPool: SubnetPool;
  /** How often the containers are checked in full (the event stream is the first source). */
  watchIntervalMs: number;
  /** The CA certificate (PEM): workload certificates must be signed by it. */
  caPem: string;
  /** A workload certificate refused or unanswered is asked for again after this long. */
  workloadRetryMs?: number;
  /** The host's proxy: where it takes mTLS from other hosts' proxies, in the trust domain of the
   *  platform. Without it the host runs no proxy and advertises none. */
  mesh?: { listenHost: string; listenPort: number; trustDomain: string; edge?: { host: string; port: number } };
  /** How long a new container waits for its environment's registry (its <SERVICE>_* variables). */
  registryWaitMs?: number;
}

export class AgentCore {
  private readonly instances = new Map<string, Instance>();
  /** Award procedures and removals in flight, by instance: a removal waits for the award's. */
  private readonly work = new Map<string, Promise<void>>();
  private readonly removals = new Map<string, Promise<void>>();
  private readonly clock = new ObservationClock();
  private readonly images: ImagePulls;
  private readonly networks: EnvironmentNetworks;
  private readonly watch: ContainerWatch;
  /** The workload identities of the instances here, for the host's proxy. */
  readonly identities: WorkloadIdentities;
  /** Where the services of the environments this host runs are, as the Pod API pushes it. */
  readonly directory = new MeshDirectory();
  /** The host's proxy, when it runs one. */
  readonly proxy: MeshProxy | null;
  /** The port the proxy listens on, once started (0 before, or without one). */
  meshPort = 0;
  /** The edge port (HTTPS for published endpoints), once started; 0 without one. */
  edgePort = 0;

  private sweep: NodeJS.Timeout | null = null;

  constructor(
    private readonly engine: ContainerEngine,
    private readonly opts: AgentCoreOptions,
    private readonly send: (msg: AgentMessage) => void,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
  ) {
    this.images = new ImagePulls(engine, log);
    this.networks = new EnvironmentNetworks(engine, { hostId: opts.hostId, pool: opts.subnetPool }, log);
    this.identities = new WorkloadIdentities(send, { caPem: opts.caPem, retryMs: opts.workloadRetryMs ?? 5_000 }, log);
    this.proxy = opts.mesh
      ? new MeshProxy(
          {
            trustDomain: opts.mesh.trustDomain,
            caPem: opts.caPem,
            identities: this.identities,
            directory: this.directory,
            local: {
              targets: (tenant, environment, service) =>
                [...this.instances.values()]
                  .filter((i) => i.phase === 'running' && i.address !== '' && i.facts.tenant === tenant && i.facts.environment === environment && i.facts.service === service)
                  .map((i) => ({ instanceId: i.id, address: i.address })),
              callerAt: (tenant, environment, address) =>
                [...this.instances.values()].find((i) => i.address === address && i.facts.tenant === tenant && i.facts.environment === environment && (i.phase === 'running' || i.phase === 'creating'))?.id,
              identityAt: (address) => {
                const i = [...this.instances.values()].find((x) => x.address === address);
                return i && workloadSpiffeId(opts.mesh!.trustDomain, i.facts.tenant, i.facts.environment, i.facts.service);
              },
            },
            registry: metrics.registry,
          },
          log.child({ module: 'mesh' }),
        )
      : null;
    this.watch = new ContainerWatch(
      engine,
      { hostId: opts.hostId, checkIntervalMs: opts.watchIntervalMs, resubscribeMinMs: 200, resubscribeMaxMs: 10_000 },
      this.clock,
      () => this.watchTargets(),
      (o) => this.observe(o),
      log,
    );
  }

  get hostId(): string {
    return this.opts.hostId;
  }

  /** How many instances hold resources here. */
  get size(): number {
    return this.instances.size;
  }

  /** Adopts the containers the engine has for this host, removes stray networks, and starts
   *  watching. Must finish before the first session opens. */
  async start(): Promise<void> {
    await this.engine.ping();
    await this.adopt();
    this.log.info({ instances: this.instances.size }, 'bookkeeping rebuilt from the engine');
    await this.networks.removeStrays();
    await this.watch.start();
    if (this.proxy && this.opts.mesh) {
      this.meshPort = await this.proxy.listen(this.opts.mesh.listenHost, this.opts.mesh.listenPort);
      this.log.info({ port: this.meshPort }, 'mesh proxy listening');
      if (this.opts.mesh.edge) {
        this.edgePort = await this.proxy.listenEdge(this.opts.mesh.edge.host, this.opts.mesh.edge.port);
        this.log.info({ host: this.opts.mesh.edge.host, port: this.edgePort }, 'edge listening for published endpoints');
      }
      // The environments of adopted instances: their containers' endpoints open again.
      const envs = new Map([...this.instances.values()].map((i) => [`${i.facts.tenant}\0${i.facts.environment}`, i.facts]));
      for (const f of envs.values()) await this.openEnvironment(f.tenant, f.environment);
    }
    // Networks are swept as often as containers are checked: a network whose removal failed (the
    // engine busy or refusing) goes at the next sweep, not at the next start of the agent.
    this.sweep = setInterval(() => void this.networks.removeStrays().catch((err: Error) => this.log.warn({ err: err.message }, 'network sweep failed; next time')), this.opts.watchIntervalMs);
  }

  stop(): void {
    this.watch.stop();
    this.identities.stop();
    void this.proxy?.close();
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = null;
  }

  /** Award procedures, removals and network operations still in flight (0 when it is idle). */
  get pendingWork(): number {
    return this.work.size + this.removals.size + this.networks.busy;
  }

  /** The container watch, for tests that break its stream or run a full check. */
  get containerWatch(): ContainerWatch {
    return this.watch;
  }

  /** One full check of the containers now (the periodic one, without waiting for it). */
  checkContainers(): Promise<void> {
    return this.watch.check();
  }

  /** The inventory for a hello: every instance it holds, and whether its container runs. */
  inventory(): ContainerReport[] {
    return [...this.instances.values()].map((i) => i.inventory()).filter((r): r is ContainerReport => r !== undefined);
  }

  /** What bidding reads: every instance that holds resources. */
  holdings(): Holding[] {
    return [...this.instances.values()].filter((i) => i.holds).map((i) => i.facts);
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
      case 'workloadCertificate':
        return this.identities.received(kind.workloadCertificate);
      case 'registry': {
        const { tenant, environment } = kind.registry;
        const count = () => new Map(this.directory.services(tenant, environment).map((s) => [`${s.name}.${s.environment || environment}`, s.endpoints.map((e) => e.instanceId)]));
        const before = count();
        if (!this.directory.apply(kind.registry)) return;
        // Where this host's proxy sends each service's connections now, when that changed.
        for (const [service, endpoints] of count()) {
          if ((before.get(service) ?? []).join() !== endpoints.join()) this.log.info({ tenant, environment, service, endpoints }, 'mesh: endpoints changed');
        }
        return;
      }
      case 'revokedHosts':
        this.proxy?.revokeHosts(kind.revokedHosts.hosts);
        return;
      case 'welcome':
        return;
    }
  }

  private async reconcile(r: Reconcile): Promise<void> {
    // A new session (reconcile follows every welcome): its registry versions count afresh.
    this.directory.reset();
    // Tell the server what each kept instance is now, whatever was reported before the session;
    // an identity asked for and not answered (the last session was lost) is asked again.
    for (const id of r.keepInstanceIds) {
      const inst = this.instances.get(id);
      if (!inst) continue;
      inst.resend();
      this.identities.ensure(id);
    }
    await Promise.all(r.removeInstanceIds.map((id) => this.remove(id, 'not placed on this host')));
  }

  private async bid(call: CallForBids): Promise<void> {
    const answer = await answerCallForBids(call, {
      capacity: this.opts.capacity,
      apparmor: this.opts.apparmor,
      holdings: this.holdings(),
      imageReady: (ref) => this.images.ready(ref),
    });
    this.metrics.answers.inc({ answer: 'bid' }, answer.bids.length);
    for (const d of answer.declines) this.metrics.answers.inc({ answer: d.reason });
    this.send({ kind: { $case: 'bids', bids: { roundId: call.roundId, ...answer } } });
  }

  /** Accepts (and reserves) or refuses an award, then runs the award's procedure. */
  private async award(a: Award): Promise<void> {
    const spec = a.spec;
    const reply = (accepted: boolean, reason = '') => {
      this.metrics.awards.inc({ accepted: String(accepted) });
      this.send({ kind: { $case: 'awardReply', awardReply: { lotId: a.lotId, accepted, reason } } });
    };
    if (!spec || !spec.resources) return reply(false, 'award without a container spec');
    if (this.opts.apparmor === AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE) return reply(false, 'no AppArmor on this host');
    if (this.instances.has(spec.instanceId)) return reply(true); // a repeated award: already ours
    const short = shortOf(spec.resources, freeResources(this.opts.capacity, this.holdings()));
    if (short !== undefined) return reply(false, `no longer fits (${short})`);
    const inst = Instance.awarded(spec, this.clock, (status) => this.send({ kind: { $case: 'instanceStatus', instanceStatus: status } }));
    this.instances.set(spec.instanceId, inst);
    reply(true);
    // Its identity is asked for now, while its container is made: it is there when it runs.
    this.identities.ensure(spec.instanceId);
    const work = this.create(inst, spec).finally(() => this.work.delete(spec.instanceId));
    this.work.set(spec.instanceId, work);
    await work;
  }

  /** The award's procedure: profile, network and container (under the network's lock), start.
   *  Each step stops short when the instance has moved on (its removal was asked meanwhile). */
  private async create(inst: Instance, spec: ContainerSpec): Promise<void> {
    if (!inst.beginCreating()) return;
    try {
      if (!(await this.engine.imageExists(spec.image))) throw new Error(`image ${spec.image} is not on this host and no registry is configured`);
      // The service's own profile, from what it needs (its writable paths under a read-only root,
      // the capabilities Docker adds back); checked by the real apparmor_parser, loaded and
      // applied only where the kernel enforces it.
      const { name: profile, text } = serviceProfile(spec);
      await checkProfile(text);
      let applied: string | null = null;
      if (this.opts.apparmor === AppArmorMode.APP_ARMOR_MODE_ENFORCED) {
        await loadProfile(text);
        applied = profile;
      }
      // Its <SERVICE>_HOST/_PORT: the environment's services as the registry has them (it is sent
      // when the award commits; a container made before it arrives would miss them).
      const gateway = this.proxy ? await this.openEnvironment(spec.tenant, spec.environment) : '';
      const env = this.proxy ? meshEnvironment(await this.directory.ready(spec.tenant, spec.environment, this.opts.registryWaitMs ?? 2_000), spec.environment, gateway) : {};
      const id = await this.networks.withNetwork(spec.tenant, spec.environment, async (network) => {
        if (inst.phase !== 'creating') return undefined;
        const name = containerName(spec, this.hostId);
        const body = containerBody(spec, { hostId: this.hostId, network, apparmorProfile: applied, env });
        try {
          return await this.engine.createContainer(name, body);
        } catch (err) {
          if (!(err instanceof DockerEngineError) || err.statusCode !== 409) throw err;
          // A container of that name left by a crash mid-start is ours: replace it. One that
          // carries another host's or instance's labels is not, whatever its name says.
          const labels: Record<string, string> = (await this.engine.inspectContainer(name))?.Config?.Labels ?? {};
          if (labels[LABEL_HOST] !== this.hostId || labels[LABEL_INSTANCE] !== spec.instanceId) {
            throw new DockerEngineError(`create container ${name}`, `the name is taken by a container of host ${JSON.stringify(labels[LABEL_HOST] ?? '')}, instance ${JSON.stringify(labels[LABEL_INSTANCE] ?? '')}`, 409);
          }
          await this.engine.removeContainer(name);
          return await this.engine.createContainer(name, body);
        }
      });
      if (id === undefined) return;
      inst.created(id);
      if (inst.phase !== 'creating') return;
      await this.networks.withEndpoints(spec.tenant, spec.environment, () => this.engine.startContainer(id));
      if (this.proxy) inst.address = await this.addressOf(id, spec.tenant, spec.environment);
      inst.started();
    } catch (err) {
      this.log.warn({ instance: spec.instanceId, err: (err as Error).message }, 'container failed to start');
      inst.couldNotStart((err as Error).message);
    }
  }

  /** Stops and removes the instance's containers, forgets it, and releases its network. A removal
   *  already under way is joined. */
  private remove(instanceId: string, why: string): Promise<void> {
    const running = this.removals.get(instanceId);
    if (running) return running;
    const removal = this.removeOnce(instanceId, why).finally(() => this.removals.delete(instanceId));
    this.removals.set(instanceId, removal);
    return removal;
  }

  private async removeOnce(instanceId: string, why: string): Promise<void> {
    const inst = this.instances.get(instanceId);
    inst?.beginRemoval();
    // An award's procedure in flight stops at its next step; its container is found below.
    await this.work.get(instanceId)?.catch(() => undefined);
    const containers = await this.engine.listContainers({ [LABEL_HOST]: this.hostId, [LABEL_INSTANCE]: instanceId });
    for (const c of containers) {
      const stop = async () => {
        await this.engine.stopContainer(c.id, STOP_GRACE_SECONDS);
        await this.engine.removeContainer(c.id);
      };
      const tenant = c.labels[LABEL_TENANT];
      const environment = c.labels[LABEL_ENVIRONMENT];
      await (tenant && environment ? this.networks.withEndpoints(tenant, environment, stop) : stop());
    }
    inst?.removed();
    this.instances.delete(instanceId);
    this.identities.drop(instanceId);
    this.log.info({ instance: instanceId, why }, 'container removed');
    const envs = new Map<string, { tenant: string; environment: string }>();
    if (inst) envs.set(`${inst.facts.tenant}\0${inst.facts.environment}`, inst.facts);
    for (const c of containers) {
      const tenant = c.labels[LABEL_TENANT];
      const environment = c.labels[LABEL_ENVIRONMENT];
      if (tenant && environment) envs.set(`${tenant}\0${environment}`, { tenant, environment });
    }
    for (const e of envs.values()) {
      // The container is gone either way; a network the engine would not remove now is swept later.
      await this.networks.release(e.tenant, e.environment).catch((err: Error) => this.log.warn({ err: err.message, environment: e.environment }, 'network not removed; the sweep will'));
      if (![...this.instances.values()].some((i) => i.facts.tenant === e.tenant && i.facts.environment === e.environment)) this.proxy?.closeLocal(e.tenant, e.environment);
    }
  }

  /** The engine's containers of this host become instances again (a restarted agent). */
  private async adopt(): Promise<void> {
    for (const c of await this.engine.listContainers({ [LABEL_HOST]: this.hostId })) {
      const id = c.labels[LABEL_INSTANCE];
      if (!id || this.instances.has(id)) continue;
      const takenAt = this.clock.next();
      const info = await this.engine.inspectContainer(c.id).catch((err: unknown) => {
        if (err instanceof DockerEngineError && err.statusCode === 404) return undefined; // removed meanwhile
        throw err;
      });
      if (info === undefined) continue;
      const facts = {
        instanceId: id,
        tenant: c.labels[LABEL_TENANT] ?? '',
        environment: c.labels[LABEL_ENVIRONMENT] ?? '',
        service: c.labels[LABEL_SERVICE] ?? '',
        haGroup: c.labels[LABEL_HA_GROUP] ?? '',
        resources: {
          cpuMillis: Math.round((info?.HostConfig?.NanoCpus ?? 0) / 1e6),
          memoryMib: Math.round((info?.HostConfig?.Memory ?? 0) / (1024 * 1024)),
        },
      };
      const state = {
        running: info?.State?.Running === true,
        status: String(info?.State?.Status ?? c.state),
        exitCode: Number(info?.State?.ExitCode ?? -1),
        oomKilled: info?.State?.OOMKilled === true,
      };
      const adopted = Instance.adopted(facts, c.id, state, takenAt, this.clock, (status) => this.send({ kind: { $case: 'instanceStatus', instanceStatus: status } }));
      adopted.address = addressIn(info, networkName(this.hostId, facts.tenant, facts.environment));
      this.instances.set(id, adopted);
    }
  }

  /** The environment's network present and its local endpoints open on its gateway; the gateway. */
  private async openEnvironment(tenant: string, environment: string): Promise<string> {
    const subnet = await this.networks.withNetwork(tenant, environment, async (network) => (await this.engine.listNetworks({ [LABEL_HOST]: this.hostId, [LABEL_TENANT]: tenant, [LABEL_ENVIRONMENT]: environment })).find((n) => n.name === network)?.subnets[0]);
    const cidr = subnet === undefined ? undefined : parseIpv4Cidr(subnet);
    if (!cidr) throw new Error(`the network of ${tenant}/${environment} has no IPv4 subnet`);
    // Docker's gateway on a subnet given without one: its first address.
    const gateway = formatIpv4Cidr({ base: cidr.base + 1, prefix: 32 }).replace(/\/32$/, '');
    await this.proxy?.openLocal(tenant, environment, gateway);
    return gateway;
  }

  /** A container's address on its environment's network. */
  private async addressOf(containerId: string, tenant: string, environment: string): Promise<string> {
    return addressIn(await this.engine.inspectContainer(containerId), networkName(this.hostId, tenant, environment));
  }

  private *watchTargets(): Iterable<{ instanceId: string; containerId: string }> {
    for (const i of this.instances.values()) {
      if (i.phase === 'creating' || i.phase === 'running') yield { instanceId: i.id, containerId: i.containerId };
    }
  }

  private observe(o: Observation): void {
    const inst = this.instances.get(o.instanceId);
    if (!inst?.observe(o)) return;
    this.metrics.containerChanges.inc({ source: o.source, change: o.kind });
    this.log.info({ instance: o.instanceId, phase: inst.phase, observed: o.kind, source: o.source }, 'instance changed');
  }
}

/** The address of a container (an inspect answer) on one network, '' when it has none there. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function addressIn(info: any, network: string): string {
  const ip = info?.NetworkSettings?.Networks?.[network]?.IPAddress;
  return typeof ip === 'string' ? ip : '';
}
