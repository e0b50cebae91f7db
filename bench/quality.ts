// bench:quality — how well the auction places, on a seeded mixed trace of lot sizes (small to
// a quarter of a host), with the real auction core (planRound + determineWinners, 16 candidates
// sampled per lot as the server does) and agents that price as the real agent does
// (agent/price-lot.ts), rounds of 1024 lots until everything is placed:
//   - binpack: hosts used against the lower bound max(⌈ΣCPU / host CPU⌉, ⌈Σmemory / host memory⌉);
//   - spread: the busiest host's load against the idlest's (load = the larger of its CPU and
//     memory shares);
//   - never over-committed (checked after every round).
// Baseline beside it: first-fit on the same trace (hosts used; its busiest and idlest loads).
// Prints one JSON object per policy. Run: npm run bench:quality -- [--hosts 200] [--fill 0.7]
import { determineWinners, planRound, seededRandom, type BidView, type DeclineView, type HostView, type LotView, type PlacementPolicy } from '../server/auction';
import { priceLot, roundWeight } from '../agent/price-lot';
import { flag } from './sim/placements';

const HOSTS = flag('hosts', 200);
const FILL = flag('fill', 0.7); // the trace asks for this share of the fleet (the larger of CPU and memory)
const CAPACITY = { cpuMillis: 16_000, memoryMib: 32_768 };
const SIZES = [
  { cpuMillis: 100, memoryMib: 128 },
  { cpuMillis: 250, memoryMib: 512 },
  { cpuMillis: 500, memoryMib: 1024 },
  { cpuMillis: 1000, memoryMib: 1024 },
  { cpuMillis: 2000, memoryMib: 4096 },
  { cpuMillis: 4000, memoryMib: 4096 },
  { cpuMillis: 1000, memoryMib: 8192 },
];

function trace(random: () => number, policy: PlacementPolicy): LotView[] {
  const lots: LotView[] = [];
  let cpu = 0;
  let mem = 0;
  while (Math.max(cpu / (HOSTS * CAPACITY.cpuMillis), mem / (HOSTS * CAPACITY.memoryMib)) < FILL) {
    const r = SIZES[Math.floor(random() * SIZES.length)]!;
    cpu += r.cpuMillis;
    mem += r.memoryMib;
    const i = lots.length;
    lots.push({ id: `l${i}`, tenant: 't', environment: 'e', service: `s${i % 50}`, haGroup: '', resources: r, image: 'img', constraints: {}, excludedHosts: new Set(), policy });
  }
  return lots;
}

function fleet(): HostView[] {
  return Array.from({ length: HOSTS }, (_, i) => ({
    id: `h${String(i).padStart(4, '0')}`, pod: 'p', provider: 'local', labels: {}, capacity: CAPACITY,
    allocated: { cpuMillis: 0, memoryMib: 0 }, alive: true, acceptsWork: true, haGroups: new Set<string>(),
  }));
}

const load = (h: HostView) => Math.max(h.allocated.cpuMillis / h.capacity.cpuMillis, h.allocated.memoryMib / h.capacity.memoryMib);

function assertNotOvercommitted(hosts: readonly HostView[]): void {
  for (const h of hosts) {
    if (h.allocated.cpuMillis > h.capacity.cpuMillis || h.allocated.memoryMib > h.capacity.memoryMib) throw new Error(`${h.id} over-committed`);
  }
}

function summary(hosts: readonly HostView[], placed: number, lots: number) {
  const used = hosts.filter((h) => h.allocated.cpuMillis > 0 || h.allocated.memoryMib > 0);
  const loads = hosts.map(load);
  return { placed, of: lots, hostsUsed: used.length, busiestLoad: Math.round(Math.max(...loads) * 1000) / 1000, idlestLoad: Math.round(Math.min(...loads) * 1000) / 1000 };
}

function auction(lots: readonly LotView[], policy: PlacementPolicy) {
  const hosts = fleet();
  const random = seededRandom(11);
  let pending = [...lots];
  let rounds = 0;
  while (pending.length > 0 && rounds < 200) {
    rounds++;
    const batch = pending.slice(0, 1024);
    const plan = planRound(hosts, batch, { maxCandidatesPerLot: 16, random });
    const byId = new Map(hosts.map((h) => [h.id, h]));
    const lotById = new Map(batch.map((l) => [l.id, l]));
    const bids: BidView[] = [];
    const declines: DeclineView[] = [];
    for (const [hostId, lotIds] of plan.calls) {
      const h = byId.get(hostId)!;
      for (const lotId of lotIds) {
        const lot = lotById.get(lotId)!;
        const freeAfter = { cpuMillis: h.capacity.cpuMillis - h.allocated.cpuMillis - lot.resources.cpuMillis, memoryMib: h.capacity.memoryMib - h.allocated.memoryMib - lot.resources.memoryMib };
        if (freeAfter.cpuMillis < 0 || freeAfter.memoryMib < 0) {
          declines.push({ hostId, lotId, reason: 'capacity' });
          continue;
        }
        bids.push({ hostId, lotId, price: priceLot({ freeAfter, capacity: h.capacity, imageCached: true, sameGroupCount: 0, sameTenantCount: 0, policy }), roundWeight: roundWeight(policy) });
      }
    }
    const result = determineWinners(hosts, batch, bids, declines);
    const awarded = new Set<string>();
    for (const a of result.awards) {
      const h = byId.get(a.hostId)!;
      const lot = lotById.get(a.lotId)!;
      h.allocated = { cpuMillis: h.allocated.cpuMillis + lot.resources.cpuMillis, memoryMib: h.allocated.memoryMib + lot.resources.memoryMib };
      awarded.add(a.lotId);
    }
    assertNotOvercommitted(hosts);
    if (awarded.size === 0) break; // nothing more fits
    pending = pending.filter((l) => !awarded.has(l.id));
  }
  return { rounds, ...summary(hosts, lots.length - pending.length, lots.length), hosts };
}

function firstFit(lots: readonly LotView[]) {
  const hosts = fleet();
  let placed = 0;
  for (const lot of lots) {
    const h = hosts.find((x) => x.allocated.cpuMillis + lot.resources.cpuMillis <= x.capacity.cpuMillis && x.allocated.memoryMib + lot.resources.memoryMib <= x.capacity.memoryMib);
    if (!h) continue;
    h.allocated = { cpuMillis: h.allocated.cpuMillis + lot.resources.cpuMillis, memoryMib: h.allocated.memoryMib + lot.resources.memoryMib };
    placed++;
  }
  assertNotOvercommitted(hosts);
  return summary(hosts, placed, lots.length);
}

for (const policy of ['binpack', 'spread'] as const) {
  const lots = trace(seededRandom(2026), policy);
  const cpu = lots.reduce((s, l) => s + l.resources.cpuMillis, 0);
  const mem = lots.reduce((s, l) => s + l.resources.memoryMib, 0);
  const lowerBound = Math.max(Math.ceil(cpu / CAPACITY.cpuMillis), Math.ceil(mem / CAPACITY.memoryMib));
  const { hosts: _hosts, ...a } = auction(lots, policy);
  const base = firstFit(lots);
  process.stdout.write(
    `${JSON.stringify({
      bench: 'quality',
      policy,
      hosts: HOSTS,
      lots: lots.length,
      lowerBoundHosts: lowerBound,
      auction: a,
      ...(policy === 'binpack'
        ? { hostsOverLowerBound: Math.round((a.hostsUsed / lowerBound - 1) * 1000) / 1000 }
        : { busiestOverIdlest: a.idlestLoad > 0 ? Math.round((a.busiestLoad / a.idlestLoad) * 1000) / 1000 : null }),
      overCommitted: false,
      baseline: { placer: 'first-fit', ...base },
    })}\n`,
  );
}
