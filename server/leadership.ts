/**
 * Exactly one Pod API process leads: it runs the auctions, the orchestrator and host liveness,
 * and holds the agents' sessions. The others stand by, serving reads and creates, until the
 * leader is gone.
 *
 * The lease is a row (storage: leader_lease) with an epoch, renewed by the leader every renewMs.
 * On PostgreSQL the leader also holds a session advisory lock on a connection of its own:
 *
 * - the leader crashes: its connection closes, the lock is free, and a standby takes over at its
 *   next look (pollMs), without waiting for the lease to lapse;
 * - the leader stalls (SIGSTOP, a long pause) with its connection open: the lock stays taken, the
 *   lease lapses after leaseMs; the standby ends every backend of the stalled process (found by
 *   its application_name), which frees the lock and aborts whatever it had in flight, then takes
 *   the lease at the next epoch. When the stalled process wakes, its lock session is gone (it
 *   steps down) and every write that matters is fenced by its old epoch (UnitOfWork.fence).
 *
 * SQLite has one process per file: there, the lease alone decides (a second process on the same
 * file stands by while the first renews).
 */
import type { Logger } from 'pino';
import type { LockSession } from './storage/driver';
import type { Storage } from './storage/storage';

export const LEADER_LOCK = 'podium:leader';

export interface LeadershipOptions {
  /** This process, as the database knows it (application_name podium:<holder>). */
  holder: string;
  /** Where agents reach this process, told to agents that reach a standby. */
  address: string;
  /** A lease not renewed for this long is lapsed. */
  leaseMs: number;
  /** How often the leader renews. */
  renewMs: number;
  /** How often a standby looks. */
  pollMs: number;
}

export interface LeadershipEvents {
  /** This process now leads, at `epoch`. */
  lead(epoch: number): void;
  /** This process no longer leads (or never did): stop what only the leader runs. */
  follow(why: string): void;
}

export class Leadership {
  private epochHeld: number | null = null;
  private session: LockSession | undefined;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private busy = false;
  /** Where the current leader is, as far as this process last saw. */
  leaderAddress = '';

  constructor(
    private readonly storage: Storage,
    private readonly opts: LeadershipOptions,
    private readonly events: LeadershipEvents,
    private readonly log: Logger,
  ) {}

  /** The epoch this process leads at, or null while it stands by. */
  get epoch(): number | null {
    return this.epochHeld;
  }

  async start(): Promise<void> {
    this.session = await this.storage.lockSession(LEADER_LOCK);
    await this.tick();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(async () => {
      await this.tick();
      this.schedule();
    }, this.epochHeld !== null ? this.opts.renewMs : this.opts.pollMs);
  }

  /** One look: renew what we hold, or take what is free. Never throws. */
  async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      if (this.epochHeld !== null) await this.renew();
      else await this.tryToLead();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'leadership check failed');
      if (this.epochHeld !== null) this.stepDown('the lease could not be renewed');
    } finally {
      this.busy = false;
    }
  }

  private async renew(): Promise<void> {
    const epoch = this.epochHeld!;
    if (this.session?.lost) return this.stepDown('the leader lock session was lost');
    const ok = await this.storage.transaction((u) => u.lease.renew(this.opts.holder, epoch));
    if (!ok) this.stepDown(`the lease is no longer at epoch ${epoch}`);
  }

  private async tryToLead(): Promise<void> {
    const lease = await this.storage.read((r) => r.lease.get());
    if (lease) this.leaderAddress = lease.holder === this.opts.holder ? this.opts.address : lease.address;
    const lapsed = lease !== undefined && lease.now - lease.renewedAt > this.opts.leaseMs;
    let free: boolean;
    if (this.storage.dialect === 'postgres' && !this.session) return; // reopening the lock session
    if (this.session) {
      free = await this.session.tryLock();
      if (!free && lapsed && lease.holder !== this.opts.holder) {
        const n = await this.session.terminate(lease.holder);
        this.log.warn({ holder: lease.holder, epoch: lease.epoch, silentMs: lease.now - lease.renewedAt, backends: n }, 'the leader stalled past its lease: its backends were ended');
        return;
      }
    } else {
      free = lease === undefined || lapsed || lease.holder === this.opts.holder;
    }
    if (!free) return;
    const epoch = await this.storage.transaction((u) => u.lease.claim(this.opts.holder, this.opts.address, lease?.epoch ?? 0));
    if (epoch === undefined) return; // someone else moved first; look again later
    this.epochHeld = epoch;
    this.leaderAddress = this.opts.address;
    this.log.info({ epoch, previous: lease?.holder ?? null }, 'leading');
    this.events.lead(epoch);
  }

  private stepDown(why: string): void {
    const epoch = this.epochHeld;
    this.epochHeld = null;
    this.log.warn({ epoch, why }, 'no longer leading');
    this.events.follow(why);
    // A lost lock session cannot be taken again: open a fresh one for the next try.
    if (this.session?.lost) {
      const old = this.session;
      this.session = undefined;
      void old.close();
      void this.storage.lockSession(LEADER_LOCK)?.then((s) => {
        if (this.stopped) void s.close();
        else this.session = s;
      });
    }
  }

  /** Stops looking; a held lease is released, so that a standby (or the next start) leads at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const epoch = this.epochHeld;
    this.epochHeld = null;
    if (epoch !== null) await this.storage.transaction((u) => u.lease.release(this.opts.holder, epoch)).catch(() => undefined);
    await this.session?.close();
  }
}
