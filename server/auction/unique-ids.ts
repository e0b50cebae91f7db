/**
 * Throws RangeError when two items share an id. Hosts and lots are keyed by id throughout a round
 * (calls, bids, awards), so a duplicate is a bug in the caller's bookkeeping, not a case to guess at.
 */
export function assertUniqueIds(items: readonly { id: string }[], what: 'host' | 'lot'): void {
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item.id)) throw new RangeError(`duplicate ${what} id ${JSON.stringify(item.id)}`);
    seen.add(item.id);
  }
}
