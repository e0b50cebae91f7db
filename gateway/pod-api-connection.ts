/**
 * The gateway's one link to the Pod API: the generated `PodApiClient` over mutual TLS (the
 * gateway's certificate carries role `gateway`), calling any PodApi method by its gRPC path with
 * the generated serializers. Every call carries the authenticated tenant as `podium-tenant`
 * metadata and the token's role as `podium-role`; nothing from the HTTP request's headers is
 * forwarded, so a caller cannot name a tenant or a role of its choosing. The Pod API trusts these
 * two only because the certificate they arrive with has role `gateway`.
 */
import {
  credentials,
  Metadata,
  status,
  type ClientReadableStream,
  type MethodDefinition,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { PodApiClient, PodApiService } from '../gen/podium/v1/pod_api';
import type { TokenRole } from './token-store';

export const TENANT_METADATA_KEY = 'podium-tenant';
/** `customer` or `admin`: the role of the API token the call acts for. */
export const ROLE_METADATA_KEY = 'podium-role';

/** Whom a call acts for: what the gateway authenticated from the bearer token. */
export interface Caller {
  readonly tenant: string;
  readonly role: TokenRole;
}

/** The Pod API's full service name, whose http rules are the gateway's routes. */
export const POD_API_SERVICE = 'podium.v1.PodApi';

export interface PodApiTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface UnaryCall {
  /** Resolves with the response message, rejects with the grpc-js ServiceError. */
  readonly response: Promise<unknown>;
  cancel(): void;
}

/**
 * The gateway's channel to the Pod API: one client per Pod API process it was given (any of them
 * serves PodApi: they share one database). Calls go to the current one; when a call finds it
 * unavailable, later calls go to the next. The failed call is not replayed elsewhere (a create
 * may have reached the server before the connection broke): it answers 503, and the client
 * retries.
 */
export class PodApiConnection {
  private readonly clients: PodApiClient[];
  private current = 0;
  // The generated definitions are typed per method; the gateway calls them generically, by path.
  private readonly methods = new Map<string, MethodDefinition<unknown, unknown>>();

  constructor(addresses: string | readonly string[], tls: PodApiTls) {
    const channelCredentials = credentials.createSsl(
      Buffer.from(tls.caPem),
      Buffer.from(tls.keyPem),
      Buffer.from(tls.certPem),
    );
    const list = typeof addresses === 'string' ? [addresses] : addresses;
    if (list.length === 0) throw new Error('at least one Pod API address is needed');
    // A process that was down (a leader killed, a standby restarting) is tried again within 2 s of
    // coming back: grpc-js would otherwise back off exponentially up to two minutes.
    const options = { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 2000 };
    this.clients = list.map((a) => new PodApiClient(a, channelCredentials, options));
    const definitions: ServiceDefinition = PodApiService;
    for (const definition of Object.values(definitions)) this.methods.set(definition.path, definition);
  }

  private get client(): PodApiClient {
    return this.clients[this.current % this.clients.length]!;
  }

  /** A call on `client` failed: when the process was unavailable, the next calls go to the next one. */
  private failed(client: PodApiClient, err: ServiceError): void {
    if (err.code === status.UNAVAILABLE && this.client === client && this.clients.length > 1) this.current++;
  }

  /** True when the generated client knows the method (checked for every route at start-up). */
  has(grpcPath: string): boolean {
    return this.methods.has(grpcPath);
  }

  unary(grpcPath: string, request: unknown, caller: Caller, deadline: Date): UnaryCall {
    const method = this.method(grpcPath);
    let cancel: () => void = () => {};
    let cancelled = false;
    const attempt = (client: PodApiClient, triesLeft: number): Promise<unknown> =>
      new Promise<unknown>((resolve, reject) => {
        const call = client.makeUnaryRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          request,
          callerMetadata(caller),
          { deadline },
          (err: ServiceError | null, value?: unknown) => {
            if (!err) return resolve(value);
            this.failed(client, err);
            // Refused by the channel itself, before anything was sent (its process is down, or it
            // is still backing off after one was): the next process may take it, once each.
            if (!cancelled && triesLeft > 0 && neverSent(err)) return resolve(attempt(this.client, triesLeft - 1));
            reject(err);
          },
        );
        cancel = () => {
          cancelled = true;
          call.cancel();
        };
      });
    return { response: attempt(this.client, this.clients.length - 1), cancel: () => cancel() };
  }

  /**
   * A server stream. It has no deadline: a watch lives as long as its HTTP client, and the
   * caller cancels it when that client goes away.
   */
  serverStream(grpcPath: string, request: unknown, caller: Caller): ClientReadableStream<unknown> {
    const method = this.method(grpcPath);
    const client = this.client;
    const stream = client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, request, callerMetadata(caller), {});
    stream.on('error', (err: ServiceError) => this.failed(client, err));
    return stream;
  }

  close(): void {
    for (const c of this.clients) c.close();
  }

  private method(grpcPath: string): MethodDefinition<unknown, unknown> {
    const method = this.methods.get(grpcPath);
    if (!method) throw new Error(`the generated PodApi client has no method ${grpcPath}`);
    return method;
  }
}

function callerMetadata(caller: Caller): Metadata {
  const metadata = new Metadata();
  metadata.set(TENANT_METADATA_KEY, caller.tenant);
  metadata.set(ROLE_METADATA_KEY, caller.role);
  return metadata;
}

/**
 * True when grpc-js refused the call locally, without a connection to send it on: it never reached
 * a Pod API process, so sending it to another cannot do it twice.
 */
function neverSent(err: ServiceError): boolean {
  return err.code === status.UNAVAILABLE && /^No connection established/.test(err.details ?? '');
}
