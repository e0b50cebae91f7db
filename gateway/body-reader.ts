/**
 * Reads a request body up to a limit. Past the limit the request is refused with 413 before
 * more of it is buffered: a client cannot make the gateway hold more than `limit` bytes.
 */
import type { IncomingMessage } from 'node:http';
import { status } from '@grpc/grpc-js';
import { GatewayError } from './gateway-error';

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = (): GatewayError =>
    // 413 is HTTP's own word for this; RESOURCE_EXHAUSTED the nearest gRPC code for the body.
    new GatewayError(status.RESOURCE_EXHAUSTED, `request body is larger than ${limit} bytes`, [], 413);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (err: GatewayError | undefined): void => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) finish(tooLarge());
      else chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => finish(undefined));
    req.on('error', () => finish(new GatewayError(status.CANCELLED, 'the request was aborted')));
    req.on('aborted', () => finish(new GatewayError(status.CANCELLED, 'the request was aborted')));
  });
}
