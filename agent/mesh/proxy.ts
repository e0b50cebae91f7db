/**
 * The host's proxy: every connection between the containers of an environment goes through it,
 * and between hosts only as mutual TLS between proxies.
 *
 * ```
 *  caller container ──TCP──► local listener ══mTLS══► mesh listener ──TCP──► target container
 *   (env network)        (this host, on the env        (the target's host)   (its env network)
 *                         network's gateway address)
 * ```
 *
 * Outbound. For each environment with a network on this host, a listener on that network's
 * gateway address for each port of each service of the environment (from the registry): this is
 * the `<SERVICE>_HOST:<SERVICE>_PORT` a container is given. The caller is known by its source
 * address: it must be the container of an instance of that environment on this host, and the
 * proxy speaks for it with that instance's workload certificate. It connects to the proxy of a
 * host that runs the target (the registry's endpoints, taken in turn, the next one tried when one
 * fails) and checks that the peer presents the target service's identity.
 *
 * Inbound. One TLS listener per host that requires a client certificate of the platform's CA.
 * The server name (SNI) names the target (`targetServerName`); the proxy answers with the
 * certificate of a local instance of that service, so a host that runs none cannot even finish
 * the handshake. It admits the connection only when the caller's workload identity may reach the
 * target: the same tenant and environment, or an environment of the same tenant that the target's
 * registry entry allows; never another tenant, never anything but a workload identity, never a
 * certificate of a revoked host (the Pod API pushes the revoked hosts; a workload certificate
 * names its host). Every refusal is logged with the caller's identity and counted.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { parseWorkloadId, uriSansOf, workloadHostOf, workloadSpiffeId } from '../../certs';
import type { MeshDirectory } from './directory';
import { localEndpoints } from './environment';

export interface MeshTarget {
  tenant: string;
  environment: string;
  service: string;
  port: number;
}

type Workload = Omit<MeshTarget, 'port'>;

/** What the proxy needs of the instances of this host. */
export interface LocalInstances {
  /** Running instances of a service on this host and the address their container listens on. */
  targets(tenant: string, environment: string, service: string): Array<{ instanceId: string; address: string }>;
  /** The instance whose container connects from `address` on the environment's network, if any. */
  callerAt(tenant: string, environment: string, address: string): string | undefined;
  /** The workload identity of whatever local instance connects from `address`, of any tenant: for
   *  the log of a refusal. */
  identityAt?(address: string): string | undefined;
}

/** The workload certificates of this host's instances (agent/workload-identities.ts). */
export interface IdentitySource {
  get(instanceId: string): { keyPem: string; certPem: string; serial: string } | undefined;
}

export interface MeshProxyOptions {
  trustDomain: string;
  caPem: string;
  identities: IdentitySource;
  directory: MeshDirectory;
  local: LocalInstances;
  /** A proxy that does not answer within this long is skipped for the next endpoint. */
  connectTimeoutMs?: number;
  registry?: Registry;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SNI_SUFFIX = 'mesh.podium';

/** `p<port>.<service>.<environment>.<tenant>.mesh.podium`: every part is a DNS label already. */
export function targetServerName(t: MeshTarget): string {
  for (const part of [t.service, t.environment, t.tenant]) if (!LABEL.test(part)) throw new Error(`${JSON.stringify(part)} is not a DNS label`);
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new Error(`port ${t.port} is out of range`);
  return `p${t.port}.${t.service}.${t.environment}.${t.tenant}.${SNI_SUFFIX}`;
}

export function parseServerName(name: string | undefined | null | false): MeshTarget | null {
  if (typeof name !== 'string') return null;
  const parts = name.split('.');
  if (parts.length !== 6 || `${parts[4]}.${parts[5]}` !== SNI_SUFFIX) return null;
  const [p, service, environment, tenant] = parts as [string, string, string, string];
  const port = /^p[1-9][0-9]{0,4}$/.test(p) ? Number(p.slice(1)) : NaN;
  if (!(port <= 65535) || ![service, environment, tenant].every((x) => LABEL.test(x))) return null;
  return { tenant, environment, service, port };
}

const envKey = (tenant: string, environment: string) => `${tenant}\0${environment}`;

interface LocalSide {
  tenant: string;
  environment: string;
  bindAddress: string;
  /** Listeners by port, for a service of `environment` (its own) or of another it imports. */
  listeners: Map<number, { server: net.Server; service: string; environment: string }>;
}

export class MeshProxy {
  private inbound: tls.Server | null = null;
  private edge: tls.Server | null = null;
  /** Published endpoints' TLS contexts, by hostname, with the certificate they were made of. */
  private readonly edgeContexts = new Map<string, { certPem: string; context: tls.SecureContext }>();
  private readonly locals = new Map<string, LocalSide>();
  private readonly contexts = new Map<string, tls.SecureContext>();
  private readonly turn = new Map<string, number>();
  private readonly sockets = new Set<net.Socket>();
  /** Revoked hosts and when: their workload certificates issued until then are refused. */
  private readonly revokedHosts = new Map<string, number>();
  /** Live connections by the host of the peer proxy's certificate, to close at its revocation. */
  private readonly peersOf = new Map<string, Set<net.Socket>>();
  private readonly refusals: Counter<'direction' | 'reason'>;
  private readonly connections: Counter<'direction'>;

  constructor(
    private readonly opts: MeshProxyOptions,
    private readonly log: Logger,
  ) {
    const registers = opts.registry ? [opts.registry] : [];
    this.refusals = new Counter({
      name: 'podium_mesh_refused_total',
      help: 'Connections the proxy refused, by direction (outbound: from a local container; inbound: from another proxy; edge: to a published endpoint) and reason.',
      labelNames: ['direction', 'reason'],
      registers,
    });
    this.connections = new Counter({
      name: 'podium_mesh_connections_total',
      help: 'Connections the proxy carried, by direction.',
      labelNames: ['direction'],
      registers,
    });
    opts.directory.onChange = (tenant, environment) => void this.syncLocal(tenant, environment);
  }

  /** Opens the inbound listener; resolves with the port it listens on. */
  listen(host: string, port: number): Promise<number> {
    const server = tls.createServer({
      // A caller that ends its side may still be answered (the target's answer after its FIN).
      allowHalfOpen: true,
      // Every client must present a certificate; whether the CA signed it, and that it is current,
      // is checked in admit(), first, so that a refusal is logged with what the caller claimed and
      // why (expired, another CA) rather than as a reset handshake.
      requestCert: true,
      rejectUnauthorized: false,
      ca: this.opts.caPem,
      minVersion: 'TLSv1.3',
      SNICallback: (name, cb) => {
        const target = parseServerName(name);
        const context = target && this.contextFor(target);
        if (!context) return cb(new Error(`no instance of ${name} here`), undefined);
        cb(null, context);
      },
    });
    server.on('secureConnection', (socket) => this.admit(socket));
    server.on('tlsClientError', (err, socket) => {
      this.refuse('inbound', 'handshake', { peer: socket.remoteAddress, err: err.message, code: (err as NodeJS.ErrnoException).code });
    });
    this.inbound = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
    });
  }

  /**
   * Opens the edge listener: HTTPS for the published endpoints (Service.expose) of the services
   * this host runs, chosen by the name the client asks for (SNI) and forwarded to a local running
   * instance of the service; a name this host serves nothing for fails the handshake. Resolves
   * with the port it listens on.
   */
  listenEdge(host: string, port: number): Promise<number> {
    const server = tls.createServer({
      allowHalfOpen: true,
      minVersion: 'TLSv1.2',
      SNICallback: (name, cb) => {
        const context = this.edgeContextFor(name);
        if (!context) return cb(new Error(`nothing published as ${name} here`), undefined);
        cb(null, context);
      },
    });
    server.on('secureConnection', (socket) => this.edgeConnection(socket));
    server.on('tlsClientError', (err, socket) => this.refuse('edge', 'handshake', { peer: socket.remoteAddress, err: err.message }));
    this.edge = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
    });
  }

  private edgeContextFor(hostname: string): tls.SecureContext | null {
    const found = this.opts.directory.publisher(hostname);
    if (!found || this.opts.local.targets(found.tenant, found.environment, found.service.name).length === 0) return null;
    const { certificatePem, privateKeyPem } = found.service.published!;
    const held = this.edgeContexts.get(hostname);
    if (held && held.certPem === certificatePem) return held.context;
    const context = tls.createSecureContext({ cert: certificatePem, key: privateKeyPem });
    this.edgeContexts.set(hostname, { certPem: certificatePem, context });
    return context;
  }

  private edgeConnection(socket: tls.TLSSocket): void {
    this.track(socket);
    socket.pause();
    const hostname = typeof socket.servername === 'string' ? socket.servername : '';
    const found = this.opts.directory.publisher(hostname);
    const local = found ? this.opts.local.targets(found.tenant, found.environment, found.service.name) : [];
    if (!found || local.length === 0) {
      this.refuse('edge', 'no-instance', { hostname, peer: socket.remoteAddress });
      return void socket.destroy();
    }
    const key = `edge\0${hostname}`;
    const n = this.turn.get(key) ?? 0;
    this.turn.set(key, n + 1);
    const pick = local[n % local.length]!;
    const upstream = net.connect({ host: pick.address, port: found.service.published!.port, allowHalfOpen: true });
    this.track(upstream);
    upstream.once('connect', () => {
      upstream.removeAllListeners('error');
      this.connections.inc({ direction: 'edge' });
      splice(socket, upstream);
    });
    upstream.once('error', (err) => {
      this.refuse('edge', 'target-down', { hostname, instance: pick.instanceId, err: err.message });
      socket.destroy();
    });
  }

  /**
   * The environment has a network on this host, with `bindAddress` its gateway: its containers'
   * endpoints open there, one listener per port of each service the registry lists, and follow it.
   */
  async openLocal(tenant: string, environment: string, bindAddress: string): Promise<void> {
    const key = envKey(tenant, environment);
    if (!this.locals.has(key)) this.locals.set(key, { tenant, environment, bindAddress, listeners: new Map() });
    await this.syncLocal(tenant, environment);
  }

  /** The environment's network is gone from this host: its listeners close. */
  closeLocal(tenant: string, environment: string): void {
    const side = this.locals.get(envKey(tenant, environment));
    if (!side) return;
    for (const l of side.listeners.values()) l.server.close();
    this.locals.delete(envKey(tenant, environment));
  }

  async close(): Promise<void> {
    for (const side of [...this.locals.values()]) this.closeLocal(side.tenant, side.environment);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.inbound ? this.inbound.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.edge ? this.edge.close(() => resolve()) : resolve()));
  }

  /** Listeners for every port of every service the environment reaches, none for what is gone. */
  private async syncLocal(tenant: string, environment: string): Promise<void> {
    const side = this.locals.get(envKey(tenant, environment));
    if (!side) return;
    const services = this.opts.directory.services(tenant, environment);
    const wanted = localEndpoints(services, environment);
    for (const svc of services) {
      const of = svc.environment || environment;
      for (const p of svc.ports) {
        const at = wanted.get(p.port);
        if (of !== environment && (at?.service !== svc.name || at.environment !== of)) {
          this.log.warn({ tenant, environment, imported: `${svc.name}.${of}`, port: p.port, shadowedBy: at && `${at.service}.${at.environment}` }, 'mesh: an imported service\'s port is taken here; not reachable on it');
        }
      }
    }
    for (const [port, l] of side.listeners) {
      const want = wanted.get(port);
      if (want && want.service === l.service && want.environment === l.environment) continue;
      l.server.close();
      side.listeners.delete(port);
    }
    for (const [port, want] of wanted) {
      if (side.listeners.has(port)) continue;
      const target: MeshTarget = { tenant, environment: want.environment, service: want.service, port };
      const server = net.createServer({ allowHalfOpen: true }, (socket) => this.outbound(socket, environment, target));
      side.listeners.set(port, { server, service: want.service, environment: want.environment });
      await new Promise<void>((resolve) => {
        server.once('error', (err) => {
          this.log.error({ tenant, environment, service: want.service, of: want.environment, port, err: err.message }, 'mesh: cannot listen for the service');
          side.listeners.delete(port);
          resolve();
        });
        server.listen(port, side.bindAddress, () => resolve());
      });
    }
  }

  /** A local container of `environment` connects to a service it reaches (its own environment's or an import). */
  private outbound(socket: net.Socket, environment: string, target: MeshTarget): void {
    this.track(socket);
    socket.pause();
    const address = stripV4Mapped(socket.remoteAddress ?? '');
    const caller = this.opts.local.callerAt(target.tenant, environment, address);
    if (caller === undefined) {
      this.refuse('outbound', 'unknown-caller', { peer: address, caller: this.opts.local.identityAt?.(address) ?? 'no instance of this host', environment, target: targetServerName(target) });
      return void socket.destroy();
    }
    const identity = this.opts.identities.get(caller);
    if (!identity) {
      this.refuse('outbound', 'no-identity', { caller, target: targetServerName(target) });
      return void socket.destroy();
    }
    const endpoints = (this.opts.directory.service(target.tenant, environment, target.service, target.environment)?.endpoints ?? []).map((e) => e.meshAddress);
    if (endpoints.length === 0) {
      this.refuse('outbound', 'no-endpoint', { caller, target: targetServerName(target) });
      return void socket.destroy();
    }
    // Round robin over the endpoints; on failure the next, each at most once.
    const key = `${envKey(target.tenant, target.environment)}\0${target.service}`;
    const first = (this.turn.get(key) ?? 0) % endpoints.length;
    this.turn.set(key, first + 1);
    const order = [...endpoints.slice(first), ...endpoints.slice(0, first)];
    const expected = workloadSpiffeId(this.opts.trustDomain, target.tenant, target.environment, target.service);
    const attempt = (i: number): void => {
      if (socket.destroyed) return;
      if (i >= order.length) {
        this.refuse('outbound', 'unreachable', { caller, target: targetServerName(target), tried: order });
        return void socket.destroy();
      }
      const [host, portText] = splitHostPort(order[i]!);
      // allowHalfOpen is a socket option tls.connect passes on; its typings leave it out.
      const upstream = tls.connect({
        allowHalfOpen: true,
        host,
        port: Number(portText),
        servername: targetServerName(target),
        // One context per certificate: reading the key and CA again for each connection was most
        // of a new connection's cost.
        secureContext: this.contextOf(identity),
        minVersion: 'TLSv1.3',
        // The peer must be an instance of the target, whatever host answers.
        checkServerIdentity: (_host: string, cert: tls.PeerCertificate) =>
          !uriSansOf(cert.subjectaltname).includes(expected)
            ? new Error(`the peer is not ${expected}`)
            : this.isRevoked(workloadHostOf(cert.subject), Date.parse(cert.valid_from))
              ? new Error(`the peer's host ${workloadHostOf(cert.subject) ?? '(none)'} is revoked`)
              : undefined,
      } as tls.ConnectionOptions);
      this.track(upstream);
      const timer = setTimeout(() => upstream.destroy(new Error('timed out')), this.opts.connectTimeoutMs ?? 3_000);
      upstream.once('secureConnect', () => {
        clearTimeout(timer);
        upstream.removeAllListeners('error');
        this.peerIs(workloadHostOf(upstream.getPeerCertificate().subject) ?? '', upstream);
        this.connections.inc({ direction: 'outbound' });
        splice(socket, upstream);
      });
      upstream.once('error', (err) => {
        clearTimeout(timer);
        this.log.warn({ caller, endpoint: order[i], err: err.message }, 'mesh: endpoint failed; trying the next');
        upstream.destroy();
        attempt(i + 1);
      });
    };
    attempt(0);
  }

  /** A proxy connected for a local target: admitted only for an allowed workload identity. */
  private admit(socket: tls.TLSSocket): void {
    this.track(socket);
    const target = parseServerName(socket.servername);
    const peer = socket.getPeerX509Certificate();
    const uris = uriSansOf(peer?.subjectAltName);
    const callerId = uris.length === 1 ? uris[0]! : '';
    const caller = parseWorkloadId(this.opts.trustDomain, callerId);
    const why = !socket.authorized
      ? 'untrusted'
      : !target
      ? 'bad-target'
      : !peer || !caller
        ? 'not-a-workload'
        : this.isRevoked(workloadHostOf(peer.subject), Date.parse(peer.validFrom))
          ? 'revoked'
          : !this.mayReach(caller, target)
            ? 'not-allowed'
            : null;
    if (why !== null) {
      const detail = why === 'untrusted' ? { certificate: String(socket.authorizationError ?? 'none presented') } : {};
      this.refuse('inbound', why, { caller: callerId || peer?.subject || '', host: workloadHostOf(peer?.subject), target: socket.servername || '', ...detail });
      return void socket.destroy();
    }
    this.peerIs(workloadHostOf(peer!.subject)!, socket);
    const local = this.opts.local.targets(target!.tenant, target!.environment, target!.service);
    if (local.length === 0) {
      this.refuse('inbound', 'no-instance', { caller: callerId, target: socket.servername });
      return void socket.destroy();
    }
    const key = `in\0${envKey(target!.tenant, target!.environment)}\0${target!.service}`;
    const n = this.turn.get(key) ?? 0;
    this.turn.set(key, n + 1);
    const pick = local[n % local.length]!;
    const upstream = net.connect({ host: pick.address, port: target!.port, allowHalfOpen: true });
    this.track(upstream);
    socket.pause();
    upstream.once('connect', () => {
      upstream.removeAllListeners('error');
      this.connections.inc({ direction: 'inbound' });
      this.log.debug({ caller: callerId, target: socket.servername, instance: pick.instanceId }, 'mesh: admitted');
      splice(socket, upstream);
    });
    upstream.once('error', (err) => {
      this.refuse('inbound', 'target-down', { caller: callerId, target: socket.servername, instance: pick.instanceId, err: err.message });
      socket.destroy();
    });
  }

  /** Same tenant and environment; or another environment of the same tenant the target allows. */
  private mayReach(caller: Workload, target: MeshTarget): boolean {
    if (caller.tenant !== target.tenant) return false;
    if (caller.environment === target.environment) return true;
    const svc = this.opts.directory.service(target.tenant, target.environment, target.service);
    return svc?.allowFromEnvironments.includes(caller.environment) ?? false;
  }

  /** The TLS context of a local instance of the target, one per certificate. */
  private contextFor(target: MeshTarget): tls.SecureContext | null {
    for (const { instanceId } of this.opts.local.targets(target.tenant, target.environment, target.service)) {
      const id = this.opts.identities.get(instanceId);
      if (id) return this.contextOf(id);
    }
    return null;
  }

  /**
   * Hosts revoked, with when: their proxies' workload certificates issued until then are refused
   * from now on, as caller and as target, and the connections they carry now are closed.
   */
  revokeHosts(hosts: ReadonlyArray<{ host: string; revokedAtMs: number }>): void {
    for (const { host, revokedAtMs } of hosts) {
      if ((this.revokedHosts.get(host) ?? -Infinity) >= revokedAtMs) continue;
      this.revokedHosts.set(host, revokedAtMs);
      const live = this.peersOf.get(host);
      if (live && live.size > 0) {
        this.log.warn({ host, connections: live.size }, 'mesh: closing the connections of a revoked host');
        for (const s of live) s.destroy();
      }
    }
  }

  /** Whether a workload certificate of `host`, valid from `validFrom`, was issued before its host's revocation. */
  private isRevoked(host: string | undefined, validFrom: number): boolean {
    if (host === undefined) return true;
    const at = this.revokedHosts.get(host);
    return at !== undefined && !(validFrom > at);
  }

  private peerIs(host: string, socket: net.Socket): void {
    let set = this.peersOf.get(host);
    if (!set) this.peersOf.set(host, (set = new Set()));
    set.add(socket);
    socket.once('close', () => {
      set.delete(socket);
      if (set.size === 0 && this.peersOf.get(host) === set) this.peersOf.delete(host);
    });
  }

  /** The TLS context of a certificate, made once. Contexts of certificates no instance holds any
   *  more (renewed or gone) are dropped as the cache grows. */
  private contextOf(id: { keyPem: string; certPem: string; serial: string }): tls.SecureContext {
    let ctx = this.contexts.get(id.serial);
    if (!ctx) {
      if (this.contexts.size >= 1024) this.contexts.clear();
      ctx = tls.createSecureContext({ key: id.keyPem, cert: id.certPem, ca: this.opts.caPem, minVersion: 'TLSv1.3' });
      this.contexts.set(id.serial, ctx);
    }
    return ctx;
  }

  private refuse(direction: 'inbound' | 'outbound' | 'edge', reason: string, detail: Record<string, unknown>): void {
    this.refusals.inc({ direction, reason });
    this.log.warn({ direction, reason, ...detail }, 'mesh: connection refused');
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    // A reset peer before the splice is an ordinary end here, not a crash of the agent.
    s.on('error', () => undefined);
    s.once('close', () => this.sockets.delete(s));
  }
}

/**
 * Bytes both ways. Each side's end is passed on as an end (half-close: a caller that has sent its
 * request and ended still gets the answer); the pair is closed when both sides have closed, or at
 * once on an error of either.
 */
function splice(a: net.Socket, b: net.Socket): void {
  // No Nagle: a proxy that holds back a small write waits for the peer's delayed ACK (40 ms).
  a.setNoDelay(true);
  b.setNoDelay(true);
  a.pipe(b);
  b.pipe(a);
  a.resume();
  const end = () => {
    a.destroy();
    b.destroy();
  };
  a.once('error', end);
  b.once('error', end);
  a.once('close', end);
  b.once('close', end);
}

function splitHostPort(address: string): [string, string] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i).replace(/^\[|\]$/g, ''), address.slice(i + 1)];
}

function stripV4Mapped(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
