/**
 * Prometheus metrics of the Pod API, in a registry of its own. What the store already knows (hosts
 * by state, instances by state) is read at scrape time rather than kept in step by hand, so it
 * cannot drift; what happens (rounds, awards, refusals) is counted as it happens.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Storage } from './storage';

export class ServerMetrics {
  readonly registry = new Registry();
  readonly rounds: Histogram<never>;
  readonly lots: Counter<'outcome'>;
  readonly awardReplies: Counter<'accepted'>;
  readonly refusedHandshakes: Counter<'role'>;

  constructor(
    storage: Storage,
    connectedHosts: () => number,
    leaderEpoch: () => number | null = () => null,
    sessionsDeferred: () => number = () => 0,
    heartbeats: () => { heard: number; intervalMs: number } = () => ({ heard: 0, intervalMs: 0 }),
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.rounds = new Histogram({
      name: 'podium_auction_round_duration_seconds',
      help: 'Auction rounds, from the first call for bids to the awards being sent.',
      // A round waits for bids: its time is mostly the agents' answer (or the bid deadline).
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.lots = new Counter({
      name: 'podium_auction_lots_total',
      help: 'Lots judged in a round, by outcome (awarded, pending).',
      labelNames: ['outcome'],
      registers,
    });
    this.awardReplies = new Counter({
      name: 'podium_auction_award_replies_total',
      help: 'Answers to awards: accepted, refused or timed out (accepted="false").',
      labelNames: ['accepted'],
      registers,
    });
    this.refusedHandshakes = new Counter({
      name: 'podium_tls_refused_revoked_total',
      help: 'Connections refused at the handshake because the client certificate is revoked, by its role.',
      labelNames: ['role'],
      registers,
    });
    new Gauge({
      name: 'podium_hosts',
      help: 'Hosts by state (up, down).',
      labelNames: ['state'],
      registers,
      async collect() {
        const counts = await storage.read((r) => r.hosts.countByState());
        for (const state of ['up', 'down'] as const) this.set({ state }, counts[state]);
      },
    });
    new Gauge({
      name: 'podium_leader',
      help: '1 while this Pod API process leads (runs auctions, holds agent sessions), 0 while it stands by.',
      registers,
      collect() {
        this.set(leaderEpoch() === null ? 0 : 1);
      },
    });
    new Gauge({
      name: 'podium_leader_epoch',
      help: 'The lease epoch this process leads at (0 while it stands by).',
      registers,
      collect() {
        this.set(leaderEpoch() ?? 0);
      },
    });
    new Counter({
      name: 'podium_agent_sessions_deferred_total',
      help: 'Agent sessions refused by admission (too many hosts connecting at once) and told when to come back.',
      registers,
      collect() {
        this.reset();
        this.inc(sessionsDeferred());
      },
    });
    new Counter({
      name: 'podium_agent_heartbeats_total',
      help: 'Heartbeats heard from agents (at most --max-heartbeats a second).',
      registers,
      collect() {
        this.reset();
        this.inc(heartbeats().heard);
      },
    });
    new Gauge({
      name: 'podium_heartbeat_interval_seconds',
      help: 'The heartbeat interval agents are told, scaled to the fleet.',
      registers,
      collect() {
        this.set(heartbeats().intervalMs / 1000);
      },
    });
    new Gauge({
      name: 'podium_agent_sessions',
      help: 'Agents with an open session.',
      registers,
      collect() {
        this.set(connectedHosts());
      },
    });
    new Gauge({
      name: 'podium_instances',
      help: 'Instances by state.',
      labelNames: ['state'],
      registers,
      async collect() {
        const counts = await storage.read((r) => r.instances.countByState());
        this.reset();
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
  }
}
