/**
 * The seam between the repositories and a driver. Repositories speak one SQL, PostgreSQL's
 * spelling of portable SQL: `$1, $2…` placeholders, INSERT … ON CONFLICT, RETURNING, integers for
 * times (ms since the epoch) and booleans (0/1), JSON as text parsed in TypeScript. Each driver
 * turns that into what its engine takes; nothing above this module sees a driver type.
 */

/** One connection's worth of SQL, inside a transaction or not. */
export interface Sql {
  /** Every row of a query. */
  all<R>(text: string, params?: readonly unknown[]): Promise<R[]>;
  /** The first row of a query, or undefined. */
  get<R>(text: string, params?: readonly unknown[]): Promise<R | undefined>;
  /** A statement that changes rows; how many it changed. */
  run(text: string, params?: readonly unknown[]): Promise<{ changes: number }>;
}

export type Dialect = 'sqlite' | 'postgres';

/**
 * `$1 … $n` → `?` in the order they occur, with the parameter index each `?` takes (a placeholder
 * used twice appears twice). Our SQL never has `$` inside a string literal, so a scan is enough.
 * Done once per statement text: the driver keeps `order` with the prepared statement.
 */
export function positional(text: string): { text: string; order: number[] } {
  const order: number[] = [];
  const out = text.replace(/\$(\d+)/g, (_m, n: string) => {
    order.push(Number(n) - 1);
    return '?';
  });
  return { text: out, order };
}

/** The arguments for a statement's `?`s, in `order`, from `params` ($1 is params[0]). */
export function argumentsInOrder(order: readonly number[], params: readonly unknown[]): unknown[] {
  const args = new Array<unknown>(order.length);
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    if (i < 0 || i >= params.length) throw new RangeError(`placeholder $${i + 1} has no parameter (${params.length} given)`);
    args[k] = params[i];
  }
  return args;
}

/**
 * `items` in slices of at most 256, each padded (with its last item) to a power of two, so that a
 * statement over any number of items is one of nine texts, each prepared once. Repeating an item
 * must not change what the statement does (an id twice in an IN list, a pair twice in a VALUES
 * list that is joined to the rows it names).
 */
export function paddedSlices<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += 256) {
    const slice = items.slice(i, i + 256);
    let size = 1;
    while (size < slice.length) size *= 2;
    out.push([...slice, ...Array<T>(size - slice.length).fill(slice[slice.length - 1]!)]);
  }
  return out;
}

/** `ids` in padded slices (paddedSlices) for `IN (…)` lists whose placeholders start at `$from`. */
export function inLists(ids: readonly string[], from = 1): Array<{ placeholders: string; params: string[] }> {
  return paddedSlices(ids).map((params) => ({ placeholders: `(${params.map((_, k) => `$${from + k}`).join(', ')})`, params }));
}

/** Thrown when a unit of work runs without (or after losing) the leader lease it was fenced by. */
export class FencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FencedError';
  }
}
