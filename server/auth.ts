/**
 * Who is calling. Every RPC but Join needs a client certificate signed by our CA; the caller's role
 * and name come from that certificate's SPIFFE id, never from a field in a message.
 *
 * The TLS listener (tls-listener.ts) does not insist on a client certificate at the handshake
 * (Join must work without one), so each handler checks the peer certificate itself through
 * `authorize`, with the roles that may call it written next to it. The listener already refuses
 * revoked certificates; `authorize` refuses them again, so that a gap in one layer is not a hole.
 */
import { status, type ServerUnaryCall } from '@grpc/grpc-js';
import { canonicalSerial, isTenantName, TENANT_NAME_RULE, verifyPeer, type Identity, type Role } from '../certs';
import { PodiumError } from './errors';

/** What authorization needs of any kind of call (unary or streaming). */
export type ServerSurfaceCall = Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext' | 'metadata'>;

export interface CaTrust {
  trustDomain: string;
  caCertPem: string;
  /** True when the certificate with this canonical serial has been revoked (see RevocationList). */
  isRevoked(serial: string): boolean;
}

/** The verified identity of the peer, or null when it presented no certificate of ours. */
export function peerIdentity(call: ServerSurfaceCall, ca: CaTrust): Identity | null {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert || !cert.raw) return null;
  return verifyPeer(ca, cert.raw);
}

/** The canonical serial of the peer's certificate, or null when it presented none. */
export function peerSerial(call: ServerSurfaceCall): string | null {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  return cert?.serialNumber ? canonicalSerial(cert.serialNumber) : null;
}

/**
 * Throws UNAUTHENTICATED without a valid certificate or with a revoked one, PERMISSION_DENIED
 * for another role.
 */
export function authorize(call: ServerSurfaceCall, ca: CaTrust, roles: readonly Role[]): Identity {
  const id = peerIdentity(call, ca);
  if (!id) throw new PodiumError(status.UNAUTHENTICATED, 'a client certificate issued by this Pod API is required');
  const serial = peerSerial(call);
  if (serial === null) throw new PodiumError(status.UNAUTHENTICATED, 'the client certificate has no readable serial number');
  if (ca.isRevoked(serial)) throw new PodiumError(status.UNAUTHENTICATED, 'this client certificate has been revoked');
  if (!roles.includes(id.role)) {
    throw new PodiumError(status.PERMISSION_DENIED, `role ${id.role} may not call this method`);
  }
  return id;
}

export const TENANT_METADATA_KEY = 'podium-tenant';
/** The role of the API token a gateway call acts for: `customer` (when absent) or `admin`. */
export const ROLE_METADATA_KEY = 'podium-role';

/**
 * Whom a PodApi call acts for, beyond its tenant: an `operator` (by its certificate), or, through
 * the gateway, the holder of an `admin` or a `customer` API token.
 */
export type CallerRole = 'operator' | 'admin' | 'customer';

/**
 * The tenant a PodApi call acts for: the gateway passes the tenant it authenticated; an operator
 * may pick one, "default" otherwise. A tenant must be a name by the one rule of certs/tenant-name
 * (the rule the gateway's tokens are made with); the value itself is never quoted back.
 */
export function callerTenant(call: ServerSurfaceCall, id: Identity): string {
  const values = call.metadata.get(TENANT_METADATA_KEY);
  if (values.length === 0) {
    if (id.role === 'operator') return 'default';
    throw new PodiumError(status.UNAUTHENTICATED, `${TENANT_METADATA_KEY} metadata is missing`);
  }
  const tenant = String(values[0]);
  if (!isTenantName(tenant)) {
    throw new PodiumError(status.UNAUTHENTICATED, `${TENANT_METADATA_KEY} metadata is not a tenant name: it must be ${TENANT_NAME_RULE}`);
  }
  return tenant;
}

/**
 * The caller's role. `podium-role` metadata is trusted only from a certificate with role
 * `gateway`, which authenticated the token it names; an operator is an operator whatever
 * metadata it sends, and any other caller is a customer. A gateway that sends no role acts for
 * a customer (the narrower view); one that sends another value is refused, never guessed at.
 */
export function callerRole(call: ServerSurfaceCall, id: Identity): CallerRole {
  if (id.role === 'operator') return 'operator';
  if (id.role !== 'gateway') return 'customer';
  const values = call.metadata.get(ROLE_METADATA_KEY);
  if (values.length === 0) return 'customer';
  const role = String(values[0]);
  if (role === 'customer' || role === 'admin') return role;
  throw new PodiumError(status.UNAUTHENTICATED, `${ROLE_METADATA_KEY} metadata must be "customer" or "admin"`);
}
