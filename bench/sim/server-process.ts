// One real `podium server` process for the fleet benches: its own state directory, a free port,
// the production timings unless told otherwise, and what the benches read from outside: its
// /metrics, its RSS and CPU time from /proc, and an operator client.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { PodApiClient } from '../../gen/podium/v1/pod_api';
import { createStoredJoinToken, issueClientCertificate } from '../../cli';
import { freePort } from '../../test/support/cluster';
import { poll } from '../../test/support/poll';

const BIN = join(__dirname, '..', '..', '..', 'bin', 'podium');
const TRUST_DOMAIN = 'podium.local';

/** User and system CPU time of process `pid` so far, in ms (from /proc, in 10 ms ticks). */
export function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export class ServerProcess {
  readonly dir = mkdtempSync(join(tmpdir(), 'podium-bench-'));
  readonly dataDir = join(this.dir, 'server');
  process: ChildProcess | null = null;
  port = 0;
  metricsPort = 0;
  private operatorClient: PodApiClient | null = null;

  constructor(private readonly flags: readonly string[] = []) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.process!.pid!;
  }

  async start(): Promise<void> {
    if (this.port === 0) {
      this.port = await freePort();
      this.metricsPort = await freePort();
    }
    const log = openSync(join(this.dir, 'server.log'), 'a');
    this.process = spawn(
      process.execPath,
      // PODIUM_BENCH_CPU_PROF=<dir>: the server writes a V8 CPU profile there when it stops.
      [...(process.env.PODIUM_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.PODIUM_BENCH_CPU_PROF] : []), BIN, 'server', '--data-dir', this.dataDir, '--listen', this.address, '--metrics-listen', `127.0.0.1:${this.metricsPort}`, '--seed', '7', ...this.flags],
      { stdio: ['ignore', log, log], env: { ...process.env, PODIUM_LOG_LEVEL: process.env.PODIUM_LOG_LEVEL ?? 'warn' } },
    );
    await poll('the Pod API leading', async () => /^podium_leader 1$/m.test(await this.metrics()), 60_000, 100);
  }

  /** SIGKILL, then start again on the same state and port. */
  async killAndRestart(): Promise<void> {
    const p = this.process!;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    await this.start();
  }

  async stop(): Promise<void> {
    this.operatorClient?.close();
    const p = this.process;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
    if (process.env.PODIUM_KEEP_TEST_DIR) process.stderr.write(`kept ${this.dir}\n`);
    else rmSync(this.dir, { recursive: true, force: true });
  }

  metrics(): Promise<string> {
    return fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) })
      .then((r) => r.text())
      .catch(() => '');
  }

  /** A gauge's value (the sum over its labels matching `labels`). */
  async gauge(name: string, labels = ''): Promise<number> {
    let sum = 0;
    for (const line of (await this.metrics()).split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (labels && !line.includes(labels)) continue;
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  }

  /** Resident set size (KiB), from /proc. */
  rssKib(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return Number(m?.[1] ?? 0);
  }

  /** User + system CPU time so far (ms), from /proc (clock ticks of 10 ms). */
  cpuMs(): number {
    return processCpuMs(this.pid);
  }

  /** One join token good for `uses` agents. */
  joinToken(uses: number): Promise<string> {
    return createStoredJoinToken(this.dataDir, TRUST_DOMAIN, 'agent', 3600_000, { uses });
  }

  async operator(): Promise<PodApiClient> {
    if (!this.operatorClient) {
      const out = join(this.dir, 'operator');
      await issueClientCertificate(this.dataDir, TRUST_DOMAIN, 'operator', 'bench', out, 3600);
      const r = (f: string) => readFileSync(join(out, f));
      this.operatorClient = new PodApiClient(this.address, credentials.createSsl(r('ca.crt'), r('operator.key'), r('operator.crt')), {
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
      });
    }
    return this.operatorClient;
  }
}
