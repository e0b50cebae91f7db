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
 * `ids` in slices for `IN (…)` lists whose placeholders start at `$from`: each slice holds at most
 * 256 ids and is padded (with its last id) to a power of two, so that a query over any number of
 * ids is one of nine statement texts, each prepared once.
 */
export function inLists(ids: readonly string[], from = 1): Array<{ placeholders: string; params: string[] }> {
  const out: Array<{ placeholders: string; params: string[] }> = [];
  for (let i = 0; i < ids.length; i += 256) {
    const slice = ids.slice(i, i + 256);
    let size = 1;
    while (size < slice.length) size *= 2;
    const params = [...slice, ...Array<string>(size - slice.length).fill(slice[slice.length - 1]!)];
    out.push({ placeholders: `(${params.map((_, k) => `$${from + k}`).join(', ')})`, params });
  }
  return out;
}

/** Thrown when a unit of work runs without (or after losing) the leader lease it was fenced by. */
export class FencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FencedError';
  }
}
