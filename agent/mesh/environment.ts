/**
 * The variables a container finds its environment's services by: for each service with ports,
 * `<SERVICE>_HOST` (this host's proxy, on the environment network's gateway), `<SERVICE>_PORT` (its
 * first port) and `<SERVICE>_<PORT NAME>_PORT` for each port; names upper case with "-" as "_"
 * (`api-v2`, port `grpc-web`: `API_V2_HOST`, `API_V2_GRPC_WEB_PORT`). Services created after the
 * container started are reachable all the same but not named here, as with Docker links and
 * Kubernetes' service variables.
 */
import type { RegisteredService } from '../../gen/podium/v1/agent';

const upper = (name: string) => name.toUpperCase().replace(/-/g, '_');

export function meshEnvironment(services: readonly RegisteredService[], gateway: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const svc of services) {
    if (svc.ports.length === 0) continue;
    const s = upper(svc.name);
    env[`${s}_HOST`] = gateway;
    env[`${s}_PORT`] = String(svc.ports[0]!.port);
    for (const p of svc.ports) env[`${s}_${upper(p.name)}_PORT`] = String(p.port);
  }
  return env;
}
