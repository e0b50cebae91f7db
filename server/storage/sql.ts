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
 * `$1 … $n` → `?` in the order they occur, with the argument list to match (a placeholder used
 * twice appears twice). Our SQL never has `$` inside a string literal, so a scan is enough.
 */
export function positional(text: string, params: readonly unknown[]): { text: string; args: unknown[] } {
  const args: unknown[] = [];
  const out = text.replace(/\$(\d+)/g, (_m, n: string) => {
    const i = Number(n) - 1;
    if (i < 0 || i >= params.length) throw new RangeError(`placeholder $${n} has no parameter (${params.length} given)`);
    args.push(params[i]);
    return '?';
  });
  return { text: out, args };
}

/** Thrown when a unit of work runs without (or after losing) the leader lease it was fenced by. */
export class FencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FencedError';
  }
}
