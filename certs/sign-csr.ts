import { isIP } from 'node:net';
import type { Authority } from './authority';
import { isRole, type Identity } from './identity';
import { importSigningKey } from './private-key';
import { randomSerialNumber } from './random-serial-number';
import { spiffeIdFor, workloadSpiffeId } from './spiffe-id';
import { ECDSA_SHA256, webcrypto, x509 } from './x509';

/** An EC CSR is well under 1 KiB; anything this large is not one of ours. */
const MAX_CSR_BYTES = 16 * 1024;
const CLOCK_SKEW_MS = 60_000;
/** A hostname: dot-separated labels of 1-63 letters, digits and inner hyphens; 253 characters at most. */
const DNS_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DNS_NAME = new RegExp(`^(?=.{1,253}$)${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

/**
 * Signs a CSR after verifying its self-signature, and returns the certificate as PEM.
 *
 * Guarantees: the certificate carries ONLY `identity` as its URI SAN (never a name, extension or
 * attribute the CSR asks for; only the CSR's public key is used), CN = identity.name, a random
 * 128-bit serial, notBefore = now − 60 s (clock skew), notAfter = now + lifetimeSeconds,
 * basicConstraints CA:false, keyUsage digitalSignature, extKeyUsage clientAuth (+ serverAuth when
 * role is 'server'), and for role 'server' the DNS and IP SANs of `serverNames`.
 *
 * Throws Error with a clear message when: the CSR is not exactly one PEM "CERTIFICATE REQUEST",
 * is larger than 16 KiB, its key is not ECDSA P-256, or its self-signature does not verify;
 * `identity.spiffeId` is not `spiffeIdFor(ca.trustDomain, identity.role, identity.name)`;
 * `lifetimeSeconds` is not a positive finite number; `serverNames` is non-empty for a role other
 * than 'server' or holds an invalid DNS name or IP address; the CA key cannot be read.
 *
 * The caller (the Pod API) must have decided that the requester may hold `identity`: this function
 * checks the request, not the requester.
 */
export async function signCsr(
  ca: Authority,
  csrPem: string,
  identity: Identity,
  lifetimeSeconds: number,
  serverNames?: { dns: string[]; ips: string[] },
): Promise<string> {
  const spiffeId = checkIdentity(ca, identity);
  checkLifetime(lifetimeSeconds);
  const sanNames = checkServerNames(identity, serverNames);
  const usages = [x509.ExtendedKeyUsage.clientAuth as string];
  if (identity.role === 'server') usages.push(x509.ExtendedKeyUsage.serverAuth);
  return issue(ca, csrPem, { commonName: identity.name, spiffeId, sanNames, usages, lifetimeSeconds });
}

/** The service a workload certificate speaks for. */
export interface Workload {
  tenant: string;
  environment: string;
  service: string;
}

/**
 * Signs a CSR for a workload identity, `spiffe://<td>/tenant/<t>/env/<e>/service/<s>`, the one URI
 * SAN of the certificate (CN `<service>.<environment>.<tenant>`, informational; OU the host it is
 * issued to, which a host's revocation makes the proxies refuse). It is both a
 * client and a server certificate: the hosts' proxies present the caller's to the proxy they call,
 * and the target's to the proxy calling them. The same guarantees and refusals as signCsr; the
 * caller (the Pod API) must have decided that the requesting host runs an instance of `workload`.
 */
export async function signWorkloadCsr(ca: Authority, csrPem: string, workload: Workload, hostId: string, lifetimeSeconds: number): Promise<string> {
  const spiffeId = workloadSpiffeId(ca.trustDomain, workload.tenant, workload.environment, workload.service);
  checkLifetime(lifetimeSeconds);
  if (!WORKLOAD_HOST.test(hostId)) throw new Error(`signWorkloadCsr: host ${JSON.stringify(hostId)} is not a host name`);
  const commonName = `${workload.service}.${workload.environment}.${workload.tenant}`.slice(0, 64);
  const usages = [x509.ExtendedKeyUsage.clientAuth as string, x509.ExtendedKeyUsage.serverAuth as string];
  return issue(ca, csrPem, { commonName, organizationalUnit: hostId, spiffeId, sanNames: [], usages, lifetimeSeconds });
}

const WORKLOAD_HOST = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * Signs a CSR for a published endpoint: a TLS server certificate for `hostname` (its one DNS SAN,
 * and its CN), with no SPIFFE identity, so that it is never taken for a workload or a host.
 */
export async function signEndpointCsr(ca: Authority, csrPem: string, hostname: string, lifetimeSeconds: number): Promise<string> {
  checkLifetime(lifetimeSeconds);
  if (!/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(hostname)) {
    throw new Error(`signEndpointCsr: ${JSON.stringify(hostname)} is not a DNS name`);
  }
  return issue(ca, csrPem, { commonName: hostname, sanNames: [{ type: 'dns', value: hostname }], usages: [x509.ExtendedKeyUsage.serverAuth as string], lifetimeSeconds });
}

/**
 * The host a workload certificate was issued to (its subject's OU), from node's reading of the
 * subject: an X509Certificate's `subject` text ("CN=…\nOU=…") or a PeerCertificate's object.
 * Undefined when there is none, or more than one.
 */
export function workloadHostOf(subject: string | { OU?: string | string[] } | undefined): string | undefined {
  if (subject === undefined) return undefined;
  const values = typeof subject === 'string' ? subject.split('\n').filter((l) => l.startsWith('OU=')).map((l) => l.slice(3)) : ([] as string[]).concat(subject.OU ?? []);
  return values.length === 1 && WORKLOAD_HOST.test(values[0]!) ? values[0] : undefined;
}

function checkLifetime(lifetimeSeconds: number): void {
  if (typeof lifetimeSeconds !== 'number' || !Number.isFinite(lifetimeSeconds) || lifetimeSeconds <= 0) {
    throw new Error(`signCsr: lifetimeSeconds must be a positive number, got ${String(lifetimeSeconds)}`);
  }
}

interface Issue {
  commonName: string;
  /** The host a workload certificate belongs to. */
  organizationalUnit?: string;
  /** The one URI SAN; none for an endpoint's certificate. */
  spiffeId?: string;
  sanNames: x509.JsonGeneralName[];
  usages: string[];
  lifetimeSeconds: number;
}

async function issue(ca: Authority, csrPem: string, what: Issue): Promise<string> {
  const csr = await readCsr(csrPem);
  const { issuer, signingKey, authorityKeyId } = await signerOf(ca);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: what.organizationalUnit === undefined ? [{ CN: [what.commonName] }] : [{ CN: [what.commonName] }, { OU: [what.organizationalUnit] }],
    issuer,
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + what.lifetimeSeconds * 1000),
    publicKey: csr.publicKey,
    signingKey,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(what.usages),
      new x509.SubjectAlternativeNameExtension([...(what.spiffeId === undefined ? [] : [{ type: 'url' as const, value: what.spiffeId }]), ...what.sanNames]),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
      authorityKeyId,
    ],
  });
  return cert.toString('pem');
}

/** What signing takes of the CA, read once per Authority: parsing it and importing its key took
 * two thirds of a signature (3.5 and 3.2 ms of 12.8), paid by every Join and Renew. */
interface Signer {
  issuer: x509.Name;
  signingKey: webcrypto.CryptoKey;
  authorityKeyId: x509.AuthorityKeyIdentifierExtension;
}

const signers = new WeakMap<Authority, Promise<Signer>>();

function signerOf(ca: Authority): Promise<Signer> {
  let signer = signers.get(ca);
  if (!signer) {
    signer = readSigner(ca);
    signers.set(ca, signer);
  }
  return signer;
}

async function readSigner(ca: Authority): Promise<Signer> {
  const caCert = new x509.X509Certificate(ca.caCertPem);
  const signingKey = await importSigningKey(ca.caKeyPem, 'the CA key');
  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const authorityKeyId =
    caKeyId !== undefined
      ? new x509.AuthorityKeyIdentifierExtension(caKeyId)
      : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey);
  return { issuer: caCert.subjectName, signingKey, authorityKeyId };
}

function checkIdentity(ca: Authority, identity: Identity): string {
  if (identity === null || typeof identity !== 'object' || !isRole(identity.role)) {
    throw new Error('signCsr: identity must have one of the roles agent, gateway, operator, server');
  }
  const expected = spiffeIdFor(ca.trustDomain, identity.role, identity.name);
  if (identity.spiffeId !== expected) {
    throw new Error(`signCsr: identity.spiffeId must be ${expected} for this role, name and trust domain`);
  }
  return expected;
}

function checkServerNames(
  identity: Identity,
  serverNames: { dns: string[]; ips: string[] } | undefined,
): x509.JsonGeneralName[] {
  const dns = serverNames?.dns ?? [];
  const ips = serverNames?.ips ?? [];
  if (dns.length + ips.length === 0) return [];
  if (identity.role !== 'server') {
    throw new Error(`signCsr: DNS/IP names are only for role 'server', not '${identity.role}'`);
  }
  for (const name of dns) {
    if (typeof name !== 'string' || !DNS_NAME.test(name)) {
      throw new Error(`signCsr: invalid DNS name ${JSON.stringify(String(name).slice(0, 80))}`);
    }
  }
  for (const ip of ips) {
    if (typeof ip !== 'string' || isIP(ip) === 0) {
      throw new Error(`signCsr: invalid IP address ${JSON.stringify(String(ip).slice(0, 80))}`);
    }
  }
  return [
    ...dns.map((value) => ({ type: 'dns' as const, value })),
    ...ips.map((value) => ({ type: 'ip' as const, value })),
  ];
}

async function readCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  if (typeof csrPem !== 'string') throw new Error('bad CSR: not a string');
  if (Buffer.byteLength(csrPem, 'utf8') > MAX_CSR_BYTES) throw new Error(`bad CSR: larger than ${MAX_CSR_BYTES} bytes`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    const blocks = x509.PemConverter.decodeWithHeaders(csrPem);
    if (blocks.length !== 1 || blocks[0]!.type !== 'CERTIFICATE REQUEST') throw new Error('not one CSR block');
    csr = new x509.Pkcs10CertificateRequest(blocks[0]!.rawData);
  } catch {
    throw new Error('bad CSR: not exactly one PEM "CERTIFICATE REQUEST" that parses as PKCS#10');
  }
  const algorithm = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') {
    throw new Error('bad CSR: the key must be ECDSA P-256');
  }
  let verified = false;
  try {
    verified = await csr.verify();
  } catch {
    verified = false;
  }
  if (!verified) throw new Error('bad CSR: its signature does not verify with its own public key');
  return csr;
}
