/**
 * The service registry: which instances of which service of an environment run where, pushed to
 * the proxies of the hosts that run any instance of that environment (no polling).
 *
 * A snapshot of an environment is the whole of it: its services with their ports, and for each the
 * running instances on hosts that have a session and a proxy (a host whose session ended routes
 * nothing until it is back); and the services of the tenant's other environments that allow it
 * (`allow`), marked with their environment, which its containers reach too. It is rebuilt from the store after every committed change of the
 * environment (the event feed: instance awarded, running, failed, lost, requeued or deleted;
 * service created or deleted) and after a host's session opens or ends, and sent to every host
 * that runs (starting or running) one of its instances, or did at the last push: a host left
 * with nothing of it is told `gone`. Changes that come together are pushed once.
 *
 * Only the leader holds sessions, so only the leader pushes; a host that reconnects gets the
 * snapshots of its environments after its hello.
 */
import type { Logger } from 'pino';
import type { EnvironmentRegistry, ServerMessage } from '../gen/podium/v1/agent';
import { publishedEndpoint } from './published-endpoints';
import { portsView } from './validation';
import type { InstanceRecord, ServiceRecord, Storage } from './storage';

export interface RegistryHosts {
  /** The session of a connected host, to send to. */
  get(hostId: string): { send(msg: ServerMessage): void } | undefined;
  /** A connected host's proxy address (its hello's), '' when it runs none. */
  meshAddressOf(hostId: string): string;
}

const envKey = (tenant: string, environment: string) => `${tenant}\0${environment}`;

export class ServiceRegistry {
  /** Environments with a push due, coalesced until the next turn of the loop. */
  private readonly due = new Map<string, { tenant: string; environment: string }>();
  private scheduled = false;
  /** Pushes run one at a time, in order: a later snapshot never overtakes an earlier one. */
  private pushing: Promise<void> = Promise.resolve();
  /** The hosts each environment's last snapshot went to. */
  private readonly sentTo = new Map<string, Set<string>>();
  private version = 0;

  constructor(
    private readonly storage: Storage,
    private readonly hosts: RegistryHosts,
    /** Opens a published endpoint's sealed key (published-endpoints.ts). */
    private readonly sealingKey: Buffer,
    private readonly log: Logger,
  ) {}

  /** Something of the environment changed (a committed event): its hosts get a new snapshot. */
  changed(tenant: string, environment: string): void {
    if (!tenant || !environment) return;
    this.due.set(envKey(tenant, environment), { tenant, environment });
    // Another environment of the tenant may import its services (or just stopped): a tenant's
    // environments are few, so each one its hosts run is pushed again.
    for (const key of this.sentTo.keys()) {
      const [t, e] = key.split('\0') as [string, string];
      if (t === tenant) this.due.set(key, { tenant: t, environment: e });
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = [...this.due.values()];
      this.due.clear();
      this.pushing = this.pushing.then(() => this.pushAll(batch)).catch((err: Error) => this.log.warn({ err: err.message }, 'registry push failed'));
    });
  }

  /**
   * A host's session opened or ended: the environments it runs change (its endpoints come or go),
   * and a host that just connected needs the snapshots of what it runs.
   */
  hostChanged(hostId: string): void {
    void this.storage
      .read((r) => r.instances.listOnHost(hostId))
      .then((instances) => {
        for (const i of instances) this.changed(i.tenant, i.environment);
        // Environments it was sent and runs nothing of any more (removed while it was away).
        for (const [key, hosts] of this.sentTo) {
          if (!hosts.has(hostId)) continue;
          const [tenant, environment] = key.split('\0') as [string, string];
          this.changed(tenant, environment);
        }
      })
      .catch((err: Error) => this.log.warn({ host: hostId, err: err.message }, 'registry: could not read the host\'s instances'));
  }

  private async pushAll(batch: Array<{ tenant: string; environment: string }>): Promise<void> {
    for (const { tenant, environment } of batch) {
      const { services, instances } = await this.storage.read(async (r) => {
        // Its own services, and the others' that allow it.
        const services = (await r.services.listOfTenant(tenant)).filter((s) => s.environment === environment || s.spec.allowFrom.includes(environment));
        const instances: InstanceRecord[] = [];
        for (const env of new Set([environment, ...services.map((s) => s.environment)])) instances.push(...(await r.instances.listOfEnvironment(tenant, env)));
        return { services, instances };
      });
      this.push(tenant, environment, services, instances);
    }
  }

  private push(tenant: string, environment: string, services: ServiceRecord[], instances: InstanceRecord[]): void {
    const key = envKey(tenant, environment);
    const snapshot = this.snapshot(tenant, environment, services, instances);
    const runsIt = new Set<string>();
    for (const i of instances) if (i.environment === environment && i.host && (i.state === 'starting' || i.state === 'running')) runsIt.add(i.host);
    for (const host of runsIt) this.hosts.get(host)?.send({ kind: { $case: 'registry', registry: snapshot } });
    const gone: EnvironmentRegistry = { tenant, environment, version: snapshot.version, services: [], gone: true };
    for (const host of this.sentTo.get(key) ?? []) {
      if (!runsIt.has(host)) this.hosts.get(host)?.send({ kind: { $case: 'registry', registry: gone } });
    }
    if (runsIt.size > 0) this.sentTo.set(key, runsIt);
    else this.sentTo.delete(key);
    this.log.debug({ tenant, environment, version: snapshot.version, hosts: runsIt.size }, 'registry pushed');
  }

  private snapshot(tenant: string, environment: string, services: ServiceRecord[], instances: InstanceRecord[]): EnvironmentRegistry {
    const version = ++this.version;
    return {
      tenant,
      environment,
      version,
      gone: false,
      services: services.map((svc) => ({
        name: svc.name,
        environment: svc.environment,
        ports: portsView(svc.spec.ports),
        allowFromEnvironments: svc.spec.allowFrom,
        // Its certificate and key go to the hosts of its own environment only, never with an import.
        published: svc.spec.expose && svc.environment === environment ? publishedEndpoint(svc.spec.expose, this.sealingKey) : undefined,
        endpoints: instances
          .filter((i) => i.environment === svc.environment && i.service === svc.name && i.state === 'running' && i.host !== null)
          .map((i) => ({ instanceId: i.id, host: i.host!, meshAddress: this.hosts.get(i.host!) ? this.hosts.meshAddressOf(i.host!) : '' }))
          .filter((e) => e.meshAddress !== ''),
      })),
    };
  }
}
