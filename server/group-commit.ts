/**
 * Group commit: writes submitted while a unit of work is committing go together into the next
 * one. Where every commit is a synchronous disk write (and, on PostgreSQL, event-emitting units
 * are serialized until they commit so that sequence order is commit order), one commit for many
 * writes is what lets a busy fleet's reports keep up. It adds at most one turn of the event loop:
 * a write submitted while nothing is committing starts a unit once the messages already read from
 * the sockets in this turn have been submitted too (SQLite commits without yielding to I/O, so
 * without that turn no two reports would ever meet).
 *
 * Batches commit one after another, in submission order, so writes from one source stay in order.
 * When a batch of several fails, each of its writes is tried alone, so that one bad write fails
 * only its own submitter.
 */
export class GroupCommit<I, O> {
  private queue: Array<{ item: I; resolve: (o: O) => void; reject: (err: unknown) => void }> = [];
  private draining = false;

  /** `commit` writes the items in one unit of work and returns one result per item, in order. */
  constructor(
    private readonly commit: (items: readonly I[]) => Promise<readonly O[]>,
    private readonly maxBatch = 256,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.draining) {
        this.draining = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const out = await this.commit(batch.map((b) => b.item));
          batch.forEach((b, i) => b.resolve(out[i]!));
        } catch (err) {
          if (batch.length === 1) {
            batch[0]!.reject(err);
            continue;
          }
          for (const b of batch) {
            await this.commit([b.item]).then(
              (out) => b.resolve(out[0]!),
              (e: unknown) => b.reject(e),
            );
          }
        }
      }
    } finally {
      this.draining = false;
    }
  }
}
