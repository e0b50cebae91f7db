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
import { PodApiClient } from '../../gen/podium/v1/pod_api';
import { certificateRecord, SERVER_DEFAULTS, startServer, type RunningServer, type ServerConfig } from '../../server';
import { createStoredJoinToken, issueClientCertificate, type JoinTokenOptions } from '../../cli';

export const TEST_TRUST_DOMAIN = 'podium.local';

export interface PodApiHarness {
  readonly dir: string;
  /** The server's state directory (podium.db and ca/), what `podium … --data-dir` takes. */
  readonly dataDir: string;
  /** The running server; a new object after `restart()`. */
  readonly server: RunningServer;
  readonly address: string;
  /** Operator client (tenant picked per call with `as`). */
  readonly operator: PodApiClient;
  /** A join token for agents, stored in the server's database (single-use and unbound unless `opts` say otherwise). */
  joinToken(opts?: JoinTokenOptions): Promise<string>;
  /**
   * Client credentials for a role, issued by the harness CA (e.g. a gateway or an operator) and
   * recorded like `podium certs issue` records them, so that they can be revoked by serial.
   */
  clientCredentials(role: Exclude<Role, 'server' | 'agent'>, name: string): Promise<ChannelCredentials>;
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
  const config: ServerConfig = {
    ...SERVER_DEFAULTS,
    dataDir,
    host: '127.0.0.1',
    port: 0,
    trustDomain: TEST_TRUST_DOMAIN,
    hostTtlMs: 3_000,
    heartbeatIntervalMs: 500,
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
  await issueClientCertificate(dataDir, TEST_TRUST_DOMAIN, 'operator', 'admin', certsDir, 3600);
  const read = (f: string) => readFileSync(join(certsDir, f));
  const operator = new PodApiClient(address, credentials.createSsl(read('ca.crt'), read('operator.key'), read('operator.crt')));
  const clientKeyPair = async (role: Exclude<Role, 'server'>, name: string) => {
    const identity = { role, name, spiffeId: spiffeIdFor(TEST_TRUST_DOMAIN, role, name) };
    const pair = await issueKeyPair(server.ca, identity, 3600);
    const record = certificateRecord(pair.certPem, identity, 'test harness');
    server.store.recordCertificate(record);
    return { keyPem: pair.keyPem, certPem: pair.certPem, caPem: server.ca.caCertPem, serial: record.serial };
  };
  return {
    dir,
    dataDir,
    get server() {
      return server;
    },
    address,
    operator,
    joinToken: (opts) => createStoredJoinToken(dataDir, TEST_TRUST_DOMAIN, 'agent', 3600_000, opts),
    clientKeyPair,
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
