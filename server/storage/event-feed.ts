/**
 * Committed events, in sequence order, to the watchers of this process. An event reaches a
 * watcher only after the transaction that wrote it has committed, and in the order of sequence
 * numbers, which is the order of commits: units of work write their events last, under one lock
 * (storage.ts), so a lower sequence always commits first.
 *
 * A process publishes its own commits at once when nothing came between; otherwise, and for other
 * processes' commits, it reads the store: on PostgreSQL every commit NOTIFYs `podium_events` and
 * every process LISTENs; on both dialects a poll once a second reads whatever came meanwhile (a
 * notification lost while the listener reconnected, the CLI's writes to a SQLite file).
 */
import type { EventRecord } from './records';

export const EVENTS_CHANNEL = 'podium_events';

export type EventListener = (e: EventRecord) => void;

export class EventFeed {
  private last = 0;
  /** False until startAt: a process that does not follow the log publishes nothing. */
  private following = false;
  private readonly listeners = new Set<EventListener>();
  private pumping: Promise<void> | null = null;
  private again = false;

  constructor(private readonly readAfter: (sequence: number) => Promise<EventRecord[]>) {}

  /** Starts after the events already in the store: watchers replay those from the store. */
  startAt(sequence: number): void {
    this.last = sequence;
    this.following = true;
  }

  get lastPublished(): number {
    return this.last;
  }

  subscribe(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Events a unit of work of this process just committed, in sequence order. When they follow the
   * last published event without a gap they are published at once; otherwise another process (a
   * standby, the CLI) committed in between, and the feed reads from the store so that the order
   * holds and nothing is skipped.
   */
  committed(events: readonly EventRecord[]): void {
    if (events.length === 0 || !this.following) return;
    if (!this.pumping && events[0]!.sequence === this.last + 1) {
      for (const e of events) this.publish(e);
      return;
    }
    void this.pump().catch(() => undefined);
  }

  /** Reads and publishes whatever was committed after the last published event. Never concurrent. */
  pump(): Promise<void> {
    if (this.pumping) {
      this.again = true;
      return this.pumping;
    }
    this.pumping = (async () => {
      try {
        do {
          this.again = false;
          for (;;) {
            const page = await this.readAfter(this.last);
            for (const e of page) this.publish(e);
            if (page.length < 1000) break;
          }
        } while (this.again);
      } finally {
        this.pumping = null;
      }
    })();
    return this.pumping;
  }

  private publish(e: EventRecord): void {
    if (e.sequence <= this.last) return;
    this.last = e.sequence;
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch {
        // A watcher's failure is the watcher's: the feed goes on for the others.
      }
    }
  }
}
