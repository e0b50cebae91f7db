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
   * The share of the host's capacity this round has awarded it: the larger of the CPU and the
   * memory fraction, in [0, ∞) (0 for a dimension the host advertises none of).
   */
  roundShare(host: HostView): number {
    const awarded = this.byHost.get(host.id);
    if (awarded === undefined) return 0;
    const share = (used: number, capacity: number) => (capacity > 0 ? used / capacity : 0);
    return Math.max(share(awarded.cpuMillis, host.capacity.cpuMillis), share(awarded.memoryMib, host.capacity.memoryMib));
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
