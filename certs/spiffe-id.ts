import { isRole, type Identity, type Role } from './identity';
import { isTenantName, TENANT_NAME_RULE } from './tenant-name';

/*
 * SPIFFE ids are compared as exact strings everywhere (in the proxy's allow lists, in logs, in
 * the registry), so we only ever produce, and only ever accept, one spelling: a lowercase trust
 * domain and path segments of [A-Za-z0-9._-], without percent-encoding, query or fragment.
 * A name that could smuggle a "/" would let "host/a/gateway" read as something else.
 */

const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
/** Role and instance names also become the certificate's CN, whose X.520 upper bound is 64. */
const MAX_NAME = 64;

/** The first path segment for each role. Agents are named after their host. */
const PATH_OF_ROLE: Readonly<Record<Role, string>> = Object.freeze({
  agent: 'host',
  gateway: 'gateway',
  operator: 'operator',
  server: 'server',
});

const ROLE_OF_PATH: ReadonlyMap<string, Role> = new Map(
  (Object.entries(PATH_OF_ROLE) as [Role, string][]).map(([role, path]) => [path, role]),
);

function isSegment(s: string): boolean {
  return SEGMENT.test(s) && s !== '.' && s !== '..';
}

function isName(s: string): boolean {
  return s.length <= MAX_NAME && isSegment(s);
}

function show(value: unknown): string {
  return JSON.stringify(String(value).slice(0, 80));
}

/** Throws unless `td` is a valid trust domain (lowercase letters, digits, '.', '-', '_'). */
export function assertTrustDomain(td: string): void {
  if (typeof td !== 'string' || !TRUST_DOMAIN.test(td)) {
    throw new Error(`invalid trust domain ${show(td)}: use lowercase letters, digits, '.', '-' and '_'`);
  }
}

/**
 * spiffe://<td>/host/<name> for agent, spiffe://<td>/gateway/<name>, spiffe://<td>/operator/<name>,
 * spiffe://<td>/server/<name>.
 *
 * Throws Error when the trust domain, the role or the name is invalid; a name is 1–64 characters
 * of [A-Za-z0-9._-] and neither "." nor "..". `parseSpiffeId` accepts exactly what this returns.
 */
export function spiffeIdFor(trustDomain: string, role: Role, name: string): string {
  assertTrustDomain(trustDomain);
  if (!isRole(role)) throw new Error(`invalid role ${show(role)}`);
  if (typeof name !== 'string' || !isName(name)) {
    throw new Error(`invalid ${role} name ${show(name)}: 1-${MAX_NAME} characters of A-Z a-z 0-9 . - _`);
  }
  return `spiffe://${trustDomain}/${PATH_OF_ROLE[role]}/${name}`;
}

/**
 * Workload identity spiffe://<td>/tenant/<t>/env/<e>/service/<s> (used by the hosts' mTLS proxy).
 * Throws Error when the tenant is not a tenant name (certs/tenant-name: the same rule the Pod
 * API and the gateway's tokens hold tenants to), or the environment or service is not a valid
 * segment ([A-Za-z0-9._-], not "." or "..").
 */
export function workloadSpiffeId(trustDomain: string, tenant: string, env: string, service: string): string {
  assertTrustDomain(trustDomain);
  if (!isTenantName(tenant)) throw new Error(`invalid tenant ${show(tenant)} for a workload identity: it must be ${TENANT_NAME_RULE}`);
  for (const [what, value] of [['env', env], ['service', service]] as const) {
    if (typeof value !== 'string' || !isSegment(value)) {
      throw new Error(`invalid ${what} ${show(value)} for a workload identity: use A-Z a-z 0-9 . - _`);
    }
  }
  return `spiffe://${trustDomain}/tenant/${tenant}/env/${env}/service/${service}`;
}

/**
 * Parses a SPIFFE id of one of the four roles back into role and name. Returns null when it is not
 * one of ours: another trust domain, another shape (workload ids included), or a spelling that
 * `spiffeIdFor` would not produce. Never throws.
 */
export function parseSpiffeId(trustDomain: string, id: string): Identity | null {
  if (typeof id !== 'string' || typeof trustDomain !== 'string') return null;
  const prefix = `spiffe://${trustDomain}/`;
  if (!TRUST_DOMAIN.test(trustDomain) || !id.startsWith(prefix)) return null;
  const parts = id.slice(prefix.length).split('/');
  if (parts.length !== 2) return null;
  const [path, name] = parts as [string, string];
  const role = ROLE_OF_PATH.get(path);
  if (role === undefined || !isName(name)) return null;
  return { role, name, spiffeId: id };
}

/**
 * Parses a workload identity (`workloadSpiffeId`'s shape) back into tenant, environment and
 * service. Returns null for anything else: another trust domain, a role's id, extra or missing
 * segments, or a spelling `workloadSpiffeId` would not produce. Never throws.
 */
export function parseWorkloadId(trustDomain: string, id: string): { tenant: string; environment: string; service: string } | null {
  if (typeof id !== 'string' || typeof trustDomain !== 'string' || !TRUST_DOMAIN.test(trustDomain)) return null;
  const prefix = `spiffe://${trustDomain}/`;
  if (!id.startsWith(prefix)) return null;
  const parts = id.slice(prefix.length).split('/');
  if (parts.length !== 6 || parts[0] !== 'tenant' || parts[2] !== 'env' || parts[4] !== 'service') return null;
  const [, tenant, , environment, , service] = parts as [string, string, string, string, string, string];
  if (!isTenantName(tenant) || !isSegment(environment) || !isSegment(service)) return null;
  return { tenant, environment, service };
}
