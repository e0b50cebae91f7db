/**
 * What a container of an environment reaches through its host's proxy, and the variables it is
 * given: its own services by name, the imports (another environment's service that allows it) by
 * environment and name, and an import whose port one of its own services has is not given at all.
 */
import assert from 'node:assert/strict';
import type { RegisteredService } from '../../gen/podium/v1/agent';
import { PortProtocol } from '../../gen/podium/v1/resources';
import { localEndpoints, meshEnvironment } from '../../agent/mesh/environment';

const svc = (name: string, environment: string, ports: Array<[string, number]>): RegisteredService => ({
  name,
  environment,
  ports: ports.map(([n, port]) => ({ name: n, port, protocol: PortProtocol.PORT_PROTOCOL_TCP })),
  endpoints: [],
  allowFromEnvironments: [], published: undefined,
});

describe('mesh environment variables', () => {
  it('names own services by service, imports by environment and service', () => {
    const env = meshEnvironment([svc('api-v2', 'staging', [['grpc-web', 8080], ['admin', 9090]]), svc('db', 'prod', [['pg', 5432]])], 'staging', '10.1.0.1');
    assert.deepEqual(env, {
      API_V2_HOST: '10.1.0.1',
      API_V2_PORT: '8080',
      API_V2_GRPC_WEB_PORT: '8080',
      API_V2_ADMIN_PORT: '9090',
      PROD_DB_HOST: '10.1.0.1',
      PROD_DB_PORT: '5432',
      PROD_DB_PG_PORT: '5432',
    });
  });

  it('leaves out an import\'s port that an own service has, whatever the order of the snapshot', () => {
    const services = [svc('api', 'prod', [['http', 8080], ['metrics', 9100]]), svc('api', 'staging', [['http', 8080]])];
    assert.deepEqual([...localEndpoints(services, 'staging')].map(([p, e]) => `${p}=${e.service}.${e.environment}`), ['8080=api.staging', '9100=api.prod']);
    assert.deepEqual(meshEnvironment(services, 'staging', 'gw'), {
      API_HOST: 'gw',
      API_PORT: '8080',
      API_HTTP_PORT: '8080',
      PROD_API_HOST: 'gw',
      PROD_API_PORT: '9100',
      PROD_API_METRICS_PORT: '9100',
    });
  });

  it('gives nothing for a service without ports', () => {
    assert.deepEqual(meshEnvironment([svc('worker', 'prod', [])], 'prod', 'gw'), {});
  });
});
