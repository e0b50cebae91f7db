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
import type { CertificateRecord, InstanceRecord, Storage } from './storage';

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
 * and appends `host.revoked` and one `instance.lost` per instance, in one unit of work. Not fenced:
 * a revocation is an operator's decision, which any Pod API process (or the CLI) may record. Returns
 * undefined, having written nothing, when the store knows no such host (neither a host record nor
 * a certificate). `reason` is stored and shown in events: it must not carry a secret.
 */
export async function revokeHost(storage: Storage, host: string, reason = DEFAULT_REVOKE_REASON, now = Date.now()): Promise<HostRevocation | undefined> {
  return storage.transaction(async (u) => {
    // The identity's lock: a renewal or a Join of this host racing the revocation is serialized
    // with it, so no certificate of the host escapes it.
    await u.lock(`identity:agent/${host}`);
    if (!(await u.hosts.get(host)) && (await u.certificates.list('agent', host)).length === 0) return undefined;
    const revoked = await u.certificates.revoke({ role: 'agent', name: host }, reason, now);
    await u.joinTokens.cancelFor(host);
    const lost = (await u.hosts.markDown(host, null)) ? await u.instances.markLostOnHost(host, now) : [];
    const count = `${revoked.length} certificate${revoked.length === 1 ? '' : 's'}`;
    u.emit({ tenant: '', type: 'host.revoked', host, message: `${reason} (${count} revoked)`, time: now });
    for (const i of lost) {
      u.emit({ tenant: i.tenant, type: 'instance.lost', environment: i.environment, service: i.service, instance: i.id, host, message: 'host revoked', time: now });
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
export async function revokeCertificate(
  storage: Storage,
  serial: string,
  reason = DEFAULT_REVOKE_REASON,
  now = Date.now(),
): Promise<{ certificate: CertificateRecord; already: boolean } | undefined> {
  return storage.transaction(async (u) => {
    const found = await u.certificates.get(serial);
    if (!found) return undefined;
    // Serialized with renewals of the same identity (see revokeHost), then read again under it.
    await u.lock(`identity:${found.role}/${found.name}`);
    const before = (await u.certificates.get(serial))!;
    if (before.revokedAt !== null) return { certificate: before, already: true };
    const [certificate] = await u.certificates.revoke({ serial }, reason, now);
    u.emit({ tenant: '', type: 'certificate.revoked', host: before.role === 'agent' ? before.name : '', message: `${before.role} ${before.name}, serial ${serial}: ${reason}`, time: now });
    return { certificate: certificate!, already: false };
  });
}
