/**
 * A scripted container engine for unit tests of the agent's core: containers and networks live in
 * maps, and a test decides when an answer arrives. A gated call takes its snapshot (or does its
 * work) when it is made, like the engine does, but its answer waits until the test opens the gate:
 * that is how a test puts an award's start between a container list's request and its answer.
 *
 * Only for unit tests of one agent module; everything else runs on the real engine.
 */
import type { AgentMessage } from '../../gen/podium/v1/agent';
import type { InstanceState } from '../../gen/podium/v1/resources';
import type { ContainerSummary, EngineEvent, EventSubscription, NetworkDetail, NetworkSummary } from '../../agent/runtime';
import { DockerEngineError } from '../../agent/runtime';

/** Answers wait while the gate is closed; they go out in order when it opens. */
export class Gate {
  private closed = false;
  private waiting: Array<() => void> = [];
  /** How many calls are waiting at this gate now. */
  get held(): number {
    return this.waiting.length;
  }
  close(): void {
    this.closed = true;
  }
  open(): void {
    this.closed = false;
    for (const go of this.waiting.splice(0)) go();
  }
  pass(): Promise<void> {
    if (!this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

export interface FakeContainer {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: 'created' | 'running' | 'exited';
  exitCode: number;
  oomKilled: boolean;
  network: string;
  nanoCpus: number;
  memory: number;
  /** The HostConfig of the create body, as sent. */
  hostConfig: Record<string, unknown>;
}

interface FakeNetwork extends NetworkSummary {
  created: number;
  /** Docker 20.10's count of the network's endpoints: a join (start) or leave (stop, exit) reads
   *  it when it begins and writes it back ±1 when it ends, so two that overlap lose one update.
   *  A network whose count is above zero refuses removal, whatever its endpoints. */
  endpointCount: number;
}

export class FakeEngine {
  readonly containers = new Map<string, FakeContainer>();
  readonly networks = new Map<string, FakeNetwork>();
  /** list: a list's answer; create: a create request reaching the engine; start: a start request
   *  reaching the engine; started: a start's answer (the container runs already); events:
   *  deliveries on the event stream. */
  readonly gates = { list: new Gate(), create: new Gate(), start: new Gate(), started: new Gate(), events: new Gate() };
  /** Every call by method name, in order. */
  readonly calls: string[] = [];
  private seq = 0;
  private readonly subscribers = new Set<{ onEvent: (e: EngineEvent) => void; onEnd: (err?: Error) => void }>();

  async ping(): Promise<void> {
    this.calls.push('ping');
  }

  async imageExists(): Promise<boolean> {
    return true;
  }

  async pullImage(): Promise<void> {}

  async ensureNetwork(name: string, labels: Record<string, string>, options: { subnet?: string } = {}): Promise<string> {
    this.calls.push('ensureNetwork');
    const existing = [...this.networks.values()].find((n) => n.name === name);
    if (existing) return existing.id;
    const id = `net${++this.seq}`;
    this.networks.set(id, { id, name, labels, subnets: options.subnet ? [options.subnet] : [], created: this.seq, endpointCount: 0 });
    return id;
  }

  async listNetworks(labelFilter: Record<string, string> = {}): Promise<NetworkSummary[]> {
    return [...this.networks.values()].filter((n) => matches(n.labels, labelFilter)).map(({ id, name, labels, subnets }) => ({ id, name, labels, subnets }));
  }

  async inspectNetwork(idOrName: string): Promise<NetworkDetail | undefined> {
    const n = this.network(idOrName);
    if (!n) return undefined;
    const endpoints = [...this.containers.values()].filter((c) => c.network === n.name && c.state === 'running').map((c) => ({ containerId: c.id, name: c.name }));
    return { id: n.id, name: n.name, labels: n.labels, subnets: n.subnets, endpoints };
  }

  async forceRemoveNetwork(idOrName: string): Promise<void> {
    this.calls.push('forceRemoveNetwork');
    const n = this.network(idOrName);
    if (n && n.endpointCount > 0) throw new DockerEngineError(`remove network ${n.id}`, `network ${n.name} id ${n.id} has active endpoints`, 403);
    if (n) this.networks.delete(n.id);
  }

  async listContainers(labelFilter: Record<string, string>): Promise<ContainerSummary[]> {
    this.calls.push('listContainers');
    // The snapshot is taken when the request is made; the answer may come much later.
    const snapshot = [...this.containers.values()]
      .filter((c) => matches(c.labels, labelFilter))
      .map((c) => ({ id: c.id, labels: { ...c.labels }, running: c.state === 'running', state: c.state }));
    await this.gates.list.pass();
    return snapshot;
  }

  async inspectContainer(id: string): Promise<any> {
    this.calls.push('inspectContainer');
    const c = this.container(id);
    if (!c) throw new DockerEngineError(`inspect container ${id}`, `No such container: ${id}`, 404);
    return {
      Id: c.id,
      Config: { Labels: c.labels },
      HostConfig: { NanoCpus: c.nanoCpus, Memory: c.memory },
      State: { Status: c.state, Running: c.state === 'running', ExitCode: c.exitCode, OOMKilled: c.oomKilled },
    };
  }

  async createContainer(name: string, body: any): Promise<string> {
    this.calls.push('createContainer');
    await this.gates.create.pass();
    if ([...this.containers.values()].some((c) => c.name === name)) throw new DockerEngineError(`create container ${name}`, 'Conflict', 409);
    const id = `c${++this.seq}`.padEnd(12, '0');
    this.containers.set(id, {
      id,
      name,
      labels: { ...body.Labels },
      state: 'created',
      exitCode: 0,
      oomKilled: false,
      network: body.HostConfig.NetworkMode,
      nanoCpus: body.HostConfig.NanoCpus,
      memory: body.HostConfig.Memory,
      hostConfig: structuredClone(body.HostConfig),
    });
    this.emit(id, 'create');
    return id;
  }

  async startContainer(id: string): Promise<void> {
    this.calls.push('startContainer');
    // The request is in flight: the container is still `created` until the gate opens.
    const c = this.container(id)!;
    const join = this.beginEndpointChange(c.network);
    await this.gates.start.pass();
    await new Promise((r) => setTimeout(r, 2)); // a join takes the engine a while
    join(+1);
    c.state = 'running';
    this.emit(id, 'start');
    await this.gates.started.pass();
  }

  async stopContainer(id: string): Promise<void> {
    this.calls.push('stopContainer');
    const c = this.container(id);
    if (!c || c.state !== 'running') return;
    const leave = this.beginEndpointChange(c.network);
    await new Promise((r) => setTimeout(r, 2)); // and so does a leave
    if (c.state !== 'running') return; // exited meanwhile: that exit left the network
    leave(-1);
    this.exit(id, 143, false, false);
  }

  async removeContainer(idOrName: string): Promise<void> {
    this.calls.push('removeContainer');
    const c = this.container(idOrName);
    if (!c) return;
    this.emit(c.id, 'destroy');
    this.containers.delete(c.id);
  }

  async watchEvents(_filters: Record<string, string[]>, handlers: { onEvent: (e: EngineEvent) => void; onEnd: (err?: Error) => void }): Promise<EventSubscription> {
    this.calls.push('watchEvents');
    this.subscribers.add(handlers);
    return { close: () => void this.subscribers.delete(handlers) };
  }

  /** The container exits on its own (as a crash or `docker kill` would). */
  exit(id: string, exitCode: number, oomKilled = false, leave = true): void {
    const c = this.container(id)!;
    if (leave && c.state === 'running') this.beginEndpointChange(c.network)(-1);
    c.state = 'exited';
    c.exitCode = exitCode;
    c.oomKilled = oomKilled;
    if (oomKilled) this.emit(id, 'oom');
    this.emit(id, 'die', { exitCode: String(exitCode) });
  }

  /** Ends every event subscription, as an engine restart would. */
  breakEvents(): void {
    for (const s of [...this.subscribers]) {
      this.subscribers.delete(s);
      s.onEnd(new Error('event stream broken by the test'));
    }
  }

  get subscriptions(): number {
    return this.subscribers.size;
  }

  /** Starts a read-modify-write of the network's endpoint count; the returned function ends it. */
  private beginEndpointChange(networkName: string): (delta: number) => void {
    const n = this.network(networkName);
    const read = n?.endpointCount ?? 0;
    return (delta) => {
      if (n) n.endpointCount = Math.max(0, read + delta);
    };
  }

  containersOf(instanceId: string): FakeContainer[] {
    return [...this.containers.values()].filter((c) => c.labels['podium.instance'] === instanceId);
  }

  private emit(id: string, action: string, extra: Record<string, string> = {}): void {
    const c = this.containers.get(id);
    const attributes = { ...(c?.labels ?? {}), name: c?.name ?? '', ...extra };
    const event: EngineEvent = { type: 'container', action, id, attributes };
    for (const s of this.subscribers) void this.gates.events.pass().then(() => s.onEvent(event));
  }

  private container(idOrName: string): FakeContainer | undefined {
    return this.containers.get(idOrName) ?? [...this.containers.values()].find((c) => c.name === idOrName);
  }

  private network(idOrName: string): FakeNetwork | undefined {
    return this.networks.get(idOrName) ?? [...this.networks.values()].find((n) => n.name === idOrName);
  }
}

function matches(labels: Record<string, string>, filter: Record<string, string>): boolean {
  return Object.entries(filter).every(([k, v]) => labels[k] === v);
}

/** The instance statuses an agent core sent for one instance, in order. */
export function statuses(outbox: AgentMessage[], instanceId: string): Array<{ state: InstanceState; message: string }> {
  const out: Array<{ state: InstanceState; message: string }> = [];
  for (const m of outbox) {
    if (m.kind?.$case === 'instanceStatus' && m.kind.instanceStatus.instanceId === instanceId) {
      out.push({ state: m.kind.instanceStatus.state, message: m.kind.instanceStatus.message });
    }
  }
  return out;
}
