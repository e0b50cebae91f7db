/**
 * Published endpoints (Service.expose): one port of a service served over HTTPS, by name, on the
 * edge port of every host that runs it.
 *
 * The certificate is the Pod API CA's by default, made when the service is created, for names
 * under the tenant's own domain only (`…<tenant>.<public domain>`), so that no tenant is given a
 * certificate for another's name. A customer may upload a certificate and key for any name
 * instead. Either way the key is stored sealed under the server's key file (never in the clear in
 * the database), is never returned by the API, and is opened only to put it in the registry
 * snapshot of the service's own environment, which goes to the hosts that run that environment
 * over their mutual-TLS stream. A hostname is one service's in the whole platform.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createKeyAndCsr, openSealedSecret, sealSecret, signEndpointCsr, type Authority } from '../certs';
import type { PublishedEndpoint } from '../gen/podium/v1/agent';
import type { Expose } from '../gen/podium/v1/resources';
import type { Logger } from 'pino';
import { assertNoViolations, type FieldViolation } from './errors';
import { fenced, type LeaderEpoch } from './leader-fence';
import type { ExposeSpec, PortSpec, Storage } from './storage';

/** Certificates the Pod API's CA makes for endpoints live this long by default. */
export const ENDPOINT_CERT_LIFETIME_SECONDS = 90 * 24 * 3600;

const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_PEM = 64 * 1024;

/** What a create asked for, checked for form (validateService). */
export interface ExposeInput {
  port: number;
  /** '' for the default. */
  hostname: string;
  certificatePem: string;
  privateKeyPem: string;
}

export interface ExposeContext {
  tenant: string;
  environment: string;
  service: string;
  /** The platform's public domain: CA-signed names end in `<tenant>.<publicDomain>`. */
  publicDomain: string;
  ca: Authority;
  sealingKey: Buffer;
  /** Lifetime of the certificates the CA makes (ENDPOINT_CERT_LIFETIME_SECONDS). */
  lifetimeSeconds: number;
  now: number;
}

/** The form of `expose`: a port of the service, a DNS name, a certificate and key given together. */
export function validateExpose(e: Expose | undefined, ports: readonly PortSpec[], push: (v: FieldViolation) => void): ExposeInput | undefined {
  if (!e) return undefined;
  if (!ports.some((p) => p.port === e.port)) push({ field: 'expose.port', description: `must be one of the service's ports (${ports.map((p) => p.port).join(', ') || 'it has none'})` });
  if (e.hostname !== '' && !DNS_NAME.test(e.hostname)) push({ field: 'expose.hostname', description: 'must be a lower-case DNS name of two labels or more' });
  if ((e.certificatePem === '') !== (e.privateKeyPem === '')) {
    push({ field: e.certificatePem === '' ? 'expose.certificatePem' : 'expose.privateKeyPem', description: 'is required with the other: a certificate and its key are uploaded together' });
  }
  if (e.certificatePem.length > MAX_PEM) push({ field: 'expose.certificatePem', description: `must be at most ${MAX_PEM} bytes` });
  if (e.privateKeyPem.length > MAX_PEM) push({ field: 'expose.privateKeyPem', description: `must be at most ${MAX_PEM} bytes` });
  return { port: e.port, hostname: e.hostname, certificatePem: e.certificatePem, privateKeyPem: e.privateKeyPem };
}

/** The default name: `<service>.<environment>.<tenant>.<public domain>`. */
export function defaultHostname(ctx: Pick<ExposeContext, 'tenant' | 'environment' | 'service' | 'publicDomain'>): string {
  return `${ctx.service}.${ctx.environment}.${ctx.tenant}.${ctx.publicDomain}`;
}

/**
 * What is stored: the name, and a certificate with its key sealed, made by the CA or checked as
 * uploaded (it parses, names the host, has not expired, and the key is its key). Throws
 * INVALID_ARGUMENT naming the field.
 */
export async function prepareExpose(input: ExposeInput, ctx: ExposeContext): Promise<ExposeSpec> {
  const violations: FieldViolation[] = [];
  const hostname = input.hostname || defaultHostname(ctx);
  const seal = (keyPem: string) => sealSecret(keyPem, ctx.sealingKey, sealPurpose(hostname));
  if (input.certificatePem === '') {
    const zone = `${ctx.tenant}.${ctx.publicDomain}`;
    if (!LABEL.test(ctx.tenant)) violations.push({ field: 'expose.certificatePem', description: `is required: the tenant's name is not a DNS label, so the platform's CA signs no name for it` });
    else if (!hostname.endsWith(`.${zone}`) || !DNS_NAME.test(hostname)) violations.push({ field: 'expose.hostname', description: `must end in ".${zone}" for a certificate of the platform's CA (or upload a certificate for it)` });
    assertNoViolations(violations);
    return { port: input.port, ...(await issueEndpointCertificate(hostname, ctx)) };
  }
  let cert: X509Certificate | undefined;
  try {
    cert = new X509Certificate(input.certificatePem);
  } catch {
    violations.push({ field: 'expose.certificatePem', description: 'is not a PEM certificate' });
  }
  if (cert) {
    if (cert.checkHost(hostname) === undefined) violations.push({ field: 'expose.certificatePem', description: `does not name ${hostname}` });
    if (Date.parse(cert.validTo) <= ctx.now) violations.push({ field: 'expose.certificatePem', description: `expired at ${new Date(cert.validTo).toISOString()}` });
    if (cert.ca) violations.push({ field: 'expose.certificatePem', description: 'is a CA certificate: give the server certificate first' });
  }
  try {
    const key = createPrivateKey(input.privateKeyPem);
    if (cert && !cert.checkPrivateKey(key)) violations.push({ field: 'expose.privateKeyPem', description: "is not the certificate's key" });
  } catch {
    violations.push({ field: 'expose.privateKeyPem', description: 'is not a PEM private key' });
  }
  assertNoViolations(violations);
  return { port: input.port, hostname, certificatePem: input.certificatePem, keySealed: seal(input.privateKeyPem), source: 'uploaded', notAfter: Date.parse(cert!.validTo) };
}

/** A new key and a certificate of the Pod API's CA for `hostname`, the key sealed. */
async function issueEndpointCertificate(hostname: string, ctx: Pick<ExposeContext, 'ca' | 'sealingKey' | 'lifetimeSeconds'>): Promise<Omit<ExposeSpec, 'port'>> {
  const { keyPem, csrPem } = await createKeyAndCsr(hostname);
  const certificatePem = await signEndpointCsr(ctx.ca, csrPem, hostname, ctx.lifetimeSeconds);
  const keySealed = sealSecret(keyPem, ctx.sealingKey, sealPurpose(hostname));
  return { hostname, certificatePem, keySealed, source: 'platform-ca', notAfter: Date.parse(new X509Certificate(certificatePem).validTo) };
}

/**
 * Renews the CA's endpoint certificates before they lapse: the leader checks every `checkMs`, and
 * a certificate with less than a third of its lifetime left gets a new key and certificate,
 * stored and announced (`service.certificate-renewed`), which pushes the environment's registry
 * again, so the hosts serve the new one. An uploaded certificate is the customer's to replace.
 */
export class EndpointRenewal {
  constructor(
    private readonly storage: Storage,
    private readonly leader: LeaderEpoch,
    private readonly ctx: Pick<ExposeContext, 'ca' | 'sealingKey' | 'lifetimeSeconds'>,
    private readonly log: Logger,
  ) {}

  /** Renews what is due; resolves with how many were renewed. */
  async tick(now: number): Promise<number> {
    if (this.leader.epoch === null) return 0;
    const due = (await this.storage.read((r) => r.services.listPublished())).filter(
      (s) => s.spec.expose?.source === 'platform-ca' && s.spec.expose.notAfter - now < (this.ctx.lifetimeSeconds * 1000) / 3,
    );
    let renewed = 0;
    for (const svc of due) {
      const old = svc.spec.expose!;
      const next = { port: old.port, ...(await issueEndpointCertificate(old.hostname, this.ctx)) };
      const done = await this.storage.transaction(async (u) => {
        await fenced(u, this.leader);
        if (!(await u.services.updateExpose(svc.tenant, svc.environment, svc.name, next))) return false;
        u.emit({ tenant: svc.tenant, type: 'service.certificate-renewed', environment: svc.environment, service: svc.name, message: `${old.hostname}, until ${new Date(next.notAfter).toISOString()}`, time: now });
        return true;
      });
      if (done) {
        renewed++;
        this.log.info({ tenant: svc.tenant, environment: svc.environment, service: svc.name, hostname: old.hostname, notAfter: new Date(next.notAfter).toISOString() }, 'endpoint certificate renewed');
      }
    }
    return renewed;
  }
}

/** What GET shows: never the key, nor the certificate (only where it came from and its expiry). */
export function exposeView(e: ExposeSpec | undefined): Expose | undefined {
  if (!e) return undefined;
  return { port: e.port, hostname: e.hostname, certificatePem: '', privateKeyPem: '', certificateSource: e.source, certificateExpireTime: new Date(e.notAfter) };
}

/** What the hosts that run the service are sent: the key opened. */
export function publishedEndpoint(e: ExposeSpec, sealingKey: Buffer): PublishedEndpoint {
  return { hostname: e.hostname, port: e.port, certificatePem: e.certificatePem, privateKeyPem: openSealedSecret(e.keySealed, sealingKey, sealPurpose(e.hostname)) };
}

const sealPurpose = (hostname: string) => `podium endpoint key ${hostname}`;
