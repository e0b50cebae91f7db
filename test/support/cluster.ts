/**
 * A real Podium cluster for end-to-end tests, on separate hosts of the test bed
 * (test/support/testbed.ts): the Pod API and the gateway run in the root namespace, the Pod API
 * listening on the bridge address (so its certificate names that address); each of the three
 * agents is its own `podium agent` process INSIDE its host's network namespace
 * (`nsenter --net=…`), driving that host's own Docker engine and reaching the Pod API over the
 * bridge, never loopback. Real TLS, real SQLite files in a temporary directory. Host ids carry a
 * random prefix so that suites sharing the test bed never touch each other's containers; `stop()`
 * removes every container and network its hosts made, each on its own engine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { credentials, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { PodApiClient } from '../../gen/podium/v1/pod_api';
import type { ContainerSummary, DockerEngine } from '../../agent/runtime';
import { TokenStore } from '../../gateway';
import { createStoredJoinToken, inHost, issueClientCertificate, registerTestbedProcess } from '../../cli';
import type { Authority } from '../../certs';
import { withAuthority } from '../../cli/server-state';
import { poll } from './poll';
import { sharedTestbed, type TestHost, type TestTestbed } from './testbed';

const BIN = join(__dirname, '..', '..', '..', 'bin', 'podium');

/** A TCP port free on `host` right now (the caller binds it next). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface ClusterOptions {
  hostTtl: string;
  heartbeat: string;
  /** Each agent runs the host's proxy (on its test bed address) and an edge port (EDGE_PORT);
   *  published endpoints are named under `<tenant>.example`. */
  mesh?: boolean;
}

/** The agents' edge port (published endpoints), on each host's address, with ClusterOptions.mesh. */
export const EDGE_PORT = 8443;

/** A container as its host's engine shows it, with the agent host id whose engine that is. */
export type HostContainer = ContainerSummary & { host: string };

export class Cluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'podium-e2e-'));
  readonly prefix = `t${randomBytes(3).toString('hex')}`;
  /** Agent host ids; the i-th runs on the test bed's i-th host. */
  readonly hosts = [1, 2, 3].map((n) => `${this.prefix}-${n}`);
  serverPort = 0;
  gatewayPort = 0;
  metricsPort = 0;
  /** A customer token of tenant acme. */
  token = '';
  /** A customer token of tenant globex: another customer on the same hosts. */
  globexToken = '';
  /** An admin token: the fleet (GET /v1/hosts) is not a customer's to see. */
  adminToken = '';
  /** One single-use join token per host, bound to its id. */
  private readonly joinTokens = new Map<string, string>();
  private bed: TestTestbed | undefined;
  /** The platform's CA (its key too), read at start. */
  ca: Authority | undefined;
  private readonly procs = new Map<string, ChildProcess>();

  /** `bringTestbed` gives the hosts: the run's shared test bed unless a caller brings its own. */
  constructor(
    readonly opts: ClusterOptions = { hostTtl: '5s', heartbeat: '500ms' },
    private readonly bringTestbed: () => Promise<TestTestbed> = sharedTestbed,
  ) {}

  /** The test bed the cluster runs on; only after start(). */
  get testbed(): TestTestbed {
    if (!this.bed) throw new Error('Cluster: not started');
    return this.bed;
  }

  /** The test bed host that agent `host` runs on (its namespace, address and engine). */
  placeOf(host: string): TestHost {
    const i = this.hosts.indexOf(host);
    const at = this.testbed.hosts[i];
    if (i < 0 || !at) throw new Error(`Cluster: ${host} is not one of ${this.hosts.join(', ')}`);
    return at;
  }

  /** The Docker engine of agent `host`'s own machine. */
  engineOf(host: string): DockerEngine {
    return this.placeOf(host).engine;
  }

  /** The root namespace's address on the bridge: where the Pod API listens. */
  get bridgeAddress(): string {
    return this.testbed.bridgeAddress;
  }

  get serverAddress(): string {
    return `${this.bridgeAddress}:${this.serverPort}`;
  }
  get gatewayUrl(): string {
    return `http://127.0.0.1:${this.gatewayPort}`;
  }
  get certsDir(): string {
    return join(this.dir, 'certs');
  }
  private get serverDir(): string {
    return join(this.dir, 'server');
  }

  async start(): Promise<void> {
    this.bed = await this.bringTestbed();
    if (this.bed.hosts.length < this.hosts.length) throw new Error(`Cluster: the test bed has ${this.bed.hosts.length} hosts, not ${this.hosts.length}`);
    this.serverPort = await freePort(this.bridgeAddress);
    this.gatewayPort = await freePort();
    this.metricsPort = await freePort();
    await issueClientCertificate(this.serverDir, 'podium.local', 'operator', 'admin', this.certsDir, 3600);
    await issueClientCertificate(this.serverDir, 'podium.local', 'gateway', 'gw', join(this.dir, 'gateway'), 3600);
    // The platform's CA, for tests that sign what only a thief of its key could (read before the
    // server holds the database).
    this.ca = await withAuthority(this.serverDir, 'podium.local', async (_s, ca) => ca);
    for (const h of this.hosts) this.joinTokens.set(h, await createStoredJoinToken(this.serverDir, 'podium.local', 'agent', 3600_000, { hostId: h }));
    const tokens = await TokenStore.open(join(this.dir, 'gateway', 'tokens.db'));
    this.token = await tokens.create('acme', 'e2e');
    this.globexToken = await tokens.create('globex', 'e2e-globex');
    this.adminToken = await tokens.create('default', 'e2e-admin', 'admin');
    await tokens.close();
    this.startServer();
    await poll('the Pod API', () => this.health(), 30_000);
    this.spawn('gateway', process.execPath, [
      BIN, 'gateway', '--listen', `127.0.0.1:${this.gatewayPort}`, '--server', this.serverAddress,
      '--certs-dir', join(this.dir, 'gateway'), '--token-db', join(this.dir, 'gateway', 'tokens.db'),
    ]);
    await poll('the gateway', async () => (await fetch(`${this.gatewayUrl}/healthz`)).ok);
    for (const h of this.hosts) this.startAgent(h);
    await this.waitHostsUp(this.hosts);
  }

  startServer(): void {
    this.spawn('server', process.execPath, [
      BIN, 'server', '--data-dir', this.serverDir, '--listen', this.serverAddress,
      '--host-ttl', this.opts.hostTtl, '--heartbeat', this.opts.heartbeat, '--seed', '42',
      '--metrics-listen', `127.0.0.1:${this.metricsPort}`, ...(this.opts.mesh ? ['--public-domain', 'example'] : []),
    ]);
  }

  /** Starts agent `host` inside its host's network namespace, on that host's engine. */
  startAgent(host: string): void {
    const at = this.placeOf(host);
    const { command, args } = inHost(at, [
      process.execPath, BIN, 'agent', '--data-dir', join(this.dir, 'agents', host), '--server', this.serverAddress,
      '--host-id', host, '--pod', 'test', '--cpu-millis', '2000', '--memory-mib', '2048',
      '--docker-socket', at.dockerSocket, '--insecure-no-apparmor',
      ...(this.opts.mesh ? ['--mesh-listen', `${at.address}:0`, '--edge-listen', `${at.address}:${EDGE_PORT}`] : []),
    ]);
    this.spawn(host, command, args, { PODIUM_JOIN_TOKEN: this.joinTokens.get(host) ?? '' });
  }

  /** The pid of process `name` (server, gateway or an agent's host id) while it runs. */
  pid(name: string): number | undefined {
    const p = this.procs.get(name);
    return p && p.exitCode === null && p.signalCode === null ? p.pid : undefined;
  }

  /** Sends a signal and waits for the process to exit. */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.procs.get(name);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
    this.procs.delete(name);
  }

  /** Sends a signal without waiting (SIGSTOP/SIGCONT to stall a process past the TTL). */
  signal(name: string, signal: NodeJS.Signals): void {
    this.procs.get(name)?.kill(signal);
  }

  private spawn(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}): void {
    const log = openSync(join(this.dir, `${name}.log`), 'a');
    const p = spawn(command, args, { stdio: ['ignore', log, log], env: { ...process.env, ...env } });
    this.procs.set(name, p);
    // Should this run be killed before stop(), the test bed's teardown ends these too.
    if (p.pid !== undefined) registerTestbedProcess(this.testbed.name, p.pid);
  }

  log(name: string): string {
    try {
      return readFileSync(join(this.dir, `${name}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  operatorCredentials(): ChannelCredentials {
    const r = (f: string) => readFileSync(join(this.certsDir, f));
    return credentials.createSsl(r('ca.crt'), r('operator.key'), r('operator.crt'));
  }

  podApi(creds: ChannelCredentials = this.operatorCredentials()): PodApiClient {
    return new PodApiClient(this.serverAddress, creds);
  }

  /** True when the Pod API answers ListHosts to the operator. */
  async health(): Promise<boolean> {
    const c = this.podApi();
    try {
      await new Promise((res, rej) => c.listHosts({}, new Metadata(), { deadline: Date.now() + 2000 }, (e, r) => (e ? rej(e) : res(r))));
      return true;
    } finally {
      c.close();
    }
  }

  async rest(method: string, path: string, body?: unknown, raw?: string, token = this.token): Promise<{ status: number; body: any }> {
    const res = await fetch(`${this.gatewayUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  /** The fleet through the gateway, as an admin sees it. */
  async fleet(): Promise<any[]> {
    const { status, body } = await this.rest('GET', '/v1/hosts', undefined, undefined, this.adminToken);
    if (status !== 200) throw new Error(`GET /v1/hosts: ${status} ${JSON.stringify(body)}`);
    return body.hosts;
  }

  async waitHostsUp(hosts: string[], timeoutMs = 30_000): Promise<void> {
    await poll(`hosts ${hosts.join(', ')} up`, async () => {
      const fleet = await this.fleet();
      return hosts.every((h) => fleet.some((x: any) => x.id === h && x.state === 'HOST_STATE_UP'));
    }, timeoutMs);
  }

  /** Containers of this cluster's hosts, each asked of its own host's engine. */
  async containers(): Promise<HostContainer[]> {
    const all: HostContainer[] = [];
    for (const h of this.hosts) {
      for (const c of await this.engineOf(h).listContainers({ 'podium.host': h })) all.push({ ...c, host: h });
    }
    return all;
  }

  /** Every container of ANY of this cluster's hosts that the engine of `host`'s machine holds:
   *  on separate hosts, only `host`'s own. */
  async containersOnEngineOf(host: string): Promise<ContainerSummary[]> {
    const ours = new Set(this.hosts);
    return (await this.engineOf(host).listContainers({})).filter((c) => ours.has(c.labels['podium.host'] ?? ''));
  }

  async stop(): Promise<void> {
    for (const name of [...this.procs.keys()]) await this.kill(name, 'SIGTERM');
    if (this.bed) {
      for (const c of await this.containers()) await this.engineOf(c.host).removeContainer(c.id).catch(() => undefined);
      for (const h of this.hosts) {
        for (const n of await this.engineOf(h).listNetworks({ 'podium.host': h })) await this.engineOf(h).removeNetwork(n.id).catch(() => undefined);
      }
    }
    if (!process.env.PODIUM_KEEP_TEST_DIR) rmSync(this.dir, { recursive: true, force: true });
  }
}
