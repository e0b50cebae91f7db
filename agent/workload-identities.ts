/**
 * The workload identities of the instances this host runs: for each, a key made here (in memory
 * only: never on disk, never inside a container) and the certificate the Pod API signed for it,
 * `spiffe://<td>/tenant/<t>/env/<e>/service/<s>`. The host's proxy speaks for an instance with it.
 *
 * An identity is asked for when an award is accepted and again for each instance a new session
 * keeps (a restarted agent has no key: it makes new ones). It is renewed, with a new key, at a
 * random point between 50 % and 80 % of its lifetime, the current one staying in use until the
 * new one arrives. A request the server refuses, or that a lost session swallowed, is asked again
 * after `retryMs` while the instance is still here. What the server sends is checked before it is
 * used: signed by the CA this agent trusts, for the key this agent made, and a workload identity.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { createKeyAndCsr, renewalTime, uriSansOf } from '../certs';
import type { AgentMessage, WorkloadCertificate } from '../gen/podium/v1/agent';

export interface WorkloadIdentity {
  instanceId: string;
  spiffeId: string;
  keyPem: string;
  certPem: string;
  notBefore: number;
  notAfter: number;
  /** The certificate's serial, hex (as node prints it). */
  serial: string;
}

interface Held {
  current: WorkloadIdentity | null;
  /** The key of the request in flight, with its CSR (resent as it is when a session was lost). */
  asked: { keyPem: string; csrPem: string } | null;
  /** A key is being made for a request. */
  making: boolean;
  timer: NodeJS.Timeout | null;
}

export interface WorkloadIdentitiesOptions {
  /** The CA certificate (PEM) a workload certificate must be signed by. */
  caPem: string;
  /** A refused or unanswered request is asked again after this long. */
  retryMs: number;
  random?: () => number;
  now?: () => number;
}

export class WorkloadIdentities {
  private readonly held = new Map<string, Held>();
  private readonly ca: X509Certificate;
  private readonly random: () => number;
  private readonly now: () => number;
  /** Called with the instance whenever its identity is new or renewed. */
  onChange: (instanceId: string) => void = () => undefined;

  constructor(
    private readonly send: (msg: AgentMessage) => void,
    private readonly opts: WorkloadIdentitiesOptions,
    private readonly log: Logger,
  ) {
    this.ca = new X509Certificate(opts.caPem);
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
  }

  /** The identity an instance holds now, if any (an expired one is none). */
  get(instanceId: string): WorkloadIdentity | undefined {
    const current = this.held.get(instanceId)?.current ?? undefined;
    return current && current.notAfter > this.now() ? current : undefined;
  }

  /** Instances holding an identity or waiting for one. */
  get size(): number {
    return this.held.size;
  }

  /**
   * Makes sure an instance this host runs has an identity or a request for one in flight: asks
   * with a new key when it has neither, asks again (the same CSR) when a request is outstanding
   * (a new session: the old one may have swallowed it). Nothing when its identity is current.
   */
  ensure(instanceId: string): void {
    const h = this.held.get(instanceId);
    if (!h) return void this.ask(instanceId);
    if (h.making) return;
    if (h.asked) return this.sendRequest(instanceId, h.asked.csrPem);
    if (!h.current || h.current.notAfter <= this.now()) void this.ask(instanceId);
  }

  /** The instance is gone from this host: its key and certificate are forgotten, renewal stops. */
  drop(instanceId: string): void {
    const h = this.held.get(instanceId);
    if (!h) return;
    if (h.timer) clearTimeout(h.timer);
    this.held.delete(instanceId);
  }

  stop(): void {
    for (const id of [...this.held.keys()]) this.drop(id);
  }

  /** The server's answer to a request. */
  received(c: WorkloadCertificate): void {
    const h = this.held.get(c.instanceId);
    if (!h || !h.asked) return; // dropped meanwhile, or an answer already taken
    if (c.refused !== '' || c.certificatePem === '') {
      this.log.warn({ instance: c.instanceId, why: c.refused }, 'workload certificate refused; asking again later');
      return this.later(c.instanceId, h, this.opts.retryMs);
    }
    let identity: WorkloadIdentity;
    try {
      identity = this.check(c, h.asked.keyPem);
    } catch (err) {
      this.log.error({ instance: c.instanceId, err: (err as Error).message }, 'workload certificate rejected');
      return this.later(c.instanceId, h, this.opts.retryMs);
    }
    h.current = identity;
    h.asked = null;
    // From now, not from notBefore: the authority backdates that by a minute for clock skew,
    // which on a lifetime of minutes would put the renewal after the end.
    const now = this.now();
    const renewAt = renewalTime(new Date(now), new Date(Math.max(identity.notAfter, now + 1)), this.random).getTime();
    this.later(c.instanceId, h, Math.max(0, renewAt - this.now()));
    this.log.info({ instance: c.instanceId, spiffeId: identity.spiffeId, serial: identity.serial }, 'workload identity');
    this.onChange(c.instanceId);
  }

  private async ask(instanceId: string): Promise<void> {
    let h = this.held.get(instanceId);
    if (!h) {
      h = { current: null, asked: null, making: false, timer: null };
      this.held.set(instanceId, h);
    }
    if (h.making) return;
    h.making = true;
    const { keyPem, csrPem } = await createKeyAndCsr(instanceId.slice(0, 64)).finally(() => (h.making = false));
    if (this.held.get(instanceId) !== h) return; // dropped while the key was made
    h.asked = { keyPem, csrPem };
    this.sendRequest(instanceId, csrPem);
    // Unanswered (the session was lost): asked again, unless an answer arrives first.
    this.later(instanceId, h, this.opts.retryMs);
  }

  private sendRequest(instanceId: string, csrPem: string): void {
    this.send({ kind: { $case: 'workloadCertificateRequest', workloadCertificateRequest: { instanceId, csrPem } } });
  }

  /** After `ms`: renew (a current identity, nothing asked), or ask again (a request unanswered). */
  private later(instanceId: string, h: Held, ms: number): void {
    if (h.timer) clearTimeout(h.timer);
    h.timer = setTimeout(() => {
      h.timer = null;
      if (this.held.get(instanceId) !== h) return;
      if (h.asked) {
        this.sendRequest(instanceId, h.asked.csrPem);
        this.later(instanceId, h, this.opts.retryMs);
      } else {
        void this.ask(instanceId);
      }
    }, Math.min(ms, 2 ** 31 - 1));
    h.timer.unref();
  }

  /** Signed by our CA, for our key, carrying one workload URI: what the proxy may present. */
  private check(c: WorkloadCertificate, keyPem: string): WorkloadIdentity {
    const cert = new X509Certificate(c.certificatePem);
    if (!cert.verify(this.ca.publicKey)) throw new Error('not signed by the CA this agent trusts');
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('not for the key this agent made');
    const uris = uriSansOf(cert.subjectAltName);
    if (uris.length !== 1 || !/^spiffe:\/\/[^/]+\/tenant\/[^/]+\/env\/[^/]+\/service\/[^/]+$/.test(uris[0]!)) {
      throw new Error(`not a workload identity: ${cert.subjectAltName ?? 'no SAN'}`);
    }
    if (uris[0] !== c.spiffeId) throw new Error(`carries ${uris[0]}, not ${c.spiffeId}`);
    return {
      instanceId: c.instanceId,
      spiffeId: uris[0]!,
      keyPem,
      certPem: c.certificatePem,
      notBefore: Date.parse(cert.validFrom),
      notAfter: Date.parse(cert.validTo),
      serial: cert.serialNumber,
    };
  }
}
