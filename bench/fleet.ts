// bench:fleet — what holding a fleet costs one `podium server` process, with N simulated agents
// (bench/sim) connected: its RSS per connected agent (RSS with the fleet minus RSS before it),
// the CPU its heartbeats take on an idle fleet (10 s), and, after a SIGKILL and a restart on the
// same state, how long until every agent has a session again, how many hosts are down at the end,
// and how many sessions the restarted server deferred (it admits them at --admit-rate, 200/s by
// default, and tells the others when to come back). The baseline beside it: the same process
// with no agent (its idle CPU and RSS).
// Prints one JSON object. Run: npm run bench:fleet -- [--agents 1000]
import { performance } from 'node:perf_hooks';
import { flag, machine, round1, runMain, withServerAndFleet } from './sim/placements';
import type { ServerProcess } from './sim/server-process';
import { poll } from '../test/support/poll';

const AGENTS = flag('agents', 1000);
const IDLE_MS = 10_000;

async function cpuShare(server: ServerProcess): Promise<number> {
  const c0 = server.cpuMs();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, IDLE_MS));
  return (server.cpuMs() - c0) / (performance.now() - t0);
}

async function main(): Promise<void> {
  let idleCpu = 0;
  let rssBefore = 0;
  const t0 = { at: 0 };
  const result = await withServerAndFleet(
    {
      agents: AGENTS,
      before: async (server) => {
        await new Promise((r) => setTimeout(r, 2000)); // settled after start
        idleCpu = await cpuShare(server);
        rssBefore = server.rssKib();
        t0.at = performance.now();
      },
    },
    async (server, fleet) => {
      const joinedSeconds = (performance.now() - t0.at) / 1000;
      // Scraped once a second: a scrape costs the server a few ms per thousand connections.
      await poll('every agent in session', async () => (await server.gauge('podium_agent_sessions')) === AGENTS, 120_000, 1000);
      const heartbeatCpu = await cpuShare(server);
      const rssWith = server.rssKib();

      const restartAt = performance.now();
      await server.killAndRestart();
      const leadingSeconds = (performance.now() - restartAt) / 1000;
      await poll('every agent back in session', async () => (await server.gauge('podium_agent_sessions')) === AGENTS, 600_000, 1000);
      const reconnectSeconds = (performance.now() - restartAt) / 1000;
      const downAtEnd = await server.gauge('podium_hosts', 'state="down"');
      const deferred = await server.gauge('podium_agent_sessions_deferred_total');
      return {
        bench: 'fleet',
        agents: AGENTS,
        joinSeconds: round1(joinedSeconds),
        joinRetries: fleet.joinRetries,
        rssPerAgentKib: round1((rssWith - rssBefore) / AGENTS),
        rssKib: { without: rssBefore, with: rssWith },
        heartbeatCpuShareOfCore: Math.round(heartbeatCpu * 1000) / 1000,
        reconnectAfterKillSeconds: round1(reconnectSeconds),
        restartedAndLeadingSeconds: round1(leadingSeconds),
        hostsDownAtEnd: downAtEnd,
        sessionsDeferred: deferred,
        baseline: { agents: 0, idleCpuShareOfCore: Math.round(idleCpu * 1000) / 1000, rssKib: rssBefore },
        machine: machine(),
      };
    },
  );
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

runMain(main);
