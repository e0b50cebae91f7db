/**
 * The SQL seam's helpers (server/storage/sql.ts): placeholders turned positional once per
 * statement text, arguments bound in their order, and IN lists in a few statement shapes.
 */
import assert from 'node:assert/strict';
import { argumentsInOrder, inLists, positional } from '../../server/storage/sql';

describe('sql helpers', () => {
  it('turns $n placeholders into ? and binds each in the order it occurs, repeats included', () => {
    const { text, order } = positional('UPDATE t SET a = $2, b = $1 WHERE c = $2 OR d = $3');
    assert.equal(text, 'UPDATE t SET a = ?, b = ? WHERE c = ? OR d = ?');
    assert.deepEqual(argumentsInOrder(order, ['one', 'two', 'three']), ['two', 'one', 'two', 'three']);
  });

  it('names the placeholder that has no parameter', () => {
    const { order } = positional('SELECT * FROM t WHERE a = $1 AND b = $3');
    assert.throws(() => argumentsInOrder(order, ['x', 'y']), /placeholder \$3 has no parameter \(2 given\)/);
    assert.throws(() => argumentsInOrder(positional('SELECT $0').order, ['x']), /placeholder \$0/);
  });

  it('slices IN lists into at most 256 ids, padded to a power of two', () => {
    const ids = Array.from({ length: 300 }, (_, i) => `i${i}`);
    const lists = inLists(ids, 2);
    assert.deepEqual(lists.map((l) => l.params.length), [256, 64]);
    assert.ok(lists[0]!.placeholders.startsWith('($2, $3'));
    assert.deepEqual(new Set(lists.flatMap((l) => l.params)), new Set(ids));
  });
});
