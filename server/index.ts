/**
 * The Pod API process: one gRPC server on which PodApi, AgentService, CertificateService, server
 * reflection and the standard health service are all served, over TLS with the server certificate
 * the CA issues at start. The TLS listener is our own (tls-listener.ts): it requests client
 * certificates without requiring them (Join must be callable before a caller has one; auth.ts
 * checks the peer per RPC), refuses revoked ones at the handshake and closes their connections
 * when they are revoked, and hands every admitted connection to grpc-js.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AgentServiceService, type AgentServiceServer } from '../gen/podium/v1/agent';
import { CertificateServiceService } from '../gen/podium/v1/certificate';
import { PodApiService } from '../gen/podium/v1/pod_api';
import { issueKeyPair, loadOrCreateAuthority, spiffeIdFor, type Authority } from '../certs';
import { AgentSessions } from './agent-sessions';
import type { CaTrust } from './auth';
import { seededRandom } from './auction';
import { Auctioneer } from './auctioneer';
import { certificateHandlers } from './certificate-service';
import { Orchestrator } from './orchestrator';
import { podApiHandlers } from './pod-api';
import { addReflection } from './reflection';
import { HostLiveness } from './host-liveness';
import { ServerMetrics } from './metrics';
import { RevocationList } from './revocation-list';
import { Store, type EventRecord, type QuotaLimits } from './store';
import { TlsListener, type TlsIdentity } from './tls-listener';

export { Store } from './store';
export { PodiumError } from './errors';
export { certificateRecord } from './certificate-service';
export { revokeCertificate, revokeHost, DEFAULT_REVOKE_REASON, type HostRevocation } from './revocation';
export { reasonViolation } from './revoke-host';
export { nameViolation } from './validation';

/** Events after which this process's revocation list is read again at once (see RevocationList). */
const REVOKING_EVENTS: ReadonlySet<string> = new Set(['host.revoked', 'certificate.revoked']);

export interface ServerConfig {
  /** State: podium.db (SQLite) and ca/ (the authority). */
  dataDir: string;
  host: string;
  port: number;
  /**
   * Host names and addresses the server certificate names, so that agents on other machines can
   * verify it. Empty: the listen address (and localhost with 127.0.0.1 when it is a loopback or
   * wildcard address).
   */
  advertise: readonly string[];
  trustDomain: string;
  /** A host silent for longer is down and its replicas are placed again. */
  hostTtlMs: number;
  heartbeatIntervalMs: number;
  /**
   * After a start, how long hosts that were up have to reconnect before they are marked down
   * (at least the TTL): agents reconnect with jittered backoff of up to 10 s, so one TTL would
   * mark a fleet down (and re-place its replicas) just for having waited out its backoff.
   */
  restartGraceMs: number;
  /** How often the orchestrator checks replicas and heartbeats. */
  orchestratorIntervalMs: number;
  certLifetimeSeconds: number;
  /** How often the revocation revision is read, so that other processes' revocations take effect. */
  revocationPollMs: number;
  /** Pending lots that no host could take are auctioned again this often. */
  pendingRetryMs: number;
  restartBackoffMs: number;
  restartBackoffMaxMs: number;
  failureWindowMs: number;
  bidDeadlineMs: number;
  awardTimeoutMs: number;
  maxCandidatesPerLot: number;
  /** Seed of the auction's sampling; logged so that a round can be replayed. */
  seed: number;
  /** The quota of a tenant that has none of its own (SetQuota). */
  defaultQuota: QuotaLimits;
  logger: Logger;
}

export const SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 7443,
  advertise: [] as readonly string[],
  trustDomain: 'podium.local',
  hostTtlMs: 10_000,
  restartGraceMs: 15_000,
  heartbeatIntervalMs: 2_000,
  orchestratorIntervalMs: 500,
  certLifetimeSeconds: 24 * 3600,
  revocationPollMs: 250,
  pendingRetryMs: 3_000,
  restartBackoffMs: 2_000,
  restartBackoffMaxMs: 5 * 60_000,
  failureWindowMs: 10 * 60_000,
  bidDeadlineMs: 1_000,
  awardTimeoutMs: 10_000,
  maxCandidatesPerLot: 16,
  // 64 cores, 256 GiB, 500 replicas: a bound on what one tenant can queue, not a fleet's size.
  defaultQuota: { cpuMillis: 64_000, memoryMib: 256 * 1024, instances: 500 } as QuotaLimits,
} as const;

export interface RunningServer {
  port: number;
  ca: Authority;
  store: Store;
  /** Prometheus registry; the CLI serves it over HTTP. */
  metrics: ServerMetrics;
  /** The revoked serials this process refuses, as last read from the store. */
  revocations: RevocationList;
  /** Stops serving: the listener, every session and call, then the store. */
  close(): Promise<void>;
}

/**
 * The names a server certificate carries: every advertised name (split into DNS names and IP
 * addresses), or, when none is advertised, the listen address. A loopback or wildcard listen
 * address adds localhost and 127.0.0.1, which is how local clients reach it.
 */
export function serverCertificateNames(listenHost: string, advertise: readonly string[]): { dns: string[]; ips: string[] } {
  const names = new Set(advertise.length > 0 ? advertise : [listenHost]);
  const bare = listenHost.replace(/^\[|\]$/g, '');
  if (advertise.length === 0 && (bare === '0.0.0.0' || bare === '::' || bare === 'localhost' || bare.startsWith('127.') || bare === '::1')) {
    names.add('localhost');
    names.add('127.0.0.1');
  }
  names.delete('0.0.0.0');
  names.delete('::');
  const dns: string[] = [];
  const ips: string[] = [];
  for (const n of names) (isIP(n.replace(/^\[|\]$/g, '')) ? ips : dns).push(n.replace(/^\[|\]$/g, ''));
  return { dns, ips };
}

/** Opens the state, issues the server certificate and starts serving. Resolves once listening. */
export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const log = config.logger;
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const ca = await loadOrCreateAuthority(join(config.dataDir, 'ca'), config.trustDomain);
  const store = Store.open(join(config.dataDir, 'podium.db'));
  const now = () => Date.now();
  // Hosts that were up get the restart grace (at least a TTL) to reconnect before anything moves.
  const liveness = new HostLiveness();
  const graceUntil = now() + Math.max(0, config.restartGraceMs - config.hostTtlMs);
  for (const h of store.listHosts()) if (h.state === 'up') liveness.up(h.id, graceUntil);

  const events = new EventEmitter();
  events.setMaxListeners(0);
  store.onEvent = (e) => events.emit('event', e);
  const subscribe = (fn: (e: EventRecord) => void) => {
    events.on('event', fn);
    return () => events.off('event', fn);
  };

  // The revocation list is loaded before the listener opens, so that no revoked certificate is
  // admitted in between; `listener` is set just below, before any connection can arrive.
  let listener: TlsListener | null = null;
  const revocations = new RevocationList(
    store,
    { pollMs: config.revocationPollMs, now },
    (revoked) => {
      const closed = listener?.closeConnectionsOf(revoked.map((c) => c.serial)) ?? 0;
      if (closed > 0) log.warn({ serials: revoked.map((c) => c.serial), connections: closed }, 'closed the connections of revoked certificates');
    },
    log.child({ module: 'revocations' }),
  );
  revocations.start();
  // This process's own revocations are read at once, after their transaction has committed
  // (events are emitted inside it; the microtask runs once the synchronous transaction is over).
  subscribe((e) => {
    if (REVOKING_EVENTS.has(e.type)) queueMicrotask(() => revocations.refresh());
  });
  const trust: CaTrust = Object.freeze({
    trustDomain: ca.trustDomain,
    caCertPem: ca.caCertPem,
    isRevoked: (serial: string) => revocations.isRevoked(serial),
  });

  const sessions = new AgentSessions(store, trust, liveness, { heartbeatIntervalMs: config.heartbeatIntervalMs, now }, log.child({ module: 'sessions' }));
  const metrics = new ServerMetrics(store, () => sessions.connectedHosts().size);
  log.info({ seed: config.seed }, 'auction seed');
  const auctioneer = new Auctioneer(
    store,
    sessions,
    {
      batchSize: 256,
      batchWindowMs: 5,
      bidDeadlineMs: config.bidDeadlineMs,
      awardTimeoutMs: config.awardTimeoutMs,
      maxCandidatesPerLot: config.maxCandidatesPerLot,
      retryParkedMs: config.pendingRetryMs,
      avoidFailuresMs: config.failureWindowMs,
      random: seededRandom(config.seed),
      now,
    },
    log.child({ module: 'auction' }),
    metrics,
  );
  sessions.auction = auctioneer;
  const orchestrator = new Orchestrator(
    store,
    liveness,
    {
      hostTtlMs: config.hostTtlMs,
      restartBackoffMs: config.restartBackoffMs,
      restartBackoffMaxMs: config.restartBackoffMaxMs,
      failureWindowMs: config.failureWindowMs,
      now,
    },
    log.child({ module: 'orchestrator' }),
    () => auctioneer.kick(),
  );

  const server = new Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_permit_without_calls': 1 });
  server.addService(
    PodApiService,
    podApiHandlers({
      store,
      ca: trust,
      orchestrator,
      sessions,
      liveness,
      subscribe,
      kickAuction: () => auctioneer.kick(),
      fleetChanged: () => auctioneer.fleetChanged(),
      defaultQuota: config.defaultQuota,
      log: log.child({ module: 'pod-api' }),
    }),
  );
  const agentHandlers: AgentServiceServer = { connect: (call) => sessions.connect(call) };
  server.addService(AgentServiceService, agentHandlers);
  server.addService(
    CertificateServiceService,
    certificateHandlers({ store, ca, trust, certLifetimeSeconds: config.certLifetimeSeconds, log: log.child({ module: 'certificates' }) }),
  );
  addReflection(server);
  const health = new HealthImplementation({
    '': 'SERVING',
    'podium.v1.PodApi': 'SERVING',
    'podium.v1.AgentService': 'SERVING',
    'podium.v1.CertificateService': 'SERVING',
  });
  health.addToServer(server);

  // The server certificate is issued afresh at each start (it is short-lived and costs nothing)
  // and again at half its lifetime while running; its chain carries the CA so that a joining
  // agent can pin the CA by its fingerprint.
  const serverNames = serverCertificateNames(config.host, config.advertise);
  log.info(serverNames, 'server certificate names');
  const issueServerIdentity = async (): Promise<TlsIdentity> => {
    const pair = await issueKeyPair(
      ca,
      { role: 'server', name: 'pod-api', spiffeId: spiffeIdFor(ca.trustDomain, 'server', 'pod-api') },
      config.certLifetimeSeconds,
      serverNames,
    );
    return { certificate: Buffer.from(`${pair.certPem.trim()}\n${ca.caCertPem.trim()}\n`), privateKey: Buffer.from(pair.keyPem) };
  };
  // TLS is the listener's: grpc-js sees connections that are already secure and admitted.
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const tlsLog = log.child({ module: 'tls' });
  try {
    listener = await TlsListener.listen({
      host: config.host,
      port: config.port,
      caPem: ca.caCertPem,
      identity: await issueServerIdentity(),
      revoked: (serial) => revocations.get(serial),
      accept: (socket) => injector.injectConnection(socket),
      onRefused: (peer) => metrics.refusedHandshakes.inc({ role: peer.role }),
      log: tlsLog,
    });
  } catch (err) {
    // Not listening (the port is taken, say): leave nothing behind.
    revocations.stop();
    auctioneer.stop();
    store.close();
    throw err;
  }
  const tlsListener = listener;
  const rotation = setInterval(() => {
    issueServerIdentity().then(
      (next) => {
        tlsListener.setIdentity(next);
        log.info('server certificate rotated');
      },
      (err) => log.error({ err }, 'server certificate rotation failed; the current one stays'),
    );
  }, Math.min((config.certLifetimeSeconds * 1000) / 2, 2 ** 31 - 1));
  const port = tlsListener.port;
  const timer = setInterval(() => {
    try {
      orchestrator.tick();
    } catch (err) {
      log.error({ err }, 'orchestrator tick failed');
    }
  }, config.orchestratorIntervalMs);
  // Lots parked for a reason only agents know (an image being pulled, no answer) are tried again
  // after pendingRetryMs; those no host could take wait for the fleet to change (LotParking).
  const retry = setInterval(() => auctioneer.kick(), config.pendingRetryMs);
  orchestrator.tick();
  auctioneer.kick();
  log.info({ address: `${config.host}:${port}`, fingerprint: ca.fingerprint }, 'Pod API listening');

  return {
    port,
    ca,
    store,
    metrics,
    revocations,
    close: async () => {
      clearInterval(timer);
      clearInterval(retry);
      clearInterval(rotation);
      revocations.stop();
      auctioneer.stop();
      sessions.closeAll('server shutting down');
      // Streams that never end by themselves (WatchEvents) get a moment, then are cut.
      const graceful = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      const grace = new Promise<void>((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS).unref());
      await Promise.race([graceful, grace]);
      server.forceShutdown();
      await tlsListener.close();
      store.close();
    },
  };
}

/** How long close() lets open calls finish before it cuts them. */
const SHUTDOWN_GRACE_MS = 1_000;
