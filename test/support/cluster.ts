/**
 * A real Podium cluster for end-to-end tests: the Pod API, the gateway and three agents, each its
 * own `podium` process, on the machine's real Docker engine, with real TLS and real SQLite files
 * in a temporary directory. Host ids carry a random prefix so that runs never touch each other's
 * (or `podium dev`'s) containers; `stop()` removes every container and network its hosts made.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { credentials, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { PodApiClient } from '../../gen/podium/v1/pod_api';
import { DockerEngine, ensureBusyboxImage } from '../../agent/runtime';
import { TokenStore } from '../../gateway';
import { createStoredJoinToken, issueClientCertificate } from '../../cli';
import { poll } from './poll';

const BIN = join(__dirname, '..', '..', '..', 'bin', 'podium');
export const DOCKER_SOCKET = process.env.PODIUM_TEST_DOCKER_SOCKET ?? '/var/run/docker.sock';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface ClusterOptions {
  hostTtl: string;
  heartbeat: string;
}

export class Cluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'podium-e2e-'));
  readonly prefix = `t${randomBytes(3).toString('hex')}`;
  readonly hosts = [1, 2, 3].map((n) => `${this.prefix}-${n}`);
  readonly engine = new DockerEngine({ socketPath: DOCKER_SOCKET });
  serverPort = 0;
  gatewayPort = 0;
  metricsPort = 0;
  token = '';
  /** One single-use join token per host, bound to its id. */
  private readonly joinTokens = new Map<string, string>();
  private readonly procs = new Map<string, ChildProcess>();

  constructor(readonly opts: ClusterOptions = { hostTtl: '3s', heartbeat: '500ms' }) {}

  get serverAddress(): string {
    return `127.0.0.1:${this.serverPort}`;
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
    await ensureBusyboxImage(this.engine);
    this.serverPort = await freePort();
    this.gatewayPort = await freePort();
    this.metricsPort = await freePort();
    await issueClientCertificate(this.serverDir, 'podium.local', 'operator', 'admin', this.certsDir, 3600);
    await issueClientCertificate(this.serverDir, 'podium.local', 'gateway', 'gw', join(this.dir, 'gateway'), 3600);
    for (const h of this.hosts) this.joinTokens.set(h, await createStoredJoinToken(this.serverDir, 'podium.local', 'agent', 3600_000, { hostId: h }));
    const tokens = TokenStore.open(join(this.dir, 'gateway', 'tokens.db'));
    this.token = tokens.create('acme', 'e2e');
    tokens.close();
    this.startServer();
    await poll('the Pod API', () => this.health(), 30_000);
    this.spawn('gateway', [
      'gateway', '--listen', `127.0.0.1:${this.gatewayPort}`, '--server', this.serverAddress,
      '--certs-dir', join(this.dir, 'gateway'), '--token-db', join(this.dir, 'gateway', 'tokens.db'),
    ]);
    await poll('the gateway', async () => (await fetch(`${this.gatewayUrl}/healthz`)).ok);
    for (const h of this.hosts) this.startAgent(h);
    await this.waitHostsUp(this.hosts);
  }

  startServer(): void {
    this.spawn('server', [
      'server', '--data-dir', this.serverDir, '--listen', this.serverAddress,
      '--host-ttl', this.opts.hostTtl, '--heartbeat', this.opts.heartbeat, '--seed', '42',
      '--metrics-listen', `127.0.0.1:${this.metricsPort}`,
    ]);
  }

  startAgent(host: string): void {
    this.spawn(host, [
      'agent', '--data-dir', join(this.dir, 'agents', host), '--server', this.serverAddress, '--host-id', host,
      '--pod', 'test', '--cpu-millis', '2000', '--memory-mib', '2048', '--docker-socket', DOCKER_SOCKET,
      '--insecure-no-apparmor',
    ], { PODIUM_JOIN_TOKEN: this.joinTokens.get(host) ?? '' });
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

  private spawn(name: string, args: string[], env: NodeJS.ProcessEnv = {}): void {
    const log = openSync(join(this.dir, `${name}.log`), 'a');
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', log, log], env: { ...process.env, ...env } });
    this.procs.set(name, p);
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

  async rest(method: string, path: string, body?: unknown, raw?: string): Promise<{ status: number; body: any }> {
    const res = await fetch(`${this.gatewayUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  async waitHostsUp(hosts: string[], timeoutMs = 30_000): Promise<void> {
    await poll(`hosts ${hosts.join(', ')} up`, async () => {
      const { body } = await this.rest('GET', '/v1/hosts');
      return hosts.every((h) => body.hosts?.some((x: any) => x.id === h && x.state === 'HOST_STATE_UP'));
    }, timeoutMs);
  }

  /** Containers of this cluster's hosts, as Docker shows them. */
  async containers(): Promise<Array<{ id: string; labels: Record<string, string>; running: boolean }>> {
    const all = [];
    for (const h of this.hosts) all.push(...(await this.engine.listContainers({ 'podium.host': h })));
    return all;
  }

  async stop(): Promise<void> {
    for (const name of [...this.procs.keys()]) await this.kill(name, 'SIGTERM');
    for (const c of await this.containers()) await this.engine.removeContainer(c.id).catch(() => undefined);
    for (const h of this.hosts) {
      for (const n of await this.engine.listNetworks({ 'podium.host': h })) await this.engine.removeNetwork(n.id).catch(() => undefined);
    }
    if (!process.env.PODIUM_KEEP_TEST_DIR) rmSync(this.dir, { recursive: true, force: true });
  }
}
