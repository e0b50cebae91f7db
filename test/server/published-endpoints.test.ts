/**
 * Published endpoints (issue 8): `expose: {port, hostname}` with a certificate of the Pod API's CA
 * for names under the tenant's own domain, or an uploaded one for any name; the key stored sealed,
 * never returned; a name one service's in the whole platform; the certificate and key pushed only
 * in the service's own environment's registry snapshot.
 *
 * The real Pod API over real mutual TLS on a real database (SQLite, or PostgreSQL with
 * PODIUM_TEST_DATABASE=postgres), scripted agents that advertise a proxy.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { createKeyAndCsr, signEndpointCsr } from '../../certs';
import type { EnvironmentRegistry } from '../../gen/podium/v1/agent';
import { PortProtocol, type Service } from '../../gen/podium/v1/resources';
import { testAuthority } from '../certs/helpers';
import { PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import type { ScriptedAgent } from '../support/scripted-agent';

const grpcError = (code: status, message: RegExp) => (e: ServiceError) => {
  assert.equal(e.code, code, e.details);
  assert.match(e.details, message);
  return true;
};
const http = [{ name: 'http', port: 8080, protocol: PortProtocol.PORT_PROTOCOL_HTTP }];

function latest(agent: ScriptedAgent, tenant: string, environment: string): EnvironmentRegistry | undefined {
  let best: EnvironmentRegistry | undefined;
  for (const { registry } of agent.messages('registry')) {
    if (registry.tenant === tenant && registry.environment === environment && (!best || registry.version > best.version)) best = registry;
  }
  return best;
}

/** A certificate and key for `hostname` from a CA of the customer's own (not the platform's). */
async function uploaded(hostname: string): Promise<{ certificatePem: string; privateKeyPem: string }> {
  const theirs = await testAuthority('customer.example');
  const { keyPem, csrPem } = await createKeyAndCsr(hostname);
  return { certificatePem: await signEndpointCsr(theirs, csrPem, hostname, 3600), privateKeyPem: keyPem };
}

describe('published endpoints', function () {
  this.timeout(60_000);
  let h: PodApiHarness;
  let d: PodApiDriver;
  let agents: ScriptedAgent[];

  beforeEach(async () => {
    h = await startPodApiHarness({ publicDomain: 'example' });
    d = new PodApiDriver(h);
    agents = [];
    for (let i = 0; i < 2; i++) agents.push(...(await d.fleet(1, { meshAddress: `10.99.0.${i + 1}:7946` })));
    await d.createEnvironment('acme', 'prod');
    await d.createEnvironment('acme', 'staging');
    await d.createEnvironment('globex', 'prod');
  });
  afterEach(async () => {
    d.closeAgents();
    await h.close();
  });

  it('signs a certificate for the default name with the platform\'s CA, shows no key, stores it sealed, and sends it to the hosts that run the service', async () => {
    const made = await d.createService('acme', 'prod', { name: 'web', ports: http, expose: { port: 8080, hostname: '', certificatePem: '', privateKeyPem: '', certificateSource: '', certificateExpireTime: undefined } });
    const got = await d.getService('acme', 'prod', 'web');
    for (const view of [made, got]) {
      assert.equal(view.expose?.hostname, 'web.prod.acme.example');
      assert.equal(view.expose?.port, 8080);
      assert.equal(view.expose?.certificateSource, 'platform-ca');
      assert.equal(view.expose?.privateKeyPem, '', 'never returned');
      assert.equal(view.expose?.certificatePem, '');
      assert.ok(view.expose!.certificateExpireTime!.getTime() > Date.now() + 80 * 24 * 3600_000, 'lives about 90 days');
    }
    const stored = await h.server.storage.read((r) => r.services.get('acme', 'prod', 'web'));
    assert.doesNotMatch(JSON.stringify(stored), /PRIVATE KEY/, 'no key in the clear in the database');
    assert.match(stored!.spec.expose!.keySealed, /^PDMS1\./);

    const [inst] = (await d.running('acme', 'prod', 'web', 1)).instances;
    const holder = agents.find((a) => a.hostId === inst!.host)!;
    const published = await poll('the snapshot with the endpoint', () => latest(holder, 'acme', 'prod')?.services.find((s) => s.name === 'web')?.published, 2_000, 10);
    const cert = new X509Certificate(published.certificatePem);
    assert.equal(cert.checkHost('web.prod.acme.example'), 'web.prod.acme.example');
    assert.ok(cert.verify(new X509Certificate(h.server.ca.caCertPem).publicKey), 'signed by the platform\'s CA');
    assert.ok(cert.checkPrivateKey(createPrivateKey(published.privateKeyPem)), 'with its key');
    assert.equal(cert.subjectAltName, 'DNS:web.prod.acme.example', 'no SPIFFE identity: never a workload\'s');
    assert.equal(published.port, 8080);
  });

  it('refuses a bad expose with the field named, and stores nothing', async () => {
    const expose = (e: Partial<NonNullable<Service['expose']>>) => ({ port: 8080, hostname: '', certificatePem: '', privateKeyPem: '', certificateSource: '', certificateExpireTime: undefined, ...e });
    const theirs = await uploaded('shop.acme-corp.com');
    const cases: Array<[string, Partial<Service>, RegExp]> = [
      ['a port the service does not serve', { ports: http, expose: expose({ port: 9090 }) }, /expose\.port: must be one of the service's ports \(8080\)/],
      ['a name that is not a DNS name', { ports: http, expose: expose({ hostname: 'Web_Prod' }) }, /expose\.hostname: must be a lower-case DNS name/],
      ['another tenant\'s name for the CA', { ports: http, expose: expose({ hostname: 'web.prod.globex.example' }) }, /expose\.hostname: must end in "\.acme\.example"/],
      ['a certificate without its key', { ports: http, expose: expose({ hostname: 'shop.acme-corp.com', certificatePem: theirs.certificatePem }) }, /expose\.privateKeyPem: is required with the other/],
      ['a certificate of another name', { ports: http, expose: expose({ hostname: 'www.acme-corp.com', ...theirs }) }, /expose\.certificatePem: does not name www\.acme-corp\.com/],
      ['a key that is not the certificate\'s', { ports: http, expose: expose({ hostname: 'shop.acme-corp.com', certificatePem: theirs.certificatePem, privateKeyPem: (await createKeyAndCsr('x')).keyPem }) }, /expose\.privateKeyPem: is not the certificate's key/],
      ['no PEM at all', { ports: http, expose: expose({ hostname: 'shop.acme-corp.com', certificatePem: 'hello', privateKeyPem: 'world' }) }, /expose\.certificatePem: is not a PEM certificate/],
    ];
    for (const [what, spec, message] of cases) {
      await assert.rejects(d.createService('acme', 'prod', { name: 'web', ...spec }), grpcError(status.INVALID_ARGUMENT, message), what);
    }
    assert.equal((await h.server.storage.read((r) => r.services.list('acme', 'prod'))).length, 0);
  });

  it('takes an uploaded certificate for any name, and gives a name to one service in the whole platform', async () => {
    const theirs = await uploaded('shop.acme-corp.com');
    const svc = (name: string) => ({ name, ports: http, expose: { port: 8080, hostname: 'shop.acme-corp.com', ...theirs, certificateSource: '', certificateExpireTime: undefined } });
    const made = await d.createService('acme', 'prod', svc('shop'));
    assert.equal(made.expose?.certificateSource, 'uploaded');
    assert.equal(made.expose?.privateKeyPem, '');
    // Another tenant (with the same certificate, say) cannot take the name, nor another service.
    await assert.rejects(d.createService('globex', 'prod', svc('shop')), grpcError(status.ALREADY_EXISTS, /shop\.acme-corp\.com is already published/));
    await assert.rejects(d.createService('acme', 'staging', svc('shop2')), grpcError(status.ALREADY_EXISTS, /already published/));
    assert.equal((await h.server.storage.read((r) => r.services.list('globex', 'prod'))).length, 0);
    // Free again once the service is deleted.
    await d.deleteService('acme', 'prod', 'shop');
    assert.equal((await d.createService('globex', 'prod', svc('shop'))).expose?.hostname, 'shop.acme-corp.com');
  });

  it('never sends the key in another environment\'s snapshot that imports the service', async () => {
    await d.createService('acme', 'prod', { name: 'web', ports: http, allow: [{ environment: 'staging' }], expose: { port: 8080, hostname: '', certificatePem: '', privateKeyPem: '', certificateSource: '', certificateExpireTime: undefined } });
    await d.createService('acme', 'staging', { name: 'client', ports: [{ name: 'tcp', port: 9000, protocol: PortProtocol.PORT_PROTOCOL_TCP }] });
    const [client] = (await d.running('acme', 'staging', 'client', 1)).instances;
    await d.running('acme', 'prod', 'web', 1);
    const host = agents.find((a) => a.hostId === client!.host)!;
    const imported = await poll('staging\'s import of web', () => latest(host, 'acme', 'staging')?.services.find((s) => s.name === 'web' && s.endpoints.length === 1), 2_000, 10);
    assert.equal(imported.environment, 'prod');
    assert.equal(imported.published, undefined);
  });

  describe('renewal', () => {
    let hr: PodApiHarness;
    let dr: PodApiDriver;
    before(async () => {
      // Certificates of 6 s, renewed with a third left: within 4 s of issue.
      hr = await startPodApiHarness({ publicDomain: 'example', endpointCertLifetimeSeconds: 6, endpointRenewCheckMs: 200 });
      dr = new PodApiDriver(hr);
      await dr.createEnvironment('acme', 'prod');
    });
    after(async () => {
      dr.closeAgents();
      await hr.close();
    });

    it('renews the CA\'s certificate with a new key before it lapses, and sends it to the hosts that run the service', async () => {
      const [agent] = await dr.fleet(1, { meshAddress: '10.99.0.9:7946' });
      await dr.createService('acme', 'prod', { name: 'web', ports: http, expose: { port: 8080, hostname: '', certificatePem: '', privateKeyPem: '', certificateSource: '', certificateExpireTime: undefined } });
      await dr.running('acme', 'prod', 'web', 1);
      const sent = () => agent!.messages('registry').map((m) => m.registry.services.find((x) => x.name === 'web')?.published).filter((p) => p !== undefined);
      const first = await poll('the first certificate', () => sent()[0], 2_000, 10);
      const renewed = await poll('a renewed certificate', () => sent().find((p) => p.certificatePem !== first.certificatePem), 8_000, 20);
      const seenAt = Date.now();
      const [a, b] = [new X509Certificate(first.certificatePem), new X509Certificate(renewed.certificatePem)];
      assert.ok(Date.parse(b.validTo) > Date.parse(a.validTo), 'lives longer');
      assert.ok(seenAt < Date.parse(a.validTo), `the host had the new one ${Date.parse(a.validTo) - seenAt} ms before the old one lapsed`);
      assert.notEqual(renewed.privateKeyPem, first.privateKeyPem, 'with a new key');
      assert.ok(b.checkPrivateKey(createPrivateKey(renewed.privateKeyPem)));
      assert.ok((await dr.getService('acme', 'prod', 'web')).expose!.certificateExpireTime!.getTime() >= Date.parse(b.validTo), 'GET shows the renewed expiry');
    });
  });
});
