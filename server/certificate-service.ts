/**
 * CertificateService: Join (a join token and a CSR for a certificate) and Renew (a new
 * certificate for the caller's own identity). Join is the only RPC open to callers without a
 * client certificate: the token's secret is the credential, and only its hash is stored.
 *
 * Host identity cannot be taken by asking for it. A token has a number of uses (one by default)
 * and an expiry; a use is consumed in the same transaction that records the certificate, so two
 * Joins racing for the last use yield one certificate. The host id comes from the token (bound
 * with `--host-id`) or from the server (`host-<8 hex>`), never from the request alone; and a host
 * id that already holds a valid certificate is refused unless the token was made to replace it,
 * in which case the earlier certificates are revoked and their live sessions closed.
 */
import { status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { randomBytes, X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type {
  CertificateServiceServer,
  JoinRequest,
  JoinResponse,
  RenewRequest,
  RenewResponse,
} from '../gen/podium/v1/certificate';
import {
  canonicalSerial,
  parseJoinToken,
  secretMatches,
  signCsr,
  spiffeIdFor,
  type Authority,
  type Identity,
  type Role,
} from '../certs';
import { authorize, peerSerial, type CaTrust } from './auth';
import { PodiumError, toServiceError } from './errors';
import type { CertificateRecord, JoinTokenRecord, NewCertificate, Storage, UnitOfWork } from './storage';
import { GroupCommit } from './group-commit';

const JOINABLE: readonly Role[] = ['agent', 'gateway', 'operator'];

export interface CertificateServiceDeps {
  storage: Storage;
  /** Signs the certificates. */
  ca: Authority;
  /** Judges the callers of Renew (revocation included). */
  trust: CaTrust;
  /** Lifetime of issued certificates, in seconds. */
  certLifetimeSeconds: number;
  log: Logger;
}

/** One message for every bad token, so that a caller learns nothing about which tokens exist. */
const INVALID_TOKEN = 'join token is unknown, expired, used up or wrong';
const NO_HASH = '0'.repeat(64);

export function certificateHandlers(deps: CertificateServiceDeps): CertificateServiceServer {
  const { storage } = deps;
  const joins = joinWrites(storage);
  return {
    join: async (call: ServerUnaryCall<JoinRequest, JoinResponse>, callback: sendUnaryData<JoinResponse>) => {
      try {
        const token = await checkToken(deps, call.request.token);
        const role = token.role as Role;
        const name = joinName(token, role, call.request.hostId);
        const identity: Identity = { role, name, spiffeId: spiffeIdFor(deps.ca.trustDomain, role, name) };
        const certificatePem = await sign(deps, call.request.csrPem, identity);
        const now = Date.now();
        const record = certificateRecord(certificatePem, identity, `join token ${token.id}`);
        const replaced = await joins.submit({ token, role, name, record, spiffeId: identity.spiffeId, now });
        deps.log.info({ role, name, replaced: replaced.map((c) => c.serial) }, 'joined');
        callback(null, { certificatePem, caPem: deps.ca.caCertPem, hostId: name });
      } catch (err) {
        callback(toServiceError(err, deps.log), null);
      }
    },

    renew: async (call: ServerUnaryCall<RenewRequest, RenewResponse>, callback: sendUnaryData<RenewResponse>) => {
      try {
        const identity = authorize(call, deps.trust, JOINABLE);
        const previous = peerSerial(call)!;
        const certificatePem = await sign(deps, call.request.csrPem, identity);
        // The old certificate stays valid until it expires. A revocation racing this renewal wins:
        // both take the identity's lock, so either the revocation sees (and revokes) the renewed
        // certificate, or the renewal sees the previous one revoked and refuses.
        const record = certificateRecord(certificatePem, identity, `renewal of ${previous}`);
        const renewed = await storage.transaction(async (u) => {
          await u.lock(`identity:${identity.role}/${identity.name}`);
          const before = await u.certificates.get(previous);
          if (before && before.revokedAt !== null) return false;
          await u.certificates.insert(record, Date.now());
          return true;
        });
        if (!renewed) throw new PodiumError(status.UNAUTHENTICATED, 'this client certificate has been revoked');
        callback(null, { certificatePem });
      } catch (err) {
        callback(toServiceError(err, deps.log), null);
      }
    },
  };
}

/**
 * The stored token `text` names, when it is this CA's, its secret matches, it has a use left and
 * has not expired. Checked again (atomically) when the use is consumed; this first look only
 * spares a signature. Throws UNAUTHENTICATED (always the same message) otherwise, and
 * INVALID_ARGUMENT naming `token` when it is not a token at all.
 */
async function checkToken(deps: CertificateServiceDeps, text: string): Promise<JoinTokenRecord> {
  let parsed: ReturnType<typeof parseJoinToken>;
  try {
    parsed = parseJoinToken(text);
  } catch (err) {
    throw PodiumError.invalid('token', (err as Error).message);
  }
  if (parsed.fingerprint !== deps.ca.fingerprint) {
    throw new PodiumError(status.UNAUTHENTICATED, 'join token was made for another Pod API (CA fingerprint differs)');
  }
  const stored = await deps.storage.read((r) => r.joinTokens.get(parsed.id));
  const usable = stored && stored.expiresAt > Date.now() && stored.used < stored.uses && JOINABLE.includes(stored.role as Role);
  // The secret is compared even for an unknown or unusable token, so that timing says nothing either.
  const matches = secretMatches(parsed.secret, stored?.secretHash ?? NO_HASH);
  if (!stored || !usable || !matches) throw new PodiumError(status.UNAUTHENTICATED, INVALID_TOKEN);
  return stored;
}

/**
 * The name the certificate will carry. A token bound to a host id gives that id (the request may
 * repeat it, as the agent's --host-id does, or leave it empty); an unbound token gets a name
 * picked here, and a request that asks for one is refused: asking is not owning.
 */
function joinName(token: JoinTokenRecord, role: Role, requested: string): string {
  if (token.hostId) {
    if (requested && requested !== token.hostId) {
      throw PodiumError.invalid('host_id', `this join token is bound to host id "${token.hostId}"; ask for that or for none`);
    }
    return token.hostId;
  }
  if (requested) throw PodiumError.invalid('host_id', 'the token is not bound to a host id; make one with --host-id');
  return `${role === 'agent' ? 'host' : role}-${randomBytes(4).toString('hex')}`;
}

async function sign(deps: CertificateServiceDeps, csrPem: string, identity: Identity): Promise<string> {
  try {
    return await signCsr(deps.ca, csrPem, identity, deps.certLifetimeSeconds);
  } catch (err) {
    throw PodiumError.invalid('csr_pem', (err as Error).message);
  }
}

/**
 * The store's side of Join. Joins that arrive while one commits share the next commit: a rack
 * joining at once was one disk sync per host on the event loop. One refused (a used-up token, a
 * taken host id) makes its batch be tried one by one, so that it fails only its own caller.
 */
export function joinWrites(storage: Storage): GroupCommit<JoinWrite, CertificateRecord[]> {
  return new GroupCommit((batch) =>
    storage.transaction(async (u) => {
      const out: CertificateRecord[][] = [];
      for (const w of batch) out.push(await recordJoin(u, w));
      return out;
    }),
  );
}

export interface JoinWrite {
  token: JoinTokenRecord;
  role: Role;
  name: string;
  record: NewCertificate;
  spiffeId: string;
  now: number;
}

/**
 * The one write of a Join, all or nothing: a use of the token (a conditional update: only while a
 * use is left and it has not expired), the refusal of a host id that holds a valid certificate
 * unless the token replaces (then those are revoked), the new certificate. The identity's lock
 * serializes two Joins for one host id; the token's row, two for its last use. Returns the
 * certificates it replaced.
 */
async function recordJoin(u: UnitOfWork, w: JoinWrite): Promise<CertificateRecord[]> {
  const { token, role, name, now } = w;
  await u.lock(`identity:${role}/${name}`);
  if (!(await u.joinTokens.consume(token.id, now))) throw new PodiumError(status.UNAUTHENTICATED, INVALID_TOKEN);
  const holders = await u.certificates.listValid(role, name, now);
  if (holders.length > 0 && !token.replace) {
    throw new PodiumError(
      status.FAILED_PRECONDITION,
      `host_id: ${role === 'agent' ? 'host' : role} "${name}" already holds a valid certificate; ` +
        `revoke it first (podium certs revoke --host ${name}) or join with a token made with --replace`,
      [{ field: 'host_id', description: 'already holds a valid certificate' }],
    );
  }
  const old = holders.length > 0 ? await u.certificates.revoke({ role, name }, 'replaced by a new join', now) : [];
  await u.certificates.insert(w.record, now);
  const host = role === 'agent' ? name : '';
  for (const c of old) {
    // Every Pod API process closes the connections of these serials when it hears this.
    u.emit({ tenant: '', type: 'certificate.revoked', host, message: `${role} ${name}, serial ${c.serial}: replaced by a new join`, time: now });
  }
  u.emit({ tenant: '', type: 'certificate.issued', host, message: w.spiffeId, time: now });
  return old;
}

/** The store's record of a certificate just signed, read by node's own parser in one pass. */
export function certificateRecord(certificatePem: string, identity: Identity, issuedBy: string): NewCertificate {
  const cert = new X509Certificate(certificatePem);
  const serial = canonicalSerial(cert.serialNumber);
  if (serial === null) throw new Error('the certificate has a serial number longer than 20 octets');
  return {
    serial,
    role: identity.role,
    name: identity.name,
    notBefore: Date.parse(cert.validFrom),
    notAfter: Date.parse(cert.validTo),
    issuedBy,
  };
}
