/**
 * Several real `podium server` processes on one PostgreSQL database: the leader and its standbys,
 * each with its own data directory and port and the one key file that opens the CA sealed in the
 * database. For the failover tests: they are SIGKILLed, SIGSTOPped and restarted like any process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { PodApiClient } from '../../gen/podium/v1/pod_api';
import { createStoredJoinToken, issueClientCertificate, type JoinTokenOptions } from '../../cli';
import { freePort } from './cluster';
import { freshDatabase, type TestDatabase } from './databases';
import { poll } from './poll';

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

const BIN = join(__dirname, '..', '..', '..', 'bin', 'podium');
const TD = 'podium.local';

export interface PodApiProcess {
  readonly name: string;
  readonly port: number;
  readonly metricsPort: number;
  readonly address: string;
  readonly dataDir: string;
  process: ChildProcess | null;
}

export class PodApiProcesses {
  readonly dir = mkdtempSync(join(tmpdir(), 'podium-processes-'));
  readonly keyFile = join(this.dir, 'ca-key');
  readonly members: PodApiProcess[] = [];
  private db: TestDatabase | undefined;
  private operatorCreds: ChannelCredentials | undefined;

  constructor(
    readonly count: number,
    readonly flags: string[] = ['--host-ttl', '5s', '--heartbeat', '1s', '--restart-grace', '15s'],
  ) {}

  get database(): string {
    return this.db!.target;
  }

  /** Creates the database (and in it the CA, through the CLI), then starts every process. */
  async start(): Promise<void> {
    this.db = await freshDatabase('postgres');
    for (let i = 0; i < this.count; i++) {
      const port = await freePort();
      const metricsPort = await freePort();
      const dataDir = join(this.dir, `server-${i}`);
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      this.members.push({ name: `server-${i}`, port, metricsPort, address: `127.0.0.1:${port}`, dataDir, process: null });
    }
    const at = { dataDir: this.members[0]!.dataDir, database: this.database, caKeyFile: this.keyFile };
    await issueClientCertificate(at, TD, 'operator', 'admin', join(this.dir, 'operator'), 3600);
    for (const m of this.members) this.startMember(m);
    await poll('a leader', async () => (await this.leader()) !== undefined, 30_000);
    // A leader may be up before the other process listens: agents join at any member.
    for (const m of this.members) await poll(`${m.name} listening`, () => accepts(m.port), 30_000, 50);
  }

  /** Starts (or restarts) one process; it comes up as a standby when another leads. */
  startMember(m: PodApiProcess): void {
    const log = openSync(join(this.dir, `${m.name}.log`), 'a');
    m.process = spawn(
      process.execPath,
      [
        BIN, 'server', '--data-dir', m.dataDir, '--database', this.database, '--ca-key-file', this.keyFile,
        '--listen', m.address, '--metrics-listen', `127.0.0.1:${m.metricsPort}`, '--seed', '7', ...this.flags,
      ],
      { stdio: ['ignore', log, log] },
    );
  }

  async kill(m: PodApiProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = m.process;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
    m.process = null;
  }

  signal(m: PodApiProcess, signal: NodeJS.Signals): void {
    m.process?.kill(signal);
  }

  /** The member whose /metrics says it leads, and its epoch; undefined while none does. */
  async leader(): Promise<{ member: PodApiProcess; epoch: number } | undefined> {
    for (const m of this.members) {
      if (!m.process) continue;
      const text = await fetch(`http://127.0.0.1:${m.metricsPort}/metrics`, { signal: AbortSignal.timeout(1000) })
        .then((r) => r.text())
        .catch(() => '');
      const leads = /^podium_leader 1$/m.test(text);
      const epoch = Number(/^podium_leader_epoch (\d+)$/m.exec(text)?.[1] ?? 0);
      if (leads) return { member: m, epoch };
    }
    return undefined;
  }

  operatorCredentials(): ChannelCredentials {
    if (!this.operatorCreds) {
      const r = (f: string) => readFileSync(join(this.dir, 'operator', f));
      this.operatorCreds = credentials.createSsl(r('ca.crt'), r('operator.key'), r('operator.crt'));
    }
    return this.operatorCreds;
  }

  /** An operator client of one member. */
  client(m: PodApiProcess): PodApiClient {
    // As the gateway's: a killed and restarted process is reached again within 2 s.
    return new PodApiClient(m.address, this.operatorCredentials(), { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 2000 });
  }

  joinToken(opts?: JoinTokenOptions): Promise<string> {
    return createStoredJoinToken({ dataDir: this.members[0]!.dataDir, database: this.database, caKeyFile: this.keyFile }, TD, 'agent', 3600_000, opts);
  }

  log(m: PodApiProcess): string {
    try {
      return readFileSync(join(this.dir, `${m.name}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    for (const m of this.members) {
      if (m.process?.signalCode === null && m.process.exitCode === null) m.process.kill('SIGCONT');
      await this.kill(m, 'SIGTERM');
    }
    await this.db?.drop();
    if (!process.env.PODIUM_KEEP_TEST_DIR) rmSync(this.dir, { recursive: true, force: true });
  }
}
