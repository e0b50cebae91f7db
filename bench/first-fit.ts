// The baseline beside the auction: what a naive scheduler would do with the same fleet and lots.
import type { HostView, LotView } from '../server/auction';

/**
 * First fit: each lot in order goes on the first host, in fleet order, that is alive, accepts
 * work, meets the constraints, was not refused, has room (counting what this pass placed) and has
 * no replica of the lot's HA group. No bids, no sampling, no matching, no explanations.
 * Returns the number of lots placed.
 */
export function firstFit(hosts: readonly HostView[], lots: readonly LotView[]): number {
  const usedCpu = hosts.map((h) => h.allocated.cpuMillis);
  const usedMem = hosts.map((h) => h.allocated.memoryMib);
  const groups = hosts.map((h) => new Set(h.haGroups));
  let placed = 0;
  for (const lot of lots) {
    const c = lot.constraints;
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i];
      if (!h.alive || !h.acceptsWork || lot.excludedHosts.has(h.id)) continue;
      if ((c.pod && h.pod !== c.pod) || (c.provider && h.provider !== c.provider)) continue;
      if (c.labels && Object.entries(c.labels).some(([k, v]) => h.labels[k] !== v)) continue;
      if (usedCpu[i] + lot.resources.cpuMillis > h.capacity.cpuMillis) continue;
      if (usedMem[i] + lot.resources.memoryMib > h.capacity.memoryMib) continue;
      if (lot.haGroup !== '' && groups[i].has(lot.haGroup)) continue;
      usedCpu[i] += lot.resources.cpuMillis;
      usedMem[i] += lot.resources.memoryMib;
      if (lot.haGroup !== '') groups[i].add(lot.haGroup);
      placed++;
      break;
    }
  }
  return placed;
}
