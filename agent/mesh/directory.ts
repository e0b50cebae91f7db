/**
 * The proxy's view of the service registry: the latest snapshot of each environment this host
 * runs, as the Pod API pushes them (server/service-registry.ts). A snapshot replaces the one before
 * it whole; an older one than held (a reordering across sessions) is ignored; `gone` forgets the
 * environment. Versions count per Pod API process: a new session (perhaps with a new leader)
 * starts the count again, so `reset` is called when a session opens and the first snapshot of
 * each environment after it is taken whatever its version.
 */
import type { EnvironmentRegistry, RegisteredService } from '../../gen/podium/v1/agent';

const envKey = (tenant: string, environment: string) => `${tenant}\0${environment}`;

export class MeshDirectory {
  private readonly environments = new Map<string, EnvironmentRegistry>();
  /** Environments whose snapshot came in this session: only newer ones replace them. */
  private readonly thisSession = new Set<string>();
  /** Called with the environment whenever its snapshot changed or it is gone. */
  onChange: (tenant: string, environment: string) => void = () => undefined;
  private readonly waiters = new Map<string, Array<() => void>>();

  /** A new session: the next snapshot of each environment is taken whatever its version. */
  reset(): void {
    this.thisSession.clear();
  }

  /** Applies a pushed snapshot; false when it was stale. */
  apply(r: EnvironmentRegistry): boolean {
    const key = envKey(r.tenant, r.environment);
    const held = this.environments.get(key);
    if (held && this.thisSession.has(key) && r.version <= held.version) return false;
    this.thisSession.add(key);
    if (r.gone) this.environments.delete(key);
    else this.environments.set(key, r);
    this.onChange(r.tenant, r.environment);
    for (const wake of this.waiters.get(key) ?? []) wake();
    this.waiters.delete(key);
    return true;
  }

  /** The environment's services once a snapshot of it is here, or after `timeoutMs` whatever is. */
  async ready(tenant: string, environment: string, timeoutMs: number): Promise<readonly RegisteredService[]> {
    const key = envKey(tenant, environment);
    if (!this.environments.has(key)) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        const list = this.waiters.get(key) ?? [];
        list.push(() => {
          clearTimeout(timer);
          resolve();
        });
        this.waiters.set(key, list);
      });
    }
    return this.services(tenant, environment);
  }

  /**
   * A service in the snapshot of an environment this host runs, with its ports and running
   * endpoints: one of its own, or one of environment `of` that it imports.
   */
  service(tenant: string, environment: string, name: string, of = environment): RegisteredService | undefined {
    return this.environments.get(envKey(tenant, environment))?.services.find((s) => s.name === name && (s.environment || environment) === of);
  }

  /** The services of an environment this host runs; empty when it runs none of it. */
  services(tenant: string, environment: string): readonly RegisteredService[] {
    return this.environments.get(envKey(tenant, environment))?.services ?? [];
  }

  /** The service that publishes `hostname` (in its own environment's snapshot), if this host has it. */
  publisher(hostname: string): { tenant: string; environment: string; service: RegisteredService } | undefined {
    for (const r of this.environments.values()) {
      const service = r.services.find((s) => s.published?.hostname === hostname && (s.environment || r.environment) === r.environment);
      if (service) return { tenant: r.tenant, environment: r.environment, service };
    }
    return undefined;
  }

  get size(): number {
    return this.environments.size;
  }
}
