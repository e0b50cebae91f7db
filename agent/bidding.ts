/**
 * The agent's answer to a call for bids, from its own bookkeeping: a price for each lot it can
 * take, a reason for each it cannot. The pricing policy lives here and in price-lot.ts; what the
 * host holds comes in as `holdings` (its instances), so the policy can change without touching
 * how the instances are run.
 *
 * Decline reasons, checked in this order (the server's auction reads them as exclusion reasons):
 * - `no-apparmor`: the kernel has no AppArmor and the agent was not started insecure;
 * - `cpu`, `memory`: the lot does not fit what is free, named by the first dimension that fails;
 * - `ha`: a replica of the lot's HA group is already here;
 * - `image`: the image is not here (a pull starts in the background).
 */
import type { Bid, CallForBids, Decline } from '../gen/podium/v1/agent';
import { AppArmorMode, PlacementPolicy, type Resources } from '../gen/podium/v1/resources';
import { priceLot, roundWeight } from './price-lot';

/** What one instance on this host means for bidding. */
export interface Holding {
  resources: Resources;
  tenant: string;
  haGroup: string;
}

export interface BiddingContext {
  capacity: Resources;
  apparmor: AppArmorMode;
  /** Every instance this host runs or has accepted. */
  holdings: readonly Holding[];
  /** Whether the image is here (may start a pull; never throws). */
  imageReady(ref: string): Promise<boolean>;
}

/** Capacity less what the holdings reserve; negative when over-committed. */
export function freeResources(capacity: Resources, holdings: readonly Holding[]): Resources {
  let cpuMillis = capacity.cpuMillis;
  let memoryMib = capacity.memoryMib;
  for (const h of holdings) {
    cpuMillis -= h.resources.cpuMillis;
    memoryMib -= h.resources.memoryMib;
  }
  return { cpuMillis, memoryMib };
}

/** The dimension in which `need` does not fit `free`, CPU first; undefined when it fits. */
export function shortOf(need: Resources, free: Resources): 'cpu' | 'memory' | undefined {
  if (need.cpuMillis > free.cpuMillis) return 'cpu';
  if (need.memoryMib > free.memoryMib) return 'memory';
  return undefined;
}

/**
 * ONE sealed answer per call: every lot of the call gets a bid or a decline, never both. Each lot
 * is priced against what is free before the call, by the lot's placement policy, with the round
 * weight that tells the server how the price moves with each lot of the round it awards this host
 * first (the server re-checks capacity when it awards, and the agent again when it accepts).
 */
export async function answerCallForBids(call: CallForBids, ctx: BiddingContext): Promise<{ bids: Bid[]; declines: Decline[] }> {
  const bids: Bid[] = [];
  const declines: Decline[] = [];
  const free = freeResources(ctx.capacity, ctx.holdings);
  const ready = new Map<string, boolean>();
  for (const lot of call.lots) {
    const need = lot.resources ?? { cpuMillis: 0, memoryMib: 0 };
    if (ctx.apparmor === AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE) {
      declines.push({ lotId: lot.id, reason: 'no-apparmor' });
      continue;
    }
    const short = shortOf(need, free);
    if (short !== undefined) {
      declines.push({ lotId: lot.id, reason: short });
      continue;
    }
    if (lot.haGroup && ctx.holdings.some((h) => h.haGroup === lot.haGroup)) {
      declines.push({ lotId: lot.id, reason: 'ha' });
      continue;
    }
    if (!ready.has(lot.image)) ready.set(lot.image, await ctx.imageReady(lot.image));
    if (!ready.get(lot.image)) {
      declines.push({ lotId: lot.id, reason: 'image' });
      continue;
    }
    const policy = lot.placement === PlacementPolicy.PLACEMENT_POLICY_BINPACK ? 'binpack' : 'spread';
    bids.push({
      lotId: lot.id,
      price: priceLot({
        freeAfter: { cpuMillis: free.cpuMillis - need.cpuMillis, memoryMib: free.memoryMib - need.memoryMib },
        capacity: ctx.capacity,
        imageCached: true,
        sameGroupCount: lot.haGroup ? ctx.holdings.filter((h) => h.haGroup === lot.haGroup).length : 0,
        sameTenantCount: ctx.holdings.filter((h) => h.tenant === lot.tenant).length,
        policy,
      }),
      // The lots of this call that the server awards this host first move this one's price: the
      // server applies it, as only it knows which (price-lot.ts roundWeight).
      roundWeight: roundWeight(policy),
    });
  }
  return { bids, declines };
}
