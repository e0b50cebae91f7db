/**
 * What a customer may ask for. Every rule names the field and the reason; all violations of a
 * request are reported together, and nothing is stored unless there are none.
 */
import { PlacementPolicy, type Quota, type Service } from '../gen/podium/v1/resources';
import { assertNoViolations, type FieldViolation } from './errors';
import type { PlacementPolicyName, QuotaLimits, ServiceSpec } from './storage';

/** DNS-label names: they end up in container, network and AppArmor profile names. */
const NAME = /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/;
const NAME_RULE = 'must be 1-40 characters of a-z, 0-9 and "-", starting with a letter and not ending with "-"';
/** Docker image references: [registry/]repo[:tag][@digest], no whitespace or shell characters. */
const IMAGE = /^[a-z0-9]+([._\/:@-][a-zA-Z0-9_.-]+)*$/;

export const LIMITS = {
  maxReplicas: 100,
  maxCommandArgs: 64,
  maxArgLength: 4096,
  /** Docker refuses memory limits under 6 MiB. */
  minMemoryMib: 6,
  maxMemoryMib: 1024 * 1024,
  /** The kernel's smallest CPU quota is 1 ms per 100 ms period: less cannot be enforced (runc fails). */
  minCpuMillis: 10,
  maxCpuMillis: 256_000,
} as const;

export function nameViolation(field: string, value: string): FieldViolation | null {
  if (!value) return { field, description: 'is required' };
  if (!NAME.test(value)) return { field, description: NAME_RULE };
  return null;
}

export function validateEnvironmentName(name: string): void {
  const v = nameViolation('name', name);
  assertNoViolations(v ? [v] : []);
}

/** Checks a requested service and returns its spec; throws INVALID_ARGUMENT listing every problem. */
export function validateService(s: Service | undefined): { name: string; spec: ServiceSpec } {
  const violations: FieldViolation[] = [];
  const push = (v: FieldViolation | null) => v && violations.push(v);
  if (!s) {
    assertNoViolations([{ field: 'service', description: 'is required' }]);
    throw new Error('unreachable');
  }
  push(nameViolation('name', s.name));
  if (!s.image) push({ field: 'image', description: 'is required' });
  else if (s.image.length > 255 || !IMAGE.test(s.image)) push({ field: 'image', description: 'is not a valid image reference' });
  if (s.command.length > LIMITS.maxCommandArgs) {
    push({ field: 'command', description: `has more than ${LIMITS.maxCommandArgs} arguments` });
  }
  s.command.forEach((arg, i) => {
    if (arg.length > LIMITS.maxArgLength) push({ field: `command[${i}]`, description: `is longer than ${LIMITS.maxArgLength}` });
    if (arg.includes('\0')) push({ field: `command[${i}]`, description: 'contains a NUL character' });
  });
  if (!Number.isInteger(s.replicas) || s.replicas < 1 || s.replicas > LIMITS.maxReplicas) {
    push({ field: 'replicas', description: `must be an integer from 1 to ${LIMITS.maxReplicas}` });
  }
  const r = s.resources;
  if (!r) {
    push({ field: 'resources', description: 'is required (cpuMillis and memoryMib)' });
  } else {
    if (!Number.isInteger(r.cpuMillis) || r.cpuMillis < LIMITS.minCpuMillis || r.cpuMillis > LIMITS.maxCpuMillis) {
      push({ field: 'resources.cpuMillis', description: `must be an integer from ${LIMITS.minCpuMillis} to ${LIMITS.maxCpuMillis}` });
    }
    if (!Number.isInteger(r.memoryMib) || r.memoryMib < LIMITS.minMemoryMib || r.memoryMib > LIMITS.maxMemoryMib) {
      push({ field: 'resources.memoryMib', description: `must be an integer from ${LIMITS.minMemoryMib} to ${LIMITS.maxMemoryMib}` });
    }
  }
  const placement = PLACEMENTS.get(s.placement);
  if (placement === undefined) push({ field: 'placement', description: 'must be PLACEMENT_POLICY_SPREAD or PLACEMENT_POLICY_BINPACK' });
  assertNoViolations(violations);
  return {
    name: s.name,
    spec: {
      image: s.image,
      command: [...s.command],
      replicas: s.replicas,
      ha: s.ha,
      resources: { cpuMillis: r!.cpuMillis, memoryMib: r!.memoryMib },
      placement: placement!,
    },
  };
}

/** Unspecified is spread: the default is stored as such, so GET shows what the service gets. */
const PLACEMENTS: ReadonlyMap<PlacementPolicy, PlacementPolicyName> = new Map([
  [PlacementPolicy.PLACEMENT_POLICY_UNSPECIFIED, 'spread'],
  [PlacementPolicy.PLACEMENT_POLICY_SPREAD, 'spread'],
  [PlacementPolicy.PLACEMENT_POLICY_BINPACK, 'binpack'],
]);

/** Quotas are whole numbers from 0 (nothing may be created) to what an int32 holds. */
export function validateQuota(q: Quota | undefined): QuotaLimits {
  if (!q) {
    assertNoViolations([{ field: 'quota', description: 'is required (cpuMillis, memoryMib and instances)' }]);
    throw new Error('unreachable');
  }
  const violations: FieldViolation[] = [];
  for (const [field, value] of [['quota.cpuMillis', q.cpuMillis], ['quota.memoryMib', q.memoryMib], ['quota.instances', q.instances]] as const) {
    if (!Number.isInteger(value) || value < 0) violations.push({ field, description: 'must be a whole number of at least 0' });
  }
  assertNoViolations(violations);
  return { cpuMillis: q.cpuMillis, memoryMib: q.memoryMib, instances: q.instances };
}
