/**
 * Revoking, as the Pod API and the CLI both do it: a revocation is a write to the store, so it
 * works whether the server is running or not, and a running server learns of it from the
 * revocation revision (revocation-list.ts) and closes the revoked peers' connections.
 *
 * Revoking a host is more than revoking its certificates: the host can no longer be trusted to
 * run anything, so in the same transaction it is marked down and its placed instances lost (with
 * an event each), and the orchestrator places replacements. Join tokens still bound to it are
 * used up, so that a token made before the revocation cannot bring it back.
 */
import type { CertificateRecord, InstanceRecord, Store } from './store';

export interface HostRevocation {
  host: string;
  /** The certificates this revocation revoked (already revoked ones are not repeated). */
  revoked: CertificateRecord[];
  /** The instances that were placed on the host and are now lost. */
  lost: InstanceRecord[];
}

/** The reason recorded when none is given. */
export const DEFAULT_REVOKE_REASON = 'revoked by an operator';

/**
 * Revokes every certificate of agent `host`, marks the host down and its placed instances lost,
 * and appends `host.revoked` and one `instance.lost` per instance, in one transaction. Returns
 * undefined, having written nothing, when the store knows no such host (neither a host record nor
 * a certificate). `reason` is stored and shown in events: it must not carry a secret.
 */
export function revokeHost(store: Store, host: string, reason = DEFAULT_REVOKE_REASON, now = Date.now()): HostRevocation | undefined {
  return store.txImmediate(() => {
    if (!store.getHost(host) && store.listCertificates('agent', host).length === 0) return undefined;
    const revoked = store.revokeCertificates({ role: 'agent', name: host }, reason, now);
    store.cancelJoinTokensFor(host);
    const lost = store.markHostDown(host, now) ?? [];
    const count = `${revoked.length} certificate${revoked.length === 1 ? '' : 's'}`;
    store.appendEvent({ tenant: '', type: 'host.revoked', host, message: `${reason} (${count} revoked)` }, now);
    for (const i of lost) {
      store.appendEvent(
        { tenant: i.tenant, type: 'instance.lost', environment: i.environment, service: i.service, instance: i.id, host, message: 'host revoked' },
        now,
      );
    }
    return { host, revoked, lost };
  });
}

/**
 * Revokes one certificate by its canonical serial and appends `certificate.revoked`. Unlike
 * revokeHost it leaves the host's record alone: the host may hold a newer certificate (after a
 * renewal) and reconnect with it. Returns the certificate's record (with its first revocation,
 * if it was already revoked), or undefined when the serial is unknown.
 */
export function revokeCertificate(
  store: Store,
  serial: string,
  reason = DEFAULT_REVOKE_REASON,
  now = Date.now(),
): { certificate: CertificateRecord; already: boolean } | undefined {
  return store.txImmediate(() => {
    const before = store.getCertificate(serial);
    if (!before) return undefined;
    if (before.revokedAt !== null) return { certificate: before, already: true };
    const [certificate] = store.revokeCertificates({ serial }, reason, now);
    store.appendEvent(
      { tenant: '', type: 'certificate.revoked', host: before.role === 'agent' ? before.name : '', message: `${before.role} ${before.name}, serial ${serial}: ${reason}` },
      now,
    );
    return { certificate: certificate!, already: false };
  });
}
