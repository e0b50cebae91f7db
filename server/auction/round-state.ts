import type { HostView, LotView, Resources } from './types';

interface AwardedOnHost {
  cpuMillis: number;
  memoryMib: number;
  haGroups: Set<string>;
  count: number;
}

/**
 * What a round has awarded so far, on top of the hosts' views.
 *
 * The views are never mutated (the caller owns them); the state only records this round's awards,
 * and only for the hosts that received one, so that creating it costs nothing for a large fleet.
 * Awards only ever add: a rule that fails for a host stays failed for the rest of the round.
 */
export class RoundState {
  private readonly byHost = new Map<string, AwardedOnHost>();

  /** Resources in use on the host: its allocation plus this round's awards. */
  used(host: HostView): Resources {
    const awarded = this.byHost.get(host.id);
    if (awarded === undefined) return host.allocated;
    return {
      cpuMillis: host.allocated.cpuMillis + awarded.cpuMillis,
      memoryMib: host.allocated.memoryMib + awarded.memoryMib,
    };
  }

  /** True when the host holds a replica of the HA group, from before the round or from this round. */
  holdsGroup(host: HostView, haGroup: string): boolean {
    if (host.haGroups.has(haGroup)) return true;
    return this.byHost.get(host.id)?.haGroups.has(haGroup) ?? false;
  }

  /** Lots awarded to the host in this round so far. */
  awardCount(host: HostView): number {
    return this.byHost.get(host.id)?.count ?? 0;
  }

  /**
   * How far this round's earlier awards move the load a bid for `lot` measured: the host's load
   * (the larger of its CPU and memory fractions) with the lot on top of its allocation and this
   * round's awards, minus the same without the round's awards. 0 when the round gave the host
   * nothing; the awarded share itself when the lot and the awards load the same dimension. A
   * dimension the host advertises none of counts as 0.
   */
  roundShift(host: HostView, lot: LotView): number {
    const awarded = this.byHost.get(host.id);
    if (awarded === undefined) return 0;
    const { cpuMillis: cpu, memoryMib: mem } = host.capacity;
    const share = (used: number, capacity: number) => (capacity > 0 ? used / capacity : 0);
    const load = (extraCpu: number, extraMem: number) =>
      Math.max(
        share(host.allocated.cpuMillis + lot.resources.cpuMillis + extraCpu, cpu),
        share(host.allocated.memoryMib + lot.resources.memoryMib + extraMem, mem),
      );
    return load(awarded.cpuMillis, awarded.memoryMib) - load(0, 0);
  }

  /** The HA groups this round has placed on each host it awarded a replica to. */
  *awardedGroups(): Iterable<[string, ReadonlySet<string>]> {
    for (const [hostId, awarded] of this.byHost) if (awarded.haGroups.size > 0) yield [hostId, awarded.haGroups];
  }

  /** Records an award. The caller has checked every placement rule first. */
  award(host: HostView, lot: LotView): void {
    let awarded = this.byHost.get(host.id);
    if (awarded === undefined) {
      awarded = { cpuMillis: 0, memoryMib: 0, haGroups: new Set(), count: 0 };
      this.byHost.set(host.id, awarded);
    }
    awarded.cpuMillis += lot.resources.cpuMillis;
    awarded.memoryMib += lot.resources.memoryMib;
    awarded.count += 1;
    if (lot.haGroup !== '') awarded.haGroups.add(lot.haGroup);
  }
}
