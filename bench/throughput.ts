// bench:throughput — placements per second on one `podium server` process with N simulated
// agents (bench/sim: real Join, real mTLS, the real AgentService protocol, no Docker): L
// single-replica lots (services of 100 replicas), then L lots as 3-replica HA services, created
// 32 at a time; from the first create to the last replica running (seen on WatchEvents).
// Baseline beside it, on the same fleet and lots: the first-fit placer in memory (no network,
// no database). Prints one JSON object per result.
// Run: npm run bench:throughput -- [--agents 1000] [--lots 20000] [--database postgres://…]
import { performance } from 'node:perf_hooks';
import type { HostView, LotView } from '../server/auction';
import { firstFit } from './first-fit';
import { createService, flag, inParallel, machine, percentile, prepareTenant, round1, runMain, watchRunning, withServerAndFleet } from './sim/placements';
import type { SimulatedFleet } from './sim/fleet';
import { processCpuMs, type ServerProcess } from './sim/server-process';

const AGENTS = flag('agents', 1000);
const LOTS = flag('lots', 20_000);
const CAPACITY = { cpuMillis: 16_000, memoryMib: 32_768 };
const databaseIndex = process.argv.indexOf('--database');
const DATABASE = databaseIndex > 0 ? process.argv[databaseIndex + 1]! : '';

function firstFitLotsPerSecond(ha: boolean): number {
  const hosts: HostView[] = Array.from({ length: AGENTS }, (_, i) => ({
    id: `h${i}`, pod: 'default', provider: 'local', labels: {}, capacity: CAPACITY, allocated: { cpuMillis: 0, memoryMib: 0 },
    alive: true, acceptsWork: true, haGroups: new Set<string>(),
  }));
  const lots: LotView[] = Array.from({ length: LOTS }, (_, i) => ({
    id: `l${i}`, tenant: 'bench', environment: 'bench', service: `s${Math.floor(i / (ha ? 3 : 100))}`, haGroup: ha ? `g${Math.floor(i / 3)}` : '',
    resources: { cpuMillis: 10, memoryMib: 16 }, image: 'img', constraints: {}, excludedHosts: new Set<string>(),
  }));
  const t0 = performance.now();
  const placed = firstFit(hosts, lots);
  return placed / ((performance.now() - t0) / 1000);
}

/** CPU time so far of the server, the agents' workers and this process (the clients), in ms. */
function cpuMs(server: ServerProcess, fleet: SimulatedFleet) {
  const own = process.cpuUsage();
  return { server: server.cpuMs(), agents: fleet.pids.reduce((sum, pid) => sum + processCpuMs(pid), 0), clients: (own.user + own.system) / 1000 };
}

async function pass(server: ServerProcess, fleet: SimulatedFleet, ha: boolean, prefix: string) {
  const op = await server.operator();
  const perService = ha ? 3 : 100;
  const names = Array.from({ length: Math.floor(LOTS / perService) }, (_, i) => `${prefix}-${i}`);
  const total = names.length * perService;
  let running = 0;
  let lastAt = 0;
  let done: () => void = () => undefined;
  const allRunning = new Promise<void>((r) => (done = r));
  const stream = watchRunning(op, (service, at) => {
    if (!service.startsWith(`${prefix}-`)) return;
    running++;
    lastAt = at;
    if (running === total) done();
  });
  const cpu0 = cpuMs(server, fleet);
  const t0 = performance.now();
  const createMs: number[] = [];
  await inParallel(names, 32, async (n) => {
    const c0 = performance.now();
    await createService(op, n, perService, ha);
    createMs.push(performance.now() - c0);
  });
  const createdAt = performance.now();
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 240_000).unref());
  const outcome = await Promise.race([allRunning.then(() => 'ok' as const), timeout]);
  stream.cancel();
  const seconds = ((outcome === 'ok' ? lastAt : performance.now()) - t0) / 1000;
  const cpu1 = cpuMs(server, fleet);
  const share = (k: keyof typeof cpu0) => Math.round((cpu1[k] - cpu0[k]) / ((performance.now() - t0) / 100));
  return {
    bench: 'throughput',
    kind: ha ? 'ha-3' : 'single',
    agents: AGENTS,
    lots: total,
    database: DATABASE ? 'postgres' : 'sqlite',
    placed: running,
    complete: outcome === 'ok',
    seconds: round1(seconds),
    placementsPerSecond: round1(running / seconds),
    createsSeconds: round1((createdAt - t0) / 1000),
    createServiceMs: { p50: round1(percentile(createMs, 50)), p99: round1(percentile(createMs, 99)), inFlight: 32 },
    // Percent of one core each side used over the pass: which of them the machine's two cores bound.
    cpuPercent: { server: share('server'), agents: share('agents'), clients: share('clients') },
    baseline: { placer: 'first-fit, in memory', placementsPerSecond: Math.round(firstFitLotsPerSecond(ha)) },
    machine: machine(),
  };
}

runMain(() =>
  withServerAndFleet(
    { agents: AGENTS, capacity: CAPACITY, flags: DATABASE ? ['--database', DATABASE] : [], before: async (server) => prepareTenant(await server.operator(), 4 * LOTS) },
    async (server, fleet) => {
      process.stdout.write(`${JSON.stringify(await pass(server, fleet, false, 'single'))}\n`);
      process.stdout.write(`${JSON.stringify(await pass(server, fleet, true, 'ha'))}\n`);
    },
  ),
);
