/**
 * A small in-test Pod API for the gateway's unit tests: a real grpc-js server on 127.0.0.1:0
 * with real mutual TLS, implementing PodApiService with canned answers. It records every call
 * (method, request, `podium-tenant` metadata); a test overrides one method's answer, or makes
 * it fail with a status and `podium-details` trailers, through `answer`.
 */
import {
  Metadata,
  Server,
  ServerCredentials,
  status,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from '@grpc/grpc-js';
import {
  PodApiService,
  type CreateEnvironmentRequest,
  type CreateServiceRequest,
  type WatchEventsRequest,
} from '../../gen/podium/v1/pod_api';
import { AppArmorMode, HostState, InstanceState, Service, type Event } from '../../gen/podium/v1/resources';
import type { TestPki } from './test-pki';

export interface RecordedCall {
  method: string;
  request: any;
  tenant: string | undefined;
}

/** What a canned answer throws to fail the call. */
export class CannedStatus extends Error {
  constructor(
    readonly code: status,
    message: string,
    readonly podiumDetails?: unknown[],
  ) {
    super(message);
  }
}

type Answer = (request: any) => unknown | Promise<unknown>;
type WatchAnswer = (call: ServerWritableStream<WatchEventsRequest, Event>) => void;

export const CREATED = new Date('2024-05-01T12:00:00.000Z');

export class FakePodApi {
  readonly calls: RecordedCall[] = [];
  /** How many WatchEvents streams the gateway cancelled. */
  cancelledStreams = 0;
  private readonly answers = new Map<string, Answer>();
  private watch: WatchAnswer = defaultWatch;
  private server: Server | undefined;

  /** Overrides a unary method's answer until `reset()`. */
  answer(method: string, answer: Answer): void {
    this.answers.set(method, answer);
  }

  answerWatch(answer: WatchAnswer): void {
    this.watch = answer;
  }

  reset(): void {
    this.calls.length = 0;
    this.answers.clear();
    this.watch = defaultWatch;
    this.cancelledStreams = 0;
  }

  callsOf(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Starts listening with mTLS (client certificates required); resolves with host:port. */
  async start(pki: TestPki): Promise<string> {
    const server = new Server();
    const unary = (method: string, fallback: Answer) => (call: ServerUnaryCall<any, any>, callback: sendUnaryData<any>) => {
      this.calls.push({ method, request: call.request, tenant: tenantOf(call.metadata) });
      const answer = this.answers.get(method) ?? fallback;
      Promise.resolve()
        .then(() => answer(call.request))
        .then(
          (response) => callback(null, response),
          (err: unknown) => callback(toStatus(err)),
        );
    };
    server.addService(PodApiService, {
      createEnvironment: unary('createEnvironment', (r: CreateEnvironmentRequest) => ({
        ...r.environment,
        tenant: 'acme',
        createTime: CREATED,
      })),
      listEnvironments: unary('listEnvironments', () => ({ environments: [{ name: 'prod', tenant: 'acme', createTime: CREATED }] })),
      createService: unary('createService', (r: CreateServiceRequest) => ({
        ...r.service,
        environment: r.environment,
        instances: [{ id: 'i-1', host: '', state: InstanceState.INSTANCE_STATE_PENDING, containerId: '', message: '' }],
        pendingReason: 'waiting for the next round',
        createTime: CREATED,
      })),
      getService: unary('getService', (r) =>
        Service.fromPartial({ name: r.service, environment: r.environment, replicas: 1, createTime: CREATED }),
      ),
      listServices: unary('listServices', () => ({ services: [] })),
      deleteService: unary('deleteService', () => ({})),
      listHosts: unary('listHosts', () => ({
        hosts: [
          {
            id: 'h1',
            pod: 'local',
            provider: 'dev',
            state: HostState.HOST_STATE_UP,
            capacity: { cpuMillis: 4000, memoryMib: 8192 },
            allocated: { cpuMillis: 250, memoryMib: 256 },
            labels: { zone: 'a' },
            apparmor: AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE,
            lastHeartbeat: CREATED,
            instanceCount: 1,
          },
        ],
      })),
      watchEvents: (call: ServerWritableStream<WatchEventsRequest, Event>) => {
        this.calls.push({ method: 'watchEvents', request: call.request, tenant: tenantOf(call.metadata) });
        call.on('cancelled', () => this.cancelledStreams++);
        this.watch(call);
      },
    });
    const credentials = ServerCredentials.createSsl(
      Buffer.from(pki.caPem),
      [{ private_key: Buffer.from(pki.server.keyPem), cert_chain: Buffer.from(pki.server.certPem) }],
      true,
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.server = server;
    return `127.0.0.1:${port}`;
  }

  stop(): void {
    this.server?.forceShutdown();
  }
}

export function event(sequence: number, type: string): Event {
  return { sequence, time: CREATED, type, environment: 'prod', service: 'web', instance: '', host: '', message: '' };
}

/** Two events, then the end of the stream. */
function defaultWatch(call: ServerWritableStream<WatchEventsRequest, Event>): void {
  call.write(event(1, 'service.created'));
  call.write(event(2, 'instance.running'));
  call.end();
}

function tenantOf(metadata: Metadata): string | undefined {
  const values = metadata.get('podium-tenant');
  return values.length > 0 ? values[0].toString() : undefined;
}

function toStatus(err: unknown): { code: status; details: string; metadata?: Metadata } {
  if (err instanceof CannedStatus) {
    const metadata = new Metadata();
    if (err.podiumDetails) metadata.set('podium-details', JSON.stringify(err.podiumDetails));
    return { code: err.code, details: err.message, metadata };
  }
  return { code: status.INTERNAL, details: 'internal error' };
}
