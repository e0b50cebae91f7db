/**
 * Workload identities: the certificate an instance's traffic carries through the hosts' mTLS
 * proxies, `spiffe://<td>/tenant/<t>/env/<e>/service/<s>`.
 *
 * The key is made by the agent and never leaves its host; the Pod API signs its CSR only for an
 * instance the store places on the asking host (the host named in the session's certificate,
 * never in the message) while it is starting or running. An instance deleted, re-placed on another
 * host after this one was down, or failed, gets no new certificate here, so what a host holds
 * lapses within one lifetime of it losing the instance. Lifetimes are short (an hour by default)
 * and the agent renews at 50-80 % of each.
 */
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { signWorkloadCsr, workloadSpiffeId, type Authority } from '../certs';
import type { WorkloadCertificate, WorkloadCertificateRequest } from '../gen/podium/v1/agent';
import type { Storage } from './storage';

export class WorkloadCertificates {
  private readonly issued: Counter<'outcome'>;

  constructor(
    private readonly storage: Storage,
    private readonly ca: Authority,
    private readonly lifetimeSeconds: number,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.issued = new Counter({
      name: 'podium_workload_certificates_total',
      help: 'Workload certificate requests from agents, by outcome (issued, refused).',
      labelNames: ['outcome'],
      registers: [registry],
    });
  }

  /** The answer to `hostId`'s request: a certificate, or why not. Never throws. */
  async answer(hostId: string, req: WorkloadCertificateRequest): Promise<WorkloadCertificate> {
    const refuse = (why: string): WorkloadCertificate => {
      this.issued.inc({ outcome: 'refused' });
      this.log.warn({ host: hostId, instance: req.instanceId, why }, 'workload certificate refused');
      return { instanceId: req.instanceId, certificatePem: '', spiffeId: '', refused: why };
    };
    const inst = await this.storage.read((r) => r.instances.get(req.instanceId));
    if (!inst || inst.host !== hostId) return refuse('the instance is not awarded to this host');
    if (inst.state !== 'starting' && inst.state !== 'running') return refuse(`the instance is ${inst.state}, not starting or running`);
    const workload = { tenant: inst.tenant, environment: inst.environment, service: inst.service };
    let certificatePem: string;
    try {
      certificatePem = await signWorkloadCsr(this.ca, req.csrPem, workload, hostId, this.lifetimeSeconds);
    } catch (err) {
      return refuse((err as Error).message);
    }
    this.issued.inc({ outcome: 'issued' });
    const spiffeId = workloadSpiffeId(this.ca.trustDomain, workload.tenant, workload.environment, workload.service);
    this.log.debug({ host: hostId, instance: inst.id, spiffeId }, 'workload certificate issued');
    return { instanceId: inst.id, certificatePem, spiffeId, refused: '' };
  }
}
