import Modem from 'docker-modem';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { engineEvent, JsonLines, type EventHandlers, type EventSubscription } from './engine-events';
import { lockPath, withFileLock } from './file-lock';

/**
 * The agent's client of the Docker Engine API, over docker-modem's `dial` against the versioned
 * API (/v1.41, Docker 20.10), so that a newer engine answers the way this code was written for.
 *
 * Every call names its operation; a failure becomes a `DockerEngineError` whose message is
 * "<operation>: <Docker's message>" and which keeps the HTTP status as `statusCode` (undefined when
 * the engine was not reached at all). Calls that are idempotent by nature (stop, remove) treat
 * "already done" answers (304, 404) as success, so that reconciliation can repeat them freely.
 */

export const DOCKER_API_VERSION = 'v1.41';

export class DockerEngineError extends Error {
  readonly operation: string;
  readonly statusCode: number | undefined;

  constructor(operation: string, dockerMessage: string, statusCode?: number) {
    super(`${operation}: ${dockerMessage}`);
    this.name = 'DockerEngineError';
    this.operation = operation;
    this.statusCode = statusCode;
  }
}

export interface EngineInfo {
  cpus: number;
  memoryMib: number;
  name: string;
}

export interface ContainerSummary {
  id: string;
  labels: Record<string, string>;
  running: boolean;
  state: string;
}

/** A network as the engine lists it: its labels and the IPv4/IPv6 subnets of its IPAM config. */
export interface NetworkSummary {
  id: string;
  name: string;
  labels: Record<string, string>;
  subnets: string[];
}

/** A network with the endpoints the engine has on it. `containerId` is the key Docker shows, which
 *  for a stale endpoint (no container behind it) is "ep-<endpoint id>"; `name` is the endpoint's
 *  name, which a forced disconnect accepts either way. */
export interface NetworkDetail extends NetworkSummary {
  endpoints: Array<{ containerId: string; name: string }>;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

type Method = 'GET' | 'POST' | 'DELETE';

interface Call {
  /** Names the operation in errors and logs, e.g. "create container podium-h1-web-1234". */
  op: string;
  method: Method;
  /** Path below /v1.41, without a query string. */
  path: string;
  query?: Record<string, string | number | boolean | string[] | object | undefined>;
  body?: unknown;
  file?: Buffer | NodeJS.ReadableStream;
  /** Statuses that mean success. */
  ok: number[];
  /** Statuses that mean "already so": the call resolves with undefined. */
  tolerate?: number[];
  stream?: boolean;
}

/** Container ids and names, network ids and names, exec ids: one path segment, nothing that could
 *  climb out of it ("..", "/", "?"). */
const PATH_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Image references: repository[:tag][@digest], with an optional registry host[:port]. */
const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/;

/** Most exec output the engine keeps in memory per stream; the rest is dropped (and said so). */
const EXEC_OUTPUT_LIMIT = 1 << 20;

export class DockerEngine {
  private readonly modem: Modem;
  private readonly log: Logger | undefined;
  /** ensureNetwork calls in flight, by name: concurrent callers in this process share one create. */
  private readonly networksInFlight = new Map<string, Promise<string>>();

  private readonly socketPath: string;

  constructor(opts: { socketPath: string; logger?: Logger }) {
    this.socketPath = opts.socketPath;
    // No modem timeout: a stop waits for the container's grace period and an import streams a
    // whole root filesystem; both would be cut by a blanket request timeout.
    this.modem = new Modem({ socketPath: opts.socketPath, version: DOCKER_API_VERSION });
    this.log = opts.logger?.child({ module: 'docker-engine' });
  }

  /** Resolves when the engine answers /_ping. */
  async ping(): Promise<void> {
    await this.call({ op: 'ping', method: 'GET', path: '/_ping', ok: [200] });
  }

  /** The host's resources as the engine sees them (memory rounded down to whole MiB). */
  async info(): Promise<EngineInfo> {
    const info = (await this.call({ op: 'info', method: 'GET', path: '/info', ok: [200] })) as {
      NCPU: number;
      MemTotal: number;
      Name: string;
    };
    return { cpus: info.NCPU, memoryMib: Math.floor(info.MemTotal / (1024 * 1024)), name: info.Name };
  }

  async imageExists(ref: string): Promise<boolean> {
    checkImageRef(ref);
    try {
      await this.call({ op: `inspect image ${ref}`, method: 'GET', path: `/images/${ref}/json`, ok: [200] });
      return true;
    } catch (err) {
      if (err instanceof DockerEngineError && err.statusCode === 404) return false;
      throw err;
    }
  }

  /**
   * Imports a root filesystem tar as image `ref` (POST /images/create?fromSrc=-). `changes` are
   * Dockerfile instructions applied to the image config (e.g. "WORKDIR /var/www").
   * The engine reports import failures inside a 200 progress stream; they are thrown here.
   */
  async importImage(ref: string, tar: NodeJS.ReadableStream | Buffer, changes: string[] = []): Promise<void> {
    const { repo, tag } = splitRef(ref);
    const op = `import image ${ref}`;
    const result = await this.call({
      op,
      method: 'POST',
      path: '/images/create',
      query: { fromSrc: '-', repo, tag, changes: changes.length > 0 ? changes : undefined },
      file: tar,
      ok: [200],
    });
    const failure = progressError(result);
    if (failure !== undefined) throw new DockerEngineError(op, failure, 200);
  }

  /**
   * Pulls `ref` from its registry (POST /images/create?fromImage=…). Registry failures arrive in
   * a 200 progress stream or as an error status; both are thrown, naming the image.
   */
  async pullImage(ref: string): Promise<void> {
    const { repo, tag } = splitRef(ref);
    const op = `pull image ${ref}`;
    const result = await this.call({ op, method: 'POST', path: '/images/create', query: { fromImage: repo, tag }, ok: [200] });
    const failure = progressError(result);
    if (failure !== undefined) throw new DockerEngineError(op, failure, 200);
  }

  /** Removes the tag `ref` (and the image when it was its last tag). Tolerates a missing image. */
  async removeImage(ref: string): Promise<void> {
    checkImageRef(ref);
    await this.call({ op: `remove image ${ref}`, method: 'DELETE', path: `/images/${ref}`, ok: [200], tolerate: [404] });
  }

  /**
   * Returns the id of the bridge network `name`, creating it with `labels` (and, when given, the
   * IPAM subnet `options.subnet`, so that the engine's default address pools are not drawn from)
   * when missing. A network of that name whose labels differ from `labels` is refused rather than
   * joined: a per-environment network shared by mistake would break tenant isolation. Concurrent
   * calls in this process share one create, and calls of processes on this machine take turns (a
   * file lock per engine and name); a 409 from a create elsewhere is resolved by reading the
   * network the winner created. Containers of the network cannot reach each other directly
   * (enable_icc false): the host's proxy carries what they say to each other. A subnet that overlaps
   * another network's is refused by the engine (403 "Pool overlaps…"): the caller picks another.
   */
  ensureNetwork(name: string, labels: Record<string, string>, options: { subnet?: string } = {}): Promise<string> {
    checkSegment(name, 'network name');
    const pending = this.networksInFlight.get(name);
    if (pending !== undefined) return pending;
    // Across processes on this engine (the engine lets two creates of one name through): one at a time.
    const work = withFileLock(lockPath(`network ${this.socketPath} ${name}`), () => this.ensureNetworkOnce(name, labels, options.subnet)).finally(() =>
      this.networksInFlight.delete(name),
    );
    this.networksInFlight.set(name, work);
    return work;
  }

  /** Removes a network by id or name. Tolerates a missing one; refuses (403) one with endpoints. */
  async removeNetwork(idOrName: string): Promise<void> {
    checkSegment(idOrName, 'network');
    await this.call({ op: `remove network ${idOrName}`, method: 'DELETE', path: `/networks/${idOrName}`, ok: [204, 200], tolerate: [404] });
  }

  /**
   * Removes a network even when the engine still lists endpoints on it: when the plain remove is
   * refused with "has active endpoints", every endpoint is disconnected with force and the remove
   * is tried again. Docker 20.10 can keep stale endpoints with no container behind them, and only
   * a forced disconnect by endpoint name clears those. The caller must know that nothing it wants
   * to keep is attached: a live container's endpoint is cut as well. Tolerates a missing network.
   */
  async forceRemoveNetwork(idOrName: string): Promise<void> {
    try {
      await this.removeNetwork(idOrName);
      return;
    } catch (err) {
      if (!(err instanceof DockerEngineError) || !/active endpoints/.test(err.message)) throw err;
    }
    const net = await this.inspectNetwork(idOrName);
    if (net === undefined) return;
    for (const ep of net.endpoints) await this.disconnectFromNetwork(net.id, ep.name || ep.containerId, true);
    this.log?.info({ network: net.name, endpoints: net.endpoints.length }, 'disconnected endpoints with force');
    await this.removeNetwork(net.id);
  }

  /** Disconnects a container (or, with `force`, a stale endpoint by name) from a network.
   *  Tolerates a network or container that is gone. */
  async disconnectFromNetwork(network: string, container: string, force: boolean): Promise<void> {
    checkSegment(network, 'network');
    checkSegment(container, 'container');
    await this.call({
      op: `disconnect ${container} from network ${network}`,
      method: 'POST',
      path: `/networks/${network}/disconnect`,
      body: { Container: container, Force: force },
      ok: [200],
      tolerate: [404],
    });
  }

  /** The networks that carry all the labels of `labelFilter`; every network of the engine, whoever
   *  made it, when the filter is empty. */
  async listNetworks(labelFilter: Record<string, string> = {}): Promise<NetworkSummary[]> {
    const label = Object.entries(labelFilter).map(([k, v]) => `${k}=${v}`);
    const list = (await this.call({
      op: 'list networks',
      method: 'GET',
      path: '/networks',
      query: label.length > 0 ? { filters: { label } } : undefined,
      ok: [200],
    })) as RawNetwork[];
    return list.map(networkSummary);
  }

  /** A network with its endpoints (GET /networks/{id}); undefined when there is none. */
  async inspectNetwork(idOrName: string): Promise<NetworkDetail | undefined> {
    checkSegment(idOrName, 'network');
    const raw = (await this.call({ op: `inspect network ${idOrName}`, method: 'GET', path: `/networks/${idOrName}`, ok: [200], tolerate: [404] })) as
      | RawNetwork
      | undefined;
    if (raw === undefined) return undefined;
    const endpoints = Object.entries(raw.Containers ?? {}).map(([containerId, ep]) => ({ containerId, name: ep.Name ?? '' }));
    return { ...networkSummary(raw), endpoints };
  }

  /**
   * Subscribes to the engine's event stream (GET /events) with Docker's `filters` (e.g.
   * `{ type: ['container'], label: ['podium.host=h1'], event: ['die'] }`). Resolves once the engine
   * has answered, so that anything that happens after that is delivered to `onEvent`, in the
   * engine's order. `onEnd` is called once when the stream ends or breaks (not after `close`).
   */
  async watchEvents(filters: Record<string, string[]>, handlers: EventHandlers): Promise<EventSubscription> {
    const op = 'watch events';
    const res = (await this.call({ op, method: 'GET', path: '/events', query: { filters }, ok: [200], stream: true })) as IncomingMessage;
    let ended = false;
    const end = (err?: Error) => {
      if (ended) return;
      ended = true;
      handlers.onEnd(err);
    };
    const lines = new JsonLines(
      (value) => {
        const event = engineEvent(value);
        if (event !== undefined && !ended) handlers.onEvent(event);
      },
      (bad) => this.log?.warn({ line: bad.slice(0, 200) }, 'unreadable engine event'),
    );
    res.on('data', (chunk: Buffer) => lines.push(chunk));
    res.on('end', () => end());
    res.on('close', () => end());
    res.on('error', (err) => end(new DockerEngineError(op, err.message)));
    return {
      close: () => {
        ended = true;
        res.destroy();
      },
    };
  }

  /** Every container (running or not) that carries all the labels of `labelFilter`. */
  async listContainers(labelFilter: Record<string, string>): Promise<ContainerSummary[]> {
    const label = Object.entries(labelFilter).map(([k, v]) => `${k}=${v}`);
    const list = (await this.call({
      op: 'list containers',
      method: 'GET',
      path: '/containers/json',
      query: { all: true, filters: { label } },
      ok: [200],
    })) as Array<{ Id: string; Labels: Record<string, string> | null; State: string }>;
    return list.map((c) => ({ id: c.Id, labels: c.Labels ?? {}, running: c.State === 'running', state: c.State }));
  }

  /** Creates container `name` from a create body (see containerBody) and returns its id. */
  async createContainer(name: string, body: object): Promise<string> {
    checkSegment(name, 'container name');
    const op = `create container ${name}`;
    const created = (await this.call({ op, method: 'POST', path: '/containers/create', query: { name }, body, ok: [201] })) as {
      Id: string;
      Warnings: string[] | null;
    };
    // A warning here is a limit the engine could not apply (e.g. no swap accounting): log it.
    for (const warning of created.Warnings ?? []) this.log?.warn({ container: name, warning }, 'docker create warning');
    return created.Id;
  }

  /** Starts a container; one already running is left as it is. */
  async startContainer(id: string): Promise<void> {
    checkSegment(id, 'container');
    await this.call({ op: `start container ${id}`, method: 'POST', path: `/containers/${id}/start`, ok: [204], tolerate: [304] });
  }

  /** Stops a container, killing it after `timeoutSeconds`. Already stopped or gone is success. */
  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    checkSegment(id, 'container');
    await this.call({
      op: `stop container ${id}`,
      method: 'POST',
      path: `/containers/${id}/stop`,
      query: { t: Math.max(0, Math.floor(timeoutSeconds)) },
      ok: [204],
      tolerate: [304, 404],
    });
  }

  /** Removes a container, running or not, with its anonymous volumes. Gone already is success. */
  async removeContainer(id: string): Promise<void> {
    checkSegment(id, 'container');
    await this.call({
      op: `remove container ${id}`,
      method: 'DELETE',
      path: `/containers/${id}`,
      query: { force: true, v: true },
      ok: [204],
      tolerate: [404],
    });
  }

  /** The engine's full inspect document for a container (GET /containers/{id}/json). */
  async inspectContainer(id: string): Promise<any> {
    checkSegment(id, 'container');
    return this.call({ op: `inspect container ${id}`, method: 'GET', path: `/containers/${id}/json`, ok: [200] });
  }

  /**
   * Runs `cmd` inside a running container (as the container's user, with its capabilities,
   * no-new-privileges and profile) and returns its exit code and output. Each stream keeps at
   * most 1 MiB.
   */
  async execInContainer(id: string, cmd: string[]): Promise<ExecResult> {
    checkSegment(id, 'container');
    const op = `exec in container ${id}`;
    const exec = (await this.call({
      op,
      method: 'POST',
      path: `/containers/${id}/exec`,
      body: { AttachStdout: true, AttachStderr: true, AttachStdin: false, Tty: false, Cmd: cmd },
      ok: [201],
    })) as { Id: string };
    checkSegment(exec.Id, 'exec');
    const res = (await this.call({
      op,
      method: 'POST',
      path: `/exec/${exec.Id}/start`,
      body: { Detach: false, Tty: false },
      ok: [200],
      stream: true,
    })) as IncomingMessage;
    const stdout = new Capture();
    const stderr = new Capture();
    await new Promise<void>((resolve, reject) => {
      this.modem.demuxStream(res, stdout.asStream(), stderr.asStream());
      res.on('end', resolve);
      res.on('close', resolve);
      res.on('error', (err) => reject(new DockerEngineError(op, err.message)));
    });
    const state = (await this.call({ op, method: 'GET', path: `/exec/${exec.Id}/json`, ok: [200] })) as { ExitCode: number | null };
    return { exitCode: state.ExitCode ?? -1, stdout: stdout.text(), stderr: stderr.text() };
  }

  private async ensureNetworkOnce(name: string, labels: Record<string, string>, subnet: string | undefined): Promise<string> {
    const existing = await this.findNetwork(name, labels);
    if (existing !== undefined) return existing;
    let createdId: string | undefined;
    try {
      const created = (await this.call({
        op: `create network ${name}`,
        method: 'POST',
        path: '/networks/create',
        // CheckDuplicate makes the engine answer 409 when the name exists when it looks; it does
        // not serialize two creates in flight, which can both succeed (seen on 20.10).
        body: {
          Name: name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Labels: labels,
          // No traffic between the containers of a network: they reach each other through the
          // host's proxy (on the gateway), which knows who is calling.
          Options: { 'com.docker.network.bridge.enable_icc': 'false' },
          ...(subnet !== undefined ? { IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] } } : {}),
        },
        ok: [201],
      })) as { Id: string };
      createdId = created.Id;
    } catch (err) {
      if (!(err instanceof DockerEngineError) || err.statusCode !== 409) throw err;
    }
    // Whoever raced us, every racer keeps the oldest network of that name and removes its own
    // if it is not that one, so duplicates from concurrent creates do not survive.
    const winner = await this.findNetwork(name, labels);
    if (winner === undefined) throw new DockerEngineError(`create network ${name}`, 'network not found after create');
    if (createdId !== undefined && createdId !== winner) {
      await this.removeNetwork(createdId).catch((err: Error) => this.log?.warn({ network: name, err: err.message }, 'could not remove duplicate network'));
    } else if (createdId !== undefined) {
      this.log?.info({ network: name }, 'network created');
    }
    return winner;
  }

  /** The id of the oldest network named exactly `name` (the list filter matches substrings), after
   *  checking that it carries `labels`; undefined when there is none. */
  private async findNetwork(name: string, labels: Record<string, string>): Promise<string | undefined> {
    const op = `inspect network ${name}`;
    const list = (await this.call({
      op,
      method: 'GET',
      path: '/networks',
      query: { filters: { name: [name] } },
      ok: [200],
    })) as Array<{ Id: string; Name: string; Created: string; Labels: Record<string, string> | null }>;
    const same = list.filter((n) => n.Name === name).sort((a, b) => compareCreated(a.Created, b.Created) || (a.Id < b.Id ? -1 : 1));
    const net = same[0];
    if (net === undefined) return undefined;
    const have = net.Labels ?? {};
    for (const [key, value] of Object.entries(labels)) {
      if (have[key] !== value) {
        throw new DockerEngineError(op, `network exists with label ${key}=${JSON.stringify(have[key] ?? null)}, expected ${JSON.stringify(value)}`);
      }
    }
    return net.Id;
  }

  /** One request through docker-modem. Resolves with the parsed JSON (or a Buffer when the answer
   *  is not JSON, or the response stream when `stream`), undefined for a tolerated status. */
  private call(c: Call): Promise<unknown> {
    const statusCodes: Record<number, boolean> = {};
    for (const s of c.ok) statusCodes[s] = true;
    const query = c.query === undefined ? undefined : definedOnly(c.query);
    const options: Record<string, unknown> = {};
    if (query !== undefined) options._query = query;
    // docker-modem sends `_body` (or, without it, the whole options object) as the JSON body of a
    // POST; '{}' is sent as no body at all.
    if (c.method === 'POST') options._body = c.body ?? {};
    const started = Date.now();
    return new Promise((resolve, reject) => {
      this.modem.dial(
        {
          path: query !== undefined ? `${c.path}?` : c.path,
          method: c.method,
          options,
          file: c.file,
          isStream: c.stream === true,
          statusCodes,
        },
        (err, result) => {
          const status = (err as { statusCode?: number } | null)?.statusCode;
          this.log?.debug({ op: c.op, status, ms: Date.now() - started }, 'docker call');
          if (err === null) return resolve(result ?? undefined);
          if (status !== undefined && c.tolerate?.includes(status)) return resolve(undefined);
          reject(new DockerEngineError(c.op, dockerMessage(err), status));
        },
      );
    });
  }
}

interface RawNetwork {
  Id: string;
  Name: string;
  Labels: Record<string, string> | null;
  IPAM?: { Config?: Array<{ Subnet?: string }> | null } | null;
  Containers?: Record<string, { Name?: string }> | null;
}

function networkSummary(n: RawNetwork): NetworkSummary {
  const subnets = (n.IPAM?.Config ?? []).map((c) => c.Subnet).filter((x): x is string => typeof x === 'string' && x !== '');
  return { id: n.Id, name: n.Name, labels: n.Labels ?? {}, subnets };
}

/** Docker's own words from a docker-modem error: the JSON `message` of the answer when there is one,
 *  the transport error otherwise (ENOENT, ECONNREFUSED). */
function dockerMessage(err: Error): string {
  const json = (err as { json?: unknown }).json;
  if (json !== null && typeof json === 'object' && !Buffer.isBuffer(json)) {
    const message = (json as { message?: unknown }).message;
    if (typeof message === 'string' && message !== '') return message;
  }
  if (Buffer.isBuffer(json) && json.length > 0) return json.toString('utf8').trim();
  if (typeof json === 'string' && json !== '') return json.trim();
  return err.message;
}

/** The first error in a JSON-lines progress answer ({"error": …} or {"errorDetail": …}). */
function progressError(result: unknown): string | undefined {
  const lines: unknown[] = [];
  if (Buffer.isBuffer(result)) {
    for (const line of result.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        lines.push(JSON.parse(line));
      } catch {
        return `unreadable answer: ${line.slice(0, 200)}`;
      }
    }
  } else if (result !== undefined && result !== null) {
    lines.push(result);
  }
  for (const line of lines) {
    const entry = line as { error?: unknown; errorDetail?: { message?: unknown } };
    if (typeof entry.errorDetail?.message === 'string') return entry.errorDetail.message;
    if (typeof entry.error === 'string') return entry.error;
  }
  return undefined;
}

/** Orders Docker's RFC 3339 timestamps with nanoseconds ("2024-06-01T12:00:00.123456789+02:00"),
 *  which Date.parse would cut to milliseconds. */
function compareCreated(a: string, b: string): number {
  const key = (t: string): [number, string] => {
    const m = /^([^.]*)(?:\.(\d+))?(.*)$/.exec(t);
    const ms = Date.parse(`${m?.[1] ?? t}${m?.[3] ?? ''}`);
    return [Number.isNaN(ms) ? 0 : ms, (m?.[2] ?? '').padEnd(9, '0')];
  };
  const [am, af] = key(a);
  const [bm, bf] = key(b);
  return am !== bm ? am - bm : af < bf ? -1 : af > bf ? 1 : 0;
}

function definedOnly(query: NonNullable<Call['query']>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(query)) if (v !== undefined) out[k] = v;
  return out;
}

function checkSegment(value: string, what: string): void {
  if (!PATH_SEGMENT.test(value)) throw new DockerEngineError(`${what} ${JSON.stringify(value)}`, 'not a valid Docker id or name');
}

function checkImageRef(ref: string): void {
  if (!IMAGE_REF.test(ref) || ref.includes('..') || ref.includes('//')) {
    throw new DockerEngineError(`image ${JSON.stringify(ref)}`, 'not a valid image reference');
  }
}

/** "registry:5000/team/app:1.2" → repo "registry:5000/team/app", tag "1.2"; no tag → "latest".
 *  Digests cannot be the target of an import. */
function splitRef(ref: string): { repo: string; tag: string } {
  checkImageRef(ref);
  if (ref.includes('@')) throw new DockerEngineError(`image ${ref}`, 'an imported image takes a tag, not a digest');
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}

/** A sink for demuxStream that keeps the first EXEC_OUTPUT_LIMIT bytes written to it. It only
 *  needs `write`, and keeping it synchronous means nothing is still buffered when the answer ends. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;

  write(chunk: Buffer): boolean {
    const room = Math.max(0, EXEC_OUTPUT_LIMIT - this.size);
    const kept = chunk.subarray(0, room);
    if (kept.length > 0) {
      this.chunks.push(kept);
      this.size += kept.length;
    }
    this.dropped += chunk.length - kept.length;
    return true;
  }

  asStream(): NodeJS.WritableStream {
    return this as unknown as NodeJS.WritableStream;
  }

  text(): string {
    const body = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped > 0 ? `${body}\n[${this.dropped} bytes dropped]` : body;
  }
}
