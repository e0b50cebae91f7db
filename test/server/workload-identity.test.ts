/**
 * Workload identities (issue 8): each instance gets a short-lived certificate whose only URI SAN is
 * spiffe://<td>/tenant/<t>/env/<e>/service/<s>, signed by the Pod API for a key made on the host
 * the instance was awarded to, renewed before it expires, and refused to any other host.
 *
 * The real Pod API over real mutual TLS; real agents (real Join, the real AgentService) on a
 * scripted engine, and scripted agents where a test needs a host that asks for what is not its own.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createKeyAndCsr, workloadHostOf } from '../../certs';
import type { WorkloadCertificate } from '../../gen/podium/v1/agent';
import { InstanceState } from '../../gen/podium/v1/resources';
import { call, PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { RealAgents } from '../support/real-agents';
import type { ScriptedAgent } from '../support/scripted-agent';
import { FakeEngine } from '../agent/fake-engine';

const SPIFFE_WEB = 'spiffe://podium.local/tenant/acme/env/prod/service/web';

/** A scripted host asks for a certificate for `instanceId` with a fresh key, and gets the answer. */
async function ask(agent: ScriptedAgent, instanceId: string, csrPem?: string): Promise<WorkloadCertificate & { keyPem: string }> {
  const made = await createKeyAndCsr('x');
  const seen = agent.messages('workloadCertificate').length;
  agent.send({ kind: { $case: 'workloadCertificateRequest', workloadCertificateRequest: { instanceId, csrPem: csrPem ?? made.csrPem } } });
  const answer = await poll('the answer', () => agent.messages('workloadCertificate')[seen]?.workloadCertificate, 5_000, 10);
  return { ...answer, keyPem: made.keyPem };
}

function uriSans(certPem: string): string[] {
  return (new X509Certificate(certPem).subjectAltName ?? '').split(', ').filter((n) => n.startsWith('URI:')).map((n) => n.slice(4));
}

describe('workload identities', function () {
  this.timeout(60_000);

  describe('asked for by hosts over the agent stream', () => {
    let h: PodApiHarness;
    let d: PodApiDriver;

    beforeEach(async () => {
      h = await startPodApiHarness({ workloadCertLifetimeSeconds: 600 });
      d = new PodApiDriver(h);
      await d.createEnvironment('acme', 'prod');
    });
    afterEach(async () => {
      d.closeAgents();
      await h.close();
    });

    it('signs the holder\'s CSR with the service\'s identity only, for its key, client and server alike', async () => {
      const agents = await d.fleet(2);
      await d.createService('acme', 'prod', { name: 'web' });
      const [inst] = (await d.running('acme', 'prod', 'web', 1)).instances;
      const holder = agents.find((a) => a.hostId === inst!.host)!;
      const got = await ask(holder, inst!.id);
      assert.equal(got.refused, '');
      assert.equal(got.spiffeId, SPIFFE_WEB);
      const cert = new X509Certificate(got.certificatePem);
      assert.deepEqual(uriSans(got.certificatePem), [SPIFFE_WEB]);
      assert.ok(cert.verify(new X509Certificate(h.server.ca.caCertPem).publicKey), 'signed by the Pod API\'s CA');
      assert.ok(cert.checkPrivateKey(createPrivateKey(got.keyPem)), 'for the key the host made');
      assert.equal(workloadHostOf(cert.subject), holder.hostId, 'naming the host it is issued to');
      assert.ok(!cert.ca);
      const lifetime = (Date.parse(cert.validTo) - Date.now()) / 1000;
      assert.ok(lifetime > 590 && lifetime <= 601, `lives ${lifetime} s`);
      assert.deepEqual(cert.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'serverAuth and clientAuth');
      assert.equal(await d.metric('podium_workload_certificates_total', { outcome: 'issued' }), 1);
    });

    it('refuses a host the instance is not awarded to, a bad CSR, an instance failed or deleted, naming why', async () => {
      const agents = await d.fleet(2);
      await d.createService('acme', 'prod', { name: 'web' });
      const [inst] = (await d.running('acme', 'prod', 'web', 1)).instances;
      const holder = agents.find((a) => a.hostId === inst!.host)!;
      const other = agents.find((a) => a.hostId !== inst!.host)!;

      const stolen = await ask(other, inst!.id);
      assert.equal(stolen.certificatePem, '');
      assert.match(stolen.refused, /not awarded to this host/);

      const forged = await ask(holder, inst!.id, '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n');
      assert.equal(forged.certificatePem, '');
      assert.match(forged.refused, /bad CSR/);

      // Its container exited: the failed row stays on this host, but it runs nothing to speak for.
      holder.report(inst!.id, InstanceState.INSTANCE_STATE_FAILED, 'exit 1');
      await poll('the instance failed', async () => (await d.getService('acme', 'prod', 'web')).instances.some((i) => i.id === inst!.id && i.state === InstanceState.INSTANCE_STATE_FAILED));
      const failed = await ask(holder, inst!.id);
      assert.equal(failed.certificatePem, '');
      assert.match(failed.refused, /is failed, not starting or running/);

      await d.deleteService('acme', 'prod', 'web');
      const after = await ask(holder, inst!.id);
      assert.equal(after.certificatePem, '');
      assert.match(after.refused, /not awarded to this host/);
      assert.equal(await d.metric('podium_workload_certificates_total', { outcome: 'refused' }), 4);
      assert.equal(await d.metric('podium_workload_certificates_total', { outcome: 'issued' }), 0);
    });

    it('tells every host of a revoked host within a second, and a host that connects later the whole list', async () => {
      const [a, b] = await d.fleet(2);
      const t0 = Date.now();
      await call(h.operator, 'revokeHost', { host: a!.hostId, reason: 'stolen' });
      const told = await poll('host b told', () => b!.messages('revokedHosts')[0]?.revokedHosts, 5_000, 5);
      const ms = Date.now() - t0;
      process.stdout.write(`      (the other host was told ${ms} ms after RevokeHost was called)\n`);
      assert.ok(ms < 1_000, `told after ${ms} ms`);
      assert.equal(told.hosts.length, 1);
      assert.equal(told.hosts[0]!.host, a!.hostId);
      assert.ok(told.hosts[0]!.revokedAtMs >= t0 - 1 && told.hosts[0]!.revokedAtMs <= Date.now(), 'with when');
      const [c] = await d.fleet(1);
      const list = await poll('the new host told', () => c!.messages('revokedHosts')[0]?.revokedHosts, 5_000, 5);
      assert.deepEqual(list.hosts, told.hosts);
    });
  });

  describe('held by the real agent', () => {
    let h: PodApiHarness;
    let d: PodApiDriver;
    let fleet: RealAgents | undefined;

    before(async () => {
      // 4 s lifetimes: renewed at 50-80 % of what is left when it arrives, i.e. within 2-3.2 s.
      h = await startPodApiHarness({ workloadCertLifetimeSeconds: 4 });
      d = new PodApiDriver(h);
      await d.createEnvironment('acme', 'prod');
      fleet = await RealAgents.start(h, 2, { engineFor: () => new FakeEngine() });
    });
    after(async () => {
      await fleet?.stop();
      await h?.close();
    });

    const holderOf = (hostId: string) => fleet!.agents.find((a) => a.hostId === hostId)!;

    it('gets its instance\'s identity when the award is accepted, renews it with a new key before it lapses, and forgets it when the instance goes', async () => {
      await d.createService('acme', 'prod', { name: 'web' });
      const [inst] = (await d.running('acme', 'prod', 'web', 1)).instances;
      const identities = holderOf(inst!.host).core.identities;
      const first = await poll('an identity', () => identities.get(inst!.id), 10_000, 20);
      assert.equal(first.spiffeId, SPIFFE_WEB);
      assert.deepEqual(uriSans(first.certPem), [SPIFFE_WEB]);
      assert.ok(new X509Certificate(first.certPem).checkPrivateKey(createPrivateKey(first.keyPem)));
      // The other host holds nothing for it.
      const other = fleet!.agents.find((a) => a.hostId !== inst!.host)!;
      assert.equal(other.core.identities.get(inst!.id), undefined);

      // The authority backdates notBefore by a minute (clock skew): counted from there, a renewal
      // of a 4 s certificate would fall half a minute after it lapsed.
      const renewed = await poll('a renewed identity', () => {
        const now = identities.get(inst!.id);
        return now && now.serial !== first.serial ? now : undefined;
      }, 10_000, 50);
      assert.notEqual(renewed.keyPem, first.keyPem, 'a new key with each renewal');
      assert.ok(renewed.notAfter > first.notAfter);
      assert.ok(Date.now() < first.notAfter, 'renewed before the first one lapsed');

      await d.deleteService('acme', 'prod', 'web');
      await poll('the identity forgotten', () => identities.get(inst!.id) === undefined && identities.size === 0, 10_000, 20);
    });
  });
});
