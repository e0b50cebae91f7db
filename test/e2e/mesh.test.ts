/**
 * The tenant mesh end to end (issue 8), on the test bed: three hosts, each a network namespace
 * with its own Docker engine and its own `podium agent` process running the host's proxy and edge
 * port; the Pod API and the gateway in the root namespace; real TLS everywhere; customers drive it
 * through REST. One cluster is shared by the file and the tests build on each other, in order.
 *
 *   acme/prod:     api (2 HA replicas, httpd answering "api-<container>"), web (2 HA replicas,
 *                  published as web.prod.acme.example), reports (allows staging)
 *   acme/staging:  probe, then probe2 (made after reports allowed staging)
 *   globex/prod:   spy (one replica per host)
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import { Metadata } from '@grpc/grpc-js';
import { createKeyAndCsr, signWorkloadCsr, type Authority } from '../../certs';
import { targetServerName } from '../../agent/mesh/proxy';
import { testAuthority } from '../certs/helpers';
import { Cluster, EDGE_PORT } from '../support/cluster';
import { notTls, tcpFlows } from '../support/pcap';
import { poll } from '../support/poll';

const run = promisify(execFile);
const IMAGE = 'podium/busybox:latest';
const resources = { cpuMillis: 50, memoryMib: 16 };
/** httpd on `port` answering `<text>-<container hostname>`. */
const httpd = (text: string, port: number) => ['sh', '-c', `mkdir -p /tmp/www && echo ${text}-$(hostname) > /tmp/www/index.html && exec httpd -f -p ${port} -h /tmp/www`];
/** An HTTP/1.0 GET from inside a container (busybox's nc: its static wget crashes in this image). */
const get = (host: string, port: string | number) => `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${port}`;

interface Placed {
  id: string;
  host: string;
  containerId: string;
}

describe('the tenant mesh on the test bed (3 hosts, 3 engines, real TLS)', function () {
  this.timeout(15 * 60_000);
  const cluster = new Cluster({ hostTtl: '5s', heartbeat: '500ms', mesh: true });
  const tmp = mkdtempSync(join(tmpdir(), 'podium-mesh-e2e-'));
  let api: Placed[] = [];
  let web: Placed[] = [];
  /** The web replica on the host without api. */
  let caller: Placed;
  let apiHost = '';

  const rest = (method: string, path: string, body?: unknown, token?: string) => cluster.rest(method, path, body, undefined, token);
  const create = async (environment: string, service: Record<string, unknown>, token?: string) => {
    const res = await rest('POST', `/v1/environments/${environment}/services`, service, token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  const running = (environment: string, name: string, n: number, token?: string): Promise<Placed[]> =>
    poll(`${n} running ${name}`, async () => {
      const { body } = await rest('GET', `/v1/environments/${environment}/services/${name}`, undefined, token);
      const up = (body?.instances ?? []).filter((i: any) => i.state === 'INSTANCE_STATE_RUNNING' && i.containerId);
      return up.length === n ? up.map((i: any) => ({ id: i.id, host: i.host, containerId: i.containerId })) : undefined;
    }, 90_000, 100);
  /** `docker exec` on the engine of the container's own host: what the container sees. */
  const inside = async (p: Placed, script: string): Promise<string> => {
    try {
      const { stdout } = await run('docker', ['-H', `unix://${cluster.placeOf(p.host).dockerSocket}`, 'exec', p.containerId, 'sh', '-c', script], { timeout: 20_000 });
      return stdout;
    } catch (err) {
      return String((err as { stdout?: string }).stdout ?? '');
    }
  };
  const envOf = async (p: Placed, name: string) => (await inside(p, `echo $${name}`)).trim();
  const ipOf = async (p: Placed): Promise<string> => {
    const { stdout } = await run('docker', ['-H', `unix://${cluster.placeOf(p.host).dockerSocket}`, 'inspect', p.containerId]);
    return Object.values(JSON.parse(stdout)[0].NetworkSettings.Networks as Record<string, { IPAddress: string }>)[0]!.IPAddress;
  };
  /** An agent's log lines (pino JSON) after `since`, with the message given. */
  const logLines = (host: string, msg: string, since = 0): any[] =>
    cluster
      .log(host)
      .split('\n')
      .filter((l) => l.includes(msg))
      .map((l) => JSON.parse(l))
      .filter((l) => l.time >= since);
  const meshPortOf = (host: string): number => logLines(host, 'mesh proxy listening')[0]!.port;
  const addressOf = (host: string) => cluster.placeOf(host).address;

  before(async () => {
    await cluster.start();
    for (const [env, token] of [['prod', undefined], ['staging', undefined], ['prod', cluster.globexToken]] as const) {
      const res = await rest('POST', '/v1/environments', { name: env }, token);
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
  });
  after(async () => {
    await cluster.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('carries web\'s request to api on another host through both proxies, and the capture between the hosts is TLS only', async () => {
    await create('prod', { name: 'api', image: IMAGE, command: httpd('api', 8080), replicas: 2, ha: true, resources, ports: [{ name: 'http', port: 8080, protocol: 'PORT_PROTOCOL_HTTP' }] });
    api = await running('prod', 'api', 2);
    await create('prod', {
      name: 'web', image: IMAGE, command: httpd('web', 8081), replicas: 2, ha: true, resources,
      ports: [{ name: 'http', port: 8081, protocol: 'PORT_PROTOCOL_HTTP' }], expose: { port: 8081 },
    });
    web = await running('prod', 'web', 2);
    const apiHosts = new Set(api.map((i) => i.host));
    caller = web.find((w) => !apiHosts.has(w.host))!;
    assert.ok(caller, `a web replica on the host without api (api on ${[...apiHosts]}, web on ${web.map((w) => w.host)})`);
    apiHost = await envOf(caller, 'API_HOST');
    assert.match(apiHost, /^\d+\.\d+\.\d+\.\d+$/);
    assert.equal(await envOf(caller, 'API_PORT'), '8080');

    const pcap = join(tmp, 'between-hosts.pcap');
    const subnet = cluster.testbed.subnet;
    const tcpdump: ChildProcess = spawn('tcpdump', ['-i', 'any', '-U', '-s', '0', '-w', pcap, `tcp and src net ${subnet} and dst net ${subnet} and not host ${cluster.bridgeAddress}`], { stdio: 'ignore' });
    try {
      await poll('tcpdump capturing', () => { try { return readFileSync(pcap).length >= 24; } catch { return false; } }, 10_000, 50);
      const answers = new Set<string>();
      await poll('api through the mesh', async () => (await inside(caller, get('$API_HOST', '$API_PORT'))).includes('api-'), 20_000, 250);
      for (let i = 0; i < 6; i++) {
        const got = await inside(caller, get('$API_HOST', '$API_PORT'));
        assert.match(got, /^HTTP\/1\.[01] 200/);
        answers.add(/api-(\w+)/.exec(got)![1]!);
      }
      assert.equal(answers.size, 2, `both replicas answered: ${[...answers]}`);
    } finally {
      tcpdump.kill('SIGINT');
      await new Promise((r) => tcpdump.once('exit', r));
    }
    const flows = tcpFlows(pcap);
    const hostAddresses = new Set(cluster.testbed.hosts.map((h) => h.address));
    const between = flows.filter((f) => hostAddresses.has(f.src) && hostAddresses.has(f.dst));
    assert.ok(between.length >= 2, `flows between the hosts were captured: ${flows.map((f) => f.key)}`);
    for (const f of between) {
      assert.equal(notTls(f.payload), null, `${f.key} is TLS records only`);
      assert.ok(!f.payload.includes('GET /') && !f.payload.includes('api-'), `${f.key} carries nothing in the clear`);
    }
    // Containers of one network on one host do not reach each other directly either: only through
    // the proxy, which knows who calls.
    const besideApi = web.find((w) => apiHosts.has(w.host))!;
    const apiThere = api.find((a) => a.host === besideApi.host)!;
    assert.doesNotMatch(await inside(besideApi, get(await ipOf(apiThere), 8080)), /api-/, 'no direct traffic within the environment\'s network');
    assert.match(await inside(besideApi, get('$API_HOST', '$API_PORT')), /api-/);
    const meshPorts = new Set(cluster.hosts.map(meshPortOf));
    assert.ok(between.every((f) => meshPorts.has(f.srcPort) || meshPorts.has(f.dstPort)), 'every flow between hosts is to a host proxy');
    process.stdout.write(`      (${between.length} flows between the hosts, ${between.reduce((n, f) => n + f.payload.length, 0)} bytes, all TLS)\n`);
  });

  it('lets tenant B reach neither the endpoint web was given, nor api\'s containers, nor a host proxy', async () => {
    await create('prod', { name: 'spy', image: IMAGE, command: ['sleep', '3600'], replicas: 3, ha: true, resources }, cluster.globexToken);
    const spies = await running('prod', 'spy', 3, cluster.globexToken);
    const besideCaller = spies.find((s) => s.host === caller.host)!;
    const since = Date.now();
    // The endpoint on web's own host (its network's gateway), reachable as an address from B's network.
    assert.doesNotMatch(await inside(besideCaller, get(apiHost, 8080)), /api-/);
    const refusal = await poll('the refusal in the log', () => logLines(caller.host, 'mesh: connection refused', since).find((l) => l.reason === 'unknown-caller'), 5_000, 100);
    assert.match(refusal.caller, /^spiffe:\/\/podium\.local\/tenant\/globex\/env\/prod\/service\/spy$/, 'logged with B\'s identity');
    // api's containers, from every host; and each host's proxy, which takes no plain TCP.
    const apiIps = await Promise.all(api.map(ipOf));
    for (const spy of spies) {
      for (const ip of apiIps) assert.doesNotMatch(await inside(spy, get(ip, 8080)), /api-/, `${spy.host} → api ${ip}`);
      for (const h of cluster.hosts) assert.doesNotMatch(await inside(spy, get(addressOf(h), meshPortOf(h))), /api-|HTTP/, `${spy.host} → proxy of ${h}`);
    }
  });

  it('keeps staging from prod unless a prod service allows staging', async () => {
    await create('staging', { name: 'probe', image: IMAGE, command: ['sleep', '3600'], replicas: 1, resources });
    const [probe] = await running('staging', 'probe', 1);
    assert.equal(await envOf(probe!, 'PROD_API_HOST'), '', 'prod\'s api is not named to staging');
    // prod's endpoint for api on the probe's host, as a prod container there was given it.
    const prodHere = [...api, ...web].find((p) => p.host === probe!.host)!;
    const since = Date.now();
    assert.doesNotMatch(await inside(probe!, get(await envOf(prodHere, 'API_HOST'), 8080)), /api-/);
    const refusal = await poll('the refusal', () => logLines(probe!.host, 'mesh: connection refused', since).find((l) => l.reason === 'unknown-caller'), 5_000, 100);
    assert.match(refusal.caller, /tenant\/acme\/env\/staging\/service\/probe$/);

    await create('prod', { name: 'reports', image: IMAGE, command: httpd('reports', 8090), replicas: 1, resources, ports: [{ name: 'http', port: 8090, protocol: 'PORT_PROTOCOL_TCP' }], allow: [{ environment: 'staging' }] });
    await running('prod', 'reports', 1);
    await create('staging', { name: 'probe2', image: IMAGE, command: ['sleep', '3600'], replicas: 1, resources });
    const [probe2] = await running('staging', 'probe2', 1);
    assert.equal(await envOf(probe2!, 'PROD_API_HOST'), '');
    assert.equal(await envOf(probe2!, 'PROD_REPORTS_PORT'), '8090');
    const got = await poll('reports from staging', async () => {
      const r = await inside(probe2!, get('$PROD_REPORTS_HOST', '$PROD_REPORTS_PORT'));
      return r.includes('reports-') ? r : undefined;
    }, 20_000, 250);
    assert.match(got, /^HTTP\/1\.[01] 200/);
  });

  it('drops a killed replica from the registry within 1 s, sends requests to the other, and adds the replacement within 1 s of running', async () => {
    const victim = api[0]!;
    const other = api[1]!;
    const t0 = Date.now();
    await cluster.engineOf(victim.host).stopContainer(victim.containerId, 0);
    const dropped = await poll('the caller\'s proxy drops the replica', () =>
      logLines(caller.host, 'mesh: endpoints changed', t0).find((l) => l.service === 'api.prod' && l.endpoints.length === 1), 10_000, 20);
    assert.deepEqual(dropped.endpoints, [other.id]);
    const dropMs = dropped.time - t0;
    for (let i = 0; i < 4; i++) assert.match(await inside(caller, get('$API_HOST', '$API_PORT')), new RegExp(`api-${other.containerId.slice(0, 12)}`));
    const replaced = (await running('prod', 'api', 2)).find((i) => i.id !== other.id)!;
    const runningAt = await eventTime('instance.running', replaced.id);
    const added = await poll('the replacement in the caller\'s registry', () =>
      logLines(caller.host, 'mesh: endpoints changed', t0).find((l) => l.service === 'api.prod' && l.endpoints.includes(replaced.id)), 10_000, 20);
    const addMs = added.time - runningAt;
    process.stdout.write(`      (killed replica dropped ${dropMs} ms after the kill; replacement added ${addMs} ms after it ran)\n`);
    assert.ok(dropMs < 1_000, `dropped after ${dropMs} ms`);
    assert.ok(addMs < 1_000, `added after ${addMs} ms`);
    api = [other, replaced];
  });

  it('refuses a forged certificate, an expired one and one of another trust domain at a host\'s proxy', async () => {
    const target = api[0]!;
    const sni = targetServerName({ tenant: 'acme', environment: 'prod', service: 'api', port: 8080 });
    const ca = cluster.ca!;
    const attempt = async (signer: Authority, lifetime: number, waitMs = 0) => {
      const { keyPem, csrPem } = await createKeyAndCsr('web');
      const certPem = await signWorkloadCsr(signer, csrPem, { tenant: 'acme', environment: 'prod', service: 'web' }, caller.host, lifetime);
      await new Promise((r) => setTimeout(r, waitMs));
      return new Promise<string>((resolve) => {
        let got = '';
        const s = connect({ host: addressOf(target.host), port: meshPortOf(target.host), servername: sni, key: keyPem, cert: certPem, ca: ca.caCertPem, checkServerIdentity: () => undefined }, () => s.write('GET / HTTP/1.0\r\n\r\n'));
        s.on('data', (d) => (got += d.toString()));
        s.on('error', () => resolve(got));
        s.on('close', () => resolve(got));
        setTimeout(() => s.destroy(), 3_000);
      });
    };
    // The real CA's key signs: what a legitimate proxy would get is admitted.
    assert.match(await attempt(ca, 600), /api-/);
    const since = Date.now();
    assert.equal(await attempt(await testAuthority(), 600), '', 'forged: signed by another CA');
    assert.equal(await attempt(ca, 1, 1_500), '', 'expired');
    assert.equal(await attempt({ ...ca, trustDomain: 'elsewhere.example' }, 600), '', 'another trust domain');
    const reasons = logLines(target.host, 'mesh: connection refused', since).map((l) => `${l.reason}${l.certificate ? ` ${l.certificate}` : ''}`);
    assert.ok(reasons.some((r) => /^untrusted .*(UNABLE_TO_VERIFY|unable to verify|self.signed|SELF_SIGNED)/i.test(r)), `forged refused: ${reasons}`);
    assert.ok(reasons.some((r) => /^untrusted .*(CERT_HAS_EXPIRED|expired)/i.test(r)), `expired refused: ${reasons}`);
    assert.ok(reasons.includes('not-a-workload'), `other trust domain refused: ${reasons}`);
  });

  it('serves the published endpoint over HTTPS on the edge port of the hosts that run web, and stops when web is deleted', async () => {
    const caFile = join(cluster.certsDir, 'ca.crt');
    const curl = async (host: string): Promise<{ ok: boolean; out: string }> => {
      try {
        const { stdout } = await run('curl', ['-sS', '--max-time', '5', '--cacert', caFile, '--resolve', `web.prod.acme.example:${EDGE_PORT}:${addressOf(host)}`, `https://web.prod.acme.example:${EDGE_PORT}/`]);
        return { ok: true, out: stdout };
      } catch (err) {
        return { ok: false, out: String((err as { stderr?: string }).stderr ?? '') };
      }
    };
    for (const w of web) {
      const got = await poll(`the endpoint on ${w.host}`, async () => ((await curl(w.host)).out.includes('web-') ? await curl(w.host) : undefined), 20_000, 250);
      assert.match(got.out, new RegExp(`^web-${w.containerId.slice(0, 12)}`), `${w.host} forwards to its own web`);
    }
    const withoutWeb = cluster.hosts.find((h) => !web.some((w) => w.host === h))!;
    assert.equal((await curl(withoutWeb)).ok, false, 'a host that runs no web has no such name');
    const res = await rest('DELETE', '/v1/environments/prod/services/web');
    assert.equal(res.status, 200);
    for (const w of web) await poll(`the endpoint on ${w.host} gone`, async () => !(await curl(w.host)).ok, 10_000, 200);
  });

  it('refuses a revoked host\'s proxy at the others within a second', async () => {
    await create('prod', { name: 'client', image: IMAGE, command: ['sleep', '3600'], replicas: 3, ha: true, resources });
    const clients = await running('prod', 'client', 3);
    const apiHosts = new Set(api.map((i) => i.host));
    const revoked = cluster.hosts.find((h) => !apiHosts.has(h))!;
    const onRevoked = clients.find((c) => c.host === revoked)!;
    await poll('api from the host to be revoked', async () => (await inside(onRevoked, get('$API_HOST', '$API_PORT'))).includes('api-'), 20_000, 250);
    const t0 = Date.now();
    // An operator's call (grpcurl's, in the README), over mutual TLS.
    const operator = cluster.podApi();
    try {
      await new Promise((resolve, reject) => operator.revokeHost({ host: revoked, reason: 'e2e: stolen' }, new Metadata(), (e, r) => (e ? reject(e) : resolve(r))));
    } finally {
      operator.close();
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 1_000 - (Date.now() - t0))));
    // One second after the revocation: the proxy of the revoked host, which still runs and still
    // holds its containers' certificates, is refused by the hosts that run api.
    assert.doesNotMatch(await inside(onRevoked, get('$API_HOST', '$API_PORT')), /api-/);
    const refused = [...apiHosts].flatMap((h) => logLines(h, 'mesh: connection refused', t0)).filter((l) => l.reason === 'revoked');
    assert.ok(refused.length >= 1, 'refused as revoked');
    assert.equal(refused[0].host, revoked);
  });

  /** The stored time of an event of the instance (the REST event stream, replayed from the start). */
  async function eventTime(type: string, instance: string): Promise<number> {
    const abort = new AbortController();
    const res = await fetch(`${cluster.gatewayUrl}/v1/events?environment=prod`, { headers: { authorization: `Bearer ${cluster.token}` }, signal: abort.signal });
    const reader = res.body!.getReader();
    let text = '';
    const deadline = Date.now() + 10_000;
    try {
      while (Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString();
        for (const line of text.split('\n').slice(0, -1)) {
          const e = JSON.parse(line).result;
          if (e?.type === type && e.instance === instance) return Date.parse(e.time);
        }
      }
    } finally {
      abort.abort();
    }
    throw new Error(`no ${type} event of ${instance}`);
  }
});
