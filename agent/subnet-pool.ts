/**
 * The pool of small IPv4 subnets an agent gives its environments' networks, so that Docker's
 * default address pools (about 30 networks per engine) are never drawn from.
 *
 * Pure: CIDR arithmetic and the choice of a free subnet; which subnets are in use is the caller's
 * to say (every network the engine has, whoever made it, plus creates in flight).
 */

/** An IPv4 block: `base` as an unsigned 32-bit number (host bits zero), `prefix` 0..32. */
export interface Ipv4Cidr {
  base: number;
  prefix: number;
}

/** A pool flag or option that makes no sense; `field` says which of the two. */
export class SubnetPoolError extends Error {
  constructor(
    readonly field: 'pool' | 'prefix',
    message: string,
  ) {
    super(message);
    this.name = 'SubnetPoolError';
  }
}

/** The longest prefix allowed: a /29 leaves 5 addresses for containers after network, gateway and
 *  broadcast; anything smaller cannot hold an environment worth the name. */
export const MAX_SUBNET_PREFIX = 29;

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** "10.210.0.0/16" → { base, prefix }; undefined for anything else (IPv6 included). Host bits may
 *  be set here; `SubnetPool.parse` refuses them, the engine's own networks are read as they are. */
export function parseIpv4Cidr(text: string): Ipv4Cidr | undefined {
  const m = IPV4.exec(text.trim());
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const addr = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  return { base: addr, prefix };
}

export function formatIpv4Cidr(c: Ipv4Cidr): string {
  const b = c.base;
  return `${b >>> 24}.${(b >>> 16) & 255}.${(b >>> 8) & 255}.${b & 255}/${c.prefix}`;
}

/** First and last address of a block (host bits of `base` ignored). */
function range(c: Ipv4Cidr): [number, number] {
  const size = 2 ** (32 - c.prefix);
  const first = Math.floor(c.base / size) * size;
  return [first, first + size - 1];
}

/** Whether two blocks share any address. */
export function overlaps(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  const [a0, a1] = range(a);
  const [b0, b1] = range(b);
  return a0 <= b1 && b0 <= a1;
}

export class SubnetPool {
  /** How many subnets the pool holds. */
  readonly size: number;
  private readonly step: number;

  private constructor(
    readonly pool: Ipv4Cidr,
    readonly prefix: number,
  ) {
    this.size = 2 ** (prefix - pool.prefix);
    this.step = 2 ** (32 - prefix);
  }

  /**
   * The pool `cidr` cut into subnets of `prefix` bits. Throws SubnetPoolError naming the field:
   * the pool must be an IPv4 CIDR with its host bits zero; the prefix an integer from the pool's
   * own prefix to MAX_SUBNET_PREFIX.
   */
  static parse(cidr: string, prefix: number): SubnetPool {
    const pool = parseIpv4Cidr(cidr);
    if (pool === undefined) throw new SubnetPoolError('pool', `expected an IPv4 CIDR like 10.210.0.0/16, got "${cidr}"`);
    const [first] = range(pool);
    if (first !== pool.base) throw new SubnetPoolError('pool', `"${cidr}" has host bits set; did you mean ${formatIpv4Cidr({ base: first, prefix: pool.prefix })}?`);
    if (!Number.isInteger(prefix) || prefix < pool.prefix || prefix > MAX_SUBNET_PREFIX) {
      throw new SubnetPoolError('prefix', `expected an integer from ${pool.prefix} (the pool's own) to ${MAX_SUBNET_PREFIX}, got ${prefix}`);
    }
    return new SubnetPool(pool, prefix);
  }

  /** The i-th subnet of the pool, 0 <= i < size. */
  subnet(i: number): Ipv4Cidr {
    return { base: this.pool.base + i * this.step, prefix: this.prefix };
  }

  /**
   * The first subnet at or after index `start` (wrapping around) that overlaps none of `used`, as
   * CIDR text; undefined when every subnet is taken. A candidate that meets a used block jumps past
   * that block's end, so the cost grows with the number of used blocks, not with the pool.
   */
  pick(used: readonly Ipv4Cidr[], start: number): string | undefined {
    const blocked = used.filter((u) => overlaps(u, this.pool)).map(range);
    let i = ((Math.floor(start) % this.size) + this.size) % this.size;
    let visited = 0;
    while (visited < this.size) {
      const s0 = this.pool.base + i * this.step;
      const s1 = s0 + this.step - 1;
      const hit = blocked.find(([u0, u1]) => u0 <= s1 && s0 <= u1);
      if (hit === undefined) return formatIpv4Cidr({ base: s0, prefix: this.prefix });
      // The next candidate that starts after the used block, or the start of the pool.
      const next = Math.floor((hit[1] - this.pool.base) / this.step) + 1;
      const jump = next >= this.size ? this.size - i : next - i;
      visited += jump;
      i = (i + jump) % this.size;
    }
    return undefined;
  }
}
