// A synthetic fleet, lots and agents' answers for the auction benchmark. Seeded: the same seed
// gives the same workload on every machine.
import type { BidView, DeclineView, HostView, LotView } from '../server/auction';
import { priceLot } from '../agent/price-lot';

export interface Workload {
  hosts: HostView[];
  lots: LotView[];
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)];

/**
 * `hostCount` hosts in pods of 50 over three providers, 2 % down, 3 % without AppArmor, each
 * already 0-50 % allocated; `lotCount` lots of which 20 % are HA replicas in groups of 3 (rounded
 * down to whole groups), 10 % pinned to a provider and 5 % to a label.
 */
export function workload(hostCount: number, lotCount: number, random: () => number): Workload {
  const hosts: HostView[] = [];
  for (let i = 0; i < hostCount; i++) {
    const capacity = { cpuMillis: pick(random, [8000, 16000, 32000]), memoryMib: pick(random, [16384, 32768, 65536]) };
    const share = random() * 0.5;
    hosts.push({
      id: `host-${String(i).padStart(5, '0')}`,
      pod: `pod-${Math.floor(i / 50)}`,
      provider: pick(random, ['aws', 'gcp', 'hetzner']),
      labels: { zone: pick(random, ['a', 'b', 'c']), disk: pick(random, ['ssd', 'hdd']) },
      capacity,
      allocated: { cpuMillis: Math.floor(capacity.cpuMillis * share), memoryMib: Math.floor(capacity.memoryMib * share) },
      alive: random() >= 0.02,
      acceptsWork: random() >= 0.03,
      haGroups: new Set(),
    });
  }
  const haLots = Math.floor((lotCount * 0.2) / 3) * 3;
  const lots: LotView[] = [];
  for (let i = 0; i < lotCount; i++) {
    const ha = i < haLots;
    const tenant = `tenant-${Math.floor(random() * 20)}`;
    const r = random();
    lots.push({
      id: `lot-${String(i).padStart(5, '0')}`,
      tenant,
      environment: 'prod',
      service: ha ? `ha-${Math.floor(i / 3)}` : `svc-${i}`,
      haGroup: ha ? `group-${Math.floor(i / 3)}` : '',
      resources: { cpuMillis: pick(random, [100, 250, 500, 1000, 2000]), memoryMib: pick(random, [128, 256, 512, 1024, 2048]) },
      image: pick(random, ['web:1', 'api:3', 'postgres:16', 'redis:7']),
      constraints: r < 0.1 ? { provider: pick(random, ['aws', 'gcp', 'hetzner']) } : r < 0.15 ? { labels: { disk: 'ssd' } } : {},
      excludedHosts: new Set(),
    });
  }
  return { hosts, lots };
}

/**
 * What the called agents answer: each prices every lot of its call with priceLot on its own view
 * (free resources, a cached image half the time), or declines it for capacity when it does not fit.
 */
export function agentAnswers(
  hosts: readonly HostView[],
  lots: readonly LotView[],
  calls: ReadonlyMap<string, readonly string[]>,
  random: () => number,
): { bids: BidView[]; declines: DeclineView[] } {
  const hostById = new Map(hosts.map((h) => [h.id, h]));
  const lotById = new Map(lots.map((l) => [l.id, l]));
  const bids: BidView[] = [];
  const declines: DeclineView[] = [];
  for (const [hostId, lotIds] of calls) {
    const host = hostById.get(hostId)!;
    for (const lotId of lotIds) {
      const lot = lotById.get(lotId)!;
      const freeAfter = {
        cpuMillis: host.capacity.cpuMillis - host.allocated.cpuMillis - lot.resources.cpuMillis,
        memoryMib: host.capacity.memoryMib - host.allocated.memoryMib - lot.resources.memoryMib,
      };
      if (freeAfter.cpuMillis < 0 || freeAfter.memoryMib < 0) {
        declines.push({ hostId, lotId, reason: 'capacity' });
        continue;
      }
      const price = priceLot({
        freeAfter,
        capacity: host.capacity,
        imageCached: random() < 0.5,
        sameGroupCount: 0,
        sameTenantCount: Math.floor(random() * 3),
      });
      bids.push({ hostId, lotId, price });
    }
  }
  return { bids, declines };
}
