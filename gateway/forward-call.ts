/**
 * Forwards a transcoded request to the Pod API and its answer to the HTTP client: unary calls
 * as one JSON body, server streams through a StreamWriter. Either way the gRPC call is
 * cancelled as soon as the HTTP client goes away, so that an abandoned watch holds nothing on
 * the Pod API.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { gatewayErrorFromGrpc } from './gateway-error';
import { sendError, sendJson } from './http-reply';
import type { Caller, PodApiConnection } from './pod-api-connection';
import { responseToJson } from './response-json';
import type { Route } from './route-table';
import type { SchemaRegistry } from './schema-registry';
import { StreamWriter, streamFormatFor } from './stream-writer';

/**
 * How long a stream waits for the Pod API's response headers before opening the HTTP stream
 * anyway. A call refused at once (bad argument, not found) answers well within it and keeps
 * its proper HTTP status; a quiet watch whose server sends nothing yet still gets its headers,
 * so the client knows it is connected.
 */
const STREAM_HEADER_GRACE_MS = 500;

export interface ForwardContext {
  readonly registry: SchemaRegistry;
  readonly podApi: PodApiConnection;
  readonly logger: Logger;
  readonly requestTimeoutMs: number;
  /** Cancels of the calls in flight, so that closing the gateway can end them. */
  readonly inFlight: Set<() => void>;
}

export async function forwardUnary(
  ctx: ForwardContext,
  route: Route,
  request: unknown,
  caller: Caller,
  res: ServerResponse,
): Promise<void> {
  const call = ctx.podApi.unary(route.grpcPath, request, caller, new Date(Date.now() + ctx.requestTimeoutMs));
  const cancel = (): void => call.cancel();
  const onClientGone = (): void => {
    if (!res.writableEnded) call.cancel();
  };
  ctx.inFlight.add(cancel);
  res.once('close', onClientGone);
  try {
    const response = await call.response;
    if (!res.destroyed) sendJson(res, 200, responseToJson(ctx.registry, route.outputType, response));
  } catch (err) {
    if (isServiceError(err)) throw gatewayErrorFromGrpc(err, ctx.logger);
    throw err;
  } finally {
    ctx.inFlight.delete(cancel);
    res.off('close', onClientGone);
  }
}

/** Resolves when the stream is over, whoever ended it. Never rejects: errors go in the stream. */
export function forwardStream(
  ctx: ForwardContext,
  route: Route,
  request: unknown,
  caller: Caller,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  return new Promise((resolve) => {
    const writer = new StreamWriter(res, streamFormatFor(req.headers.accept));
    const call = ctx.podApi.serverStream(route.grpcPath, request, caller);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(grace);
      writer.stopKeepalive();
      res.off('close', onClientGone);
      ctx.inFlight.delete(cancel);
      resolve();
    };
    const cancel = (): void => call.cancel();
    const onClientGone = (): void => {
      if (done) return;
      call.cancel();
      finish();
    };
    const grace = setTimeout(() => writer.start(), STREAM_HEADER_GRACE_MS);
    ctx.inFlight.add(cancel);
    res.once('close', onClientGone);

    call.on('metadata', () => {
      if (!done) writer.start();
    });
    call.on('data', (message: unknown) => {
      if (done) return;
      // A slow reader pauses the gRPC stream (and so, through flow control, the Pod API)
      // instead of the gateway buffering events without bound.
      if (!writer.result(responseToJson(ctx.registry, route.outputType, message))) {
        call.pause();
        res.once('drain', () => call.resume());
      }
    });
    call.on('error', (err: ServiceError) => {
      if (done) return;
      const error = gatewayErrorFromGrpc(err, ctx.logger);
      if (writer.started) {
        writer.error(error.body);
        writer.end();
      } else {
        sendError(res, error);
      }
      finish();
    });
    call.on('end', () => {
      if (done) return;
      writer.start();
      writer.end();
      finish();
    });
  });
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'metadata' in err;
}
