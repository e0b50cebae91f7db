// Creating services through the Pod API and watching their replicas come up, for the benches.
import os from 'node:os';
import { Metadata } from '@grpc/grpc-js';
import type { PodApiClient } from '../../gen/podium/v1/pod_api';
import { Quota, Service, type Event } from '../../gen/podium/v1/resources';
import { as, call } from '../../test/support/pod-api-harness';
import { SimulatedFleet } from './fleet';
import { ServerProcess } from './server-process';

export const TENANT = 'bench';
export const ENVIRONMENT = 'bench';

/** The bench tenant with room for `instances` replicas, and its environment. */
export async function prepareTenant(op: PodApiClient, instances: number): Promise<void> {
  await call(op, 'setQuota', { tenant: TENANT, quota: Quota.fromPartial({ cpuMillis: 1e9, memoryMib: 1e9, instances }) });
  await call(op, 'createEnvironment', { environment: { name: ENVIRONMENT } }, as(TENANT)).catch((err: { code?: number }) => {
    if (err.code !== 6) throw err; // ALREADY_EXISTS: a second pass on the same server
  });
}

/** Creates a service; resolves when the create is acknowledged. */
export function createService(op: PodApiClient, name: string, replicas: number, ha: boolean): Promise<Service> {
  const service = Service.fromPartial({ name, image: 'podium/busybox:latest', replicas, ha, resources: { cpuMillis: 10, memoryMib: 16 } });
  return call(op, 'createService', { environment: ENVIRONMENT, service }, as(TENANT), 60_000);
}

/**
 * Follows every event (an operator naming no tenant) and calls `onRunning` for each instance that
 * reports running, with the service's name and when it was seen.
 */
export function watchRunning(op: PodApiClient, onRunning: (service: string, at: number) => void): { cancel(): void } {
  const stream = op.watchEvents({ environment: '', afterSequence: 0 }, new Metadata());
  stream.on('data', (e: Event) => {
    if (e.type === 'instance.running') onRunning(e.service, performance.now());
  });
  stream.on('error', () => undefined);
  return stream;
}

/** Runs `work` over `items` with at most `limit` in flight. */
export async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

export const percentile = (xs: readonly number[], p: number): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

/** Numeric flags: --agents 1000 and the like. */
export function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export const round1 = (x: number): number => Math.round(x * 10) / 10;

/** The machine, for a bench's JSON. */
export const machine = () => ({ cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version });

/**
 * A `podium server` process and a fleet of `agents` simulated agents joined to it, for `work`;
 * both stopped afterwards, whatever happens.
 */
export async function withServerAndFleet<T>(
  o: { agents: number; flags?: readonly string[]; capacity?: { cpuMillis: number; memoryMib: number }; before?: (server: ServerProcess) => Promise<void> },
  work: (server: ServerProcess, fleet: SimulatedFleet) => Promise<T>,
): Promise<T> {
  const server = new ServerProcess(o.flags);
  let fleet: SimulatedFleet | undefined;
  try {
    await server.start();
    await o.before?.(server);
    fleet = await SimulatedFleet.start(server.address, await server.joinToken(Math.max(1, o.agents)), { agents: o.agents, capacity: o.capacity });
    return await work(server, fleet);
  } finally {
    await fleet?.stop();
    await server.stop();
  }
}

/** Runs a bench's main: its error on stderr and exit code 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
