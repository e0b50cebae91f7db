// A fleet of simulated agents spread over a few worker processes (agent-worker.ts).
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export interface FleetOptions {
  agents: number;
  workers?: number;
  capacity?: { cpuMillis: number; memoryMib: number };
}

export class SimulatedFleet {
  private readonly workers: ChildProcess[] = [];
  hostIds: string[] = [];
  /** Joins that failed (the server too busy to answer in time) and were tried again. */
  joinRetries = 0;

  private constructor() {}

  /** Forks the workers and waits until every agent has joined and been welcomed. */
  static async start(address: string, token: string, o: FleetOptions): Promise<SimulatedFleet> {
    const f = new SimulatedFleet();
    const n = o.workers ?? Math.max(1, Math.min(4, Math.ceil(o.agents / 1000)));
    const per = Math.ceil(o.agents / n);
    const ready: Array<Promise<string[]>> = [];
    // 32 Joins in flight across the fleet: more only queue handshakes on the server's loop.
    const joinConcurrency = Math.ceil(32 / n);
    for (let i = 0; i < n; i++) {
      const count = Math.min(per, o.agents - i * per);
      if (count <= 0) break;
      // PODIUM_BENCH_AGENT_CPU_PROF=<dir>: each worker writes a V8 CPU profile there when it stops.
      const prof = process.env.PODIUM_BENCH_AGENT_CPU_PROF;
      const execArgv = ['--max-old-space-size=4096', ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : [])];
      const w = fork(join(__dirname, 'agent-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
      f.workers.push(w);
      ready.push(
        new Promise((resolve, reject) => {
          w.on('message', (m: { ready?: string[]; joinRetries?: number; error?: string }) => {
            if (m.ready) {
              f.joinRetries += m.joinRetries ?? 0;
              resolve(m.ready);
            }
            if (m.error) reject(new Error(m.error));
          });
          w.once('exit', (code) => reject(new Error(`agent worker exited with ${code}`)));
        }),
      );
      w.send({ start: { address, token, count, capacity: o.capacity ?? { cpuMillis: 16_000, memoryMib: 32_768 }, joinConcurrency } });
    }
    try {
      f.hostIds = (await Promise.all(ready)).flat();
    } catch (err) {
      // One worker failed: the others are not left running after the bench.
      for (const w of f.workers) w.kill('SIGKILL');
      throw err;
    }
    return f;
  }

  /** Sessions opened so far by each agent (1 each after start; more after reconnects). */
  async sessions(): Promise<number[]> {
    const all = await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<number[]>((resolve) => {
            const on = (m: { sessions?: number[] }) => {
              if (!m.sessions) return;
              w.off('message', on);
              resolve(m.sessions);
            };
            w.on('message', on);
            w.send({ sessions: true });
          }),
      ),
    );
    return all.flat();
  }

  /** Process ids of the workers, to measure what the simulation itself costs. */
  get pids(): number[] {
    return this.workers.map((w) => w.pid!);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map((w) => {
        if (w.exitCode !== null) return Promise.resolve();
        const exited = new Promise((r) => w.once('exit', r));
        w.send({ close: true });
        return exited;
      }),
    );
  }
}
