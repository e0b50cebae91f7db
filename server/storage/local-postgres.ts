/**
 * A PostgreSQL cluster of our own in a directory: initdb on first use, pg_ctl start on a free
 * loopback port, pg_ctl stop at the end. Used by the tests (every server test runs on it as well
 * as on SQLite), the benchmarks and `podium dev --postgres`; production points --database at a
 * replicated PostgreSQL that someone else runs.
 *
 * Debian's server binaries live under /usr/lib/postgresql/<version>/bin. initdb and postgres
 * refuse to run as root, so as root they run as the `postgres` user the package creates, and the
 * directory is handed to it. Authentication is `trust` on 127.0.0.1 only: the cluster is a
 * throwaway that listens nowhere else.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LocalPostgres {
  /** postgres://… for the `podium` database. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Stops the cluster (fast shutdown). Safe to call twice. */
  stop(): Promise<void>;
}

/** The bin directory of the newest PostgreSQL installed from Debian's packages. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'initdb'))) return join(root, v, 'bin');
  throw new Error(`no PostgreSQL server under ${root} (install Debian's postgresql package; scripts/test does)`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Runs a PostgreSQL binary, as `postgres` when we are root. */
async function pgRun(bin: string, args: string[]): Promise<string> {
  const asRoot = process.getuid?.() === 0;
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const { stdout } = await run(cmd, argv, { maxBuffer: 16 << 20 });
  return stdout;
}

/**
 * Starts (creating on first use) a cluster in `dataDir` on a free 127.0.0.1 port and makes sure
 * the `podium` database exists. Resolves once it accepts connections.
 */
export async function startLocalPostgres(dataDir: string, opts: { port?: number } = {}): Promise<LocalPostgres> {
  const bin = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (asRoot) {
    chownSync(dataDir, uidOf('postgres'), gidOf('postgres'));
    // The server runs as postgres, which must be able to reach the directory.
    await pgRun('/usr/bin/test', ['-x', dataDir]).catch(() => {
      throw new Error(`${dataDir}: the postgres user cannot reach it (a parent directory is not searchable by others)`);
    });
  }
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    await pgRun(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8', '--no-instructions']);
    // Only loopback, and an fsync'd WAL: an acknowledged write survives a crash, as with SQLite.
    writeFileSync(join(dataDir, 'podium.conf'), ["listen_addresses = '127.0.0.1'", 'fsync = on', 'synchronous_commit = on', "unix_socket_directories = ''", 'max_connections = 200', ''].join('\n'));
    writeFileSync(join(dataDir, 'postgresql.auto.conf'), "include = 'podium.conf'\n", { flag: 'a' });
    if (asRoot) for (const f of ['podium.conf', 'postgresql.auto.conf']) chownSync(join(dataDir, f), uidOf('postgres'), gidOf('postgres'));
  }
  const port = opts.port ?? (await freePort());
  const logFile = join(dataDir, 'server.log');
  await pgRun(join(bin, 'pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', `-p ${port} -c listen_addresses=127.0.0.1`, 'start']);
  const base = `postgres://postgres@127.0.0.1:${port}`;
  const pg = await import('pg');
  const admin = new pg.Client({ connectionString: `${base}/postgres` });
  await admin.connect();
  try {
    const exists = await admin.query(`SELECT 1 FROM pg_database WHERE datname = 'podium'`);
    if (exists.rowCount === 0) await admin.query('CREATE DATABASE podium');
  } finally {
    await admin.end();
  }
  let stopped = false;
  return {
    url: `${base}/podium`,
    port,
    dataDir,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await pgRun(join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    },
  };
}

function uidOf(user: string): number {
  return Number(readIdField(user, 2));
}

function gidOf(user: string): number {
  return Number(readIdField(user, 3));
}

function readIdField(user: string, field: number): string {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no user ${user} (install Debian's postgresql package)`);
  return line.split(':')[field]!;
}
