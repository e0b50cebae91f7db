/**
 * A real Pod API in the test process: `startServer` on 127.0.0.1 port 0, real TLS, a real SQLite
 * file in a temporary directory, and an operator certificate issued by its CA. Tests without
 * Docker drive it with ScriptedAgent (the real AgentService protocol) and `PodApiClient` calls.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import pino from 'pino';
import { issueKeyPair, spiffeIdFor, type Role } from '../../certs';
import { PodApiClient, type ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { HostState, InstanceState, Quota, Service } from '../../gen/podium/v1/resources';
import { ScriptedAgent, type ScriptedAgentOptions } from './scripted-agent';
import { poll } from './poll';
import { freshDatabase } from './databases';
import { certificateRecord, SERVER_DEFAULTS, startServer, type RunningServer, type ServerConfig } from '../../server';
import { createStoredJoinToken, issueClientCertificate, type JoinTokenOptions } from '../../cli';

export const TEST_TRUST_DOMAIN = 'podium.local';

/** A client's key and certificate and the CA that signed them (and the Pod API's), as PEM. */
export interface ClientPems {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface PodApiHarness {
  readonly dir: string;
  /** The server's state directory (podium.db and ca/), what `podium … --data-dir` takes. */
  readonly dataDir: string;
  /** The running server; a new object after `restart()`. */
  readonly server: RunningServer;
  readonly address: string;
  /** The server's database, as --database takes it (a SQLite path or a postgres:// URL). */
  readonly database: string;
  /** Operator client (tenant picked per call with `as`). */
  readonly operator: PodApiClient;
  /** A join token for agents, stored in the server's database (single-use and unbound unless `opts` say otherwise). */
  joinToken(opts?: JoinTokenOptions): Promise<string>;
  /**
   * Client credentials for a role, issued by the harness CA (e.g. a gateway or an operator) and
   * recorded like `podium certs issue` records them, so that they can be revoked by serial.
   */
  clientCredentials(role: Exclude<Role, 'server' | 'agent'>, name: string): Promise<ChannelCredentials>;
  /** The same as PEM text, with the CA's certificate: what a process (e.g. the gateway) is configured with. */
  clientPems(role: Exclude<Role, 'server' | 'agent'>, name: string): Promise<ClientPems>;
  /** The same as clientCredentials, as PEM, with the certificate's serial. */
  clientKeyPair(role: Exclude<Role, 'server'>, name: string): Promise<{ keyPem: string; certPem: string; caPem: string; serial: string }>;
  /** Stops the server and starts it again on the same data directory and port. */
  restart(): Promise<void>;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

/** Starts a Pod API with test-friendly timings; `overrides` replace any of them. */
export async function startPodApiHarness(overrides: Partial<ServerConfig> = {}): Promise<PodApiHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'podium-harness-'));
  const dataDir = join(dir, 'server');
  // The run's dialect (PODIUM_TEST_DATABASE), a fresh database each time.
  const db = overrides.database === undefined ? await freshDatabase() : undefined;
  const config: ServerConfig = {
    ...SERVER_DEFAULTS,
    dataDir,
    database: db?.target,
    host: '127.0.0.1',
    port: 0,
    trustDomain: TEST_TRUST_DOMAIN,
    hostTtlMs: 3_000,
    heartbeatIntervalMs: 500,
    // Tests connect their hosts when they decide; admission has tests of its own.
    admitRatePerSecond: 0,
    orchestratorIntervalMs: 100,
    bidDeadlineMs: 500,
    awardTimeoutMs: 2_000,
    restartBackoffMs: 500,
    restartBackoffMaxMs: 2_000,
    seed: 42,
    logger: pino({ level: process.env.PODIUM_TEST_LOG ?? 'silent' }),
    ...overrides,
  };
  let server = await startServer(config);
  const address = `${config.host}:${server.port}`;
  const certsDir = join(dir, 'operator');
  const at = { dataDir, database: config.database };
  await issueClientCertificate(at, TEST_TRUST_DOMAIN, 'operator', 'admin', certsDir, 3600);
  const read = (f: string) => readFileSync(join(certsDir, f));
  const operator = new PodApiClient(address, credentials.createSsl(read('ca.crt'), read('operator.key'), read('operator.crt')));
  const clientKeyPair = async (role: Exclude<Role, 'server'>, name: string) => {
    const identity = { role, name, spiffeId: spiffeIdFor(TEST_TRUST_DOMAIN, role, name) };
    const pair = await issueKeyPair(server.ca, identity, 3600);
    const record = certificateRecord(pair.certPem, identity, 'test harness');
    await server.storage.transaction((u) => u.certificates.insert(record, Date.now()));
    return { keyPem: pair.keyPem, certPem: pair.certPem, caPem: server.ca.caCertPem, serial: record.serial };
  };
  const clientPems = async (role: Exclude<Role, 'server' | 'agent'>, name: string): Promise<ClientPems> => {
    const pair = await clientKeyPair(role, name);
    return { caPem: pair.caPem, certPem: pair.certPem, keyPem: pair.keyPem };
  };
  return {
    dir,
    dataDir,
    get server() {
      return server;
    },
    address,
    operator,
    joinToken: (opts) => createStoredJoinToken(at, TEST_TRUST_DOMAIN, 'agent', 3600_000, opts),
    database: config.database ?? join(dataDir, 'podium.db'),
    clientKeyPair,
    clientPems,
    clientCredentials: async (role, name) => {
      const pair = await clientKeyPair(role, name);
      return credentials.createSsl(Buffer.from(pair.caPem), Buffer.from(pair.keyPem), Buffer.from(pair.certPem));
    },
    restart: async () => {
      const port = server.port;
      await server.close();
      server = await startServer({ ...config, port });
    },
    close: async () => {
      operator.close();
      await server.close();
      await db?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Metadata naming the tenant a PodApi call acts for. */
export function as(tenant: string, extra: Record<string, string> = {}): Metadata {
  const md = new Metadata();
  md.set('podium-tenant', tenant);
  for (const [k, v] of Object.entries(extra)) md.set(k, v);
  return md;
}

/** A unary PodApi call as a promise. */
export function call<Req, Res>(
  client: PodApiClient,
  method: keyof PodApiClient & string,
  request: Req,
  metadata: Metadata = new Metadata(),
  timeoutMs = 10_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!.bind(client);
    fn(request, metadata, { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}

/** The operator's shortcuts for tests: environments, services, quotas, fleets of scripted agents. */
export class PodApiDriver {
  readonly agents: ScriptedAgent[] = [];

  constructor(readonly h: PodApiHarness) {}

  createEnvironment(tenant: string, name: string): Promise<unknown> {
    return call(this.h.operator, 'createEnvironment', { environment: { name } }, as(tenant));
  }

  createService(tenant: string, environment: string, service: Partial<Service>): Promise<Service> {
    const svc = Service.fromPartial({ image: 'img', replicas: 1, resources: { cpuMillis: 100, memoryMib: 64 }, ...service });
    return call(this.h.operator, 'createService', { environment, service: svc }, as(tenant));
  }

  getService(tenant: string, environment: string, service: string): Promise<Service> {
    return call(this.h.operator, 'getService', { environment, service }, as(tenant));
  }

  deleteService(tenant: string, environment: string, service: string): Promise<unknown> {
    return call(this.h.operator, 'deleteService', { environment, service }, as(tenant));
  }

  setQuota(tenant: string, quota: Partial<Quota>): Promise<Quota> {
    return call(this.h.operator, 'setQuota', { tenant, quota: Quota.fromPartial(quota) });
  }

  /** Waits until `n` instances of the service are running, and returns the service. */
  running(tenant: string, environment: string, service: string, n: number, timeoutMs = 15_000): Promise<Service> {
    return poll(`${n} running instances of ${service}`, async () => {
      const s = await this.getService(tenant, environment, service);
      return s.instances.filter((i) => i.state === InstanceState.INSTANCE_STATE_RUNNING).length === n ? s : undefined;
    }, timeoutMs, 50);
  }

  /** Joins and connects `n` scripted agents and waits until the server has them all up. */
  async fleet(n: number, opts: ScriptedAgentOptions = {}): Promise<ScriptedAgent[]> {
    const joined: ScriptedAgent[] = [];
    for (let i = 0; i < n; i++) {
      const a = await ScriptedAgent.join(this.h.address, await this.h.joinToken(), opts);
      a.connect();
      await a.welcomed();
      joined.push(a);
      this.agents.push(a);
    }
    const ids = new Set(joined.map((a) => a.hostId));
    await poll('hosts up', async () => {
      const res = await call<object, ListHostsResponse>(this.h.operator, 'listHosts', {});
      return res.hosts.filter((x) => ids.has(x.id) && x.state === HostState.HOST_STATE_UP).length === ids.size;
    });
    return joined;
  }

  /** A server metric's value (the first sample matching the labels), from the Prometheus registry. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = await this.h.server.metrics.registry.getSingleMetric(name)?.get();
    const sample = metric?.values.find((v) => Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x));
    return sample?.value ?? 0;
  }

  /** How many auction rounds the server has run. */
  async rounds(): Promise<number> {
    const metric = await this.h.server.metrics.registry.getSingleMetric('podium_auction_round_duration_seconds')?.get();
    return metric?.values.find((v) => (v as { metricName?: string }).metricName === 'podium_auction_round_duration_seconds_count')?.value ?? 0;
  }

  closeAgents(): void {
    for (const a of this.agents.splice(0)) a.close();
  }
}

/**
 * A fresh Pod API and its driver for each test of the calling suite (registers mocha's
 * beforeEach and afterEach): read `.h` and `.d` inside the tests; agents and server are closed
 * after each.
 */
export function podApiPerTest(overrides: Partial<ServerConfig> = {}): { readonly h: PodApiHarness; readonly d: PodApiDriver } {
  const current = {} as { h: PodApiHarness; d: PodApiDriver };
  beforeEach(async () => {
    current.h = await startPodApiHarness(overrides);
    current.d = new PodApiDriver(current.h);
  });
  afterEach(async () => {
    current.d.closeAgents();
    await current.h.close();
  });
  return current;
}
