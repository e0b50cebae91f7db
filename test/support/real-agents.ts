/**
 * Real agents in the test process: `Agent` objects that joined a harness Pod API with the real
 * Join, speak the real AgentService over mutual TLS, and run their containers on the machine's
 * real Docker engine. Host ids carry a random prefix of this process (uniquePrefix), so that runs
 * never touch each other's containers and networks and a killed run's leftovers are swept;
 * `stop()` removes every container and network its hosts made.
 */
import pino from 'pino';
import { joinFleet } from '../../agent/identity';
import { Agent, AGENT_DEFAULTS, SubnetPool } from '../../agent';
import type { ContainerEngine } from '../../agent/container-engine';
import { DockerEngine, ensureBusyboxImage } from '../../agent/runtime';
import { AppArmorMode, type Resources } from '../../gen/podium/v1/resources';
import { uniquePrefix } from '../runtime/unique-prefix';
import { sweepStaleTestResources } from '../runtime/sweep';
import type { PodApiHarness } from './pod-api-harness';
import { DOCKER_SOCKET } from './local-engine';

export interface RealAgentOptions {
  capacity?: Resources;
  watchIntervalMs?: number;
  subnetPool?: string;
  subnetPrefix?: number;
  /** The engine each agent runs on; the shared real engine by default (a test may wrap it). */
  engineFor?: (hostId: string, index: number) => ContainerEngine;
  /** Each agent runs its proxy on 127.0.0.1 (a free port). */
  mesh?: boolean;
}

export class RealAgents {
  readonly engine = new DockerEngine({ socketPath: DOCKER_SOCKET });
  readonly agents: Agent[] = [];

  private constructor(readonly hosts: string[]) {}

  /** Joins `count` agents to the harness and starts them (each then opens its session by itself). */
  static async start(h: PodApiHarness, count: number, opts: RealAgentOptions = {}): Promise<RealAgents> {
    const prefix = uniquePrefix('host');
    const fleet = new RealAgents(Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`));
    await sweepStaleTestResources(fleet.engine, DOCKER_SOCKET);
    await ensureBusyboxImage(fleet.engine);
    const log = pino({ level: process.env.PODIUM_TEST_LOG ?? 'silent' });
    const pool = SubnetPool.parse(opts.subnetPool ?? AGENT_DEFAULTS.subnetPool, opts.subnetPrefix ?? AGENT_DEFAULTS.subnetPrefix);
    for (const [i, host] of fleet.hosts.entries()) {
      const identity = await joinFleet(h.address, await h.joinToken({ hostId: host }), host);
      const agent = new Agent(
        identity,
        opts.engineFor?.(host, i) ?? fleet.engine,
        {
          serverAddresses: [h.address],
          pod: 'test',
          provider: 'local',
          labels: {},
          capacity: opts.capacity ?? { cpuMillis: 2000, memoryMib: 2048 },
          apparmor: AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE,
          backoffMinMs: 100,
          backoffMaxMs: 2_000,
          watchIntervalMs: opts.watchIntervalMs ?? 1_000,
          subnetPool: pool,
          mesh: opts.mesh ? { listenHost: '127.0.0.1', listenPort: 0, advertiseHost: '127.0.0.1' } : undefined,
        },
        log.child({ host }),
      );
      fleet.agents.push(agent);
      await agent.start();
    }
    return fleet;
  }

  /** Containers of these hosts, as the engine shows them. */
  async containers(): Promise<Array<{ id: string; labels: Record<string, string>; running: boolean }>> {
    const all = [];
    for (const host of this.hosts) all.push(...(await this.engine.listContainers({ 'podium.host': host })));
    return all;
  }

  /** Networks of these hosts, as the engine shows them. */
  async networks(): Promise<Array<{ id: string; name: string; subnets: string[] }>> {
    const all = [];
    for (const host of this.hosts) all.push(...(await this.engine.listNetworks({ 'podium.host': host })));
    return all;
  }

  /** Stops the agents and removes what their hosts left on the engine. */
  async stop(): Promise<void> {
    for (const a of this.agents) await a.stop();
    for (const c of await this.containers()) await this.engine.removeContainer(c.id).catch(() => undefined);
    for (const n of await this.networks()) await this.engine.forceRemoveNetwork(n.id).catch(() => undefined);
  }
}
