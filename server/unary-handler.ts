/**
 * The shape every unary PodApi handler has: authorization first (the roles that may call it are
 * named where the handler is defined), the caller's tenant from its credentials, then one error
 * boundary that turns whatever was thrown into a gRPC status (errors.ts).
 */
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Identity, Role } from '../certs';
import { authorize, callerTenant, type CaTrust } from './auth';
import { toServiceError } from './errors';

export interface UnaryDeps {
  ca: CaTrust;
  log: Logger;
}

/** Wraps a unary handler: authorization first, one error boundary last. */
export function unary<Req, Res>(
  deps: UnaryDeps,
  roles: readonly Role[],
  fn: (req: Req, tenant: string, caller: Identity) => Res,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    try {
      const id = authorize(call, deps.ca, roles);
      callback(null, fn(call.request, callerTenant(call, id), id));
    } catch (err) {
      callback(toServiceError(err, deps.log), null);
    }
  };
}
