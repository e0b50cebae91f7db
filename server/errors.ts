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

export class PodiumError extends Error {
  constructor(
    readonly code: status,
    message: string,
    readonly fieldViolations: readonly FieldViolation[] = [],
  ) {
    super(message);
    this.name = 'PodiumError';
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
    if (err.fieldViolations.length > 0) {
      metadata.set(
        DETAILS_METADATA_KEY,
        JSON.stringify([
          { '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: err.fieldViolations },
        ]),
      );
    }
    return { code: err.code, details: err.message, metadata };
  }
  log.error({ err }, 'unexpected error in a handler');
  return { code: status.INTERNAL, details: 'internal error' };
}
