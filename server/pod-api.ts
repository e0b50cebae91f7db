/**
 * PodApi: what customers (through the gateway) and operators call. Each handler states the roles
 * that may call it; every one scopes what it reads and writes to the caller's tenant, so another
 * tenant's environment or service is NOT_FOUND, exactly like one that does not exist.
 */
import { Metadata, status, type ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type {
  CreateEnvironmentRequest,
  CreateServiceRequest,
  DeleteServiceRequest,
  DeleteServiceResponse,
  GetServiceRequest,
  ListEnvironmentsRequest,
  ListEnvironmentsResponse,
  ListHostsRequest,
  ListHostsResponse,
  ListServicesRequest,
  ListServicesResponse,
  PodApiServer,
  WatchEventsRequest,
} from '../gen/podium/v1/pod_api';
import { HostState, InstanceState, PlacementPolicy, type Environment, type Event, type Host, type Service } from '../gen/podium/v1/resources';
import type { Authority, Role } from '../certs';
import type { AgentSessions } from './agent-sessions';
import type { HostLiveness } from './host-liveness';
import { authorize, callerTenant, type CaTrust } from './auth';
import { assertNoViolations, PodiumError, toServiceError } from './errors';
import type { Orchestrator } from './orchestrator';
import { GroupCommit } from './group-commit';
import { assertWithinQuota, quotaHandlers } from './quota';
import { revokeHostHandler } from './revoke-host';
import type { EventRecord, HostRecord, InstanceRecord, QuotaLimits, ServiceRecord, Storage, UnitOfWork } from './storage';
import { unary } from './unary-handler';
import { exposeView, prepareExpose } from './published-endpoints';
import { nameViolation, portsView, validateEnvironmentName, validateService } from './validation';

const CUSTOMER: readonly Role[] = ['gateway', 'operator'];

const INSTANCE_STATES: Record<InstanceRecord['state'], InstanceState> = {
  pending: InstanceState.INSTANCE_STATE_PENDING,
  starting: InstanceState.INSTANCE_STATE_STARTING,
  running: InstanceState.INSTANCE_STATE_RUNNING,
  failed: InstanceState.INSTANCE_STATE_FAILED,
  lost: InstanceState.INSTANCE_STATE_LOST,
};

export interface PodApiDeps {
  storage: Storage;
  ca: CaTrust;
  orchestrator: Orchestrator;
  sessions: AgentSessions;
  /** Last heartbeats are in memory only (host-liveness.ts). */
  liveness: Pick<HostLiveness, 'lastSeen'>;
  kickAuction: () => void;
  /** Capacity was freed or the fleet changed: lots parked for want of it may fit now. */
  fleetChanged: () => void;
  /** The quota of a tenant that has none of its own. */
  defaultQuota: QuotaLimits;
  /** Published endpoints: the CA that signs their certificates, the key that seals their keys. */
  endpoints: { ca: Authority; sealingKey: Buffer; publicDomain: string; lifetimeSeconds: number };
  log: Logger;
}

async function requireEnvironment(storage: Storage, tenant: string, name: string): Promise<void> {
  const v = nameViolation('environment', name);
  if (v) assertNoViolations([v]);
  if (!(await storage.read((r) => r.environments.exists(tenant, name)))) throw PodiumError.notFound(`environment "${name}"`);
}

export function serviceView(svc: ServiceRecord, instances: InstanceRecord[]): Service {
  const pending = instances.filter((i) => i.state === 'pending');
  const active = instances.filter((i) => i.state === 'pending' || i.state === 'starting' || i.state === 'running').length;
  const failed = instances.filter((i) => i.state === 'failed').sort((a, b) => b.updatedAt - a.updatedAt);
  const replicas = `${svc.spec.replicas} replica${svc.spec.replicas === 1 ? '' : 's'}`;
  let pendingReason = '';
  if (pending.length > 0) {
    const why = pending[0]!.message;
    const unplaced = pending.length > 1 ? ` (${pending.length} unplaced)` : '';
    pendingReason = `${replicas}${unplaced}, ${why}`;
  } else if (active < svc.spec.replicas && failed.length > 0) {
    const n = failed.length;
    pendingReason =
      `${replicas}, ${svc.spec.replicas - active} waiting to restart after ` +
      `${n} failure${n === 1 ? '' : 's'} (last: ${failed[0]!.message || 'no reason given'})`;
  }
  return {
    name: svc.name,
    image: svc.spec.image,
    command: svc.spec.command,
    replicas: svc.spec.replicas,
    ha: svc.spec.ha,
    resources: svc.spec.resources,
    placement: svc.spec.placement === 'binpack' ? PlacementPolicy.PLACEMENT_POLICY_BINPACK : PlacementPolicy.PLACEMENT_POLICY_SPREAD,
    ports: portsView(svc.spec.ports),
    capabilities: svc.spec.capabilities,
    allow: svc.spec.allowFrom.map((environment) => ({ environment })),
    expose: exposeView(svc.spec.expose),
    readOnlyRoot: svc.spec.readOnlyRoot,
    writablePaths: svc.spec.writablePaths,
    environment: svc.environment,
    instances: instances.map((i) => ({
      id: i.id,
      host: i.host ?? '',
      state: INSTANCE_STATES[i.state],
      containerId: i.containerId,
      message: i.state === 'pending' ? '' : i.message,
    })),
    pendingReason,
    createTime: new Date(svc.createdAt),
  };
}

function hostView(h: HostRecord, placed: InstanceRecord[], lastSeen: number | undefined): Host {
  const mine = placed.filter((i) => i.host === h.id);
  return {
    id: h.id,
    pod: h.pod,
    provider: h.provider,
    state: h.state === 'up' ? HostState.HOST_STATE_UP : HostState.HOST_STATE_DOWN,
    capacity: h.capacity,
    allocated: {
      cpuMillis: mine.reduce((n, i) => n + i.resources.cpuMillis, 0),
      memoryMib: mine.reduce((n, i) => n + i.resources.memoryMib, 0),
    },
    labels: h.labels,
    apparmor: h.apparmor,
    lastHeartbeat: new Date(lastSeen ?? h.lastHeartbeat),
    instanceCount: mine.length,
  };
}

export function eventView(e: EventRecord): Event {
  return {
    sequence: e.sequence,
    time: new Date(e.time),
    type: e.type,
    environment: e.environment,
    service: e.service,
    instance: e.instance,
    host: e.host,
    message: e.message,
  };
}

/**
 * Each port of an environment is one service's: it is where the environment's containers reach
 * that service through the mesh (`<SERVICE>_PORT`, on one address per host and environment).
 * Under the tenant's lock, like the quota, so two creates cannot both take a port.
 */
async function assertPortsFree(u: UnitOfWork, rec: ServiceRecord): Promise<void> {
  const taken = new Map<number, string>();
  for (const other of await u.services.list(rec.tenant, rec.environment)) for (const p of other.spec.ports) taken.set(p.port, other.name);
  assertNoViolations(
    rec.spec.ports.flatMap((p, i) => {
      const owner = taken.get(p.port);
      return owner === undefined ? [] : [{ field: `ports[${i}].port`, description: `${p.port} is already service "${owner}"'s in this environment: each port of an environment belongs to one service` }];
    }),
  );
}

/** A published name is one service's in the whole platform, of any tenant. */
async function assertHostnameFree(u: UnitOfWork, hostname: string): Promise<void> {
  await u.lock(`hostname:${hostname}`);
  if (await u.services.publisherOf(hostname)) {
    // Whose it is is not said: it may be another tenant's.
    throw new PodiumError(status.ALREADY_EXISTS, `${hostname} is already published`, [{ field: 'expose.hostname', description: 'is already published by a service' }]);
  }
}

export function podApiHandlers(deps: PodApiDeps): PodApiServer {
  const { storage } = deps;
  const serviceWithInstances = async (svc: ServiceRecord) =>
    serviceView(svc, await storage.read((r) => r.instances.listOfService(svc.tenant, svc.environment, svc.name)));
  /**
   * One service and its lots, in a unit of work it may share with other creates: the lots as
   * stored, or why not. The environment is checked in the same unit, so that a create answered
   * from what it committed needs no read before or after it.
   */
  type CreateOutcome = InstanceRecord[] | 'no-environment' | 'exists';
  const createOne = async (u: UnitOfWork, rec: ServiceRecord): Promise<CreateOutcome> => {
    const { tenant, spec } = rec;
    // The tenant's lock: two creates cannot both fit in the same headroom of its quota.
    await u.lock(`quota:${tenant}`);
    if (!(await u.environments.exists(tenant, rec.environment))) return 'no-environment';
    if (await u.services.get(tenant, rec.environment, rec.name)) return 'exists';
    await assertPortsFree(u, rec);
    if (spec.expose) await assertHostnameFree(u, spec.expose.hostname);
    await assertWithinQuota(u, tenant, spec, deps.defaultQuota);
    if (!(await u.services.insert(rec))) return 'exists';
    u.emit({ tenant, type: 'service.created', environment: rec.environment, service: rec.name, message: `${spec.replicas} replicas of ${spec.image}` });
    const lots = await deps.orchestrator.ensureReplicas(u, rec);
    u.afterCommit(() => deps.kickAuction());
    return lots;
  };
  // Creates that arrive while one commits share the next commit (each commit is a disk sync);
  // one refused by its quota is tried alone, so it fails only its own caller.
  const creates = new GroupCommit<ServiceRecord, CreateOutcome>((batch) =>
    storage.transaction(async (u) => {
      const out: CreateOutcome[] = [];
      for (const rec of batch) out.push(await createOne(u, rec));
      return out;
    }),
  );
  return {
    ...quotaHandlers(deps),

    createEnvironment: unary<CreateEnvironmentRequest, Environment>(deps, CUSTOMER, async (req, tenant) => {
      const name = req.environment?.name ?? '';
      validateEnvironmentName(name);
      const now = Date.now();
      const created = await storage.transaction(async (u) => {
        if (!(await u.environments.insert(tenant, name, now))) return false;
        u.emit({ tenant, type: 'environment.created', environment: name, time: now });
        return true;
      });
      if (!created) throw new PodiumError(status.ALREADY_EXISTS, `environment "${name}" already exists`, [{ field: 'name', description: 'already exists' }]);
      return { name, tenant, createTime: new Date(now) };
    }),

    listEnvironments: unary<ListEnvironmentsRequest, ListEnvironmentsResponse>(deps, CUSTOMER, async (_req, tenant) => ({
      environments: (await storage.read((r) => r.environments.list(tenant))).map((e) => ({ name: e.name, tenant: e.tenant, createTime: new Date(e.createdAt) })),
    })),

    /**
     * Writes desired state only (the service and one pending lot per replica), so a standby
     * serves it as well as the leader; the leader's auctioneer hears of the lots through the event
     * feed. Roles: gateway, operator.
     */
    createService: unary<CreateServiceRequest, Service>(deps, CUSTOMER, async (req, tenant) => {
      const envName = nameViolation('environment', req.environment);
      if (envName) assertNoViolations([envName]);
      const { name, spec, expose } = validateService(req.service);
      const now = Date.now();
      if (expose) spec.expose = await prepareExpose(expose, { tenant, environment: req.environment, service: name, ...deps.endpoints, now });
      const rec: ServiceRecord = { tenant, environment: req.environment, name, spec, createdAt: now };
      const created = await creates.submit(rec);
      if (created === 'no-environment') throw PodiumError.notFound(`environment "${req.environment}"`);
      if (created === 'exists') {
        throw new PodiumError(status.ALREADY_EXISTS, `service "${name}" already exists in environment "${req.environment}"`, [
          { field: 'name', description: 'already exists' },
        ]);
      }
      // What the unit committed: a new service has no instances but these.
      return serviceView(rec, created);
    }),

    getService: unary<GetServiceRequest, Service>(deps, CUSTOMER, async (req, tenant) => {
      await requireEnvironment(storage, tenant, req.environment);
      const svc = await storage.read((r) => r.services.get(tenant, req.environment, req.service));
      if (!svc) throw PodiumError.notFound(`service "${req.service}"`);
      return serviceWithInstances(svc);
    }),

    listServices: unary<ListServicesRequest, ListServicesResponse>(deps, CUSTOMER, async (req, tenant) => {
      await requireEnvironment(storage, tenant, req.environment);
      const services = await storage.read((r) => r.services.list(tenant, req.environment));
      return { services: await Promise.all(services.map(serviceWithInstances)) };
    }),

    /**
     * Deletes the service and its instances. The hosts running them are told to remove the
     * containers: at once by this process when it holds their sessions, else by the leader when
     * it hears the instance.deleted events, and in any case when the host reconciles. Roles:
     * gateway, operator.
     */
    deleteService: unary<DeleteServiceRequest, DeleteServiceResponse>(deps, CUSTOMER, async (req, tenant) => {
      await requireEnvironment(storage, tenant, req.environment);
      const placed = await storage.transaction(async (u) => {
        const instances = await u.instances.deleteOfService(tenant, req.environment, req.service);
        if (!(await u.services.delete(tenant, req.environment, req.service))) return undefined;
        u.emit({ tenant, type: 'service.deleted', environment: req.environment, service: req.service });
        for (const i of instances) {
          u.emit({ tenant, type: 'instance.deleted', environment: req.environment, service: req.service, instance: i.id, host: i.host ?? '' });
        }
        return instances;
      });
      if (!placed) throw PodiumError.notFound(`service "${req.service}"`);
      for (const i of placed) deps.sessions.stopInstance(i.host!, i.id);
      // Capacity was freed: lots parked for want of it may fit now.
      if (placed.length > 0) deps.fleetChanged();
      return {};
    }),

    // The fleet shows every host's allocation and instance count, that is every tenant's usage:
    // operators, and the gateway acting for an admin token, see it; a customer is refused.
    listHosts: unary<ListHostsRequest, ListHostsResponse>(deps, CUSTOMER, async (_req, _tenant, caller) => {
      if (caller.role === 'customer') {
        throw new PodiumError(
          status.PERMISSION_DENIED,
          "the fleet is the operators' view (an operator certificate, or an admin API token through the gateway); " +
            'a customer sees the host of each of its own instances in GetService and ListServices',
        );
      }
      const [placed, hosts] = await storage.read(async (r) => [await r.instances.listPlaced(), await r.hosts.list()] as const);
      return { hosts: hosts.map((h) => hostView(h, placed, deps.liveness.lastSeen(h.id))) };
    }),

    watchEvents: (call: ServerWritableStream<WatchEventsRequest, Event>) => {
      void watchEvents(deps, call);
    },
    revokeHost: revokeHostHandler(deps),
  };
}

/**
 * Events of the caller's tenant (an operator naming none: every tenant's, host events included)
 * from `after_sequence` on, then live: only committed events, in sequence order, each once. The
 * feed is subscribed before the replay, and what the replay already sent is skipped, so nothing
 * falls between the two. Roles: gateway, operator.
 */
async function watchEvents(deps: PodApiDeps, call: ServerWritableStream<WatchEventsRequest, Event>): Promise<void> {
  let tenant: string;
  let operatorAll = false;
  try {
    const id = authorize(call, deps.ca, CUSTOMER);
    tenant = callerTenant(call, id);
    operatorAll = id.role === 'operator' && call.metadata.get('podium-tenant').length === 0;
    if (call.request.environment) await requireEnvironment(deps.storage, tenant, call.request.environment);
  } catch (err) {
    call.emit('error', toServiceError(err, deps.log));
    return;
  }
  // Headers go out at once, so that the gateway can answer 200 and start the stream.
  call.sendMetadata(new Metadata());
  const env = call.request.environment;
  const visible = (e: EventRecord) => (operatorAll || e.tenant === tenant) && (!env || e.environment === env);
  let last = call.request.afterSequence;
  const buffered: EventRecord[] = [];
  let replaying = true;
  let ended = false;
  const unsubscribe = deps.storage.feed.subscribe((e) => {
    if (ended || !visible(e)) return;
    if (replaying) buffered.push(e);
    else if (e.sequence > last) {
      last = e.sequence;
      call.write(eventView(e));
    }
  });
  const end = () => {
    ended = true;
    unsubscribe();
  };
  call.on('cancelled', end);
  call.on('close', end);
  try {
    for (;;) {
      const page = await deps.storage.read((r) => r.events.list(operatorAll ? null : tenant, env, last, 1000));
      for (const e of page) call.write(eventView(e));
      if (page.length > 0) last = page[page.length - 1]!.sequence;
      if (page.length < 1000 || ended) break;
    }
  } catch (err) {
    end();
    call.emit('error', toServiceError(err, deps.log));
    return;
  }
  replaying = false;
  for (const e of buffered) {
    if (e.sequence > last) {
      last = e.sequence;
      call.write(eventView(e));
    }
  }
}
