/**
 * Prometheus metrics of one agent, in a registry of its own: what it answered to calls for bids
 * and awards, and what it holds now (read from the agent at scrape time).
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

export class AgentMetrics {
  readonly registry = new Registry();
  /** One per lot in a call for bids: "bid", or the reason it declined. */
  readonly answers: Counter<'answer'>;
  readonly awards: Counter<'accepted'>;
  /** Observations of the engine that moved an instance, by where they came from. */
  readonly containerChanges: Counter<'source' | 'change'>;

  constructor(view: { connected: () => boolean; containers: () => number }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.answers = new Counter({
      name: 'podium_agent_lot_answers_total',
      help: 'Lots this agent was called to bid for, by answer: bid, or the reason it declined.',
      labelNames: ['answer'],
      registers,
    });
    this.awards = new Counter({
      name: 'podium_agent_awards_total',
      help: 'Awards received, by whether the agent accepted them.',
      labelNames: ['accepted'],
      registers,
    });
    this.containerChanges = new Counter({
      name: 'podium_agent_container_changes_total',
      help: 'Containers seen stopped or gone that moved their instance, by source (event stream or full check) and change.',
      labelNames: ['source', 'change'],
      registers,
    });
    new Gauge({
      name: 'podium_agent_connected',
      help: '1 while the session with the Pod API is open.',
      registers,
      collect() {
        this.set(view.connected() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'podium_agent_containers',
      help: 'Containers this agent runs or has accepted.',
      registers,
      collect() {
        this.set(view.containers());
      },
    });
  }
}
