import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { httpStatusFromGrpcCode } from '../../gateway';

describe('gateway httpStatusFromGrpcCode', () => {
  it('maps every gRPC code as grpc-gateway does', () => {
    const expected: [status, number][] = [
      [status.OK, 200],
      [status.CANCELLED, 499],
      [status.UNKNOWN, 500],
      [status.INVALID_ARGUMENT, 400],
      [status.DEADLINE_EXCEEDED, 504],
      [status.NOT_FOUND, 404],
      [status.ALREADY_EXISTS, 409],
      [status.PERMISSION_DENIED, 403],
      [status.RESOURCE_EXHAUSTED, 429],
      [status.FAILED_PRECONDITION, 400],
      [status.ABORTED, 409],
      [status.OUT_OF_RANGE, 400],
      [status.UNIMPLEMENTED, 501],
      [status.INTERNAL, 500],
      [status.UNAVAILABLE, 503],
      [status.DATA_LOSS, 500],
      [status.UNAUTHENTICATED, 401],
    ];
    for (const [code, http] of expected) assert.equal(httpStatusFromGrpcCode(code), http, status[code]);
    assert.equal(httpStatusFromGrpcCode(99), 500);
  });
});
