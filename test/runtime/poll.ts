/** Polls `probe` until it returns a value other than undefined, or throws after `timeoutMs` with
 *  the last error seen. For conditions that become true (a server answering), not for sleeping. */
export async function pollFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** A prefix unique to this test run, in Docker's name charset. */
export function uniquePrefix(kind: string): string {
  return `podiumtest-${kind}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
