/**
 * The gateway's configuration: one typed object, checked and frozen once, with its defaults and
 * units here. Only the CLI reads flags and the environment; it hands the result to startGateway.
 */
import type { Logger } from 'pino';

export interface GatewayConfig {
  /** Interface to listen on, e.g. 127.0.0.1. */
  host: string;
  /** TCP port; 0 picks a free one (see Gateway.port). */
  port: number;
  /** The Pod API, host:port; or the processes of one Pod API (leader and standbys), in turn. */
  podApiAddress: string | readonly string[];
  /** PEM: the CA that signed the Pod API's certificate, and the gateway's own (role gateway). */
  tls: { caPem: string; certPem: string; keyPem: string };
  /** The API tokens: a SQLite file (created if missing) or a postgres:// URL shared with other gateways. */
  tokenDbPath: string;
  /** Deadline of each unary Pod API call, milliseconds. Default 30 000. Streams have none. */
  requestTimeoutMs?: number;
  /** Directory of the dashboard's files, served at `/` for paths the API does not own. */
  staticDir?: string;
  logger: Logger;
}

export interface ResolvedGatewayConfig extends Readonly<Omit<GatewayConfig, 'requestTimeoutMs' | 'tls'>> {
  readonly tls: Readonly<GatewayConfig['tls']>;
  readonly requestTimeoutMs: number;
  /** Largest request body accepted, bytes. */
  readonly maxBodyBytes: number;
}

/** Long enough for CreateService, which validates and stores (the auction happens after). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** 1 MiB: a service definition is a few kilobytes; more is a mistake or an attack. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Checks the configuration and fills its defaults; throws naming the first bad setting. */
export function resolveGatewayConfig(config: GatewayConfig): ResolvedGatewayConfig {
  const fail = (what: string): never => {
    throw new Error(`gateway configuration: ${what}`);
  };
  if (typeof config.host !== 'string' || config.host === '') fail('host must be a non-empty string');
  if (!Number.isInteger(config.port) || config.port < 0 || config.port > 65535) fail('port must be an integer from 0 to 65535');
  const addresses = typeof config.podApiAddress === 'string' ? [config.podApiAddress] : [...(config.podApiAddress ?? [])];
  if (addresses.length === 0 || addresses.some((a) => typeof a !== 'string' || a === '')) fail('podApiAddress must be host:port (or a list of them)');
  for (const key of ['caPem', 'certPem', 'keyPem'] as const) {
    if (typeof config.tls?.[key] !== 'string' || !config.tls[key].includes('-----BEGIN')) fail(`tls.${key} must be PEM text`);
  }
  if (typeof config.tokenDbPath !== 'string' || config.tokenDbPath === '') fail('tokenDbPath must be a file path or a postgres:// URL');
  const requestTimeoutMs = config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs <= 0) fail('requestTimeoutMs must be a positive integer');
  if (config.staticDir !== undefined && (typeof config.staticDir !== 'string' || config.staticDir === '')) {
    fail('staticDir must be a directory path');
  }
  if (!config.logger || typeof config.logger.info !== 'function') fail('logger must be a pino logger');
  return Object.freeze({
    host: config.host,
    port: config.port,
    podApiAddress: Object.freeze(addresses),
    tls: Object.freeze({ caPem: config.tls.caPem, certPem: config.tls.certPem, keyPem: config.tls.keyPem }),
    tokenDbPath: config.tokenDbPath,
    requestTimeoutMs,
    staticDir: config.staticDir,
    logger: config.logger,
    maxBodyBytes: MAX_BODY_BYTES,
  });
}
