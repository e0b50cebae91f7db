/**
 * The revoked hosts, as the hosts' proxies need them: a workload certificate names the host it was
 * issued to, and one issued to a host before that host was revoked is refused by every proxy from
 * then on, though it has not expired (certificates are not in any list the proxies could check).
 *
 * Fed by the revocation list (every process loads the store's revocations; a revoked agent
 * certificate is a revoked host), and sent over the agent stream: the whole list after a
 * session's welcome, then each newly revoked host to every session at once. A host stays in the
 * list until every workload certificate issued to it before its revocation has expired.
 */
import type { ServerMessage } from '../gen/podium/v1/agent';
import type { RevokedCertificate } from './storage';

/** Workload certificates are backdated this much (certs' CLOCK_SKEW). */
const BACKDATE_MS = 60_000;

export interface Sendable {
  send(msg: ServerMessage): void;
}

export class RevokedHosts {
  /** Host → when it was (last) revoked. */
  private readonly hosts = new Map<string, number>();

  constructor(
    private readonly sessions: { all(): Iterable<Sendable> },
    /** The workload certificates' lifetime: how long a revoked host's may still be presented. */
    private readonly workloadLifetimeMs: number,
    private readonly now: () => number,
  ) {}

  /** Certificates newly revoked: the hosts among them are told to every session. */
  revoked(certificates: readonly RevokedCertificate[]): void {
    const fresh: Array<{ host: string; revokedAtMs: number }> = [];
    for (const c of certificates) {
      if (c.role !== 'agent') continue;
      if ((this.hosts.get(c.name) ?? -Infinity) >= c.revokedAt) continue;
      this.hosts.set(c.name, c.revokedAt);
      fresh.push({ host: c.name, revokedAtMs: c.revokedAt });
    }
    if (fresh.length === 0) return;
    const msg: ServerMessage = { kind: { $case: 'revokedHosts', revokedHosts: { hosts: fresh } } };
    for (const s of this.sessions.all()) s.send(msg);
  }

  /** A session opened: it gets the whole list (none when there is nothing to refuse). */
  opened(session: Sendable): void {
    const hosts = this.list();
    if (hosts.length > 0) session.send({ kind: { $case: 'revokedHosts', revokedHosts: { hosts } } });
  }

  list(): Array<{ host: string; revokedAtMs: number }> {
    const horizon = this.now() - this.workloadLifetimeMs - BACKDATE_MS;
    for (const [host, at] of this.hosts) if (at < horizon) this.hosts.delete(host);
    return [...this.hosts].map(([host, revokedAtMs]) => ({ host, revokedAtMs }));
  }
}
