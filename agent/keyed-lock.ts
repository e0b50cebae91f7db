/**
 * Serializes asynchronous work by key: `run(key, fn)` starts `fn` only after every earlier `run`
 * with the same key has settled (fulfilled or rejected); different keys do not wait for each
 * other. The agent keys its network work by network name, so that an award creating a container
 * on a network and the removal of that network never interleave.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const result = before.then(fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    // The map holds only keys with work queued, so it does not grow with every network ever used.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with work queued or running. */
  get busy(): number {
    return this.tails.size;
  }
}
