/**
 * PodApi.RevokeHost. Roles: operator.
 *
 * The write is revokeHost (revocation.ts), the same one `podium certs revoke --host` makes. The
 * `host.revoked` event it appends makes this process's revocation list refresh at once (see
 * startServer), which closes the host's connections; the orchestrator's next tick places the lost
 * instances again.
 */
import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { RevokeHostRequest, RevokeHostResponse } from '../gen/podium/v1/pod_api';
import { authorize, type CaTrust } from './auth';
import { assertNoViolations, PodiumError, toServiceError } from './errors';
import { DEFAULT_REVOKE_REASON, revokeHost } from './revocation';
import type { Storage } from './storage';
import { nameViolation } from './validation';

/** A reason is a short note for people: one line, printable, at most this long. */
const MAX_REASON = 200;

export interface RevokeHostDeps {
  storage: Storage;
  ca: CaTrust;
  log: Logger;
}

export function revokeHostHandler(
  deps: RevokeHostDeps,
): (call: ServerUnaryCall<RevokeHostRequest, RevokeHostResponse>, callback: sendUnaryData<RevokeHostResponse>) => void {
  return (call, callback) => {
    (async () => {
      authorize(call, deps.ca, ['operator']);
      const { host } = call.request;
      const reason = call.request.reason.trim() || DEFAULT_REVOKE_REASON;
      const violations = [nameViolation('host', host), reasonViolation(reason)].filter((v) => v !== null);
      assertNoViolations(violations);
      const done = await revokeHost(deps.storage, host, reason);
      if (!done) throw new PodiumError(status.NOT_FOUND, `host "${host}" not found`);
      deps.log.warn({ host, reason, serials: done.revoked.map((c) => c.serial), lost: done.lost.length }, 'host revoked');
      return { revokedSerials: done.revoked.map((c) => c.serial), lostInstances: done.lost.length };
    })().then(
      (res) => callback(null, res),
      (err) => callback(toServiceError(err, deps.log), null),
    );
  };
}

/** Null when `reason` is acceptable, else the violation of the field `reason`. */
export function reasonViolation(reason: string): { field: string; description: string } | null {
  if (reason.length > MAX_REASON) return { field: 'reason', description: `must be at most ${MAX_REASON} characters` };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(reason)) return { field: 'reason', description: 'must be one line of printable characters' };
  return null;
}
