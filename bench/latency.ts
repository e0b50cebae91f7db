// bench:latency — one 3-replica HA service at a time on an idle fleet of N simulated agents
// (bench/sim), against one `podium server` process: from CreateService returning to the third
// replica running (seen on WatchEvents), and CreateService itself. Beside it, the baseline: the
// same on a fleet of 3 agents, where sampling has nothing to leave out.
// Prints one JSON object per fleet size. Run: npm run bench:latency -- [--agents 1000] [--services 100]
import { performance } from 'node:perf_hooks';
import { createService, flag, machine, percentile, prepareTenant, round1, runMain, watchRunning, withServerAndFleet } from './sim/placements';

const AGENTS = flag('agents', 1000);
const SERVICES = flag('services', 100);

function measure(agents: number) {
  return withServerAndFleet({ agents, before: async (server) => prepareTenant(await server.operator(), 3 * (SERVICES + 10)) }, async (server) => {
    const op = await server.operator();
    const running = new Map<string, { n: number; at: number }>();
    const waiters = new Map<string, () => void>();
    const stream = watchRunning(op, (service, at) => {
      const r = running.get(service) ?? { n: 0, at: 0 };
      r.n++;
      r.at = at;
      running.set(service, r);
      if (r.n === 3) waiters.get(service)?.();
    });
    const toRunning: number[] = [];
    const create: number[] = [];
    for (let i = -5; i < SERVICES; i++) {
      const name = `lat-${i + 5}`;
      const done = new Promise<void>((r) => waiters.set(name, r));
      const t0 = performance.now();
      await createService(op, name, 3, true);
      const returned = performance.now();
      await done;
      if (i < 0) continue; // warm-up
      create.push(returned - t0);
      toRunning.push(running.get(name)!.at - returned);
    }
    stream.cancel();
    return {
      bench: 'latency',
      agents,
      services: SERVICES,
      createReturnedToRunningMs: { p50: round1(percentile(toRunning, 50)), p99: round1(percentile(toRunning, 99)), max: round1(Math.max(...toRunning)) },
      createServiceMs: { p50: round1(percentile(create, 50)), p99: round1(percentile(create, 99)) },
      machine: machine(),
    };
  });
}

async function main(): Promise<void> {
  const fleet = await measure(AGENTS);
  const baseline = await measure(3);
  process.stdout.write(`${JSON.stringify({ ...fleet, baseline: { agents: 3, createReturnedToRunningMs: baseline.createReturnedToRunningMs, createServiceMs: baseline.createServiceMs } })}\n`);
}

runMain(main);
