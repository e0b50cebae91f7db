import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The qemu test bed of DESIGN.md ("The machine"): a Debian kernel with AppArmor, booted under TCG
 * by scripts/lib/apparmor-vm.sh, which also builds it (idempotently) into a cache directory.
 */

/** The repository root, from dist/test/apparmor/ (compiled) or test/apparmor/ (source). */
export const REPO_ROOT = resolve(__dirname, existsSync(resolve(__dirname, '../../../package.json')) ? '../../..' : '../..');
export const VM_SCRIPT = join(REPO_ROOT, 'scripts/lib/apparmor-vm.sh');
export const VM_CACHE = process.env.PODIUM_APPARMOR_VM_CACHE ?? '/var/cache/podium/apparmor-vm';

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  seconds: number;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const started = Date.now();
  return new Promise((resolveRun, reject) => {
    const child = spawn('bash', [VM_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolveRun({ code, signal, output: Buffer.concat(chunks).toString('utf8'), seconds: (Date.now() - started) / 1000 }),
    );
  });
}

export function tail(text: string, lines = 40): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Builds the VM (or finds it built). Throws with the builder's last output when it cannot. */
export async function buildVm(cache = VM_CACHE): Promise<Run> {
  const r = await run([cache]);
  if (r.code !== 0) {
    throw new Error(
      `cannot build the AppArmor test VM: \`bash ${VM_SCRIPT} ${cache}\` ended with ${r.code ?? r.signal} ` +
        `(it needs root and Debian's package mirror). Its last output:\n${tail(r.output)}`,
    );
  }
  return r;
}

/**
 * Boots the VM once with `share` as its 9p share; the guest runs share/run.sh and powers off.
 * Keeps the serial console in share/console.log. Throws, with the console's end, when the guest
 * did not run the script to its end (no run.rc) or qemu did not exit cleanly.
 */
export async function bootVm(share: string, cache = VM_CACHE, timeoutSeconds = 300): Promise<Run> {
  const r = await run([cache, 'boot', share], { PODIUM_VM_TIMEOUT: String(timeoutSeconds) });
  writeFileSync(join(share, 'console.log'), r.output);
  const why =
    r.code === 124
      ? `timed out after ${timeoutSeconds} s`
      : r.code !== 0
        ? `qemu ended with ${r.code ?? r.signal}`
        : !existsSync(join(share, 'run.rc'))
          ? 'the guest did not run the script to its end (no run.rc)'
          : !r.output.includes('PODIUM-VM: RUN END')
            ? 'no "PODIUM-VM: RUN END" on the serial console'
            : '';
  if (why !== '') throw new Error(`the AppArmor test VM failed: ${why}. Serial console (end):\n${tail(r.output)}`);
  return r;
}

/** What the guest recorded for one operation: exit status, stdout and stderr. */
export interface Op {
  rc: number;
  out: string;
  err: string;
}

export function readOp(opsDir: string, name: string): Op {
  const file = (ext: string): string => join(opsDir, `${name}.${ext}`);
  if (!existsSync(file('rc'))) throw new Error(`the guest recorded no operation "${name}" (no ${file('rc')})`);
  const rc = Number(readFileSync(file('rc'), 'utf8').trim());
  return { rc, out: readFileSync(file('out'), 'utf8'), err: readFileSync(file('err'), 'utf8') };
}
