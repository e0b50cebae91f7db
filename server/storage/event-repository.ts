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

  /** Inserts events in order and returns them with their sequences. For the unit of work only. */
  async insertAll(events: readonly NewEvent[], now: number): Promise<EventRecord[]> {
    const out: EventRecord[] = [];
    for (const e of events) {
      const rec = { environment: '', service: '', instance: '', host: '', message: '', time: now, ...e };
      const row = await this.sql.get<{ sequence: number }>(
        `INSERT INTO events (time, tenant, type, environment, service, instance, host, message)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING sequence`,
        [rec.time, rec.tenant, rec.type, rec.environment, rec.service, rec.instance, rec.host, rec.message],
      );
      out.push({ ...rec, sequence: Number(row!.sequence) });
    }
    return out;
  }
}
