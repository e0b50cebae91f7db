/**
 * The HTTP side of a server stream, in one of two framings:
 *
 * - newline-delimited JSON (the default): one `{"result": …}` per line, as grpc-gateway sends,
 *   and a last `{"error": {code, message, details}}` line if the stream fails;
 * - Server-Sent Events, when the client accepts `text/event-stream` (the browser's EventSource):
 *   each of those same JSON objects as one `data:` event, so both framings parse alike.
 *
 * Headers are sent by `start()`, which the caller delays until the Pod API has accepted the
 * call, so that a stream refused at once still gets its proper HTTP status.
 */
import type { ServerResponse } from 'node:http';
import type { ErrorBody } from './gateway-error';

export type StreamFormat = 'ndjson' | 'sse';

/** SSE comments at this interval keep proxies and load balancers from closing an idle stream. */
const SSE_KEEPALIVE_MS = 15_000;

/** SSE when the Accept header names text/event-stream (with a non-zero q), NDJSON otherwise. */
export function streamFormatFor(accept: string | undefined): StreamFormat {
  for (const range of (accept ?? '').split(',')) {
    const [type, ...params] = range.split(';').map((p) => p.trim().toLowerCase());
    if (type !== 'text/event-stream') continue;
    const q = params.find((p) => p.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return 'sse';
  }
  return 'ndjson';
}

export class StreamWriter {
  private keepalive: NodeJS.Timeout | undefined;
  private startedFlag = false;

  constructor(
    private readonly res: ServerResponse,
    readonly format: StreamFormat,
  ) {}

  get started(): boolean {
    return this.startedFlag;
  }

  /** Sends 200 and the headers now, so the client knows the stream is open. Idempotent. */
  start(): void {
    if (this.startedFlag) return;
    this.startedFlag = true;
    this.res.writeHead(200, {
      'content-type': this.format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // Tells nginx-style proxies not to buffer the stream.
      'x-accel-buffering': 'no',
    });
    this.res.flushHeaders();
    if (this.format === 'sse') {
      this.keepalive = setInterval(() => this.res.write(': keepalive\n\n'), SSE_KEEPALIVE_MS);
      this.keepalive.unref();
    }
  }

  /** Writes one message; false when the socket's buffer is full (wait for 'drain'). */
  result(json: unknown): boolean {
    this.start();
    return this.frame({ result: json });
  }

  /** Writes the error frame that ends a failed stream. */
  error(body: ErrorBody): void {
    this.start();
    this.frame({ error: body });
  }

  end(): void {
    this.stopKeepalive();
    if (!this.res.writableEnded) this.res.end();
  }

  stopKeepalive(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = undefined;
  }

  private frame(value: unknown): boolean {
    const text = JSON.stringify(value);
    return this.res.write(this.format === 'sse' ? `data: ${text}\n\n` : `${text}\n`);
  }
}
