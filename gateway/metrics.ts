/**
 * Prometheus metrics of the gateway, in a registry of its own (two gateways in one process, as in
 * tests, do not collide): requests and their duration by method, route template and status,
 * plus prom-client's default process metrics.
 *
 * The route label is the template (`/v1/environments/{environment}/services`), never the raw
 * path, so that the number of series stays bounded whatever clients send.
 */
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status_code'>;
  private readonly duration: Histogram<'method' | 'route' | 'status_code'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'podium_gateway_http_requests_total',
      help: 'HTTP requests answered by the gateway.',
      labelNames: ['method', 'route', 'status_code'],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: 'podium_gateway_http_request_duration_seconds',
      help: 'Seconds from request to the end of the response (for a stream, its whole life).',
      labelNames: ['method', 'route', 'status_code'],
      // From a cached lookup to a deploy that waits on the Pod API's storage.
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
  }

  observe(method: string, route: string, statusCode: number, seconds: number): void {
    const labels = { method, route, status_code: String(statusCode) };
    this.requests.inc(labels);
    this.duration.observe(labels, seconds);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
