/**
 * The leading auctioneer's queue of pending lots, kept in memory so that a round reads from the
 * store only the lots it takes, not the whole backlog (at a backlog of 13,000 lots, reading every
 * pending row each round was 6 % of a busy Pod API's time).
 *
 * It is filled once from the store when it is first asked (after this process takes the lead, or
 * after `reset`), and then kept by committed events, which reach every process in sequence order
 * (Storage.feed): `instance.pending` and `instance.requeued` name a lot whose row is read with
 * the next round's; any other event of an instance means it is no longer pending (awarded,
 * running, failed, lost, deleted). The store stays the truth: `take` reads the whole rows of a
 * round's lots and only those still pending, so an entry that is out of date costs a look, never
 * a double award. The store is read whole again every `resyncMs`, for what no event announced
 * (the CLI's writes to a SQLite file reach this process only through the poll).
 */
import type { PendingKey, Storage, InstanceRecord } from './storage';

const ADDS = new Set(['instance.pending', 'instance.requeued']);

export class PendingLots {
  private readonly lots = new Map<string, PendingKey>();
  /** Lots named by events, to be read with the next round. */
  private readonly announced = new Set<string>();
  /** When the store was last read whole; null: never since the last reset. */
  private loadedAt: number | null = null;

  constructor(
    private readonly storage: Storage,
    private readonly now: () => number,
    private readonly resyncMs = 60_000,
  ) {}

  /** Forgets everything: the next `current` reads the store whole (another process may have led). */
  reset(): void {
    this.lots.clear();
    this.announced.clear();
    this.loadedAt = null;
  }

  /** A committed event, from any process. Ignored until the queue has been read once. */
  eventCommitted(e: { type: string; instance?: string }): void {
    if (this.loadedAt === null || !e.instance || !e.type.startsWith('instance.')) return;
    if (ADDS.has(e.type)) this.announced.add(e.instance);
    else this.taken(e.instance);
  }

  /** The lot is no longer pending (this process reserved it). */
  taken(id: string): void {
    this.lots.delete(id);
    this.announced.delete(id);
  }

  /** Every pending lot, oldest first within a service (a requeued lot goes behind the others). */
  async current(): Promise<ReadonlyMap<string, PendingKey>> {
    const at = this.now();
    if (this.loadedAt === null || at - this.loadedAt >= this.resyncMs) {
      // Events that arrive while the store is read are kept in `announced` and read next time.
      this.loadedAt = at;
      this.announced.clear();
      const keys = await this.storage.read((r) => r.instances.listPendingKeys());
      this.lots.clear();
      for (const k of keys) this.lots.set(k.id, k);
    } else if (this.announced.size > 0) {
      const ids = [...this.announced];
      this.announced.clear();
      for (const inst of await this.storage.read((r) => r.instances.pendingOfIds(ids))) {
        this.lots.set(inst.id, { id: inst.id, tenant: inst.tenant, environment: inst.environment, service: inst.service, haGroup: inst.haGroup });
      }
    }
    return this.lots;
  }

  /** The whole rows of `ids` that are still pending, in the order of `ids`; the others leave the
   *  queue. */
  async take(ids: readonly string[]): Promise<InstanceRecord[]> {
    const rows = new Map((await this.storage.read((r) => r.instances.pendingOfIds(ids))).map((r) => [r.id, r]));
    const out: InstanceRecord[] = [];
    for (const id of ids) {
      const row = rows.get(id);
      if (row) out.push(row);
      else this.taken(id);
    }
    return out;
  }
}
