/**
 * How the agent learns that its containers exited or went away: the engine's event stream first,
 * a periodic full check as the fallback.
 *
 * - **Events.** GET /events filtered to containers labelled with this host, actions `die`, `oom`
 *   and `destroy`; each becomes an observation stamped when it was received. When the stream ends
 *   or breaks (an engine restart, a cut socket) it is opened again after a jittered backoff, and a
 *   full check follows at once, since events of the gap are lost.
 * - **Full check**, every `checkIntervalMs`: the host's containers are listed; an instance's
 *   container missing from the list is `gone`, one not running is `stopped` (inspected for its
 *   exit code). Every observation carries the stamp taken when the list was asked for, so a list
 *   asked for before an award's start is ignored by that instance, never applied to it.
 *
 * The watch decides nothing: it hands observations to `observe`, and each instance judges them.
 */
import type { Logger } from 'pino';
import type { ContainerEngine } from './container-engine';
import type { ObservationClock, Observation } from './observation';
import { LABEL_HOST, LABEL_INSTANCE, type EngineEvent, type EventSubscription } from './runtime';

export interface ContainerWatchOptions {
  hostId: string;
  checkIntervalMs: number;
  /** Bounds of the wait before the event stream is opened again. */
  resubscribeMinMs: number;
  resubscribeMaxMs: number;
}

export interface WatchTarget {
  instanceId: string;
  containerId: string;
}

export class ContainerWatch {
  private timer: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private subscription: EventSubscription | null = null;
  private stopped = true;
  private backoff: number;
  private checking: Promise<void> | null = null;
  /** Event subscriptions opened so far (the first one included). */
  subscriptions = 0;

  constructor(
    private readonly engine: ContainerEngine,
    private readonly opts: ContainerWatchOptions,
    private readonly clock: ObservationClock,
    private readonly targets: () => Iterable<WatchTarget>,
    private readonly observe: (o: Observation) => void,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    this.backoff = opts.resubscribeMinMs;
  }

  /** Opens the event stream, runs a full check, and keeps checking every checkIntervalMs. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.subscribe();
    await this.check();
    this.timer = setInterval(() => void this.check(), this.opts.checkIntervalMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retry) clearTimeout(this.retry);
    this.timer = this.retry = null;
    this.subscription?.close();
    this.subscription = null;
  }

  /** Whether the event stream is open now. */
  get subscribed(): boolean {
    return this.subscription !== null;
  }

  /** One full check; a check already running is joined rather than doubled. Never throws. */
  check(): Promise<void> {
    if (this.checking) return this.checking;
    this.checking = this.checkOnce()
      .catch((err: Error) => this.log.warn({ err: err.message }, 'container check failed'))
      .finally(() => (this.checking = null));
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    const takenAt = this.clock.next();
    const listed = new Map((await this.engine.listContainers({ [LABEL_HOST]: this.opts.hostId })).map((c) => [c.id, c]));
    // The instances are read when the answer is in, and the list may be older than their latest
    // transitions: every observation below carries the list's stamp, and each instance ignores
    // what was taken before its latest transition.
    for (const { instanceId, containerId } of [...this.targets()]) {
      if (containerId === '') continue;
      const c = listed.get(containerId);
      if (c === undefined) {
        this.observe({ kind: 'gone', instanceId, containerId, takenAt, source: 'check' });
      } else if (!c.running) {
        // The list says it is not running; the exit code is only in the inspect document.
        const state = (await this.engine.inspectContainer(containerId).catch(() => undefined))?.State;
        const exitCode = Number.isInteger(state?.ExitCode) ? Number(state.ExitCode) : -1;
        this.observe({ kind: 'stopped', instanceId, containerId, takenAt, source: 'check', state: c.state, exitCode, oomKilled: state?.OOMKilled === true });
      }
    }
  }

  private async subscribe(): Promise<void> {
    if (this.stopped) return;
    try {
      const sub = await this.engine.watchEvents(
        { type: ['container'], label: [`${LABEL_HOST}=${this.opts.hostId}`], event: ['die', 'oom', 'destroy'] },
        { onEvent: (e) => this.onEvent(e), onEnd: (err) => this.onEnd(sub, err) },
      );
      if (this.stopped) return sub.close();
      this.subscription = sub;
      this.subscriptions += 1;
      this.backoff = this.opts.resubscribeMinMs;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not open the engine event stream');
      this.scheduleResubscribe();
    }
  }

  private onEnd(sub: EventSubscription, err?: Error): void {
    if (this.subscription !== sub && this.subscription !== null) return;
    this.subscription = null;
    if (this.stopped) return;
    this.log.warn({ err: err?.message }, 'engine event stream ended; opening it again');
    this.scheduleResubscribe();
  }

  private scheduleResubscribe(): void {
    if (this.stopped || this.retry) return;
    const wait = Math.round(this.opts.resubscribeMinMs + this.random() * (this.backoff - this.opts.resubscribeMinMs));
    this.backoff = Math.min(this.opts.resubscribeMaxMs, this.backoff * 2);
    this.retry = setTimeout(() => {
      this.retry = null;
      // Whatever happened while the stream was closed is found by the check that follows.
      void this.subscribe().then(() => (this.subscribed ? this.check() : undefined));
    }, wait);
  }

  private onEvent(e: EngineEvent): void {
    const instanceId = e.attributes[LABEL_INSTANCE];
    if (e.type !== 'container' || !instanceId) return;
    const base = { instanceId, containerId: e.id, takenAt: this.clock.next(), source: 'event' as const };
    if (e.action === 'die') {
      const code = Number(e.attributes.exitCode);
      this.observe({ ...base, kind: 'stopped', state: 'exited', exitCode: Number.isInteger(code) ? code : -1, oomKilled: false });
    } else if (e.action === 'oom') {
      this.observe({ ...base, kind: 'oom' });
    } else if (e.action === 'destroy') {
      this.observe({ ...base, kind: 'gone' });
    }
  }
}
