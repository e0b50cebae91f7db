import type { ContainerSpec } from '../../gen/podium/v1/agent';
import { nameHash, namePart } from './name-part';

/**
 * From the server's ContainerSpec to the body of Docker's POST /containers/create, with the
 * hardening of the design's security model built in rather than left to the caller: every
 * capability dropped but those the service type needs, no-new-privileges, Docker's default
 * seccomp profile (never "unconfined"), memory (without swap), CPU and process-count limits, no
 * privileged mode, the environment's own network (never the host's or the shared bridge), no
 * Docker socket or any other host path inside, and no restart policy (the agent owns restarts).
 *
 * Everything here is pure: no I/O, no clock. Invalid input throws `ContainerSpecError`.
 */

export const LABEL_HOST = 'podium.host';
export const LABEL_SERVICE = 'podium.service';
export const LABEL_INSTANCE = 'podium.instance';
export const LABEL_ENVIRONMENT = 'podium.environment';
export const LABEL_TENANT = 'podium.tenant';
/** Set only for replicas of an HA group: a restarted agent rebuilds from labels which HA groups
 *  it already holds, and bids from that. */
export const LABEL_HA_GROUP = 'podium.ha-group';

/** Processes per container unless the caller says otherwise: a fork bomb stops here, a web server
 *  or database with worker processes does not. */
export const DEFAULT_PIDS_LIMIT = 256;

/** Docker refuses memory limits under 6 MiB. */
const MIN_MEMORY_MIB = 6;
/** The kernel refuses a CFS quota under 1 ms per 100 ms period (cpu.cfs_quota_us >= 1000), and
 *  Docker's NanoCpus becomes that quota: below 10 millicores a start fails in runc. */
const MIN_CPU_MILLIS = 10;

/**
 * Capabilities a service type may ask for: Docker's default set less NET_RAW (packet forging on
 * the environment's network) and MKNOD (device nodes). Anything else (SYS_ADMIN, NET_ADMIN,
 * SYS_PTRACE, "ALL", …) is a request to leave the container, and is refused even from the server.
 */
export const ALLOWED_CAPABILITIES: ReadonlySet<string> = new Set([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]);

/** The fields of ContainerSpec this module knows how to confine. A field added to the contract
 *  (ports, volumes, devices…) is refused until this module learns what it means: fail closed. */
const KNOWN_SPEC_FIELDS: ReadonlySet<string> = new Set([
  'instanceId',
  'tenant',
  'environment',
  'service',
  'image',
  'command',
  'resources',
  'capabilities',
  'readOnlyRoot',
  'writablePaths',
  // Placement only: it changes where a container runs, not how it is confined.
  'haGroup',
]);

/** Network modes that would put a container outside its environment's network. */
const FORBIDDEN_NETWORKS: ReadonlySet<string> = new Set(['host', 'bridge', 'default', 'none']);

/** Host paths that hand out control of the host: Docker's and containerd's API sockets. */
const ENGINE_SOCKETS = /(docker|containerd|podman|crio)\.sock|\/run\/containerd|\/var\/lib\/docker/;

const PROFILE_NAME = /^[a-z0-9][a-z0-9._-]*$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** Writable paths a service may have: each is a mount and an AppArmor rule. */
export const MAX_WRITABLE_PATHS = 16;
/** Characters a writable path may hold: it is written into profile text and Docker's mount list. */
const WRITABLE_PATH_CHARS = /^\/[A-Za-z0-9._/-]*$/;
const MAX_PATH_LENGTH = 255;
/** Kernel interfaces: Docker mounts them itself and the profile denies writes there; a tmpfs over
 *  one (or a rule for it) would hide or loosen that. */
const KERNEL_TREES = ['/proc', '/sys', '/dev'] as const;
/** Scratch space every read-only root gets: tmpfs bounded in size, /run without exec. */
const SCRATCH_TMPFS: Readonly<Record<string, string>> = { '/tmp': 'rw,nosuid,nodev,size=64m', '/run': 'rw,nosuid,nodev,noexec,size=16m' };

export class ContainerSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContainerSpecError';
  }
}

export interface ContainerBodyOptions {
  hostId: string;
  /** The environment's network on this host (see networkName). */
  network: string;
  /** AppArmor profile to ask Docker for, or null where the kernel has none. */
  apparmorProfile: string | null;
  pidsLimit?: number;
  /** Environment variables the agent gives the container (the mesh's <SERVICE>_HOST/_PORT). */
  env?: Record<string, string>;
}

/** The parts of Docker's create body this module sets (and that tests read back). */
export interface ContainerCreateBody {
  Image: string;
  Cmd?: string[];
  Env?: string[];
  Labels: Record<string, string>;
  HostConfig: {
    Memory: number;
    MemorySwap: number;
    NanoCpus: number;
    PidsLimit: number;
    CapDrop: string[];
    CapAdd: string[];
    SecurityOpt: string[];
    Privileged: boolean;
    NetworkMode: string;
    RestartPolicy: { Name: string; MaximumRetryCount?: number };
    Init: boolean;
    ReadonlyRootfs: boolean;
    Tmpfs?: Record<string, string>;
    IpcMode: string;
    CgroupnsMode: string;
    LogConfig: { Type: string; Config: Record<string, string> };
    Binds?: unknown;
    Mounts?: unknown;
    Devices?: unknown;
    VolumesFrom?: unknown;
    PidMode?: string;
    UsernsMode?: string;
  };
}

/** Builds the create body for `spec` on host `opts.hostId`. Throws ContainerSpecError when the spec
 *  or the options would weaken the container's confinement; never returns a body that fails
 *  assertConfined(body, spec).
 *
 *  With `spec.readOnlyRoot` the root filesystem is read-only, with tmpfs scratch on /tmp and /run
 *  and a tmpfs on each of `spec.writablePaths` (empty at start: a tmpfs hides what the image has
 *  there). Their pages are charged to the container's memory limit, so each is sized to it.
 *  Docker adds noexec to every tmpfs not given "exec" (checked on 20.10): what a service writes
 *  there it cannot run. */
export function containerBody(spec: ContainerSpec, opts: ContainerBodyOptions): ContainerCreateBody {
  checkSpec(spec);
  if (opts.hostId === '') throw new ContainerSpecError('hostId is empty');
  checkNetwork(opts.network);
  if (opts.apparmorProfile !== null) checkProfileName(opts.apparmorProfile);
  const pidsLimit = opts.pidsLimit ?? DEFAULT_PIDS_LIMIT;
  if (!Number.isInteger(pidsLimit) || pidsLimit <= 0) throw new ContainerSpecError(`pidsLimit must be a positive integer, got ${pidsLimit}`);

  const resources = spec.resources!;
  const memoryBytes = resources.memoryMib * 1024 * 1024;
  const securityOpt = ['no-new-privileges:true'];
  if (opts.apparmorProfile !== null) securityOpt.push(`apparmor=${opts.apparmorProfile}`);

  const body: ContainerCreateBody = {
    Image: spec.image,
    Labels: {
      [LABEL_HOST]: opts.hostId,
      [LABEL_SERVICE]: spec.service,
      [LABEL_INSTANCE]: spec.instanceId,
      [LABEL_ENVIRONMENT]: spec.environment,
      [LABEL_TENANT]: spec.tenant,
    },
    HostConfig: {
      Memory: memoryBytes,
      // Equal to Memory: no swap on top of the limit, so the limit is the limit.
      MemorySwap: memoryBytes,
      NanoCpus: resources.cpuMillis * 1_000_000,
      PidsLimit: pidsLimit,
      CapDrop: ['ALL'],
      CapAdd: normalizeCapabilities(spec.capabilities),
      // No seccomp= entry: Docker then applies its default seccomp profile.
      SecurityOpt: securityOpt,
      Privileged: false,
      NetworkMode: opts.network,
      // The agent restarts what the server wants running; Docker restarting on its own would
      // race the agent and hide crashes from it.
      RestartPolicy: { Name: 'no' },
      // A minimal init as PID 1 reaps zombies and forwards signals for images that lack one.
      Init: true,
      ReadonlyRootfs: spec.readOnlyRoot,
      IpcMode: 'private',
      // Its own cgroup namespace: the container sees its cgroup as "/", not the host's layout.
      CgroupnsMode: 'private',
      // Bounded logs: a chatty (or hostile) service cannot fill the host's disk through Docker.
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
    },
  };
  if (typeof spec.haGroup === 'string' && spec.haGroup !== '') body.Labels[LABEL_HA_GROUP] = spec.haGroup;
  if (spec.command.length > 0) body.Cmd = [...spec.command];
  const env = Object.entries(opts.env ?? {});
  for (const [k, v] of env) {
    if (!ENV_NAME.test(k)) throw new ContainerSpecError(`environment variable name ${JSON.stringify(k)} is not allowed`);
    if (v.includes('\0')) throw new ContainerSpecError(`environment variable ${k} contains a NUL character`);
  }
  if (env.length > 0) body.Env = env.map(([k, v]) => `${k}=${v}`);
  if (spec.readOnlyRoot) {
    const tmpfs: Record<string, string> = { ...SCRATCH_TMPFS };
    // A writable path that is scratch already (/tmp) keeps the scratch mount.
    for (const p of spec.writablePaths.map(writablePath)) tmpfs[p] ??= `rw,nosuid,nodev,size=${resources.memoryMib}m`;
    body.HostConfig.Tmpfs = tmpfs;
  }
  assertConfined(body, spec);
  return body;
}

/**
 * Throws unless `body` keeps the container confined: not privileged, all capabilities dropped and
 * only allowed ones added, no-new-privileges on, seccomp not disabled, AppArmor not "unconfined",
 * memory/CPU/pids limits set, not on the host's (or any shared) network or namespaces, nothing
 * of the host mounted (the Docker socket above all), and every tmpfs nosuid, nodev and bounded,
 * on scratch space or a path a service may write. Given the spec it was built for, also that the
 * root is read-only when the spec asked for that, and that each tmpfs outside the scratch space is
 * one of the spec's writable paths. For any code that edits a body after containerBody built it.
 */
export function assertConfined(body: ContainerCreateBody, spec?: Pick<ContainerSpec, 'readOnlyRoot' | 'writablePaths'>): void {
  const h = body.HostConfig;
  const fail = (why: string): never => {
    throw new ContainerSpecError(`refusing container body: ${why}`);
  };
  if (h === undefined || h === null) fail('no HostConfig');
  if (h.Privileged !== false) fail('privileged mode');
  if (h.CapDrop.length !== 1 || h.CapDrop[0] !== 'ALL') fail('capabilities not all dropped');
  for (const cap of h.CapAdd) if (!ALLOWED_CAPABILITIES.has(cap)) fail(`capability ${cap} is not allowed`);
  if (!h.SecurityOpt.includes('no-new-privileges:true')) fail('no-new-privileges is off');
  for (const opt of h.SecurityOpt) {
    if (/^seccomp[=:]/.test(opt)) fail(`${opt}: only the default seccomp profile is allowed`);
    if (/^apparmor[=:]unconfined$/.test(opt)) fail('apparmor=unconfined');
    if (/^label[=:]disable$/.test(opt)) fail('label=disable');
  }
  if (!(h.Memory > 0) || h.MemorySwap !== h.Memory) fail('memory limit missing or swap allowed');
  if (!(h.NanoCpus > 0)) fail('no CPU limit');
  if (!(h.PidsLimit > 0)) fail('no pids limit');
  if (FORBIDDEN_NETWORKS.has(h.NetworkMode) || h.NetworkMode.startsWith('container:')) fail(`network mode ${h.NetworkMode}`);
  if (h.PidMode !== undefined && h.PidMode !== '') fail(`pid mode ${h.PidMode}`);
  if (h.UsernsMode !== undefined && h.UsernsMode !== '') fail(`userns mode ${h.UsernsMode}`);
  if (h.IpcMode !== 'private') fail(`ipc mode ${h.IpcMode}`);
  if (spec?.readOnlyRoot === true && h.ReadonlyRootfs !== true) fail('the spec asks for a read-only root and the body has a writable one');
  const asked = new Set((spec?.writablePaths ?? []).map(writablePath));
  for (const [path, options] of Object.entries(h.Tmpfs ?? {})) {
    const flags = options.split(',');
    if (!flags.includes('nosuid') || !flags.includes('nodev')) fail(`tmpfs ${path} (${options}) is not nosuid,nodev`);
    if (!flags.some((f) => /^size=[1-9][0-9]*[kmg]$/.test(f))) fail(`tmpfs ${path} (${options}) has no size limit`);
    if (path in SCRATCH_TMPFS) continue;
    const problem = writablePathProblem(path);
    if (problem !== null) fail(`tmpfs ${path}: ${problem}`);
    if (spec !== undefined && !asked.has(path)) fail(`tmpfs ${path} is not one of the spec's writable paths`);
  }
  for (const key of ['Binds', 'Mounts', 'Devices', 'VolumesFrom'] as const) {
    const value = h[key];
    if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) continue;
    const text = JSON.stringify(value);
    if (ENGINE_SOCKETS.test(text)) fail(`${key} would put the container engine's socket inside: ${text}`);
    fail(`${key}: host paths and devices are not mounted into customer containers`);
  }
}

/** `podium-<host>-<service>-<short instance>`, in Docker's name charset. The short instance is
 *  the instance id when it has at most 12 name characters, else its first 8 and 4 hex of its hash,
 *  so that ids sharing a long prefix still differ. The host is its id when that has at most 24
 *  characters, else its first 15 and 8 hex of its hash: hosts that share an engine must never
 *  reach for the same name, since one instance can be awarded to two of them in turn (an award
 *  answered too late goes to another host). Labels, not names, identify an instance. */
export function containerName(spec: Pick<ContainerSpec, 'service' | 'instanceId'>, hostId: string): string {
  const compact = spec.instanceId.toLowerCase().replace(/[^a-z0-9]/g, '');
  const short = compact === '' ? nameHash([spec.instanceId], 12) : compact.length <= 12 ? compact : `${compact.slice(0, 8)}${nameHash([spec.instanceId], 4)}`;
  return `podium-${hostPart(hostId)}-${namePart(spec.service, 32)}-${short}`;
}

/** The host id as a name part of at most 24 characters; one that would be cut keeps a hash of the
 *  whole id, so that two ids agreeing in their first 24 characters stay apart. */
function hostPart(hostId: string): string {
  const whole = namePart(hostId, 255);
  return whole.length <= 24 ? whole : `${namePart(hostId, 15)}-${nameHash([hostId], 8)}`;
}

/** The Docker network of one environment of one tenant on one host:
 *  `podium-<host>-<tenant>-<environment>-<hash>`. The hash of the raw (host, tenant, environment)
 *  makes the name unique per host and environment even when the readable parts sanitize, or are
 *  cut, to the same text: hosts that share an engine (`podium dev`) may have ids that agree in
 *  their first 24 characters. */
export function networkName(hostId: string, tenant: string, environment: string): string {
  return `podium-${namePart(hostId, 24)}-${namePart(tenant, 24)}-${namePart(environment, 24)}-${nameHash([hostId, tenant, environment])}`;
}

/** A writable path as it is mounted and written into a profile: without trailing slashes
 *  ("/var/lib/data/" is "/var/lib/data"). */
export function writablePath(raw: string): string {
  return raw.replace(/\/+$/, '');
}

/** Why `raw` cannot be a path a service writes to, or null when it can: absolute, only the
 *  characters of WRITABLE_PATH_CHARS, no empty, "." or ".." component, not "/" itself, and not
 *  under /proc, /sys or /dev. One rule for the Pod API's validation, the container body and the
 *  AppArmor profile. */
export function writablePathProblem(raw: string): string | null {
  if (raw.length > MAX_PATH_LENGTH) return `is longer than ${MAX_PATH_LENGTH} characters`;
  if (!raw.startsWith('/')) return 'must be an absolute path (starting with "/")';
  if (!WRITABLE_PATH_CHARS.test(raw)) return 'may hold only A-Z, a-z, 0-9, ".", "_", "-" and "/"';
  const path = writablePath(raw);
  if (path === '') return 'must not be "/": the whole filesystem would be writable';
  const parts = path.split('/').slice(1);
  if (parts.includes('')) return 'must not contain "//"';
  if (parts.includes('.') || parts.includes('..')) return 'must not contain "." or ".." components';
  for (const tree of KERNEL_TREES) {
    if (path === tree || path.startsWith(`${tree}/`)) return `must not be under ${tree}: the kernel's interfaces are not a service's to write`;
  }
  return null;
}

/** A capability as Docker and AppArmor name it: upper case, without "CAP_" (" cap_chown" → "CHOWN"). */
export function capabilityName(raw: string): string {
  return raw.trim().toUpperCase().replace(/^CAP_/, '');
}

/** Docker and AppArmor capability names: upper case, without "CAP_", sorted, no duplicates.
 *  Throws for anything outside ALLOWED_CAPABILITIES. */
export function normalizeCapabilities(capabilities: readonly string[]): string[] {
  const out = new Set<string>();
  for (const raw of capabilities) {
    const cap = capabilityName(raw);
    if (!ALLOWED_CAPABILITIES.has(cap)) {
      throw new ContainerSpecError(`capability ${JSON.stringify(raw)} is not allowed (allowed: ${[...ALLOWED_CAPABILITIES].join(', ')})`);
    }
    out.add(cap);
  }
  return [...out].sort();
}

function checkSpec(spec: ContainerSpec): void {
  for (const key of Object.keys(spec)) {
    if (!KNOWN_SPEC_FIELDS.has(key)) {
      throw new ContainerSpecError(`field ${JSON.stringify(key)} of the container spec is not known to this agent; refusing rather than ignoring it`);
    }
  }
  for (const key of ['instanceId', 'tenant', 'environment', 'service', 'image'] as const) {
    if (typeof spec[key] !== 'string' || spec[key] === '') throw new ContainerSpecError(`${key} is empty`);
  }
  if (!Array.isArray(spec.command) || spec.command.some((part) => typeof part !== 'string')) {
    throw new ContainerSpecError('command must be a list of strings');
  }
  const r = spec.resources;
  if (r === undefined || r === null) throw new ContainerSpecError('resources are required: every container runs with memory and CPU limits');
  if (!Number.isInteger(r.cpuMillis) || r.cpuMillis < MIN_CPU_MILLIS) {
    throw new ContainerSpecError(`cpuMillis must be an integer of at least ${MIN_CPU_MILLIS} (the kernel's smallest CPU quota), got ${r.cpuMillis}`);
  }
  if (!Number.isInteger(r.memoryMib) || r.memoryMib < MIN_MEMORY_MIB) {
    throw new ContainerSpecError(`memoryMib must be an integer of at least ${MIN_MEMORY_MIB}, got ${r.memoryMib}`);
  }
  if (!Array.isArray(spec.capabilities)) throw new ContainerSpecError('capabilities must be a list');
  if (typeof spec.readOnlyRoot !== 'boolean') throw new ContainerSpecError('readOnlyRoot must be true or false');
  if (!Array.isArray(spec.writablePaths)) throw new ContainerSpecError('writablePaths must be a list');
  if (spec.writablePaths.length > MAX_WRITABLE_PATHS) throw new ContainerSpecError(`more than ${MAX_WRITABLE_PATHS} writable paths`);
  const seen = new Set<string>();
  for (const raw of spec.writablePaths) {
    const problem = typeof raw === 'string' ? writablePathProblem(raw) : 'is not a string';
    if (problem !== null) throw new ContainerSpecError(`writable path ${JSON.stringify(raw)} ${problem}`);
    if (seen.has(writablePath(raw))) throw new ContainerSpecError(`writable path ${JSON.stringify(raw)} is given twice`);
    seen.add(writablePath(raw));
  }
}

function checkNetwork(network: string): void {
  if (network === '' || FORBIDDEN_NETWORKS.has(network) || network.startsWith('container:')) {
    throw new ContainerSpecError(`network ${JSON.stringify(network)}: a container joins its environment's own network only`);
  }
}

function checkProfileName(name: string): void {
  if (name === 'unconfined' || !PROFILE_NAME.test(name)) throw new ContainerSpecError(`AppArmor profile ${JSON.stringify(name)} is not allowed`);
}
