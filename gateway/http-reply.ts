/**
 * Writing JSON answers. Every API response is `application/json`, uncached (it is one tenant's
 * data) and `nosniff`; every error is the `{"code", "message", "details"}` body of GatewayError.
 */
import type { ServerResponse } from 'node:http';
import type { GatewayError } from './gateway-error';

export const JSON_CONTENT_TYPE = 'application/json';

export function sendJson(res: ServerResponse, statusCode: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(statusCode, {
    'content-type': JSON_CONTENT_TYPE,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

/** Sends the error, or, if a response is already under way, cuts it (the client sees it fail). */
export function sendError(res: ServerResponse, error: GatewayError, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, error.httpStatus, error.body, headers);
}
