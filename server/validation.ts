/**
 * What a customer may ask for. Every rule names the field and the reason; all violations of a
 * request are reported together, and nothing is stored unless there are none.
 */
import { ALLOWED_CAPABILITIES, MAX_WRITABLE_PATHS, capabilityName, writablePath, writablePathProblem } from '../agent/runtime/container-spec';
import { PlacementPolicy, PortProtocol, type Quota, type Service, type ServicePort } from '../gen/podium/v1/resources';
import { assertNoViolations, type FieldViolation } from './errors';
import { validateExpose, type ExposeInput } from './published-endpoints';
import type { PlacementPolicyName, PortProtocolName, PortSpec, QuotaLimits, ServiceSpec } from './storage';

/** DNS-label names: they end up in container, network and AppArmor profile names. */
const NAME = /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/;
const NAME_RULE = 'must be 1-40 characters of a-z, 0-9 and "-", starting with a letter and not ending with "-"';
/** Docker image references: [registry/]repo[:tag][@digest], no whitespace or shell characters. */
const IMAGE = /^[a-z0-9]+([._\/:@-][a-zA-Z0-9_.-]+)*$/;
/** Port names, as IANA service names: they end up in environment variables (<SERVICE>_<NAME>_PORT). */
const PORT_NAME = /^[a-z]([a-z0-9-]{0,13}[a-z0-9])?$/;
const PORT_NAME_RULE = 'must be 1-15 characters of a-z, 0-9 and "-", starting with a letter and not ending with "-"';
/** Below this a process needs CAP_NET_BIND_SERVICE to listen. */
const FIRST_UNPRIVILEGED_PORT = 1024;

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
  maxPorts: 16,
  maxAllowRules: 16,
  maxWritablePaths: MAX_WRITABLE_PATHS,
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
export function validateService(s: Service | undefined): { name: string; spec: ServiceSpec; expose?: ExposeInput } {
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
  const capabilities = validateCapabilities(s.capabilities, push);
  const ports = validatePorts(s.ports, capabilities, push);
  const allowFrom = validateAllow(s.allow.map((a) => a.environment), push);
  const expose = validateExpose(s.expose, ports, push);
  const writablePaths = validateWritablePaths(s.writablePaths, push);
  assertNoViolations(violations);
  return {
    name: s.name,
    expose,
    spec: {
      image: s.image,
      command: [...s.command],
      replicas: s.replicas,
      ha: s.ha,
      resources: { cpuMillis: r!.cpuMillis, memoryMib: r!.memoryMib },
      placement: placement!,
      ports,
      capabilities,
      allowFrom,
      // Absent is true: a service opts out of a read-only root, never into it.
      readOnlyRoot: s.readOnlyRoot ?? true,
      writablePaths,
    },
  };
}

/** Each a directory the agent may mount a tmpfs on and write into the service's AppArmor profile
 *  (the agent's own rule, writablePathProblem); without trailing "/", each once, in the order given. */
function validateWritablePaths(requested: readonly string[], push: (v: FieldViolation) => void): string[] {
  if (requested.length > LIMITS.maxWritablePaths) push({ field: 'writablePaths', description: `has more than ${LIMITS.maxWritablePaths} paths` });
  const seen = new Map<string, number>();
  requested.forEach((raw, i) => {
    const field = `writablePaths[${i}]`;
    const problem = writablePathProblem(raw);
    if (problem !== null) return push({ field, description: `${JSON.stringify(raw.slice(0, 60))} ${problem}` });
    const path = writablePath(raw);
    if (seen.has(path)) return push({ field, description: `duplicates writablePaths[${seen.get(path)}]` });
    seen.set(path, i);
  });
  return [...seen.keys()];
}

/** Environment names, each once; the service's own is implied and so not a rule. */
function validateAllow(environments: readonly string[], push: (v: FieldViolation) => void): string[] {
  if (environments.length > LIMITS.maxAllowRules) push({ field: 'allow', description: `has more than ${LIMITS.maxAllowRules} rules` });
  const seen = new Map<string, number>();
  environments.forEach((env, i) => {
    const v = nameViolation(`allow[${i}].environment`, env);
    if (v) return push(v);
    if (seen.has(env)) return push({ field: `allow[${i}].environment`, description: `duplicates allow[${seen.get(env)}].environment` });
    seen.set(env, i);
  });
  return [...seen.keys()].sort();
}

/** Upper case, without "CAP_", sorted, each once; anything outside what the agent allows is named. */
function validateCapabilities(requested: readonly string[], push: (v: FieldViolation) => void): string[] {
  const kept = new Set<string>();
  requested.forEach((raw, i) => {
    const cap = capabilityName(raw);
    if (ALLOWED_CAPABILITIES.has(cap)) kept.add(cap);
    else push({ field: `capabilities[${i}]`, description: `${JSON.stringify(raw.slice(0, 40))} is not a capability a service may keep (allowed: ${[...ALLOWED_CAPABILITIES].join(', ')})` });
  });
  return [...kept].sort();
}

function validatePorts(requested: readonly ServicePort[], capabilities: readonly string[], push: (v: FieldViolation) => void): PortSpec[] {
  if (requested.length > LIMITS.maxPorts) push({ field: 'ports', description: `has more than ${LIMITS.maxPorts} ports` });
  const byName = new Map<string, number>();
  const byNumber = new Map<number, number>();
  const ports: PortSpec[] = [];
  requested.forEach((p, i) => {
    const at = `ports[${i}]`;
    if (!p.name) push({ field: `${at}.name`, description: 'is required' });
    else if (!PORT_NAME.test(p.name)) push({ field: `${at}.name`, description: PORT_NAME_RULE });
    else if (byName.has(p.name)) push({ field: `${at}.name`, description: `duplicates ports[${byName.get(p.name)}].name` });
    else byName.set(p.name, i);
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) push({ field: `${at}.port`, description: 'must be an integer from 1 to 65535' });
    else if (byNumber.has(p.port)) push({ field: `${at}.port`, description: `duplicates ports[${byNumber.get(p.port)}].port` });
    else {
      byNumber.set(p.port, i);
      if (p.port < FIRST_UNPRIVILEGED_PORT && !capabilities.includes('NET_BIND_SERVICE')) {
        push({ field: `${at}.port`, description: `${p.port} is privileged (below ${FIRST_UNPRIVILEGED_PORT}): listening on it needs capability NET_BIND_SERVICE in capabilities` });
      }
    }
    const protocol = PROTOCOLS.get(p.protocol);
    if (protocol === undefined) push({ field: `${at}.protocol`, description: 'must be PORT_PROTOCOL_TCP or PORT_PROTOCOL_HTTP' });
    ports.push({ name: p.name, port: p.port, protocol: protocol ?? 'tcp' });
  });
  return ports;
}

/** Unspecified is TCP, stored as such. */
const PROTOCOLS: ReadonlyMap<PortProtocol, PortProtocolName> = new Map([
  [PortProtocol.PORT_PROTOCOL_UNSPECIFIED, 'tcp'],
  [PortProtocol.PORT_PROTOCOL_TCP, 'tcp'],
  [PortProtocol.PORT_PROTOCOL_HTTP, 'http'],
]);

function portProtocolView(p: PortProtocolName): PortProtocol {
  return p === 'http' ? PortProtocol.PORT_PROTOCOL_HTTP : PortProtocol.PORT_PROTOCOL_TCP;
}

/** Stored ports as the API shows them (GET, and the registry's snapshots). */
export function portsView(ports: readonly PortSpec[]): ServicePort[] {
  return ports.map((p) => ({ name: p.name, port: p.port, protocol: portProtocolView(p.protocol) }));
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
