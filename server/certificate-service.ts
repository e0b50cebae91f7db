/**
 * CertificateService: Join (a join token and a CSR for a certificate) and Renew (a new
 * certificate for the caller's own identity). Join is the only RPC open to callers without a
 * client certificate: the token's secret is the credential, and only its hash is stored.
 */
import { status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type {
  CertificateServiceServer,
  JoinRequest,
  JoinResponse,
  RenewRequest,
  RenewResponse,
} from '../gen/podium/v1/certificate';
import { parseJoinToken, secretMatches, signCsr, spiffeIdFor, type Authority, type Role } from '../certs';
import { authorize } from './auth';
import { assertNoViolations, PodiumError, toServiceError } from './errors';
import type { Store } from './store';
import { nameViolation } from './validation';

const JOINABLE: readonly Role[] = ['agent', 'gateway', 'operator'];

export interface CertificateServiceDeps {
  store: Store;
  ca: Authority;
  /** Lifetime of issued certificates, in seconds. */
  certLifetimeSeconds: number;
  log: Logger;
}

const INVALID_TOKEN = 'join token is unknown, expired or wrong';

export function certificateHandlers(deps: CertificateServiceDeps): CertificateServiceServer {
  return {
    join: async (call: ServerUnaryCall<JoinRequest, JoinResponse>, callback: sendUnaryData<JoinResponse>) => {
      try {
        let parsed: ReturnType<typeof parseJoinToken>;
        try {
          parsed = parseJoinToken(call.request.token);
        } catch (err) {
          throw PodiumError.invalid('token', (err as Error).message);
        }
        if (parsed.fingerprint !== deps.ca.fingerprint) {
          throw new PodiumError(status.UNAUTHENTICATED, 'join token was made for another Pod API (CA fingerprint differs)');
        }
        const stored = deps.store.getJoinToken(parsed.id);
        if (!stored || stored.expiresAt < Date.now() || !secretMatches(parsed.secret, stored.secretHash)) {
          throw new PodiumError(status.UNAUTHENTICATED, INVALID_TOKEN);
        }
        const role = stored.role as Role;
        if (!JOINABLE.includes(role)) throw new PodiumError(status.UNAUTHENTICATED, INVALID_TOKEN);
        let name = call.request.hostId;
        if (name) {
          const v = nameViolation('host_id', name);
          if (v) assertNoViolations([v]);
        } else {
          name = `${role === 'agent' ? 'host' : role}-${randomBytes(4).toString('hex')}`;
        }
        const identity = { role, name, spiffeId: spiffeIdFor(deps.ca.trustDomain, role, name) };
        let certificatePem: string;
        try {
          certificatePem = await signCsr(deps.ca, call.request.csrPem, identity, deps.certLifetimeSeconds);
        } catch (err) {
          throw PodiumError.invalid('csr_pem', (err as Error).message);
        }
        deps.store.appendEvent({ tenant: '', type: 'certificate.issued', host: role === 'agent' ? name : '', message: identity.spiffeId });
        deps.log.info({ role, name }, 'joined');
        callback(null, { certificatePem, caPem: deps.ca.caCertPem, hostId: name });
      } catch (err) {
        callback(toServiceError(err, deps.log), null);
      }
    },

    renew: async (call: ServerUnaryCall<RenewRequest, RenewResponse>, callback: sendUnaryData<RenewResponse>) => {
      try {
        const identity = authorize(call, deps.ca, JOINABLE);
        let certificatePem: string;
        try {
          certificatePem = await signCsr(deps.ca, call.request.csrPem, identity, deps.certLifetimeSeconds);
        } catch (err) {
          throw PodiumError.invalid('csr_pem', (err as Error).message);
        }
        callback(null, { certificatePem });
      } catch (err) {
        callback(toServiceError(err, deps.log), null);
      }
    },
  };
}
