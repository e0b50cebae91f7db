import { isIP } from 'node:net';
import { isTenantName, TENANT_NAME_RULE } from '../certs';
import { SubnetPool, SubnetPoolError } from '../agent/subnet-pool';

/**
 * Flags become typed, validated, frozen configuration here and only here: the rest of Podium
 * takes values, never reads argv or the environment. Units are in the names (Ms, Seconds, Mib).
 */
export class ConfigError extends Error {
  constructor(flag: string, reason: string) {
    super(`${flag}: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** "127.0.0.1:7443" → host and port; the port must be 0-65535. */
export function parseListen(flag: string, value: string): { host: string; port: number } {
  const i = value.lastIndexOf(':');
  const host = value.slice(0, i);
  const port = Number(value.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(flag, `expected host:port, got "${value}"`);
  }
  return { host, port };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "500ms", "10s", "5m", "24h" → milliseconds. */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(value);
  if (!m) throw new ConfigError(flag, `expected a duration like 500ms, 10s, 5m or 24h, got "${value}"`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

export function parsePositiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new ConfigError(flag, `expected a positive integer, got "${value}"`);
  return n;
}

/** A whole number, 0 included (0 meaning "no limit" where a flag says so). */
export function parseCount(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(flag, `expected a whole number (0 or more), got "${value}"`);
  return n;
}

/** Repeated "k=v" flags → a map. */
export function parseLabels(flag: string, values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0) throw new ConfigError(flag, `expected key=value, got "${v}"`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Repeated and comma-separated host names or IP addresses ("a.example,10.0.0.1") → a list. */
export function parseNames(flag: string, values: string[]): string[] {
  const out: string[] = [];
  for (const v of values.flatMap((x) => x.split(','))) {
    const name = v.trim();
    if (name === '') continue;
    if (isIP(name.replace(/^\[|\]$/g, '')) === 0 && !HOST_NAME.test(name)) throw new ConfigError(flag, `"${name}" is neither a host name nor an IP address`);
    out.push(name);
  }
  return out;
}

/** A tenant name by the one rule of certs/tenant-name, the rule the Pod API holds tenants to. */
export function parseTenant(flag: string, value: string): string {
  if (!isTenantName(value)) throw new ConfigError(flag, `must be ${TENANT_NAME_RULE}, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * "cpu=64000,memory=262144,instances=500" (mCPU, MiB, replicas) → quota limits; a key left out
 * keeps its default.
 */
export function parseQuota(flag: string, value: string, defaults: { cpuMillis: number; memoryMib: number; instances: number }) {
  const out = { ...defaults };
  const keys: Record<string, keyof typeof out> = { cpu: 'cpuMillis', memory: 'memoryMib', instances: 'instances' };
  for (const part of value.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const m = /^(cpu|memory|instances)=(\d+)$/.exec(part);
    if (!m) throw new ConfigError(flag, `expected cpu=<mCPU>,memory=<MiB>,instances=<n>, got "${part}"`);
    const n = Number(m[2]);
    if (!Number.isSafeInteger(n) || n > 2 ** 31 - 1) throw new ConfigError(flag, `${m[1]} is too large`);
    out[keys[m[1]!]!] = n;
  }
  return out;
}

/** `--subnet-pool` and `--subnet-prefix` checked together (the prefix must fit the pool); each
 *  error names the flag that is wrong. */
export function parseSubnetPool(pool: string, prefix: string): { subnetPool: string; subnetPrefix: number } {
  if (!/^\d+$/.test(prefix.trim())) throw new ConfigError('--subnet-prefix', `expected a number of bits like 26, got "${prefix}"`);
  const subnetPrefix = Number(prefix);
  try {
    SubnetPool.parse(pool, subnetPrefix);
  } catch (err) {
    if (err instanceof SubnetPoolError) throw new ConfigError(err.field === 'pool' ? '--subnet-pool' : '--subnet-prefix', err.message);
    throw err;
  }
  return { subnetPool: pool, subnetPrefix };
}

/** Repeated or comma-separated host:port addresses; the default Pod API address when none is given. */
export function parseServers(flag: string, values: string[], fallback = '127.0.0.1:7443'): string[] {
  const list = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  for (const a of list) parseListen(flag, a);
  return list.length > 0 ? list : [fallback];
}
