/**
 * Where `podium dev`'s three hosts run.
 *  - "engine" (the default): all three agents in the root namespace, on the local Docker engine;
 *    the Pod API on 127.0.0.1.
 *  - "netns": three separate hosts on the test bed "dev" (scripts/lib/testbed.sh, 10.77.0.0/24):
 *    each agent runs inside its host's network namespace (nsenter) on that host's own engine and
 *    reaches the Pod API on the bridge address 10.77.0.1, where it listens.
 */
import { DockerEngine } from '../agent/runtime';
import { SERVER_DEFAULTS } from '../server';
import { inHost, testbedUp, type Testbed, type TestbedHost } from './testbed';

export type DevHostsKind = 'engine' | 'netns';
export const DEV_HOSTS_KINDS: readonly DevHostsKind[] = ['engine', 'netns'];
/** The test bed `podium dev --hosts netns` uses; its subnet is the script's default. */
export const DEV_TESTBED = 'dev';

export interface DevHost {
  /** The agent's host id (local-1 …). */
  id: string;
  dockerSocket: string;
  engine: DockerEngine;
  /** An address of the host that the root namespace reaches (for the agent's metrics). */
  address: string;
  /** The test bed host it runs on, in "netns" mode. */
  testbedHost?: TestbedHost;
  /** How to run `argv` on this host. */
  command(argv: string[]): { command: string; args: string[] };
}

export interface DevHosts {
  kind: DevHostsKind;
  /** Where the Pod API listens, and where the agents and the gateway reach it. */
  podApiHost: string;
  hosts: DevHost[];
  /** The test bed, in "netns" mode. */
  testbed?: Testbed;
}

/** Makes the hosts ready: in "netns" mode brings the test bed up (idempotently: a test bed left
 *  up by an earlier run, with its containers, is kept). The engines are not pinged here. */
export async function prepareDevHosts(kind: DevHostsKind, ids: readonly string[], dockerSocket: string, onLog: (line: string) => void): Promise<DevHosts> {
  if (kind === 'engine') {
    const engine = new DockerEngine({ socketPath: dockerSocket });
    return {
      kind,
      podApiHost: SERVER_DEFAULTS.host,
      hosts: ids.map((id) => ({ id, dockerSocket, engine, address: '127.0.0.1', command: (argv) => ({ command: argv[0]!, args: argv.slice(1) }) })),
    };
  }
  const testbed = await testbedUp(DEV_TESTBED, ids.length, { onLog });
  return {
    kind,
    podApiHost: testbed.bridgeAddress,
    testbed,
    hosts: ids.map((id, i) => {
      const at = testbed.hosts[i]!;
      return {
        id,
        dockerSocket: at.dockerSocket,
        engine: new DockerEngine({ socketPath: at.dockerSocket }),
        address: at.address,
        testbedHost: at,
        command: (argv) => inHost(at, argv),
      };
    }),
  };
}

/** Summary lines naming each host and the engine it uses. */
export function describeDevHosts(h: DevHosts): string[] {
  if (h.kind === 'engine') {
    return [`  Hosts            ${h.hosts.map((x) => x.id).join(', ')}: agents in this namespace, all on the Docker engine at ${h.hosts[0]?.dockerSocket}`];
  }
  return h.hosts.map(
    (x, i) =>
      `  ${i === 0 ? 'Hosts           ' : '                '} ${x.id}  namespace ${x.testbedHost!.netns}, ${x.address}, its own engine at ${x.dockerSocket}`,
  );
}
