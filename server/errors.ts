/**
 * One error type, one boundary. Code anywhere in the server throws a PodiumError; `toServiceError`
 * is the one place that turns it into a gRPC status. Anything else that escapes a handler is a
 * bug: it becomes INTERNAL with a generic message, and its cause goes to the log, never to the
 * caller (it could carry a secret or an internal path).
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

export interface FieldViolation {
  field: string;
  description: string;
}

/** One violated quota, as google.rpc.QuotaFailure.Violation. */
export interface QuotaViolation {
  /** What the quota is on, e.g. "tenant:acme/instances". */
  subject: string;
  description: string;
}

export class PodiumError extends Error {
  constructor(
    readonly code: status,
    message: string,
    readonly fieldViolations: readonly FieldViolation[] = [],
    readonly quotaViolations: readonly QuotaViolation[] = [],
  ) {
    super(message);
    this.name = 'PodiumError';
  }

  /** RESOURCE_EXHAUSTED naming every quota the request would exceed. */
  static quotaExceeded(message: string, violations: readonly QuotaViolation[]): PodiumError {
    return new PodiumError(status.RESOURCE_EXHAUSTED, message, [], violations);
  }

  /** INVALID_ARGUMENT naming the field and why. */
  static invalid(field: string, description: string): PodiumError {
    return new PodiumError(status.INVALID_ARGUMENT, `${field}: ${description}`, [{ field, description }]);
  }

  static notFound(what: string): PodiumError {
    return new PodiumError(status.NOT_FOUND, `${what} not found`);
  }
}

/** Throws INVALID_ARGUMENT listing every violation when there is at least one. */
export function assertNoViolations(violations: FieldViolation[]): void {
  if (violations.length === 0) return;
  const message = violations.map((v) => `${v.field}: ${v.description}`).join('; ');
  throw new PodiumError(status.INVALID_ARGUMENT, message, violations);
}

/**
 * The details travel as trailing metadata `podium-details`: a JSON array in the shape of
 * google.rpc.Status details, so that the gateway can pass them on as grpc-gateway does.
 */
export const DETAILS_METADATA_KEY = 'podium-details';

export function toServiceError(err: unknown, log: { error(obj: object, msg: string): void }): Partial<ServiceError> {
  if (err instanceof PodiumError) {
    const metadata = new Metadata();
    const details: object[] = [];
    if (err.fieldViolations.length > 0) {
      details.push({ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: err.fieldViolations });
    }
    if (err.quotaViolations.length > 0) {
      details.push({ '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: err.quotaViolations });
    }
    if (details.length > 0) metadata.set(DETAILS_METADATA_KEY, JSON.stringify(details));
    return { code: err.code, details: err.message, metadata };
  }
  log.error({ err }, 'unexpected error in a handler');
  return { code: status.INTERNAL, details: 'internal error' };
}
