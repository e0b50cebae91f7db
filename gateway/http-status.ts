/**
 * The one table from gRPC status codes to HTTP statuses, the same as grpc-gateway's
 * runtime.HTTPStatusFromCode, so that REST clients see what they would see in front of any
 * grpc-gateway. Every error the gateway sends takes its status from here, except the few that
 * HTTP itself defines and gRPC has no word for (405, 413): those say so where they are raised.
 */
import { status } from '@grpc/grpc-js';

const HTTP_STATUS_BY_GRPC_CODE: ReadonlyMap<number, number> = new Map([
  [status.OK, 200],
  // 499 is nginx's "client closed request": the caller gave up, not the server.
  [status.CANCELLED, 499],
  [status.UNKNOWN, 500],
  [status.INVALID_ARGUMENT, 400],
  [status.DEADLINE_EXCEEDED, 504],
  [status.NOT_FOUND, 404],
  [status.ALREADY_EXISTS, 409],
  [status.PERMISSION_DENIED, 403],
  [status.UNAUTHENTICATED, 401],
  [status.RESOURCE_EXHAUSTED, 429],
  // A failed precondition is the caller's to fix, hence 400 rather than 412 (as grpc-gateway).
  [status.FAILED_PRECONDITION, 400],
  [status.ABORTED, 409],
  [status.OUT_OF_RANGE, 400],
  [status.UNIMPLEMENTED, 501],
  [status.INTERNAL, 500],
  [status.UNAVAILABLE, 503],
  [status.DATA_LOSS, 500],
]);

/** The HTTP status for a gRPC status code; 500 for a code gRPC does not define. */
export function httpStatusFromGrpcCode(code: number): number {
  return HTTP_STATUS_BY_GRPC_CODE.get(code) ?? 500;
}
