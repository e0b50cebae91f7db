// A worker process of simulated agents: each joins through the real Join (its own key and
// certificate, the CA pinned by the token), holds its own gRPC channel with mutual TLS, speaks the
// real AgentService protocol, prices lots from its own simulated capacity (the real agent's
// pricing) and reports RUNNING at once, without Docker. Forked by fleet.ts; talks over IPC.
import { ScriptedAgent } from '../../test/support/scripted-agent';

interface Start {
  address: string;
  token: string;
  count: number;
  capacity: { cpuMillis: number; memoryMib: number };
  /** Agents join this many at a time. */
  joinConcurrency: number;
}

const agents: ScriptedAgent[] = [];
let joinRetries = 0;

/** Joins as a supervised agent would: a Join lost to an overloaded server is tried again later. */
async function joinWithRetries(s: Start): Promise<ScriptedAgent> {
  for (let attempt = 1; ; attempt++) {
    try {
      // Reconnect as the real agent does: on its own after a lost session, at a jittered delay.
      return await ScriptedAgent.join(s.address, s.token, { capacity: s.capacity, reconnectMs: 500 + Math.floor(Math.random() * 2500) });
    } catch (err) {
      if (attempt >= 10) throw err;
      joinRetries++;
      await new Promise((r) => setTimeout(r, 1000 + Math.random() * 2000));
    }
  }
}

async function start(s: Start): Promise<void> {
  let next = 0;
  const joinOne = async (): Promise<void> => {
    while (next < s.count) {
      next++;
      const a = await joinWithRetries(s);
      a.connect();
      agents.push(a);
    }
  };
  await Promise.all(Array.from({ length: s.joinConcurrency }, joinOne));
  await Promise.all(agents.map((a) => a.welcomed(120_000)));
  // What the agents received is not kept: a long bench would hold every call for bids.
  for (const a of agents) a.received.length = 0;
  setInterval(() => {
    for (const a of agents) a.received.length = 0;
  }, 1000).unref();
  process.send!({ ready: agents.map((a) => a.hostId), joinRetries });
}

process.on('message', (m: { start?: Start; sessions?: true; close?: true }) => {
  if (m.start) start(m.start).catch((err: Error) => process.send!({ error: err.stack ?? err.message }));
  if (m.sessions) process.send!({ sessions: agents.map((a) => a.sessions), running: agents.reduce((n, a) => n + a.running.size, 0) });
  if (m.close) {
    for (const a of agents) a.close();
    process.exit(0);
  }
});
