import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/*
 * The key file: 32 random bytes, base64, in a file of its own (mode 0600). Each Pod API process is
 * given the same one; it opens the CA key sealed in the database. Keep it out of the database and
 * its backups: with both, the CA key is readable.
 */

/** Reads the key file at `file`, creating it (0600, exclusively) when it does not exist. */
export async function loadOrCreateKeyFile(file: string): Promise<Buffer> {
  try {
    return await readKeyFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    await fs.writeFile(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // another process made it first
  }
  return readKeyFile(file);
}

/** Reads an existing key file; refuses one readable by group or others, or not 32 bytes of base64. */
export async function readKeyFile(file: string): Promise<Buffer> {
  const stat = await fs.stat(file);
  if ((stat.mode & 0o077) !== 0) {
    throw new Error(`key file ${file} is accessible by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`);
  }
  const key = Buffer.from((await fs.readFile(file, 'utf8')).trim(), 'base64');
  if (key.length !== 32) throw new Error(`key file ${file} does not hold 32 bytes of base64`);
  return key;
}
