/** A row may be assigned to a column at this cost. Cells not listed are infeasible. */
export interface MatchingCell {
  row: number;
  col: number;
  cost: number;
}

/**
 * Min-cost bipartite matching of `rows` to `cols` over the listed cells: the largest number of
 * rows matched, then, among such matchings, the least total cost. Each column takes at most one
 * row. Returns, for each row, its column or -1.
 *
 * Method: the Hungarian algorithm (shortest augmenting paths with row and column potentials,
 * O(rows^2 * (cols + rows))) on a rectangular matrix whose infeasible cells are +Infinity,
 * widened by one "unassigned" column per row. That dummy column costs more than any set of real
 * cells can (costs are first rescaled into [0, 1], so n + 1 is enough), which turns "as many rows
 * as possible, then cheapest" into one plain minimisation that always has a complete solution.
 * The rescaling (divide by the largest magnitude, then shift) keeps absurd but finite prices such
 * as 1e308 from overflowing; it does not change which matching is cheapest.
 *
 * Contract: 0 <= row < rows, 0 <= col < cols and finite costs; other cells are ignored. For a
 * cell listed twice the lower cost counts. Deterministic: same input, same output.
 */
export function minCostMatching(rows: number, cols: number, cells: readonly MatchingCell[]): number[] {
  const assignment = new Array<number>(rows).fill(-1);
  const valid = cells.filter(
    (c) =>
      Number.isInteger(c.row) && c.row >= 0 && c.row < rows &&
      Number.isInteger(c.col) && c.col >= 0 && c.col < cols &&
      Number.isFinite(c.cost),
  );
  if (rows === 0 || valid.length === 0) return assignment;

  const n = rows;
  const width = cols + n; // real columns, then one dummy "unassigned" column per row
  const cost = new Float64Array(n * width).fill(Infinity);
  const scaled = rescale(valid.map((c) => c.cost));
  valid.forEach((c, k) => {
    const at = c.row * width + c.col;
    if (scaled[k] < cost[at]) cost[at] = scaled[k];
  });
  const unassigned = n + 1; // > any total of at most n real cells, each in [0, 1]
  for (let r = 0; r < n; r++) cost.fill(unassigned, r * width + cols, (r + 1) * width);

  const rowOfCol = hungarian(n, width, cost);
  for (let col = 0; col < cols; col++) {
    const row = rowOfCol[col];
    if (row >= 0 && Number.isFinite(cost[row * width + col])) assignment[row] = col;
  }
  return assignment;
}

/** Maps finite costs into [0, 1], preserving order and ratios of differences. */
function rescale(costs: readonly number[]): number[] {
  let magnitude = 0;
  for (const c of costs) magnitude = Math.max(magnitude, Math.abs(c));
  if (magnitude === 0) return costs.map(() => 0);
  const unit = costs.map((c) => c / magnitude); // in [-1, 1]
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of unit) {
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  const span = hi - lo; // in [0, 2]
  return span === 0 ? unit.map(() => 0) : unit.map((u) => (u - lo) / span);
}

/**
 * Hungarian algorithm for an n x m cost matrix (row-major, n <= m, +Infinity = infeasible, every
 * row with at least one finite cell). Rows are added one at a time; each addition grows a tree
 * of tight edges by Dijkstra-like steps on reduced costs until it reaches a free column, then
 * flips the path. Returns, for each column, its row or -1.
 */
function hungarian(n: number, m: number, cost: Float64Array): Int32Array {
  // 1-based columns with a virtual column 0 that holds the row being added; rows 1-based, 0 = none.
  const u = new Float64Array(n + 1); // row potentials
  const v = new Float64Array(m + 1); // column potentials
  const rowOf = new Int32Array(m + 1); // column -> row, 0 when free
  const via = new Int32Array(m + 1); // previous column on the augmenting path
  const minReduced = new Float64Array(m + 1);
  const visited = new Uint8Array(m + 1);

  for (let row = 1; row <= n; row++) {
    rowOf[0] = row;
    let col0 = 0;
    minReduced.fill(Infinity);
    visited.fill(0);
    do {
      visited[col0] = 1;
      const r = rowOf[col0];
      const base = (r - 1) * m - 1; // cost of (r, col) is cost[base + col]
      let delta = Infinity;
      let next = -1;
      for (let col = 1; col <= m; col++) {
        if (visited[col]) continue;
        const reduced = cost[base + col] - u[r] - v[col];
        if (reduced < minReduced[col]) {
          minReduced[col] = reduced;
          via[col] = col0;
        }
        if (minReduced[col] < delta) {
          delta = minReduced[col];
          next = col;
        }
      }
      // The dummy columns are finite for every row and cannot all be taken yet, so `next` exists.
      if (next < 0) throw new Error('min-cost matching: no finite column left (broken invariant)');
      for (let col = 0; col <= m; col++) {
        if (visited[col]) {
          u[rowOf[col]] += delta;
          v[col] -= delta;
        } else {
          minReduced[col] -= delta;
        }
      }
      col0 = next;
    } while (rowOf[col0] !== 0);
    // Flip the augmenting path back to the virtual column.
    do {
      const prev = via[col0];
      rowOf[col0] = rowOf[prev];
      col0 = prev;
    } while (col0 !== 0);
  }

  const result = new Int32Array(m).fill(-1);
  for (let col = 1; col <= m; col++) if (rowOf[col] !== 0) result[col - 1] = rowOf[col] - 1;
  return result;
}
