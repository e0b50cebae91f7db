/**
 * Where a Pod API's state is, as the CLI's certs commands reach it without the server: the data
 * directory, and optionally another database and key file (the same flags and defaults as
 * `podium server`). They work whether the server runs or not: every write is a unit of work on
 * the same database, and a running server learns of it through the event feed or its polls.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadOrCreateKeyFile, type Authority } from '../certs';
import { loadOrCreateStoredAuthority, Storage } from '../server';

export type StateLocation = string | { dataDir: string; database?: string; caKeyFile?: string };

function resolve(at: StateLocation): { dataDir: string; database: string; caKeyFile: string } {
  const l = typeof at === 'string' ? { dataDir: at } : at;
  return { dataDir: l.dataDir, database: l.database ?? join(l.dataDir, 'podium.db'), caKeyFile: l.caKeyFile ?? join(l.dataDir, 'ca-key') };
}

/** Opens the state's storage, runs `fn`, closes it. */
export async function withStorage<T>(at: StateLocation, fn: (storage: Storage) => Promise<T>): Promise<T> {
  const { dataDir, database } = resolve(at);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const storage = await Storage.open(database, { processName: `cli-${process.pid}`, followEvents: false });
  try {
    return await fn(storage);
  } finally {
    await storage.close();
  }
}

/** Opens the state's storage and its authority (created on first use, as the server would). */
export async function withAuthority<T>(at: StateLocation, trustDomain: string, fn: (storage: Storage, ca: Authority) => Promise<T>): Promise<T> {
  const { dataDir, caKeyFile } = resolve(at);
  return withStorage(at, async (storage) => {
    const ca = await loadOrCreateStoredAuthority(storage, trustDomain, await loadOrCreateKeyFile(caKeyFile), join(dataDir, 'ca'));
    return fn(storage, ca);
  });
}
