/** A pending lot as the queue sees it. */
export interface QueuedLot {
  id: string;
  tenant: string;
  /** The lot's service, unique in the fleet (e.g. "tenant/environment/name"). */
  service: string;
  /** '' when the service is not HA. */
  haGroup: string;
}

/** Who was served last, so that the next batch starts after them. */
export interface FairCursor {
  lastTenant: string | null;
  /** tenant -> the service of that tenant served last. */
  lastService: ReadonlyMap<string, string>;
}

export const EMPTY_CURSOR: FairCursor = { lastTenant: null, lastService: new Map() };

/**
 * Takes up to `max` lots for a round, fairly: tenants take turns, and within a tenant its services
 * take turns, so that no tenant or service can delay another's placement however many lots it has
 * pending (issue 5, finding 1: rounds took the 256 oldest lots of the fleet). A turn gives one lot
 * of a service, or every remaining lot of an HA service (its replicas are matched together, and a
 * service has at most a few hundred). Within a service, lots keep the order of `queued` (oldest
 * first). Tenants and services rotate: a batch starts with the tenant after the one served last in
 * the previous batch, and within a tenant with the service after its last one, so that when there
 * are more tenants than a batch can hold, every tenant comes first in turn.
 *
 * Pure: the result depends only on the arguments. Never returns a lot twice or one not in `queued`.
 */
export function takeFairBatch(queued: readonly QueuedLot[], max: number, cursor: FairCursor = EMPTY_CURSOR): { batch: QueuedLot[]; cursor: FairCursor } {
  const tenants = new Map<string, Map<string, QueuedLot[]>>();
  for (const lot of queued) {
    let services = tenants.get(lot.tenant);
    if (!services) tenants.set(lot.tenant, (services = new Map()));
    let lots = services.get(lot.service);
    if (!lots) services.set(lot.service, (lots = []));
    lots.push(lot);
  }
  const tenantOrder = rotateAfter([...tenants.keys()].sort(byCodePoint), cursor.lastTenant);
  const turns = tenantOrder.map((tenant) => {
    const services = tenants.get(tenant)!;
    const order = rotateAfter([...services.keys()].sort(byCodePoint), cursor.lastService.get(tenant) ?? null);
    return { tenant, order, next: 0, services, taken: new Map<string, number>() };
  });

  const batch: QueuedLot[] = [];
  let lastTenant = cursor.lastTenant;
  const lastService = new Map(cursor.lastService);
  let progressed = true;
  while (batch.length < max && progressed) {
    progressed = false;
    for (const t of turns) {
      if (batch.length >= max) break;
      // The tenant's next service that still has lots.
      for (let tries = 0; tries < t.order.length; tries++) {
        const service = t.order[t.next % t.order.length]!;
        t.next++;
        const lots = t.services.get(service)!;
        const from = t.taken.get(service) ?? 0;
        if (from >= lots.length) continue;
        const take = lots[from]!.haGroup !== '' ? Math.min(lots.length - from, max - batch.length) : 1;
        batch.push(...lots.slice(from, from + take));
        t.taken.set(service, from + take);
        lastTenant = t.tenant;
        lastService.set(t.tenant, service);
        progressed = true;
        break;
      }
    }
  }
  return { batch, cursor: { lastTenant, lastService } };
}

/** `items` starting with the first one after `last` (in their order), wrapping around. */
function rotateAfter(items: string[], last: string | null): string[] {
  if (last === null) return items;
  const at = items.findIndex((x) => x > last);
  return at <= 0 ? items : [...items.slice(at), ...items.slice(0, at)];
}

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
