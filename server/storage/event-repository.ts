import type { EventRecord, NewEvent } from './records';
import type { Sql } from './sql';

const COLUMNS = 'sequence, time, tenant, type, environment, service, instance, host, message';

/**
 * The append-only event log. Appends happen only through a unit of work (it writes them last,
 * in commit order); reads are for replays and for the feed that follows commits.
 */
export class EventRepository {
  constructor(private readonly sql: Sql) {}

  /** Events after `afterSequence`, oldest first; `tenant` null means every tenant's (operators). */
  async list(tenant: string | null, environment: string, afterSequence: number, limit = 1000): Promise<EventRecord[]> {
    const rows = await this.sql.all<EventRecord>(
      `SELECT ${COLUMNS} FROM events WHERE sequence > $1 AND ($2 = '*' OR tenant = $2)
         AND ($3 = '' OR environment = $3) ORDER BY sequence LIMIT $4`,
      [afterSequence, tenant ?? '*', environment, limit],
    );
    return rows.map((r) => ({ ...r, sequence: Number(r.sequence), time: Number(r.time) }));
  }

  async maxSequence(): Promise<number> {
    const r = await this.sql.get<{ s: number | null }>(`SELECT max(sequence) AS s FROM events`);
    return Number(r?.s ?? 0);
  }

  /**
   * Inserts events in order and returns them with their sequences. For the unit of work only.
   * Many rows per statement (a round's awards are a thousand events): chunks of powers of two up
   * to 128, so that any count is a few statements of at most eight shapes, each prepared once.
   * Rows get their sequences in the order of the VALUES list, so the returned sequences, sorted,
   * are the events' in order whatever order RETURNING gives them in.
   */
  async insertAll(events: readonly NewEvent[], now: number): Promise<EventRecord[]> {
    const out: EventRecord[] = [];
    let at = 0;
    while (at < events.length) {
      let size = 128;
      while (size > events.length - at) size /= 2;
      const chunk = events.slice(at, at + size).map((e) => ({ environment: '', service: '', instance: '', host: '', message: '', time: now, ...e }));
      at += size;
      const rows = chunk.map((_, k) => `(${Array.from({ length: 8 }, (_, c) => `$${k * 8 + c + 1}`).join(', ')})`).join(', ');
      const params = chunk.flatMap((r) => [r.time, r.tenant, r.type, r.environment, r.service, r.instance, r.host, r.message]);
      const sequences = (
        await this.sql.all<{ sequence: number }>(
          `INSERT INTO events (time, tenant, type, environment, service, instance, host, message) VALUES ${rows} RETURNING sequence`,
          params,
        )
      )
        .map((r) => Number(r.sequence))
        .sort((a, b) => a - b);
      if (sequences.length !== chunk.length) throw new Error(`inserted ${sequences.length} of ${chunk.length} events`);
      chunk.forEach((r, k) => out.push({ ...r, sequence: sequences[k]! }));
    }
    return out;
  }
}
