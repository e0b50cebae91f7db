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
import type { Role } from '../certs';
import type { AgentSessions } from './agent-sessions';
import type { HostLiveness } from './host-liveness';
import { authorize, callerTenant, type CaTrust } from './auth';
import { assertNoViolations, PodiumError, toServiceError } from './errors';
import type { Orchestrator } from './orchestrator';
import { assertWithinQuota, quotaHandlers } from './quota';
import { revokeHostHandler } from './revoke-host';
import type { EventRecord, HostRecord, InstanceRecord, QuotaLimits, ServiceRecord, Store } from './store';
import { unary } from './unary-handler';
import { nameViolation, validateEnvironmentName, validateService } from './validation';

const CUSTOMER: readonly Role[] = ['gateway', 'operator'];

const INSTANCE_STATES: Record<InstanceRecord['state'], InstanceState> = {
  pending: InstanceState.INSTANCE_STATE_PENDING,
  starting: InstanceState.INSTANCE_STATE_STARTING,
  running: InstanceState.INSTANCE_STATE_RUNNING,
  failed: InstanceState.INSTANCE_STATE_FAILED,
  lost: InstanceState.INSTANCE_STATE_LOST,
};

export interface PodApiDeps {
  store: Store;
  ca: CaTrust;
  orchestrator: Orchestrator;
  sessions: AgentSessions;
  /** Last heartbeats are in memory only (host-liveness.ts). */
  liveness: Pick<HostLiveness, 'lastSeen'>;
  /** Subscribes to new events; returns the unsubscribe function. */
  subscribe: (fn: (e: EventRecord) => void) => () => void;
  kickAuction: () => void;
  /** Capacity was freed or the fleet changed: lots parked for want of it may fit now. */
  fleetChanged: () => void;
  /** The quota of a tenant that has none of its own. */
  defaultQuota: QuotaLimits;
  log: Logger;
}

function requireEnvironment(store: Store, tenant: string, name: string): void {
  const v = nameViolation('environment', name);
  if (v) assertNoViolations([v]);
  if (!store.environmentExists(tenant, name)) throw PodiumError.notFound(`environment "${name}"`);
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

export function podApiHandlers(deps: PodApiDeps): PodApiServer {
  const { store } = deps;
  return {
    ...quotaHandlers(deps),

    createEnvironment: unary<CreateEnvironmentRequest, Environment>(deps, CUSTOMER, (req, tenant) => {
      const name = req.environment?.name ?? '';
      validateEnvironmentName(name);
      const now = Date.now();
      const created = store.tx(() => {
        if (!store.insertEnvironment(tenant, name, now)) return false;
        store.appendEvent({ tenant, type: 'environment.created', environment: name }, now);
        return true;
      });
      if (!created) throw new PodiumError(status.ALREADY_EXISTS, `environment "${name}" already exists`, [{ field: 'name', description: 'already exists' }]);
      return { name, tenant, createTime: new Date(now) };
    }),

    listEnvironments: unary<ListEnvironmentsRequest, ListEnvironmentsResponse>(deps, CUSTOMER, (_req, tenant) => ({
      environments: store.listEnvironments(tenant).map((e) => ({ name: e.name, tenant: e.tenant, createTime: new Date(e.createdAt) })),
    })),

    createService: unary<CreateServiceRequest, Service>(deps, CUSTOMER, (req, tenant) => {
      requireEnvironment(store, tenant, req.environment);
      const { name, spec } = validateService(req.service);
      const rec: ServiceRecord = { tenant, environment: req.environment, name, spec, createdAt: Date.now() };
      const created = store.tx(() => {
        // Inside the transaction: two creates cannot both fit in the same headroom.
        if (store.getService(tenant, rec.environment, name)) return false;
        assertWithinQuota(store, tenant, spec, deps.defaultQuota);
        if (!store.insertService(rec)) return false;
        store.appendEvent({ tenant, type: 'service.created', environment: rec.environment, service: name, message: `${spec.replicas} replicas of ${spec.image}` });
        deps.orchestrator.ensureReplicas(rec);
        return true;
      });
      if (!created) {
        throw new PodiumError(status.ALREADY_EXISTS, `service "${name}" already exists in environment "${req.environment}"`, [
          { field: 'name', description: 'already exists' },
        ]);
      }
      deps.kickAuction();
      return serviceView(rec, store.listInstancesOfService(tenant, rec.environment, name));
    }),

    getService: unary<GetServiceRequest, Service>(deps, CUSTOMER, (req, tenant) => {
      requireEnvironment(store, tenant, req.environment);
      const svc = store.getService(tenant, req.environment, req.service);
      if (!svc) throw PodiumError.notFound(`service "${req.service}"`);
      return serviceView(svc, store.listInstancesOfService(tenant, req.environment, req.service));
    }),

    listServices: unary<ListServicesRequest, ListServicesResponse>(deps, CUSTOMER, (req, tenant) => {
      requireEnvironment(store, tenant, req.environment);
      return {
        services: store
          .listServices(tenant, req.environment)
          .map((s) => serviceView(s, store.listInstancesOfService(tenant, s.environment, s.name))),
      };
    }),

    deleteService: unary<DeleteServiceRequest, DeleteServiceResponse>(deps, CUSTOMER, (req, tenant) => {
      requireEnvironment(store, tenant, req.environment);
      const placed = store.tx(() => {
        const removed = store.deleteService(tenant, req.environment, req.service);
        if (removed) store.appendEvent({ tenant, type: 'service.deleted', environment: req.environment, service: req.service });
        return removed;
      });
      if (!placed) throw PodiumError.notFound(`service "${req.service}"`);
      // Hosts that are not connected remove these containers when they reconcile.
      for (const i of placed) deps.sessions.stopInstance(i.host!, i.id);
      // Capacity was freed: lots parked for want of it may fit now.
      if (placed.length > 0) deps.fleetChanged();
      return {};
    }),

    // The fleet shows every host's allocation and instance count, that is every tenant's usage:
    // operators, and the gateway acting for an admin token, see it; a customer is refused.
    listHosts: unary<ListHostsRequest, ListHostsResponse>(deps, CUSTOMER, (_req, _tenant, caller) => {
      if (caller.role === 'customer') {
        throw new PodiumError(
          status.PERMISSION_DENIED,
          "the fleet is the operators' view (an operator certificate, or an admin API token through the gateway); " +
            'a customer sees the host of each of its own instances in GetService and ListServices',
        );
      }
      const placed = store.listPlacedInstances();
      return { hosts: store.listHosts().map((h) => hostView(h, placed, deps.liveness.lastSeen(h.id))) };
    }),

    watchEvents: (call: ServerWritableStream<WatchEventsRequest, Event>) => {
      let tenant: string;
      let operatorAll = false;
      try {
        const id = authorize(call, deps.ca, CUSTOMER);
        tenant = callerTenant(call, id);
        // An operator who names no tenant sees the whole fleet's events, host events included.
        operatorAll = id.role === 'operator' && call.metadata.get('podium-tenant').length === 0;
        if (call.request.environment) requireEnvironment(store, tenant, call.request.environment);
      } catch (err) {
        call.emit('error', toServiceError(err, deps.log));
        return;
      }
      // Headers go out at once, so that the gateway can answer 200 and start the stream.
      call.sendMetadata(new Metadata());
      const env = call.request.environment;
      const visible = (e: EventRecord) => (operatorAll || e.tenant === tenant) && (!env || e.environment === env);
      // Subscribe before replaying, and skip what the replay already sent, so nothing falls between.
      let last = call.request.afterSequence;
      const buffered: EventRecord[] = [];
      let replaying = true;
      const unsubscribe = deps.subscribe((e) => {
        if (!visible(e)) return;
        if (replaying) buffered.push(e);
        else if (e.sequence > last) {
          last = e.sequence;
          call.write(eventView(e));
        }
      });
      for (;;) {
        const page = store.listEvents(operatorAll ? null : tenant, env, last, 1000);
        for (const e of page) call.write(eventView(e));
        if (page.length > 0) last = page[page.length - 1]!.sequence;
        if (page.length < 1000) break;
      }
      replaying = false;
      for (const e of buffered) {
        if (e.sequence > last) {
          last = e.sequence;
          call.write(eventView(e));
        }
      }
      call.on('cancelled', unsubscribe);
      call.on('close', unsubscribe);
    },
    revokeHost: revokeHostHandler(deps),
  };
}
