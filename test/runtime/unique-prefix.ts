/** A prefix unique to this test run, in Docker's name charset. */
export function uniquePrefix(kind: string): string {
  return `podiumtest-${kind}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
