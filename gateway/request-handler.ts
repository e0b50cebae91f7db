/**
 * One HTTP request, from arrival to its log line. The order is the point:
 *
 *   1. the gateway's own endpoints (/healthz, /metrics, /openapi.json), without auth;
 *   2. an API route: authenticate, then read the body (an anonymous client cannot make the
 *      gateway buffer anything), transcode, forward;
 *   3. the dashboard's files, if there is a staticDir;
 *   4. otherwise 404, or 405 when the path exists with another method.
 *
 * Every request is counted and logged once, when its response closes: method, route template,
 * status, milliseconds, tenant and token role. Headers are never logged; the token never leaves
 * `authenticate`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { authenticate } from './authenticate';
import { readBody } from './body-reader';
import type { ResolvedGatewayConfig } from './config';
import { forwardStream, forwardUnary, type ForwardContext } from './forward-call';
import { GatewayError, toGatewayError } from './gateway-error';
import { sendError, sendJson } from './http-reply';
import type { GatewayMetrics } from './metrics';
import type { RouteTable } from './route-table';
import { serveStatic } from './static-files';
import type { TokenStore } from './token-store';
import { transcodeRequest } from './transcoder';

/** Route labels of requests that match no template, so metrics stay bounded. */
const UNMATCHED = 'unmatched';
const STATIC = 'static';

interface RequestInfo {
  route: string;
  tenant: string | undefined;
  role: string | undefined;
}

export interface RequestHandlerParts {
  readonly config: ResolvedGatewayConfig;
  readonly routes: RouteTable;
  readonly tokens: TokenStore;
  readonly metrics: GatewayMetrics;
  readonly openApiJson: string;
  readonly forward: ForwardContext;
  readonly logger: Logger;
}

export class RequestHandler {
  constructor(private readonly parts: RequestHandlerParts) {}

  /** Never rejects: every failure becomes an error response. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startedAt = performance.now();
    const method = req.method ?? 'GET';
    const info: RequestInfo = { route: UNMATCHED, tenant: undefined, role: undefined };
    res.once('close', () => this.record(method, info, res, performance.now() - startedAt));
    try {
      await this.dispatch(method, req, res, info);
    } catch (err) {
      const error = toGatewayError(err, this.parts.logger);
      sendError(res, error, headersFor(error));
    }
  }

  private async dispatch(method: string, req: IncomingMessage, res: ServerResponse, info: RequestInfo): Promise<void> {
    const { pathname, query } = splitUrl(req.url ?? '/');
    const system = this.systemEndpoint(pathname);
    if (system) {
      info.route = pathname;
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, pathname, ['GET', 'HEAD']);
      await system(res);
      return;
    }

    const match = this.parts.routes.match(method, pathname);
    if (match.kind === 'found') {
      const { route, params } = match;
      info.route = route.template.text;
      const identity = await authenticate(req.headers.authorization, this.parts.tokens);
      info.tenant = identity.tenant;
      info.role = identity.role;
      const body = route.body !== '' ? await readBody(req, this.parts.config.maxBodyBytes) : undefined;
      const request = transcodeRequest(this.parts.forward.registry, route, { params, query, body });
      const caller = { tenant: identity.tenant, role: identity.role };
      if (route.serverStreaming) {
        await forwardStream(this.parts.forward, route, request, caller, req, res);
      } else {
        await forwardUnary(this.parts.forward, route, request, caller, res);
      }
      return;
    }
    if (match.kind === 'method-not-allowed') {
      info.route = match.template;
      throw methodNotAllowed(method, pathname, match.allow);
    }

    const staticDir = this.parts.config.staticDir;
    if (staticDir !== undefined && (method === 'GET' || method === 'HEAD')) {
      if (await serveStatic(staticDir, pathname, req, res)) {
        info.route = STATIC;
        return;
      }
    }
    throw new GatewayError(status.NOT_FOUND, `no route for ${method} ${pathname}`);
  }

  private systemEndpoint(pathname: string): ((res: ServerResponse) => Promise<void>) | undefined {
    switch (pathname) {
      case '/healthz':
        return async (res) => sendJson(res, 200, { status: 'ok' });
      case '/metrics':
        return async (res) => {
          const text = await this.parts.metrics.text();
          res.writeHead(200, { 'content-type': this.parts.metrics.contentType, 'cache-control': 'no-store' });
          res.end(text);
        };
      case '/openapi.json':
        return async (res) => {
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(this.parts.openApiJson),
            'x-content-type-options': 'nosniff',
          });
          res.end(this.parts.openApiJson);
        };
      default:
        return undefined;
    }
  }

  private record(method: string, info: RequestInfo, res: ServerResponse, ms: number): void {
    // Headers never sent: the client left before there was an answer (nginx's 499).
    const statusCode = res.headersSent ? res.statusCode : 499;
    this.parts.metrics.observe(method, info.route, statusCode, ms / 1000);
    this.parts.logger.info(
      { method, route: info.route, status: statusCode, ms: Math.round(ms), tenant: info.tenant, role: info.role },
      'request',
    );
  }
}

/** Path and query of a request target, without URL-resolution (which would read `//x` as a host). */
function splitUrl(target: string): { pathname: string; query: URLSearchParams } {
  const q = target.indexOf('?');
  return q < 0
    ? { pathname: target, query: new URLSearchParams() }
    : { pathname: target.slice(0, q), query: new URLSearchParams(target.slice(q + 1)) };
}

class MethodNotAllowed extends GatewayError {
  constructor(
    message: string,
    readonly allow: readonly string[],
  ) {
    // 405 is HTTP's own; UNIMPLEMENTED is what grpc-gateway puts in the body for it.
    super(status.UNIMPLEMENTED, message, [], 405);
  }
}

function methodNotAllowed(method: string, pathname: string, allow: readonly string[]): GatewayError {
  return new MethodNotAllowed(`method ${method} is not allowed on ${pathname}`, allow);
}

function headersFor(error: GatewayError): Record<string, string> {
  if (error.code === status.UNAUTHENTICATED) return { 'www-authenticate': 'Bearer' };
  if (error instanceof MethodNotAllowed) return { allow: error.allow.join(', ') };
  // The rest of an oversized body is not read: the connection cannot be reused.
  if (error.httpStatus === 413) return { connection: 'close' };
  return {};
}
