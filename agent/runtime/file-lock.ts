/**
 * A lock between the processes of one machine, as a file made with O_EXCL: whoever creates it
 * holds the lock, and removes it when done. The file holds the holder's pid, so that a lock left
 * by a process that died (SIGKILL mid-create) is taken over rather than waited on forever.
 *
 * For what the Docker engine does not serialize: two agents on one engine creating the network of
 * one name (the engine lets both creates through; see DockerEngine.ensureNetwork).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where the locks of this machine live. */
const LOCK_DIR = join(tmpdir(), 'podium-locks');

/** The lock file for `key` (any text: it is hashed into the name). */
export function lockPath(key: string): string {
  return join(LOCK_DIR, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.lock`);
}

/** Whether process `pid` exists (one of another user's counts). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `fn` holding the lock at `path`; waits for a live holder up to `timeoutMs`. */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  mkdirSync(LOCK_DIR, { recursive: true, mode: 0o700 });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = NaN;
    try {
      holder = Number(readFileSync(path, 'utf8'));
    } catch {
      continue; // released between our create and our read
    }
    // A holder that died, or a file cut short by a crash between create and write: stale.
    if (!Number.isInteger(holder) || holder <= 0 || (!processAlive(holder) && holder !== process.pid)) {
      try {
        unlinkSync(path);
      } catch {
        /* another waiter took it over first */
      }
      continue;
    }
    if (Date.now() > deadline) throw new Error(`lock ${path} is held by pid ${holder}`);
    await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
}
