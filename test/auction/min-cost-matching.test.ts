import assert from 'node:assert/strict';
import fc from 'fast-check';
import { minCostMatching, type MatchingCell } from '../../server/auction/min-cost-matching';
import { bruteForceMatching as bruteForce } from './brute-force-matching';

function score(cells: MatchingCell[], assignment: number[]): [number, number] {
  let matched = 0;
  let total = 0;
  assignment.forEach((col, row) => {
    if (col < 0) return;
    matched++;
    total += Math.min(...cells.filter((c) => c.row === row && c.col === col).map((c) => c.cost));
  });
  return [matched, total];
}

const instance = (cost: fc.Arbitrary<number>) =>
  fc.record({ rows: fc.integer({ min: 0, max: 5 }), cols: fc.integer({ min: 0, max: 6 }) }).chain(({ rows, cols }) =>
    fc.record({
      rows: fc.constant(rows),
      cols: fc.constant(cols),
      cells: fc.array(
        fc.record({ row: fc.integer({ min: 0, max: Math.max(0, rows - 1) }), col: fc.integer({ min: 0, max: Math.max(0, cols - 1) }), cost }),
        { maxLength: rows * cols + 3 },
      ),
    }),
  );

describe('auction: minCostMatching', () => {
  it('places as many rows as possible, then at least total cost (against brute force)', () => {
    fc.assert(
      fc.property(instance(fc.integer({ min: -50, max: 50 })), ({ rows, cols, cells }) => {
        const valid = rows > 0 && cols > 0 ? cells : [];
        const assignment = minCostMatching(rows, cols, valid);
        const [matched, total] = score(valid, assignment);
        const [bestMatched, bestTotal] = bruteForce(rows, cols, valid);
        assert.equal(matched, bestMatched);
        assert.equal(total, bestTotal);
      }),
      { numRuns: 1000 },
    );
  });

  it('returns a valid matching whatever the costs', () => {
    const absurd = fc.oneof(fc.double(), fc.constantFrom(Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, 0, -0));
    fc.assert(
      fc.property(instance(absurd), ({ rows, cols, cells }) => {
        const valid = rows > 0 && cols > 0 ? cells : [];
        const assignment = minCostMatching(rows, cols, valid);
        assert.equal(assignment.length, rows);
        const taken = assignment.filter((c) => c >= 0);
        assert.equal(new Set(taken).size, taken.length, 'a column used twice');
        assignment.forEach((col, row) => {
          if (col >= 0) assert.ok(valid.some((c) => c.row === row && c.col === col && Number.isFinite(c.cost)));
        });
        // Cardinality does not depend on the costs, only on which cells are usable.
        const usable = valid.filter((c) => Number.isFinite(c.cost)).map((c) => ({ ...c, cost: 0 }));
        assert.equal(taken.length, bruteForce(rows, cols, usable)[0]);
      }),
      { numRuns: 1000 },
    );
  });

  it('handles a tall group on a wide fleet', () => {
    // 60 replicas, 400 hosts, replica i may go on hosts i..i+9 at cost (host - replica).
    const cells: MatchingCell[] = [];
    for (let row = 0; row < 60; row++) for (let k = 0; k < 10; k++) cells.push({ row, col: row + k, cost: k });
    const assignment = minCostMatching(60, 400, cells);
    assert.deepEqual(assignment, Array.from({ length: 60 }, (_, i) => i));
  });
});
