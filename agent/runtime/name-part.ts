import { createHash } from 'node:crypto';

/**
 * Helpers that turn customer-chosen words (tenant, environment, service, instance and host ids)
 * into parts of Docker and AppArmor names.
 *
 * Docker names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; AppArmor profile names are safest in the same
 * set, lower case. Sanitizing is lossy ("Web App" and "web-app" both become "web-app"), and
 * joining parts with "-" is ambiguous (tenant "a-b" + env "c" vs tenant "a" + env "b-c"), so a
 * name that must be unique per tenant also carries `nameHash` of the raw parts.
 */

/** Lower-cases `raw`, maps every run of characters outside `[a-z0-9_.]` to "-", trims "-", "." and "_"
 *  from both ends and cuts the result to `max` characters. Never returns an empty string ("x" instead),
 *  so a name built from parts always has all its separators. */
export function namePart(raw: string, max = 32): string {
  const cleaned = raw
    .toLowerCase()
    .replace(/[^a-z0-9_.]+/g, '-')
    .replace(/^[-._]+/, '')
    .slice(0, max)
    .replace(/[-._]+$/, '');
  return cleaned === '' ? 'x' : cleaned;
}

/** Hex prefix of SHA-256 over the parts, length-prefixed so that no two different lists of parts
 *  hash the same input. 16 hex digits (64 bits) so that nobody can choose a tenant or environment
 *  name whose hash meets another tenant's (a 32-bit preimage is minutes of work; 64 bits is not). */
export function nameHash(parts: readonly string[], hexDigits = 16): string {
  const h = createHash('sha256');
  for (const part of parts) {
    const bytes = Buffer.from(part, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    h.update(len).update(bytes);
  }
  return h.digest('hex').slice(0, hexDigits);
}
