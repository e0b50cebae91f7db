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

export class PodApiConnection {
  private readonly client: PodApiClient;
  // The generated definitions are typed per method; the gateway calls them generically, by path.
  private readonly methods = new Map<string, MethodDefinition<unknown, unknown>>();

  constructor(address: string, tls: PodApiTls) {
    const channelCredentials = credentials.createSsl(
      Buffer.from(tls.caPem),
      Buffer.from(tls.keyPem),
      Buffer.from(tls.certPem),
    );
    this.client = new PodApiClient(address, channelCredentials);
    const definitions: ServiceDefinition = PodApiService;
    for (const definition of Object.values(definitions)) this.methods.set(definition.path, definition);
  }

  /** True when the generated client knows the method (checked for every route at start-up). */
  has(grpcPath: string): boolean {
    return this.methods.has(grpcPath);
  }

  unary(grpcPath: string, request: unknown, caller: Caller, deadline: Date): UnaryCall {
    const method = this.method(grpcPath);
    let cancel: () => void = () => {};
    const response = new Promise<unknown>((resolve, reject) => {
      const call = this.client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        callerMetadata(caller),
        { deadline },
        (err: ServiceError | null, value?: unknown) => (err ? reject(err) : resolve(value)),
      );
      cancel = () => call.cancel();
    });
    return { response, cancel: () => cancel() };
  }

  /**
   * A server stream. It has no deadline: a watch lives as long as its HTTP client, and the
   * caller cancels it when that client goes away.
   */
  serverStream(grpcPath: string, request: unknown, caller: Caller): ClientReadableStream<unknown> {
    const method = this.method(grpcPath);
    return this.client.makeServerStreamRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      callerMetadata(caller),
      {},
    );
  }

  close(): void {
    this.client.close();
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
