/**
 * The test bed for end-to-end tests (scripts/lib/testbed.sh through cli/testbed.ts): separate
 * hosts, each a network namespace with its own dockerd, on a bridge whose root-namespace address
 * is where the Pod API listens. One test bed serves the whole mocha run: `sharedTestbed()` starts
 * it for the first suite that asks (after sweeping what killed runs left) and root-hooks.ts tears
 * it down once, after the last suite. Its name carries a random part and its subnet is the first
 * free one, so that concurrent runs on one machine never meet.
 */
import { randomBytes } from 'node:crypto';
import { DockerEngine, ensureBusyboxImage } from '../../agent/runtime';
import { testbedDown, testbedSweep, testbedUp, type Testbed, type TestbedHost } from '../../cli';

export interface TestHost extends TestbedHost {
  /** A client of the host's own engine. */
  engine: DockerEngine;
}

export interface TestTestbed extends Testbed {
  hosts: TestHost[];
}

/** Hosts of the shared test bed: the end-to-end suites place 3-replica HA services. */
export const SHARED_TESTBED_HOSTS = 3;

let shared: { name: string; ready: Promise<TestTestbed> } | undefined;

/** The run's test bed, started on first use. Every caller gets the same one; never take it down
 *  yourself (stopSharedTestbed does, at the end of the run). */
export function sharedTestbed(): Promise<TestTestbed> {
  if (!shared) {
    const name = `e2e${randomBytes(2).toString('hex')}`;
    shared = { name, ready: startTestbed(name, SHARED_TESTBED_HOSTS) };
  }
  return shared.ready;
}

/** Brings up a test bed owned by this process, with the base image on every engine. */
export async function startTestbed(name: string, hosts: number): Promise<TestTestbed> {
  await testbedSweep();
  const tb = await testbedUp(name, hosts, { subnet: 'auto', owner: process.pid });
  const withEngines = tb.hosts.map((h) => ({ ...h, engine: new DockerEngine({ socketPath: h.dockerSocket }) }));
  await Promise.all(withEngines.map((h) => ensureBusyboxImage(h.engine)));
  return { ...tb, hosts: withEngines };
}

/** Takes the shared test bed down if this run started one (also when its start failed half-way). */
export async function stopSharedTestbed(): Promise<void> {
  if (!shared) return;
  const { name, ready } = shared;
  shared = undefined;
  await ready.catch(() => undefined);
  await testbedDown(name);
}
