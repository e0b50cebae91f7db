/**
 * Where the agent looks for the Pod API: the addresses it was given (`--server`, repeatable or
 * comma-separated), in turn, and the leader's address when a standby named it. Several Pod API
 * processes share one database; only the leader holds agent sessions, and a standby refuses a
 * session with trailing metadata `podium-leader: <address>`, which the agent tries next.
 */
export const LEADER_METADATA_KEY = 'podium-leader';
/** Trailing metadata of a session the server's admission deferred: come back in this many ms. */
export const RETRY_AFTER_METADATA_KEY = 'podium-retry-after-ms';

export class ServerAddresses {
  private index = 0;
  private hint: string | null = null;

  constructor(private readonly addresses: readonly string[]) {
    if (addresses.length === 0) throw new Error('at least one Pod API address is needed');
  }

  /** The address to connect to now: the leader's when one was named, else the next in turn. */
  current(): string {
    return this.hint ?? this.addresses[this.index % this.addresses.length]!;
  }

  /**
   * The session at `current()` ended. With the leader named by a standby, that is where to go
   * next; otherwise the next address in turn. Returns true when a whole round of the given
   * addresses failed (the caller backs off then, not after each).
   */
  failed(leaderHint: string | undefined): boolean {
    if (leaderHint && leaderHint !== this.current()) {
      this.hint = leaderHint;
      return false;
    }
    if (this.hint !== null) {
      // The named leader failed too: back to the list, from where we were.
      this.hint = null;
      return false;
    }
    this.index++;
    return this.index % this.addresses.length === 0;
  }

  /** Every address, for calls that any Pod API process answers (Join, Renew). */
  all(): readonly string[] {
    return this.hint ? [this.hint, ...this.addresses.filter((a) => a !== this.hint)] : this.addresses;
  }
}
