/**
 * The shape every unary PodApi handler has: authorization first (the roles that may call it are
 * named where the handler is defined), the caller's tenant from its credentials, then one error
 * boundary that turns whatever was thrown into a gRPC status (errors.ts).
 */
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Identity, Role } from '../certs';
import { authorize, callerRole, callerTenant, type CallerRole, type CaTrust } from './auth';
import { toServiceError } from './errors';

export interface UnaryDeps {
  ca: CaTrust;
  log: Logger;
}

/** Who is calling: the certificate's identity and whom it acts for (operator, admin, customer). */
export interface Caller {
  identity: Identity;
  role: CallerRole;
}

/** Wraps a unary handler: authorization first, one error boundary last. */
export function unary<Req, Res>(
  deps: UnaryDeps,
  roles: readonly Role[],
  fn: (req: Req, tenant: string, caller: Caller) => Res | Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    (async () => {
      const identity = authorize(call, deps.ca, roles);
      return fn(call.request, callerTenant(call, identity), { identity, role: callerRole(call, identity) });
    })().then(
      (res) => callback(null, res),
      (err) => callback(toServiceError(err, deps.log), null),
    );
  };
}
