/**
 * The gateway's one error type and the one place that turns a gRPC status into it. Every error
 * response body is `{"code", "message", "details"}` (google.rpc.Status in proto3 JSON, as
 * grpc-gateway sends), with the HTTP status from `httpStatusFromGrpcCode`.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { httpStatusFromGrpcCode } from './http-status';

export interface FieldViolation {
  field: string;
  description: string;
}

export interface ErrorBody {
  code: number;
  message: string;
  details: unknown[];
}

/** Trailing metadata in which the Pod API sends google.rpc.Status details, as a JSON array. */
export const DETAILS_METADATA_KEY = 'podium-details';

export const BAD_REQUEST_TYPE = 'type.googleapis.com/google.rpc.BadRequest';

export class GatewayError extends Error {
  /**
   * @param httpStatus only for the statuses HTTP defines and gRPC has no code for (405, 413);
   *   otherwise the table decides.
   */
  constructor(
    readonly code: status,
    message: string,
    readonly details: readonly unknown[] = [],
    readonly httpStatus: number = httpStatusFromGrpcCode(code),
  ) {
    super(message);
    this.name = 'GatewayError';
  }

  /** INVALID_ARGUMENT whose details carry a google.rpc.BadRequest listing the violations. */
  static invalidArgument(message: string, violations: readonly FieldViolation[] = []): GatewayError {
    const details = violations.length > 0 ? [{ '@type': BAD_REQUEST_TYPE, fieldViolations: violations }] : [];
    return new GatewayError(status.INVALID_ARGUMENT, message, details);
  }

  get body(): ErrorBody {
    return { code: this.code, message: this.message, details: [...this.details] };
  }
}

/**
 * Codes whose message may come from the client library rather than the Pod API (connection
 * failures, deadlines, parse errors) and can name internal addresses: the caller gets a generic
 * message and the log gets the real one.
 */
const GENERIC_MESSAGES: ReadonlyMap<number, string> = new Map([
  [status.UNKNOWN, 'internal error'],
  [status.INTERNAL, 'internal error'],
  [status.DATA_LOSS, 'internal error'],
  [status.UNAVAILABLE, 'the Pod API is unavailable, try again later'],
  [status.DEADLINE_EXCEEDED, 'the Pod API did not answer in time'],
]);

/** The one conversion from a failed gRPC call to the gateway's error. */
export function gatewayErrorFromGrpc(err: ServiceError, logger: Logger): GatewayError {
  const code = typeof err.code === 'number' ? err.code : status.UNKNOWN;
  const generic = GENERIC_MESSAGES.get(code);
  if (generic !== undefined) {
    logger.warn({ grpcCode: code, grpcMessage: err.details }, 'Pod API call failed');
    return new GatewayError(code, generic, detailsFromMetadata(err, logger));
  }
  return new GatewayError(code, err.details || status[code] || 'error', detailsFromMetadata(err, logger));
}

/** Anything that is not a GatewayError is a bug: INTERNAL to the caller, the cause to the log. */
export function toGatewayError(err: unknown, logger: Logger): GatewayError {
  if (err instanceof GatewayError) return err;
  logger.error({ err }, 'unexpected error in the gateway');
  return new GatewayError(status.INTERNAL, 'internal error');
}

function detailsFromMetadata(err: ServiceError, logger: Logger): unknown[] {
  const values = err.metadata?.get(DETAILS_METADATA_KEY) ?? [];
  const text = values.length > 0 ? values[0].toString() : '';
  if (!text) return [];
  try {
    const parsed: unknown = JSON.parse(text);
    if (Array.isArray(parsed) && parsed.every(isAnyLike)) return parsed;
  } catch {
    // Reported below: a malformed detail is the server's bug, never the caller's problem.
  }
  logger.warn({ metadataKey: DETAILS_METADATA_KEY }, 'ignoring malformed error details from the Pod API');
  return [];
}

/** A google.protobuf.Any in JSON: an object naming its type. */
function isAnyLike(value: unknown): boolean {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { '@type'?: unknown })['@type'] === 'string'
  );
}
