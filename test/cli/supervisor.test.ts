/**
 * The supervisor of `podium dev`, on real child processes (`node -e` scripts): a child that exits
 * is restarted after a doubling backoff, the backoff starts over after a healthy run, stop() ends
 * everything (also a child that ignores SIGTERM, and a restart that is only scheduled) and
 * restarts nothing, and what it reports says what happened and where the log is.
 * Delays are small, and only lower bounds on elapsed time are asserted (the machine is shared).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backoffAfter, describeSupervisorEvent, Supervisor, type SupervisorEvent } from '../../cli/supervisor';
import { poll } from '../support/poll';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('supervisor (podium dev)', function () {
  this.timeout(60_000);
  let dir: string;
  let sup: Supervisor | undefined;
  let events: Array<SupervisorEvent & { at: number }>;
  const record = (e: SupervisorEvent) => events.push({ ...e, at: Date.now() });
  const node = (script: string) => ({ command: process.execPath, args: ['-e', script] });
  const of = <K extends SupervisorEvent['kind']>(kind: K, name: string) =>
    events.filter((e): e is Extract<SupervisorEvent, { kind: K }> & { at: number } => e.kind === kind && e.name === name);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podium-supervisor-'));
    events = [];
  });

  afterEach(async () => {
    await sup?.stop();
    sup = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('computes the schedule: doubling from the initial delay to the cap, from the start after a healthy run', () => {
    const o = { initialBackoffMs: 1000, maxBackoffMs: 30_000, resetAfterMs: 60_000 };
    const delays: number[] = [];
    let next = o.initialBackoffMs;
    for (let i = 0; i < 7; i++) {
      const b = backoffAfter(10, next, o);
      delays.push(b.delayMs);
      next = b.nextBackoffMs;
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    assert.deepEqual(backoffAfter(60_000, next, o), { delayMs: 1000, nextBackoffMs: 2000 });
    assert.deepEqual(backoffAfter(59_999, next, o), { delayMs: 30_000, nextBackoffMs: 30_000 });
  });

  it('restarts a child that exits, waiting longer each time up to the cap, and says so', async () => {
    sup = new Supervisor({ initialBackoffMs: 150, maxBackoffMs: 600, resetAfterMs: 60_000, onEvent: record });
    const logPath = join(dir, 'crash.log');
    sup.start({ name: 'crash', ...node('console.log("run", process.pid); process.exit(3)'), logPath });
    await poll('5 starts', () => of('started', 'crash').length >= 5, 30_000);
    sup.stop();

    const exits = of('exited', 'crash').slice(0, 4);
    assert.deepEqual(exits.map((e) => e.restartInMs), [150, 300, 600, 600]);
    assert.ok(exits.every((e) => e.code === 3 && e.signal === null));
    const starts = of('started', 'crash');
    for (let i = 0; i < 4; i++) {
      const waited = starts[i + 1]!.at - exits[i]!.at;
      assert.ok(waited >= exits[i]!.restartInMs! - 5, `restart ${i + 1} came after ${waited} ms, not ${exits[i]!.restartInMs} ms`);
    }
    assert.deepEqual(starts.map((s) => s.start).slice(0, 5), [1, 2, 3, 4, 5]);
    assert.equal(new Set(starts.map((s) => s.pid)).size, starts.length, 'each start is a new process');
    // Every run that exited appended to the same log (the 5th may be stopped before it wrote).
    const runs = readFileSync(logPath, 'utf8').split('\n').filter((l) => l.startsWith('run '));
    assert.ok(runs.length >= 4, readFileSync(logPath, 'utf8'));
    for (const s of starts.slice(0, 4)) assert.ok(runs.includes(`run ${s.pid}`), `run ${s.pid} logged`);

    const line = describeSupervisorEvent(exits[1]!);
    assert.match(line, /^crash exited with code 3 after \d+\.\d s; restarting in 0\.3 s; log: /);
    assert.ok(line.endsWith(`log: ${logPath}`), line);
    assert.match(describeSupervisorEvent(starts[1]!), /^crash restarted \(pid \d+, start 2\)$/);
  });

  it('starts the backoff over after a run that lasted the reset time', async () => {
    // Runs 1 and 2 exit at once, run 3 stays up past resetAfterMs, run 4 exits at once again.
    const counter = join(dir, 'runs');
    const script = `
      const fs = require('fs');
      const n = (fs.existsSync(${JSON.stringify(counter)}) ? Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8')) : 0) + 1;
      fs.writeFileSync(${JSON.stringify(counter)}, String(n));
      setTimeout(() => process.exit(1), n === 3 ? 4500 : 0);`;
    // A run that "exits at once" still lasts a Node start-up, which takes seconds on a loaded
    // machine: the reset time must be well past that.
    sup = new Supervisor({ initialBackoffMs: 100, maxBackoffMs: 10_000, resetAfterMs: 4000, onEvent: record });
    sup.start({ name: 'flaky', ...node(script), logPath: join(dir, 'flaky.log') });
    await poll('4 exits', () => of('exited', 'flaky').length >= 4, 30_000);
    const exits = of('exited', 'flaky').slice(0, 4);
    assert.ok(exits[2]!.ranMs >= 4000, `run 3 lasted ${exits[2]!.ranMs} ms`);
    assert.deepEqual(exits.map((e) => e.restartInMs), [100, 200, 100, 200]);
  });

  it('stop() ends every child, cancels a scheduled restart and restarts nothing', async () => {
    sup = new Supervisor({ initialBackoffMs: 5_000, maxBackoffMs: 5_000, resetAfterMs: 60_000, stopGraceMs: 5_000, onEvent: record });
    sup.start({ name: 'steady', ...node('setInterval(() => {}, 1000)'), logPath: join(dir, 'steady.log') });
    sup.start({ name: 'quitter', ...node('process.exit(0)'), logPath: join(dir, 'quitter.log') });
    await poll('quitter exited, its restart scheduled', () => of('exited', 'quitter').length === 1);
    const steady = sup.pid('steady')!;
    assert.ok(alive(steady));

    const t0 = Date.now();
    await sup.stop();
    assert.ok(Date.now() - t0 < 4_000, 'stop() did not wait for the scheduled restart');
    assert.equal(alive(steady), false, 'the running child is gone');
    const steadyExit = of('exited', 'steady');
    assert.equal(steadyExit.length, 1);
    assert.equal(steadyExit[0]!.signal, 'SIGTERM');
    assert.equal(steadyExit[0]!.restartInMs, null);
    assert.match(describeSupervisorEvent(steadyExit[0]!), /^steady exited on SIGTERM after .*; not restarted \(stopping\); log: /);

    // Past the quitter's backoff: still nothing started again.
    await new Promise((r) => setTimeout(r, 5_500));
    assert.equal(of('started', 'quitter').length, 1);
    assert.equal(of('started', 'steady').length, 1);
    assert.equal(sup.pid('steady'), undefined);
    assert.throws(() => sup!.start({ name: 'late', ...node('0'), logPath: join(dir, 'late.log') }), /stopping/);
  });

  it('stop() sends SIGKILL to a child that ignores SIGTERM for the grace time', async () => {
    sup = new Supervisor({ stopGraceMs: 300, onEvent: record });
    const ready = join(dir, 'ready');
    sup.start({
      name: 'stubborn',
      ...node(`process.on('SIGTERM', () => {}); require('fs').writeFileSync(${JSON.stringify(ready)}, ''); setInterval(() => {}, 1000)`),
      logPath: join(dir, 'stubborn.log'),
    });
    const pid = await poll('the child handles SIGTERM', () => {
      try {
        readFileSync(ready);
        return sup!.pid('stubborn');
      } catch {
        return undefined;
      }
    });
    const t0 = Date.now();
    await sup.stop();
    assert.ok(Date.now() - t0 >= 290, 'waited the grace time first');
    assert.equal(alive(pid), false);
    assert.equal(of('exited', 'stubborn')[0]!.signal, 'SIGKILL');
  });

  it('restarts a child whose command cannot be started, saying why', async () => {
    sup = new Supervisor({ initialBackoffMs: 100, maxBackoffMs: 200, onEvent: record });
    sup.start({ name: 'missing', command: join(dir, 'no-such-program'), args: [], logPath: join(dir, 'missing.log') });
    await poll('two failed starts', () => of('exited', 'missing').length >= 2);
    const [first, second] = of('exited', 'missing');
    assert.match(first!.error ?? '', /ENOENT/);
    assert.deepEqual([first!.restartInMs, second!.restartInMs], [100, 200]);
    assert.match(describeSupervisorEvent(first!), /^missing could not start: .*ENOENT.*; restarting in 0\.1 s; log: /);
  });
});
