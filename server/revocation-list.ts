/**
 * The running Pod API's copy of the revocation list: the serials of revoked certificates that
 * have not expired yet, kept in memory so that the TLS listener can judge every handshake
 * without a query.
 *
 * Revocations are written to the store by whoever makes them (this process's RevokeHost, a
 * replacing Join, or `podium certs revoke` in another process). The list polls the store's
 * revocation revision, one single-row read, every `pollMs`, and loads only the rows revoked after
 * the revision it last saw; this process's own revocations call `refresh` at once. Either way it
 * reports the newly revoked certificates to `onRevoked`, which closes their live connections.
 */
import type { Logger } from 'pino';
import type { RevokedCertificate, Storage } from './storage';

/** What the list needs of the store. */
export interface RevocationSource {
  revision(): Promise<number>;
  listRevokedAfter(revision: number, now: number): Promise<RevokedCertificate[]>;
}

/** The revocation source of a storage. */
export function revocationsOf(storage: Storage): RevocationSource {
  return {
    revision: () => storage.read((r) => r.certificates.revision()),
    listRevokedAfter: (revision, now) => storage.read((r) => r.certificates.listRevokedAfter(revision, now)),
  };
}

export interface RevocationListOptions {
  /** How often the revision is read; well under the 1 s in which live sessions must close. */
  pollMs: number;
  now: () => number;
}

export class RevocationList {
  private readonly revoked = new Map<string, RevokedCertificate>();
  private revision = -1;
  private timer: NodeJS.Timeout | null = null;
  private lastPrune = 0;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly source: RevocationSource,
    private readonly opts: RevocationListOptions,
    private readonly onRevoked: (newlyRevoked: RevokedCertificate[]) => void,
    private readonly log: Logger,
  ) {}

  /** The entry of a revoked serial (canonical form), or undefined when it is not revoked. */
  get(serial: string): RevokedCertificate | undefined {
    return this.revoked.get(serial);
  }

  /** Every revoked certificate that has not expired. */
  all(): RevokedCertificate[] {
    return [...this.revoked.values()];
  }

  isRevoked(serial: string): boolean {
    return this.revoked.has(serial);
  }

  get size(): number {
    return this.revoked.size;
  }

  /**
   * Catches up with the store: when the revision moved, loads what was revoked since and hands
   * it to `onRevoked`. Resolves with the newly revoked certificates (empty when nothing changed).
   * Refreshes never overlap: one asked for while another runs starts when it ends.
   */
  refresh(): Promise<RevokedCertificate[]> {
    const next = this.running.then(() => this.refreshOnce());
    this.running = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  private async refreshOnce(): Promise<RevokedCertificate[]> {
    const now = this.opts.now();
    this.prune(now);
    const revision = await this.source.revision();
    if (revision === this.revision) return [];
    const fresh = (await this.source.listRevokedAfter(Math.max(this.revision, 0), now)).filter((c) => !this.revoked.has(c.serial));
    for (const c of fresh) this.revoked.set(c.serial, c);
    this.revision = revision;
    if (fresh.length > 0) {
      // At start the whole list is loaded: name the serials only when there are few.
      this.log.info({ revision, count: fresh.length, serials: fresh.length <= 20 ? fresh.map((c) => c.serial) : undefined }, 'revocations loaded');
      this.onRevoked(fresh);
    }
    return fresh;
  }

  /** Loads the list and starts polling. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((err) => this.log.error({ err }, 'reading the revocation list failed; the previous one stays'));
    }, this.opts.pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** An expired certificate fails verification anyway: its entry is no longer needed. */
  private prune(now: number): void {
    if (now - this.lastPrune < 60_000) return;
    this.lastPrune = now;
    for (const [serial, c] of this.revoked) if (c.notAfter <= now) this.revoked.delete(serial);
  }
}
