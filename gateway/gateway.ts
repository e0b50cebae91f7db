/**
 * The Customer API process: an HTTP server (node:http) transcoding REST/JSON to the Pod API.
 * Everything it serves is derived at start-up from the generated contract: routes, codecs and
 * the OpenAPI document. A contract the gateway cannot serve (a rule naming a missing field, a
 * method the generated client lacks) fails here, not on a customer's request.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { protoMetadata } from '../gen/podium/v1/pod_api';
import { resolveGatewayConfig, type GatewayConfig } from './config';
import type { ForwardContext } from './forward-call';
import { GatewayMetrics } from './metrics';
import { buildOpenApi } from './openapi';
import { POD_API_SERVICE, PodApiConnection } from './pod-api-connection';
import { RequestHandler } from './request-handler';
import { RouteTable } from './route-table';
import { SchemaRegistry } from './schema-registry';
import { TokenStore } from './token-store';

export interface Gateway {
  /** The port listened on (the chosen one when the configuration said 0). */
  port: number;
  /** Base URL, e.g. http://127.0.0.1:8080 (no trailing slash). */
  url: string;
  /** The API tokens (create one to print for an operator; revoke takes effect at once). */
  tokens: TokenStore;
  /** Ends the streams in flight, stops listening, closes the Pod API channel and the token store. */
  close(): Promise<void>;
}

/** Time given to in-flight unary requests to finish when the gateway closes. */
const CLOSE_GRACE_MS = 5_000;

/** Starts the gateway; resolves once it is listening. */
export async function startGateway(config: GatewayConfig): Promise<Gateway> {
  const resolved = resolveGatewayConfig(config);
  const logger = resolved.logger;
  const registry = SchemaRegistry.fromMetadata(protoMetadata);
  const routes = RouteTable.fromService(registry, POD_API_SERVICE);
  const openApiJson = JSON.stringify(
    buildOpenApi(registry, registry.service(POD_API_SERVICE), routes.routes, {
      title: 'Podium Customer API',
      version: 'v1',
    }),
  );
  const podApi = new PodApiConnection(resolved.podApiAddress, resolved.tls);
  const missing = routes.routes.find((route) => !podApi.has(route.grpcPath));
  if (missing) {
    podApi.close();
    throw new Error(`route ${missing.httpMethod} ${missing.template.text}: no generated method ${missing.grpcPath}`);
  }
  let tokens: TokenStore;
  try {
    tokens = await TokenStore.open(resolved.tokenDbPath);
  } catch (err) {
    podApi.close();
    throw err;
  }

  const forward: ForwardContext = {
    registry,
    podApi,
    logger,
    requestTimeoutMs: resolved.requestTimeoutMs,
    inFlight: new Set(),
  };
  const handler = new RequestHandler({
    config: resolved,
    routes,
    tokens,
    metrics: new GatewayMetrics(),
    openApiJson,
    forward,
    logger,
  });
  const server = createServer((req, res) => void handler.handle(req, res));

  try {
    await listen(server, resolved.host, resolved.port);
  } catch (err) {
    podApi.close();
    await tokens.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  const host = resolved.host.includes(':') ? `[${resolved.host}]` : resolved.host;
  logger.info(
    { port, podApi: resolved.podApiAddress, routes: routes.routes.length, dashboard: resolved.staticDir !== undefined },
    'gateway listening',
  );

  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://${host}:${port}`,
    tokens,
    close: () => {
      closing ??= shutdown(server, forward, podApi, tokens);
      return closing;
    },
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function shutdown(server: Server, forward: ForwardContext, podApi: PodApiConnection, tokens: TokenStore): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // Streams never end on their own: cancel them, which ends each with its error frame.
  for (const cancel of [...forward.inFlight]) cancel();
  // A keep-alive connection becomes idle only when its last response ends: keep closing the
  // idle ones until none is left, and after the grace period cut the rest.
  server.closeIdleConnections();
  const sweep = setInterval(() => server.closeIdleConnections(), 25);
  const grace = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
  await closed;
  clearInterval(sweep);
  clearTimeout(grace);
  podApi.close();
  await tokens.close();
}
