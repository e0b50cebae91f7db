/**
 * The one grammar of tenant names, for everyone who makes or reads one: the gateway's API tokens
 * (made by `podium token create`), the Pod API's `podium-tenant` metadata, and workload SPIFFE ids
 * (`spiffe://<td>/tenant/<t>/env/<e>/service/<s>`).
 *
 * Why here. A tenant that one part accepts and another refuses is a token that is created
 * without complaint and then fails every request. certs/ is the leaf library that the gateway,
 * the server and the CLI may all import, and the SPIFFE ids that carry tenants are made here.
 *
 * Why this grammar. It is the grammar of environment and service names (server/validation.ts):
 * a DNS label that starts with a letter, at most 40 characters. All three end up side by side in
 * Docker network, container and AppArmor profile names and in SPIFFE path segments, so one rule
 * keeps every one of those spellable; and lowercase only means "Acme" and "acme" cannot be two
 * tenants that look alike in a log.
 */

const TENANT_NAME = /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/;

/** The rule in words, for error messages: "tenant must be <rule>". */
export const TENANT_NAME_RULE = '1-40 characters of a-z, 0-9 and "-", starting with a letter and not ending with "-"';

/** True when `value` is a tenant name by TENANT_NAME_RULE. Never throws. */
export function isTenantName(value: unknown): value is string {
  return typeof value === 'string' && TENANT_NAME.test(value);
}
