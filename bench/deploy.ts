// Times a deploy end to end: REST POST of a 3-replica HA service on the gateway until GET shows 3
// instances running, on a real cluster (Pod API, gateway, three agent processes on the three hosts
// of the test bed, each with its own Docker engine). Beside it, the baseline: the same 3 containers
// (same hardened create body) created and started directly through the Docker Engine API of the
// first host, with no platform in between.
// Prints ONE JSON object of medians. Run: node dist/bench/deploy.js
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { containerBody, containerName } from '../agent/runtime';
import { Cluster } from '../test/support/cluster';
import { poll } from '../test/support/poll';
import { stopSharedTestbed } from '../test/support/testbed';

const RUNS = 7; // odd, so the median is one measured run
const WARM_UP = 1;
const SPEC = {
  image: 'podium/busybox:latest',
  command: ['httpd', '-f', '-p', '8080'],
  replicas: 3,
  ha: true,
  resources: { cpuMillis: 100, memoryMib: 32 },
};

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round1 = (x: number): number => Math.round(x * 10) / 10;

async function deployOnce(c: Cluster, name: string): Promise<number> {
  const t0 = performance.now();
  const res = await c.rest('POST', '/v1/environments/bench/services', { ...SPEC, name });
  if (res.status !== 200) throw new Error(`deploy ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  await poll(`${name} running`, async () => {
    const { body } = await c.rest('GET', `/v1/environments/bench/services/${name}`);
    return body.instances.filter((i: { state: string }) => i.state === 'INSTANCE_STATE_RUNNING').length === 3;
  }, 60_000, 10);
  const ms = performance.now() - t0;
  await c.rest('DELETE', `/v1/environments/bench/services/${name}`);
  await poll(`${name} removed`, async () => (await c.containers()).every((x) => x.labels['podium.service'] !== name), 60_000, 50);
  return ms;
}

async function baselineOnce(c: Cluster, run: number): Promise<number> {
  const engine = c.engineOf(c.hosts[0]!);
  const network = `podium-bench-${process.pid}`;
  await engine.ensureNetwork(network, { 'podium.bench': 'true' });
  const ids: string[] = [];
  try {
    return await timeCreates(c, run, network, ids);
  } finally {
    for (const id of ids) await engine.removeContainer(id);
    await engine.removeNetwork(network);
  }
}

async function timeCreates(c: Cluster, run: number, network: string, ids: string[]): Promise<number> {
  const engine = c.engineOf(c.hosts[0]!);
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) {
    const spec = {
      instanceId: `b${run}x${i}`,
      tenant: 'bench',
      environment: 'bench',
      service: 'baseline',
      image: SPEC.image,
      command: SPEC.command,
      resources: SPEC.resources,
      capabilities: [],
      haGroup: '',
      readOnlyRoot: true,
      writablePaths: [],
    };
    const hostId = `bench${process.pid}`;
    const id = await engine.createContainer(containerName(spec, hostId), containerBody(spec, { hostId, network, apparmorProfile: null }));
    await engine.startContainer(id);
    ids.push(id);
  }
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const c = new Cluster({ hostTtl: '10s', heartbeat: '2s' });
  await c.start();
  try {
    await c.rest('POST', '/v1/environments', { name: 'bench' });
    const deploy: number[] = [];
    const baseline: number[] = [];
    for (let run = 0; run < WARM_UP + RUNS; run++) {
      const d = await deployOnce(c, `svc${run}`);
      const b = await baselineOnce(c, run);
      if (run >= WARM_UP) {
        deploy.push(d);
        baseline.push(b);
      }
    }
    process.stdout.write(
      `${JSON.stringify({
        node: process.version,
        cpu: os.cpus()[0]?.model,
        cpus: os.cpus().length,
        runs: RUNS,
        note: 'medians in ms; deploy = REST POST of 3 HA replicas until GET shows 3 running (polled every 10 ms); baseline = the same 3 containers created and started directly through the Docker Engine API',
        deployMs: round1(median(deploy)),
        baselineMs: round1(median(baseline)),
        deployRunsMs: deploy.map(round1),
        baselineRunsMs: baseline.map(round1),
      })}\n`,
    );
  } finally {
    await c.stop();
    await stopSharedTestbed();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
