/** The roles a Podium certificate can carry. `server` is the Pod API itself. */
export type Role = 'agent' | 'gateway' | 'operator' | 'server';

/**
 * Who a certificate speaks for. `name` is the host id for agents, and the instance name for the
 * other roles; `spiffeId` is the certificate's URI SAN, always `spiffeIdFor(td, role, name)`.
 */
export interface Identity {
  role: Role;
  name: string;
  spiffeId: string;
}

/** All roles, in a fixed order. */
export const ROLES: readonly Role[] = Object.freeze(['agent', 'gateway', 'operator', 'server'] as const);

/** True when `value` is one of the four roles (runtime check for values from outside TypeScript). */
export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}
