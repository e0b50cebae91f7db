/**
 * Which services a container of an environment reaches through this host's proxy, on which local
 * port, and the variables it finds them by.
 *
 * Its own environment's services, each on its own ports; and the services of the tenant's other
 * environments that allow it (imports), on their ports too, unless one of its own services has
 * that port (the own one wins; the import is not reachable there, and the proxy logs it).
 *
 * Variables: for each service with ports, `<SERVICE>_HOST` (this host's proxy, on the environment
 * network's gateway), `<SERVICE>_PORT` (its first port) and `<SERVICE>_<PORT NAME>_PORT` for each
 * port; an import's names start with its environment (`PROD_API_HOST`). Names upper case with "-"
 * as "_" (`api-v2`, port `grpc-web`: `API_V2_HOST`, `API_V2_GRPC_WEB_PORT`). Services created
 * after the container started are reachable all the same but not named here, as with Docker links
 * and Kubernetes' service variables.
 */
import type { RegisteredService } from '../../gen/podium/v1/agent';

const upper = (name: string) => name.toUpperCase().replace(/-/g, '_');

export interface LocalEndpoint {
  /** The environment the service belongs to. */
  environment: string;
  service: string;
  port: number;
}

/** The services of `environment`'s snapshot a container reaches, by local port. */
export function localEndpoints(services: readonly RegisteredService[], environment: string): Map<number, LocalEndpoint> {
  const out = new Map<number, LocalEndpoint>();
  const own = services.filter((s) => (s.environment || environment) === environment);
  const imported = services.filter((s) => (s.environment || environment) !== environment);
  for (const svc of [...own, ...imported]) {
    for (const p of svc.ports) if (!out.has(p.port)) out.set(p.port, { environment: svc.environment || environment, service: svc.name, port: p.port });
  }
  return out;
}

export function meshEnvironment(services: readonly RegisteredService[], environment: string, gateway: string): Record<string, string> {
  const env: Record<string, string> = {};
  const reached = localEndpoints(services, environment);
  for (const svc of services) {
    const of = svc.environment || environment;
    const ports = svc.ports.filter((p) => reached.get(p.port)?.service === svc.name && reached.get(p.port)?.environment === of);
    if (ports.length === 0) continue;
    const s = of === environment ? upper(svc.name) : `${upper(of)}_${upper(svc.name)}`;
    env[`${s}_HOST`] = gateway;
    env[`${s}_PORT`] = String(ports[0]!.port);
    for (const p of ports) env[`${s}_${upper(p.name)}_PORT`] = String(p.port);
  }
  return env;
}
