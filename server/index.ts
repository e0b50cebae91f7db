/**
 * The Pod API process: one gRPC server on which PodApi, AgentService, CertificateService, server
 * reflection and the standard health service are all served, over TLS with the server certificate
 * the CA issues at start. The TLS listener is our own (tls-listener.ts): it requests client
 * certificates without requiring them (Join must be callable before a caller has one; auth.ts
 * checks the peer per RPC), refuses revoked ones at the handshake and closes their connections
 * when they are revoked, and hands every admitted connection to grpc-js.
 *
 * State is in the storage module (SQLite by default, PostgreSQL for several processes). Exactly
 * one process leads (leadership.ts): it runs the auctions, the orchestrator and host liveness, and
 * holds the agents' sessions. A standby serves PodApi reads and the writes that only change
 * desired state (creates, deletes, quotas, revocations: the leader acts on them through the event
 * feed), serves Join and Renew (the authority is in the database), and refuses agent sessions
 * with the leader's address, so that agents go there.
 */
import { randomBytes } from 'node:crypto';
import { Metadata, Server, ServerCredentials, status } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { mkdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AgentServiceService, type AgentServiceServer } from '../gen/podium/v1/agent';
import { CertificateServiceService } from '../gen/podium/v1/certificate';
import { PodApiService } from '../gen/podium/v1/pod_api';
import { issueKeyPair, loadOrCreateKeyFile, spiffeIdFor, type Authority } from '../certs';
import { SessionAdmission } from './admission';
import { WorkloadCertificates } from './workload-certificates';
import { ENDPOINT_CERT_LIFETIME_SECONDS, EndpointRenewal } from './published-endpoints';
import { RevokedHosts } from './revoked-hosts';
import { ServiceRegistry } from './service-registry';
import { AgentSessions } from './agent-sessions';
import type { CaTrust } from './auth';
import { seededRandom } from './auction';
import { Auctioneer } from './auctioneer';
import { loadOrCreateStoredAuthority } from './authority';
import { certificateHandlers } from './certificate-service';
import { Leadership } from './leadership';
import { Orchestrator } from './orchestrator';
import { podApiHandlers } from './pod-api';
import { addReflection } from './reflection';
import { HeartbeatPacing } from './heartbeat-pacing';
import { HostLiveness } from './host-liveness';
import { ServerMetrics } from './metrics';
import { RevocationList, revocationsOf } from './revocation-list';
import { Storage, type QuotaLimits } from './storage';
import { TlsListener, type TlsIdentity } from './tls-listener';

export { Storage } from './storage';
export { PodiumError } from './errors';
export { certificateRecord } from './certificate-service';
export { revokeCertificate, revokeHost, DEFAULT_REVOKE_REASON, type HostRevocation } from './revocation';
export { reasonViolation } from './revoke-host';
export { nameViolation } from './validation';
export { loadOrCreateStoredAuthority } from './authority';
export { startLocalPostgres, type LocalPostgres } from './storage';

/** Trailing metadata with which a standby refuses an agent session: where the leader is. */
export const LEADER_METADATA_KEY = 'podium-leader';

/** Events after which this process's revocation list is read again at once (see RevocationList). */
const REVOKING_EVENTS: ReadonlySet<string> = new Set(['host.revoked', 'certificate.revoked']);

export interface ServerConfig {
  /** This process's files: the SQLite database by default, the key file, an old ca/ to import. */
  dataDir: string;
  /** `postgres://…`, or a SQLite path (`sqlite:` optional); default `<dataDir>/podium.db`. */
  database?: string;
  /**
   * The key file that opens the CA key sealed in the database (32 random bytes, base64; made on
   * first start when absent). Every Pod API process on one database needs the same. Default
   * `<dataDir>/ca-key`.
   */
  caKeyFile?: string;
  /** Names this process to the database and to the other processes (default: random). */
  processName?: string;
  host: string;
  port: number;
  /**
   * Host names and addresses the server certificate names, so that agents on other machines can
   * verify it. Empty: the listen address (and localhost with 127.0.0.1 when it is a loopback or
   * wildcard address).
   */
  advertise: readonly string[];
  trustDomain: string;
  /** A host silent for longer is down and its replicas are placed again (on a small fleet: the
   *  TTL and the interval grow together with maxHeartbeatsPerSecond). */
  hostTtlMs: number;
  heartbeatIntervalMs: number;
  /**
   * Heartbeats the Pod API hears per second at most (0: no limit): past `rate × interval` hosts,
   * agents are told to heartbeat less often, and the TTL keeps its ratio to the interval.
   */
  maxHeartbeatsPerSecond: number;
  /**
   * After a start, how long hosts that were up have to reconnect before they are marked down
   * (at least the TTL): agents reconnect with jittered backoff of up to 10 s, so one TTL would
   * mark a fleet down (and re-place its replicas) just for having waited out its backoff.
   */
  restartGraceMs: number;
  /**
   * Agent sessions admitted per second (0: no limit). A host over the rate is told when to come
   * back, and the restart grace grows to what the whole fleet needs at this rate.
   */
  admitRatePerSecond: number;
  /** How often the orchestrator checks replicas and heartbeats. */
  orchestratorIntervalMs: number;
  certLifetimeSeconds: number;
  /** Workload certificates (the identities of instances in the mesh) live this long. */
  workloadCertLifetimeSeconds: number;
  /** Published endpoints' names with a certificate of the Pod API's CA end in `<tenant>.<publicDomain>`. */
  publicDomain: string;
  /** Certificates of the Pod API's CA for published endpoints live this long; renewed with a third left. */
  endpointCertLifetimeSeconds: number;
  /** How often the leader looks for endpoint certificates to renew. */
  endpointRenewCheckMs: number;
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
  /** Hosts a round's lots sample their candidates from (drawn per round): the calls a round
   *  sends stay about the same on 1,000 hosts as on 10,000. */
  windowHosts: number;
  /** The leader lease: lapsed when not renewed for leaseMs; renewed every leaseRenewMs. */
  leaseMs: number;
  leaseRenewMs: number;
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
  admitRatePerSecond: 200,
  heartbeatIntervalMs: 2_000,
  maxHeartbeatsPerSecond: 400,
  orchestratorIntervalMs: 500,
  certLifetimeSeconds: 24 * 3600,
  workloadCertLifetimeSeconds: 3600,
  publicDomain: 'podium.test',
  endpointCertLifetimeSeconds: ENDPOINT_CERT_LIFETIME_SECONDS,
  endpointRenewCheckMs: 60_000,
  revocationPollMs: 250,
  pendingRetryMs: 3_000,
  restartBackoffMs: 2_000,
  restartBackoffMaxMs: 5 * 60_000,
  failureWindowMs: 10 * 60_000,
  bidDeadlineMs: 1_000,
  awardTimeoutMs: 10_000,
  maxCandidatesPerLot: 16,
  windowHosts: 1024,
  leaseMs: 3_000,
  leaseRenewMs: 1_000,
  // 64 cores, 256 GiB, 500 replicas: a bound on what one tenant can queue, not a fleet's size.
  defaultQuota: { cpuMillis: 64_000, memoryMib: 256 * 1024, instances: 500 } as QuotaLimits,
} as const;

export interface RunningServer {
  port: number;
  ca: Authority;
  storage: Storage;
  /** Whether this process leads now, and at which epoch. */
  leadership: Leadership;
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
  const database = config.database ?? join(config.dataDir, 'podium.db');
  // SQLite is one process per file: a stable name lets a restarted server (even one that was
  // SIGKILLed) take its lease back at once. On PostgreSQL every process has a name of its own.
  const processName = config.processName ?? (/^postgres(ql)?:\/\//.test(database) ? `pod-api-${randomBytes(4).toString('hex')}` : 'embedded');
  const storage = await Storage.open(database, { processName });
  let ca: Authority;
  let sealingKey: Buffer;
  try {
    sealingKey = await loadOrCreateKeyFile(config.caKeyFile ?? join(config.dataDir, 'ca-key'));
    ca = await loadOrCreateStoredAuthority(storage, config.trustDomain, sealingKey, join(config.dataDir, 'ca'));
  } catch (err) {
    await storage.close();
    throw err;
  }
  const now = () => Date.now();
  const liveness = new HostLiveness();

  // The revocation list is loaded before the listener opens, so that no revoked certificate is
  // admitted in between; `listener` is set just below, before any connection can arrive.
  let listener: TlsListener | null = null;
  let revokedHosts: RevokedHosts | null = null;
  const revocations = new RevocationList(
    revocationsOf(storage),
    { pollMs: config.revocationPollMs, now },
    (revoked) => {
      // The proxies refuse a revoked host's workload certificates (which no list names).
      revokedHosts?.revoked(revoked);
      const closed = listener?.closeConnectionsOf(revoked.map((c) => c.serial)) ?? 0;
      if (closed > 0) log.warn({ serials: revoked.map((c) => c.serial), connections: closed }, 'closed the connections of revoked certificates');
    },
    log.child({ module: 'revocations' }),
  );
  await revocations.start();
  const trust: CaTrust = Object.freeze({
    trustDomain: ca.trustDomain,
    caCertPem: ca.caCertPem,
    isRevoked: (serial: string) => revocations.isRevoked(serial),
  });

  // Who leads: set by the leadership loop below, read by every fenced writer.
  let leadership: Leadership | null = null;
  const leader = {
    get epoch() {
      return leadership?.epoch ?? null;
    },
  };
  // Admitted within 50 ms of its slot: an agent that waits what it was told is not sent back.
  const admission = new SessionAdmission({ ratePerSecond: config.admitRatePerSecond, slackMs: 50 });
  const pacing = new HeartbeatPacing({ baseIntervalMs: config.heartbeatIntervalMs, baseTtlMs: config.hostTtlMs, maxPerSecond: config.maxHeartbeatsPerSecond });
  const metrics: ServerMetrics = new ServerMetrics(storage, (): number => sessions.connectedHosts().size, () => leader.epoch, () => admission.deferred, () => ({ heard: sessions.heartbeatsHeard, intervalMs: pacing.intervalMs }));
  const workloads = new WorkloadCertificates(storage, ca, config.workloadCertLifetimeSeconds, log.child({ module: 'workload-certificates' }), metrics.registry);
  const sessions: AgentSessions = new AgentSessions(storage, leader, trust, liveness, { pacing, now, admission, workloads }, log.child({ module: 'sessions' }));
  log.info({ seed: config.seed }, 'auction seed');
  const auctioneer = new Auctioneer(
    storage,
    leader,
    sessions,
    {
      batchSize: 1024,
      batchWindowMs: 5,
      bidDeadlineMs: config.bidDeadlineMs,
      awardTimeoutMs: config.awardTimeoutMs,
      maxCandidatesPerLot: config.maxCandidatesPerLot,
      windowHosts: config.windowHosts,
      retryParkedMs: config.pendingRetryMs,
      avoidFailuresMs: config.failureWindowMs,
      random: seededRandom(config.seed),
      now,
    },
    log.child({ module: 'auction' }),
    metrics,
  );
  sessions.auction = auctioneer;
  const registry = new ServiceRegistry(
    storage,
    { get: (host) => sessions.get(host), meshAddressOf: (host) => sessions.get(host)?.meshAddress ?? '' },
    sealingKey,
    log.child({ module: 'registry' }),
  );
  sessions.registry = registry;
  // What the list had before the sessions were made (its first load), then what it learns.
  revokedHosts = new RevokedHosts({ all: () => sessions.all() }, config.workloadCertLifetimeSeconds * 1000, now);
  revokedHosts.revoked(revocations.all());
  sessions.revokedHosts = revokedHosts;
  const orchestrator = new Orchestrator(
    storage,
    liveness,
    leader,
    {
      hostTtlMs: (at) => pacing.ttlMs(at),
      restartBackoffMs: config.restartBackoffMs,
      restartBackoffMaxMs: config.restartBackoffMaxMs,
      failureWindowMs: config.failureWindowMs,
      now,
    },
    log.child({ module: 'orchestrator' }),
    () => auctioneer.kick(),
  );

  // Committed events, from this process or any other, that someone must act on.
  storage.feed.subscribe((e) => {
    // Revocations: this process's list is read again at once (the poll would see them too).
    if (REVOKING_EVENTS.has(e.type)) void revocations.refresh().catch(() => undefined);
    if (leader.epoch === null) return;
    // Desired state written by any process: the leader auctions new lots, and tells the hosts
    // of deleted instances to remove them (capacity freed).
    if (e.type === 'instance.pending' || e.type === 'instance.requeued') auctioneer.kick();
    // Where an environment's instances run changed: the proxies of its hosts are told.
    if (e.type.startsWith('instance.') || e.type.startsWith('service.')) registry.changed(e.tenant, e.environment);
    if (e.type === 'instance.deleted' && e.host) {
      sessions.stopInstance(e.host, e.instance);
      auctioneer.fleetChanged();
    }
  });

  const server = new Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_permit_without_calls': 1 });
  server.addService(
    PodApiService,
    podApiHandlers({
      storage,
      ca: trust,
      orchestrator,
      sessions,
      liveness,
      kickAuction: () => auctioneer.kick(),
      fleetChanged: () => auctioneer.fleetChanged(),
      defaultQuota: config.defaultQuota,
      endpoints: { ca, sealingKey, publicDomain: config.publicDomain, lifetimeSeconds: config.endpointCertLifetimeSeconds },
      log: log.child({ module: 'pod-api' }),
    }),
  );
  const agentHandlers: AgentServiceServer = {
    connect: (call) => {
      // A standby holds no agent sessions: it says where the leader is, and the agent goes there.
      if (leader.epoch === null) {
        const md = new Metadata();
        if (leadership?.leaderAddress) md.set(LEADER_METADATA_KEY, leadership.leaderAddress);
        call.emit('error', { code: status.FAILED_PRECONDITION, details: `this Pod API process does not lead; the leader is ${leadership?.leaderAddress || 'not known yet'}`, metadata: md });
        return;
      }
      sessions.connect(call);
    },
  };
  server.addService(AgentServiceService, agentHandlers);
  server.addService(
    CertificateServiceService,
    certificateHandlers({ storage, ca, trust, certLifetimeSeconds: config.certLifetimeSeconds, log: log.child({ module: 'certificates' }) }),
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
    await storage.close();
    throw err;
  }
  const tlsListener = listener;
  const port = tlsListener.port;
  const rotation = setInterval(() => {
    issueServerIdentity().then(
      (next) => {
        tlsListener.setIdentity(next);
        log.info('server certificate rotated');
      },
      (err) => log.error({ err }, 'server certificate rotation failed; the current one stays'),
    );
  }, Math.min((config.certLifetimeSeconds * 1000) / 2, 2 ** 31 - 1));

  // The leader's loops. On becoming leader, hosts that the store has up get the restart grace
  // (at least a TTL) to reconnect to this process before anything moves; on losing the lease,
  // everything only a leader does stops and the agents are sent on.
  let ticking = false;
  const tick = () => {
    if (leader.epoch === null || ticking) return;
    ticking = true;
    orchestrator
      .tick()
      .catch((err) => log.error({ err: (err as Error).message }, 'orchestrator tick failed'))
      .finally(() => (ticking = false));
  };
  // The timer measures its own lateness: much later than its interval, this process stalled, and
  // the stall is credited to every host before the tick looks for silent ones.
  let lastTimer = now();
  const timer = setInterval(() => {
    const at = now();
    const late = at - lastTimer - config.orchestratorIntervalMs;
    lastTimer = at;
    if (late > config.orchestratorIntervalMs) {
      liveness.creditStall(late, at);
      log.warn({ stalledMs: late }, 'this process stalled; the time is credited to every host');
    }
    tick();
  }, config.orchestratorIntervalMs);
  // Lots parked for a reason only agents know (an image being pulled, no answer) are tried again
  // after pendingRetryMs; those no host could take wait for the fleet to change (LotParking).
  const retry = setInterval(() => leader.epoch !== null && auctioneer.kick(), config.pendingRetryMs);
  const endpointRenewal = new EndpointRenewal(storage, leader, { ca, sealingKey, lifetimeSeconds: config.endpointCertLifetimeSeconds }, log.child({ module: 'endpoints' }));
  const renewals = setInterval(() => {
    endpointRenewal.tick(now()).catch((err: Error) => log.warn({ err: err.message }, 'endpoint certificate renewal failed; tried again'));
  }, config.endpointRenewCheckMs);
  leadership = new Leadership(
    storage,
    { holder: processName, address: `${config.advertise[0] ?? config.host}:${port}`, leaseMs: config.leaseMs, renewMs: config.leaseRenewMs, pollMs: Math.max(100, config.leaseRenewMs / 2) },
    {
      lead: () => {
        void (async () => {
          // A fair chance for every host: the grace, or as long as admission takes to let the whole
          // fleet in (plus a TTL), whichever is longer; a host given a later slot is held to it.
          // The heartbeat interval (and TTL) are those of the whole fleet expected back.
          const up = (await storage.read((r) => r.hosts.list())).filter((h) => h.state === 'up');
          sessions.expectFleet(up.length, now() + config.restartGraceMs + admission.spanMs(up.length));
          const ttlMs = pacing.ttlMs(now());
          const graceMs = Math.max(config.restartGraceMs, ttlMs + admission.spanMs(up.length));
          const graceUntil = now() + graceMs - ttlMs;
          for (const h of up) liveness.up(h.id, graceUntil);
          log.info({ hosts: up.length, graceMs }, 'hosts that were up have this long to reconnect');
          auctioneer.resume();
          tick();
          auctioneer.fleetChanged();
        })().catch((err) => log.error({ err }, 'taking the lead failed'));
      },
      follow: (why) => {
        auctioneer.pause();
        sessions.closeAll(`this Pod API process no longer leads (${why})`);
      },
    },
    log.child({ module: 'leadership' }),
  );
  await leadership.start();
  log.info({ address: `${config.host}:${port}`, fingerprint: ca.fingerprint, leading: leader.epoch !== null, process: processName }, 'Pod API listening');

  const running: RunningServer = {
    port,
    ca,
    storage,
    leadership,
    metrics,
    revocations,
    close: async () => {
      clearInterval(timer);
      clearInterval(retry);
      clearInterval(renewals);
      clearInterval(rotation);
      await leadership!.stop();
      revocations.stop();
      auctioneer.stop();
      sessions.closeAll('server shutting down');
      // Streams that never end by themselves (WatchEvents) get a moment, then are cut.
      const graceful = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      const grace = new Promise<void>((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS).unref());
      await Promise.race([graceful, grace]);
      server.forceShutdown();
      await tlsListener.close();
      await storage.close();
    },
  };
  return running;
}

/** How long close() lets open calls finish before it cuts them. */
const SHUTDOWN_GRACE_MS = 1_000;
