/**
 * The test bed of DESIGN.md ("The machine") from TypeScript: scripts/lib/testbed.sh runs it, this
 * module reads what it made. A test bed is N hosts, each a network namespace on a Linux bridge in
 * the root namespace with its own dockerd; `podium dev --hosts netns` and the end-to-end tests
 * run their agents on it.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const TESTBED_SCRIPT = join(__dirname, '..', '..', 'scripts', 'lib', 'testbed.sh');
/** Where the script keeps a test bed's env file, host table and processes file. */
export const TESTBED_RUN_ROOT = '/run/podium-testbed';

export interface TestbedHost {
  /** "<test bed>-<i>", i from 1. */
  name: string;
  /** The network namespace ("ptb-<test bed>-<i>"). */
  netns: string;
  /** /var/run/netns/<netns>, for `nsenter --net=`. */
  netnsPath: string;
  /** The host's address on the bridge (A.B.C.(10+i)). */
  address: string;
  /** Its own engine's API socket. */
  dockerSocket: string;
  /** Its engine's docker0 address (--bip). */
  bip: string;
}

export interface Testbed {
  name: string;
  /** A.B.C.0/24. */
  subnet: string;
  /** The root namespace's address on the bridge (A.B.C.1): where the hosts reach the Pod API. */
  bridgeAddress: string;
  hosts: TestbedHost[];
}

export interface TestbedUpOptions {
  /** A.B.C.0/24, or 'auto' (the first free one from 10.77.1.0/24); default 10.77.0.0/24. */
  subnet?: string;
  /** The process the test bed is for: `sweep` removes it once that process is gone. */
  owner?: number;
  /** Receives the script's log lines (stderr) as they come; they are also kept for errors. */
  onLog?: (line: string) => void;
}

/** Runs testbed.sh; resolves with its stdout, rejects with the tail of its log on failure. */
function script(args: string[], onLog?: (line: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [TESTBED_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let partial = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
      if (!onLog) return;
      const lines = (partial + c.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLog(l);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (onLog && partial) onLog(partial);
      if (code === 0) resolve(out);
      else reject(new Error(`testbed.sh ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${err.trimEnd().split('\n').slice(-20).join('\n')}`));
    });
  });
}

/** Brings test bed `name` up with `hosts` hosts (idempotent: one that is up as asked is kept) and
 *  returns it once every engine answers /_ping. Needs root. */
export async function testbedUp(name: string, hosts: number, opts: TestbedUpOptions = {}): Promise<Testbed> {
  const args = ['up', name, String(hosts)];
  if (opts.subnet) args.push('--subnet', opts.subnet);
  if (opts.owner !== undefined) args.push('--owner', String(opts.owner));
  const table = await script(args, opts.onLog);
  return readTestbed(name, table);
}

/** Removes test bed `name` and everything it made; a test bed that is not there is fine. */
export async function testbedDown(name: string, onLog?: (line: string) => void): Promise<void> {
  await script(['down', name], onLog);
}

/** Removes every test bed whose owner process is gone (a test run killed before its teardown). */
export async function testbedSweep(onLog?: (line: string) => void): Promise<void> {
  await script(['sweep'], onLog);
}

/** The test bed `name` as the script left it (host table from `table`, or its hosts file). */
export function readTestbed(name: string, table = readFileSync(join(TESTBED_RUN_ROOT, name, 'hosts'), 'utf8')): Testbed {
  const env = Object.fromEntries(
    readFileSync(join(TESTBED_RUN_ROOT, name, 'testbed.env'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const hosts = table
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [host, netns, address, dockerSocket, bip] = l.trim().split(/\s+/);
      if (!host || !netns || !address || !dockerSocket || !bip) throw new Error(`test bed ${name}: bad host line ${JSON.stringify(l)}`);
      return { name: host, netns, netnsPath: `/var/run/netns/${netns}`, address, dockerSocket, bip };
    });
  if (!env.BRIDGE_ADDRESS || !env.SUBNET || hosts.length === 0) throw new Error(`test bed ${name}: no bridge address, subnet or hosts`);
  return { name, subnet: env.SUBNET, bridgeAddress: env.BRIDGE_ADDRESS, hosts };
}

/** The command and arguments that run `argv` inside the host's network namespace. nsenter execs
 *  `argv[0]` in its own process (only the network namespace changes, no fork), so the pid that
 *  spawn returns is the program's own: signals (SIGSTOP, SIGKILL) reach it directly. */
export function inHost(host: TestbedHost, argv: string[]): { command: string; args: string[] } {
  return { command: 'nsenter', args: [`--net=${host.netnsPath}`, '--', ...argv] };
}

/** Records a process started for the test bed, so that `down` and `sweep` also end it when its
 *  starter died first (a process in the root namespace is not found through the host namespaces).
 *  The script ends it only while its start time still matches, so a reused pid is left alone. */
export function registerTestbedProcess(name: string, pid: number): void {
  let started = '';
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return; // already gone: nothing to end
  }
  appendFileSync(join(TESTBED_RUN_ROOT, name, 'procs'), `${pid} ${started}\n`);
}
