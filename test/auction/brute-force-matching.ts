import type { MatchingCell } from '../../server/auction/min-cost-matching';

/**
 * The best matching by trying them all: [rows matched, total cost], most rows first, then least
 * cost. Exponential: for small instances in tests only.
 */
export function bruteForceMatching(rows: number, cols: number, cells: readonly MatchingCell[]): [number, number] {
  const cost = new Map<string, number>();
  for (const c of cells) {
    const key = `${c.row},${c.col}`;
    cost.set(key, Math.min(cost.get(key) ?? Infinity, c.cost));
  }
  let best: [number, number] = [0, 0];
  const usedCols = new Set<number>();
  const walk = (row: number, matched: number, total: number): void => {
    if (row === rows) {
      if (matched > best[0] || (matched === best[0] && total < best[1])) best = [matched, total];
      return;
    }
    walk(row + 1, matched, total); // row left unmatched
    for (let col = 0; col < cols; col++) {
      const c = cost.get(`${row},${col}`);
      if (c === undefined || usedCols.has(col)) continue;
      usedCols.add(col);
      walk(row + 1, matched + 1, total + c);
      usedCols.delete(col);
    }
  };
  walk(0, 0, 0);
  return best;
}
