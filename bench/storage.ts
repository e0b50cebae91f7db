// The control plane on each storage dialect, side by side in one run: a real Pod API (real gRPC,
// TLS, the production orchestrator and bid timings) on a SQLite file and on a local PostgreSQL
// 15 cluster, with the same fleet of scripted agents (the real AgentService protocol, answering at
// once, so the platform's own work is what is timed, not Docker's).
//   - placements per second: 16 services of 25 replicas created at once, until all 400 run;
//   - deploy latency: one 3-replica HA service, create until GET shows 3 running.
// The dialects alternate run by run (the machine is shared and noisy). Prints ONE JSON object of
// medians. Run: node dist/bench/storage.js
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { InstanceState } from '../gen/podium/v1/resources';
import { SERVER_DEFAULTS } from '../server';
import { freshDatabase, stopSharedPostgres, type TestDialect } from '../test/support/databases';
import { PodApiDriver, startPodApiHarness } from '../test/support/pod-api-harness';
import { poll } from '../test/support/poll';

const RUNS = 3; // rounds of (sqlite, postgres); odd, so the median is one measured run
const DEPLOYS_PER_RUN = 5;
const AGENTS = 8;
const SERVICES = 16;
const REPLICAS = 25;
const TENANT = 'bench';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round1 = (x: number): number => Math.round(x * 10) / 10;

interface RunResult {
  placementsPerSecond: number;
  placeAllMs: number;
  deployMs: number[];
}

async function runOn(dialect: TestDialect, run: number): Promise<RunResult> {
  const db = await freshDatabase(dialect);
  const h = await startPodApiHarness({
    database: db.target,
    orchestratorIntervalMs: SERVER_DEFAULTS.orchestratorIntervalMs,
    bidDeadlineMs: SERVER_DEFAULTS.bidDeadlineMs,
    awardTimeoutMs: SERVER_DEFAULTS.awardTimeoutMs,
    heartbeatIntervalMs: SERVER_DEFAULTS.heartbeatIntervalMs,
    hostTtlMs: SERVER_DEFAULTS.hostTtlMs,
  });
  const d = new PodApiDriver(h);
  try {
    await d.fleet(AGENTS, { capacity: { cpuMillis: 64_000, memoryMib: 64 * 1024 } });
    await d.createEnvironment(TENANT, 'bench');

    // Deploy latency first, on an idle fleet.
    const deployMs: number[] = [];
    for (let i = 0; i < DEPLOYS_PER_RUN + 1; i++) {
      const name = `deploy-${run}-${i}`;
      const t0 = performance.now();
      await d.createService(TENANT, 'bench', { name, replicas: 3, ha: true, resources: { cpuMillis: 100, memoryMib: 32 } });
      await d.running(TENANT, 'bench', name, 3, 60_000);
      if (i > 0) deployMs.push(performance.now() - t0); // the first is a warm-up
      await d.deleteService(TENANT, 'bench', name);
    }
    await poll('the deploys removed', () => d.agents.every((a) => a.running.size === 0), 60_000, 20);

    // Placement throughput: every replica asked for at once.
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: SERVICES }, (_, s) =>
        d.createService(TENANT, 'bench', { name: `load-${s}`, replicas: REPLICAS, resources: { cpuMillis: 10, memoryMib: 16 } }),
      ),
    );
    await poll('every replica running', async () => {
      for (let s = 0; s < SERVICES; s++) {
        const svc = await d.getService(TENANT, 'bench', `load-${s}`);
        if (svc.instances.filter((x) => x.state === InstanceState.INSTANCE_STATE_RUNNING).length !== REPLICAS) return false;
      }
      return true;
    }, 120_000, 50);
    const placeAllMs = performance.now() - t0;
    return { placementsPerSecond: (SERVICES * REPLICAS) / (placeAllMs / 1000), placeAllMs, deployMs };
  } finally {
    for (const a of d.agents) a.close();
    await h.close();
    await db.drop();
  }
}

async function main(): Promise<void> {
  const results: Record<TestDialect, RunResult[]> = { sqlite: [], postgres: [] };
  for (let run = 0; run < RUNS; run++) {
    const order: TestDialect[] = run % 2 === 0 ? ['sqlite', 'postgres'] : ['postgres', 'sqlite'];
    for (const dialect of order) results[dialect].push(await runOn(dialect, run));
  }
  await stopSharedPostgres();
  const summary = (rs: RunResult[]) => ({
    placementsPerSecond: round1(median(rs.map((r) => r.placementsPerSecond))),
    placementsPerSecondRuns: rs.map((r) => round1(r.placementsPerSecond)),
    deployMs: round1(median(rs.flatMap((r) => r.deployMs))),
    deployMsRuns: rs.flatMap((r) => r.deployMs).map(round1),
  });
  const sqlite = summary(results.sqlite);
  const postgres = summary(results.postgres);
  process.stdout.write(
    `${JSON.stringify({
      bench: 'storage',
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
      workload: { agents: AGENTS, placements: SERVICES * REPLICAS, deploy: '3 HA replicas', runs: RUNS, deploysPerRun: DEPLOYS_PER_RUN },
      timings: { orchestratorIntervalMs: SERVER_DEFAULTS.orchestratorIntervalMs, bidDeadlineMs: SERVER_DEFAULTS.bidDeadlineMs },
      sqlite,
      postgres,
      ratio: {
        placementsPerSecond: Math.round((postgres.placementsPerSecond / sqlite.placementsPerSecond) * 100) / 100,
        deployMs: Math.round((postgres.deployMs / sqlite.deployMs) * 100) / 100,
      },
    })}\n`,
  );
}

main().catch(async (err) => {
  await stopSharedPostgres().catch(() => undefined);
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
