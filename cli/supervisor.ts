/**
 * Keeps `podium dev`'s children running. A child that exits is started again after a backoff,
 * and every exit and restart is reported, so that one crashing agent costs one restart and a
 * line on the terminal, not the whole cluster. `stop()` ends them all and restarts none.
 *
 * Backoff per child: the first restart waits `initialBackoffMs`, each further one twice the last,
 * up to `maxBackoffMs`; a run that lasted `resetAfterMs` or longer counts as healthy, so the
 * restart after it waits `initialBackoffMs` again (a child that crashes once a day is not made to
 * wait 30 s; one that crashes at once is not restarted in a tight loop).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface SupervisorOptions {
  initialBackoffMs: number;
  maxBackoffMs: number;
  resetAfterMs: number;
  /** How long stop() waits after SIGTERM before it sends SIGKILL. */
  stopGraceMs: number;
  onEvent: (event: SupervisorEvent) => void;
}

export const SUPERVISOR_DEFAULTS: Omit<SupervisorOptions, 'onEvent'> = Object.freeze({
  initialBackoffMs: 1_000,
  maxBackoffMs: 30_000,
  resetAfterMs: 60_000,
  stopGraceMs: 10_000,
});

export interface ChildSpec {
  /** Names the child in events ("server", "local-2"). */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here, across restarts. */
  logPath: string;
}

export type SupervisorEvent =
  | { kind: 'started'; name: string; pid: number; start: number }
  | {
      kind: 'exited';
      name: string;
      code: number | null;
      signal: NodeJS.Signals | null;
      /** What went wrong when the child could not be started at all (ENOENT, EACCES). */
      error?: string;
      ranMs: number;
      /** When it will be started again; null once stop() was called. */
      restartInMs: number | null;
      logPath: string;
    };

interface Supervised {
  spec: ChildSpec;
  child: ChildProcess | null;
  /** The wait before the next restart, unless the current run turns out healthy. */
  nextBackoffMs: number;
  starts: number;
  timer: NodeJS.Timeout | null;
}

/** The delay before restarting a child that ran `ranMs`, and the delay to keep for the restart
 *  after that. Pure, so that the schedule reads (and is tested) apart from the processes. */
export function backoffAfter(ranMs: number, nextBackoffMs: number, o: Pick<SupervisorOptions, 'initialBackoffMs' | 'maxBackoffMs' | 'resetAfterMs'>): { delayMs: number; nextBackoffMs: number } {
  const delayMs = ranMs >= o.resetAfterMs ? o.initialBackoffMs : nextBackoffMs;
  return { delayMs, nextBackoffMs: Math.min(delayMs * 2, o.maxBackoffMs) };
}

export class Supervisor {
  private readonly children = new Map<string, Supervised>();
  private readonly opts: SupervisorOptions;
  private stopping = false;

  constructor(opts: Partial<SupervisorOptions> & Pick<SupervisorOptions, 'onEvent'>) {
    this.opts = { ...SUPERVISOR_DEFAULTS, ...opts };
  }

  /** Starts `spec` and keeps it running until stop(). Names are unique. */
  start(spec: ChildSpec): void {
    if (this.stopping) throw new Error(`supervisor: stopping, ${spec.name} not started`);
    if (this.children.has(spec.name)) throw new Error(`supervisor: ${spec.name} is already supervised`);
    const s: Supervised = { spec, child: null, nextBackoffMs: this.opts.initialBackoffMs, starts: 0, timer: null };
    this.children.set(spec.name, s);
    this.launch(s);
  }

  /** The pid of child `name` while it runs. */
  pid(name: string): number | undefined {
    const c = this.children.get(name)?.child;
    return c && c.exitCode === null && c.signalCode === null ? c.pid : undefined;
  }

  /** How many times child `name` was started (1 until its first restart). */
  starts(name: string): number {
    return this.children.get(name)?.starts ?? 0;
  }

  /** Cancels pending restarts, sends SIGTERM to every running child, SIGKILL to those still
   *  running after `stopGraceMs`, and resolves when all have exited. Restarts nothing after. */
  async stop(): Promise<void> {
    this.stopping = true;
    const exits: Array<Promise<unknown>> = [];
    for (const s of this.children.values()) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
      const c = s.child;
      if (!c || c.exitCode !== null || c.signalCode !== null) continue;
      exits.push(new Promise((resolve) => c.once('exit', resolve)));
      c.kill('SIGTERM');
    }
    const kill = setTimeout(() => {
      for (const s of this.children.values()) {
        const c = s.child;
        if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }
    }, this.opts.stopGraceMs);
    await Promise.all(exits);
    clearTimeout(kill);
  }

  private launch(s: Supervised): void {
    s.timer = null;
    if (this.stopping) return;
    const log = openSync(s.spec.logPath, 'a');
    const startedAt = Date.now();
    let child: ChildProcess;
    try {
      child = spawn(s.spec.command, s.spec.args, { stdio: ['ignore', log, log], env: { ...process.env, ...s.spec.env } });
    } finally {
      closeSync(log); // the child holds its own copy
    }
    s.child = child;
    s.starts++;
    let done = false;
    const exited = (code: number | null, signal: NodeJS.Signals | null, error?: string) => {
      if (done) return;
      done = true;
      const ranMs = Date.now() - startedAt;
      let restartInMs: number | null = null;
      if (!this.stopping) {
        const b = backoffAfter(ranMs, s.nextBackoffMs, this.opts);
        s.nextBackoffMs = b.nextBackoffMs;
        restartInMs = b.delayMs;
        s.timer = setTimeout(() => this.launch(s), restartInMs);
      }
      this.opts.onEvent({ kind: 'exited', name: s.spec.name, code, signal, error, ranMs, restartInMs, logPath: s.spec.logPath });
    };
    // A child that cannot be started at all gets 'error' (and maybe no 'exit'): the same restart.
    child.once('error', (err) => {
      if (child.pid === undefined) exited(null, null, err.message);
    });
    child.once('exit', (code, signal) => exited(code, signal));
    if (child.pid !== undefined) this.opts.onEvent({ kind: 'started', name: s.spec.name, pid: child.pid, start: s.starts });
  }
}

/** One line for the terminal: what happened, what comes next, and where the log is. */
export function describeSupervisorEvent(e: SupervisorEvent, showPath: (p: string) => string = (p) => p): string {
  if (e.kind === 'started') return e.start === 1 ? `${e.name} started (pid ${e.pid})` : `${e.name} restarted (pid ${e.pid}, start ${e.start})`;
  const how = e.error ? `could not start: ${e.error}` : e.signal ? `exited on ${e.signal}` : `exited with code ${e.code}`;
  const next = e.restartInMs === null ? 'not restarted (stopping)' : `restarting in ${seconds(e.restartInMs)}`;
  return `${e.name} ${how} after ${seconds(e.ranMs)}; ${next}; log: ${showPath(e.logPath)}`;
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
