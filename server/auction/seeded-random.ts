/**
 * A small seeded generator of numbers uniform in [0, 1), for PlanOptions.random: production draws
 * a seed and logs it, tests and benchmarks pass a fixed one, and a round can be replayed.
 * Marsaglia's xorshift (shifts 13, 17, 5) over 32 bits, with the seed first mixed by a
 * multiplicative hash so that nearby seeds start far apart. Good enough to sample hosts; not
 * for anything secret.
 */
export function seededRandom(seed: number): () => number {
  let x = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  if (x === 0) x = 0x6d2b79f5; // xorshift never leaves 0
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}
