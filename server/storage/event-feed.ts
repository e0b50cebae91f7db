/**
 * Committed events, in sequence order, to the watchers of this process. An event reaches a
 * watcher only after the transaction that wrote it has committed, and in the order of sequence
 * numbers, which is the order of commits: units of work write their events last, under one lock
 * (storage.ts), so a lower sequence always commits first.
 *
 * Across processes (PostgreSQL): a commit NOTIFYs `podium_events`; every process LISTENs, and on
 * each notification (and once a second, in case one was missed while its listener reconnected)
 * reads the events after the last one it published. SQLite has one process: a commit publishes its
 * own events at once.
 */
import type { EventRecord } from './records';

export const EVENTS_CHANNEL = 'podium_events';

export type EventListener = (e: EventRecord) => void;

export class EventFeed {
  private last = 0;
  private readonly listeners = new Set<EventListener>();
  private pumping: Promise<void> | null = null;
  private again = false;

  constructor(private readonly readAfter: (sequence: number) => Promise<EventRecord[]>) {}

  /** Starts after the events already in the store: watchers replay those from the store. */
  startAt(sequence: number): void {
    this.last = sequence;
  }

  get lastPublished(): number {
    return this.last;
  }

  subscribe(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Publishes events this process just committed, when it is the only writer (SQLite). */
  publishCommitted(events: readonly EventRecord[]): void {
    for (const e of events) this.publish(e);
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
