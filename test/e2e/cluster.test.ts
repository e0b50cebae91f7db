/**
 * End to end, on the real parts: REST calls on the gateway place an HA service by auction on three
 * agent processes over mutual TLS, with state in SQLite, on three separate hosts of the test bed
 * (each a network namespace with its own Docker engine; the agents reach the Pod API over the
 * bridge). One cluster is shared by the whole file (it is slow to start); the tests run in order
 * and build on each other.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { issueKeyPair, loadOrCreateAuthority, spiffeIdFor } from '../../certs';
import { Cluster } from '../support/cluster';
import { poll } from '../support/poll';

const run = promisify(execFile);
const WEB = {
  name: 'web',
  image: 'podium/busybox:latest',
  command: ['httpd', '-f', '-p', '8080'],
  replicas: 3,
  ha: true,
  resources: { cpuMillis: 100, memoryMib: 32 },
};

function listHosts(client: ReturnType<Cluster['podApi']>): Promise<unknown> {
  return new Promise((resolve, reject) =>
    client.listHosts({}, new Metadata(), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r))),
  );
}

/** The subject alternative names of the certificate the TLS server at host:port presents. */
function presentedNames(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      const raw = s.getPeerCertificate().raw;
      s.end();
      resolve(new X509Certificate(raw).subjectAltName ?? '');
    });
    s.on('error', reject);
  });
}

/** Established TCP connections as `ss` prints them in the network namespace at `netnsPath` (the
 *  root one when null), filtered by an ss expression: [local, peer, process] per connection. */
async function connections(netnsPath: string | null, filter: string[]): Promise<Array<[string, string, string]>> {
  const ss = ['ss', '-tnpH', 'state', 'established', ...filter];
  const { stdout } = netnsPath ? await run('nsenter', [`--net=${netnsPath}`, '--', ...ss]) : await run(ss[0]!, ss.slice(1));
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [, , local = '', peer = '', ...proc] = l.trim().split(/\s+/);
      return [local, peer, proc.join(' ')];
    });
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function running(c: Cluster, env: string, name: string, n: number, timeoutMs = 60_000): Promise<any> {
  return poll(`${n} running instances of ${name}`, async () => {
    const { body } = await c.rest('GET', `/v1/environments/${env}/services/${name}`);
    const up = (body.instances ?? []).filter((i: any) => i.state === 'INSTANCE_STATE_RUNNING');
    return up.length === n ? body : undefined;
  }, timeoutMs);
}

describe('Podium end to end (three agents on three separate hosts of the test bed)', function () {
  this.timeout(180_000);
  const c = new Cluster();

  before(async function () {
    this.timeout(120_000);
    await c.start();
  });

  after(async () => {
    await c.stop();
  });

  it('places an HA service with 3 replicas on 3 distinct hosts, confined and limited', async () => {
    assert.equal((await c.rest('POST', '/v1/environments', { name: 'prod' })).status, 200);
    const created = await c.rest('POST', '/v1/environments/prod/services', WEB);
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(created.body.name, 'web');
    const svc = await running(c, 'prod', 'web', 3);
    const hosts = svc.instances.map((i: any) => i.host);
    assert.equal(new Set(hosts).size, 3, `replicas share a host: ${hosts}`);
    assert.deepEqual([...hosts].sort(), [...c.hosts].sort());
    assert.equal(svc.pendingReason ?? '', '');

    const containers = (await c.containers()).filter((x) => x.labels['podium.service'] === 'web');
    assert.equal(containers.length, 3);
    for (const inst of svc.instances) {
      const info = await c.engineOf(inst.host).inspectContainer(inst.containerId);
      assert.equal(info.State.Running, true);
      assert.equal(info.Config.Labels['podium.host'], inst.host);
      assert.equal(info.Config.Labels['podium.service'], 'web');
      assert.equal(info.Config.Labels['podium.instance'], inst.id);
      assert.equal(info.HostConfig.Memory, 32 * 1024 * 1024);
      assert.equal(info.HostConfig.NanoCpus, 100_000_000);
      assert.ok(info.HostConfig.PidsLimit > 0, 'a PID limit');
      assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
      assert.ok(info.HostConfig.SecurityOpt.includes('no-new-privileges:true'));
      assert.equal(info.HostConfig.Privileged, false);
      assert.notEqual(info.HostConfig.NetworkMode, 'host');
    }
  });

  it('runs the agents on 3 separate hosts: each on its own engine and address, joined over the bridge', async () => {
    const web = (await c.rest('GET', '/v1/environments/prod/services/web')).body;
    assert.equal(new Set(c.hosts.map((h) => c.placeOf(h).dockerSocket)).size, 3, 'three engines');
    assert.equal(new Set(c.hosts.map((h) => c.placeOf(h).netns)).size, 3, 'three namespaces');
    for (const h of c.hosts) {
      // A host's engine holds its own replica and no other host's container.
      const inst = web.instances.find((i: any) => i.host === h);
      const onEngine = await c.containersOnEngineOf(h);
      assert.deepEqual([...new Set(onEngine.map((x) => x.labels['podium.host']))], [h], `engine of ${h}`);
      assert.ok(onEngine.some((x) => x.id === inst.containerId), `${h}'s replica is on its engine`);
      for (const other of c.hosts.filter((o) => o !== h)) {
        await assert.rejects(c.engineOf(other).inspectContainer(inst.containerId), /No such container/, `${h}'s replica is not on ${other}'s engine`);
      }
    }

    // The Pod API listens on the bridge address only, and its certificate names that address.
    const names = await presentedNames(c.bridgeAddress, c.serverPort);
    assert.match(names, new RegExp(`IP Address:${escape(c.bridgeAddress)}(,|$)`));
    assert.doesNotMatch(names, /127\.0\.0\.1|localhost/);
    await assert.rejects(presentedNames('127.0.0.1', c.serverPort), /ECONNREFUSED/);

    // Each agent's stream leaves its own namespace from its host's address, and the Pod API sees
    // it come from there.
    const seenByServer = (await connections(null, ['src', c.serverAddress])).map(([, peer]) => peer.replace(/:\d+$/, ''));
    for (const h of c.hosts) {
      const at = c.placeOf(h);
      const mine = await connections(at.netnsPath, ['dst', c.serverAddress]);
      const agentPid = c.pid(h);
      assert.ok(agentPid !== undefined);
      assert.ok(
        mine.some(([local, , proc]) => local.startsWith(`${at.address}:`) && proc.includes(`pid=${agentPid},`)),
        `agent ${h} (pid ${agentPid}) holds a connection from ${at.address} to ${c.serverAddress}: ${JSON.stringify(mine)}`,
      );
      assert.ok(seenByServer.includes(at.address), `the Pod API sees ${at.address}: ${seenByServer}`);
    }
  });

  it('spreads 30 replicas of a service 10/10/10 over the three hosts (Docker Swarm on the same hosts: 10/10/10)', async () => {
    const res = await c.rest('POST', '/v1/environments/prod/services', {
      ...WEB, name: 'many', command: ['sleep', '3600'], replicas: 30, ha: false, resources: { cpuMillis: 10, memoryMib: 8 },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const svc = await running(c, 'prod', 'many', 30, 120_000);
    const counts = c.hosts.map((h) => svc.instances.filter((i: any) => i.host === h).length);
    assert.deepEqual(counts, [10, 10, 10]);
    for (const h of c.hosts) {
      const onEngine = (await c.containersOnEngineOf(h)).filter((x) => x.labels['podium.service'] === 'many');
      assert.equal(onEngine.length, 10, `${h}'s own engine runs its 10`);
    }
    assert.equal((await c.rest('DELETE', '/v1/environments/prod/services/many')).status, 200);
    await poll('many removed', async () => (await c.containers()).every((x) => x.labels['podium.service'] !== 'many'), 60_000);
  });

  it('keeps a 4th HA replica pending, saying the HA rule excluded the 3 hosts', async () => {
    const res = await c.rest('POST', '/v1/environments/prod/services', { ...WEB, name: 'web4', replicas: 4 });
    assert.equal(res.status, 200);
    const svc = await running(c, 'prod', 'web4', 3);
    const reason = await poll('a pending reason', async () => {
      const { body } = await c.rest('GET', '/v1/environments/prod/services/web4');
      return /HA rule/.test(body.pendingReason ?? '') ? body.pendingReason : undefined;
    });
    assert.match(reason, /^4 replicas, 3 hosts: 3 excluded by the HA rule/);
    assert.equal(svc.instances.filter((i: any) => i.state === 'INSTANCE_STATE_PENDING').length, 1);
  });

  it('keeps a replica whose image no host can get pending, and says so', async () => {
    const res = await c.rest('POST', '/v1/environments/prod/services', { ...WEB, name: 'ghost', image: 'podium/nowhere:1.0', replicas: 1, ha: false });
    assert.equal(res.status, 200);
    const reason = await poll('the image reason', async () => {
      const { body } = await c.rest('GET', '/v1/environments/prod/services/ghost');
      return /cannot get the image/.test(body.pendingReason) ? body.pendingReason : undefined;
    });
    assert.equal(reason, '1 replica, 3 hosts: 3 cannot get the image');
    assert.equal((await c.containers()).filter((x) => x.labels['podium.service'] === 'ghost').length, 0);
    assert.equal((await c.rest('DELETE', '/v1/environments/prod/services/ghost')).status, 200);
  });

  it('shows why a crashing replica failed and restarts it after a backoff', async () => {
    const res = await c.rest('POST', '/v1/environments/prod/services', { ...WEB, name: 'crash', command: ['sh', '-c', 'exit 3'], replicas: 1, ha: false });
    assert.equal(res.status, 200);
    const svc = await poll('a failed instance and a restart reason', async () => {
      const { body } = await c.rest('GET', '/v1/environments/prod/services/crash');
      const failed = body.instances.filter((i: any) => i.state === 'INSTANCE_STATE_FAILED');
      return failed.length > 0 && /waiting to restart/.test(body.pendingReason) ? body : undefined;
    });
    const failed = svc.instances.find((i: any) => i.state === 'INSTANCE_STATE_FAILED');
    assert.match(failed.message, /exit code 3/);
    assert.match(svc.pendingReason, /^1 replica, 1 waiting to restart after \d+ failures? \(last: container exited with exit code 3\)$/);
    // After the backoff a new instance is placed (and fails again): the failures accumulate.
    await poll('a second failure', async () => {
      const { body } = await c.rest('GET', '/v1/environments/prod/services/crash');
      return body.instances.filter((i: any) => i.state === 'INSTANCE_STATE_FAILED').length >= 2;
    }, 30_000);
    assert.equal((await c.rest('DELETE', '/v1/environments/prod/services/crash')).status, 200);
    await poll('crash containers removed', async () => (await c.containers()).every((x) => x.labels['podium.service'] !== 'crash'));
  });

  it('rejects bad input naming the field, and stores nothing', async () => {
    const before = await c.rest('GET', '/v1/environments/prod/services');
    const cases: Array<[string, string, unknown, number, RegExp, string?]> = [
      ['missing name', '/v1/environments/prod/services', { ...WEB, name: '' }, 400, /name/],
      ['negative replicas', '/v1/environments/prod/services', { ...WEB, name: 'neg', replicas: -1 }, 400, /replicas/],
      ['zero memory', '/v1/environments/prod/services', { ...WEB, name: 'zero', resources: { cpuMillis: 100, memoryMib: 0 } }, 400, /memoryMib/],
      ['unknown environment', '/v1/environments/nope/services', { ...WEB, name: 'x' }, 404, /environment/],
      ['duplicate name', '/v1/environments/prod/services', WEB, 409, /already exists/],
      ['malformed JSON', '/v1/environments/prod/services', undefined, 400, /JSON/, '{"name": "broken",'],
      ['wrong type', '/v1/environments/prod/services', { ...WEB, name: 'typed', replicas: 'three' }, 400, /replicas/],
      ['duplicate environment', '/v1/environments', { name: 'prod' }, 409, /already exists/],
      ['bad environment name', '/v1/environments', { name: 'Prod Env' }, 400, /name/],
    ];
    for (const [what, path, body, code, message, raw] of cases) {
      const res = await c.rest('POST', path, body, raw);
      assert.equal(res.status, code, `${what}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.message, message, what);
      assert.equal(typeof res.body.code, 'number', what);
      assert.ok(Array.isArray(res.body.details), what);
    }
    const neg = await c.rest('POST', '/v1/environments/prod/services', { ...WEB, name: 'neg', replicas: -1 });
    assert.deepEqual(neg.body.details[0].fieldViolations, [{ field: 'replicas', description: 'must be an integer from 1 to 100' }]);
    const after = await c.rest('GET', '/v1/environments/prod/services');
    assert.deepEqual(after.body.services.map((s: any) => s.name), before.body.services.map((s: any) => s.name));
    assert.equal((await c.rest('GET', '/v1/environments')).body.environments.length, 1);
  });

  it("scopes every call to the caller's tenant: another tenant's service is NOT_FOUND", async () => {
    const other = c.globexToken;
    const as = (method: string, path: string, body?: unknown) =>
      fetch(`${c.gatewayUrl}${path}`, { method, headers: { authorization: `Bearer ${other}` }, body: body === undefined ? undefined : JSON.stringify(body) });
    assert.equal((await as('GET', '/v1/environments/prod/services/web')).status, 404);
    assert.equal((await as('DELETE', '/v1/environments/prod/services/web')).status, 404);
    assert.deepEqual(await (await as('GET', '/v1/environments')).json(), { environments: [] });
    // Names are per tenant: globex may have its own "prod".
    assert.equal((await as('POST', '/v1/environments', { name: 'prod' })).status, 200);
    assert.deepEqual(await (await as('GET', '/v1/environments/prod/services')).json(), { services: [] });
    assert.equal((await c.rest('GET', '/v1/environments/prod/services/web')).status, 200);
  });

  it('streams the event log as newline-delimited JSON', async () => {
    const abort = new AbortController();
    const res = await fetch(`${c.gatewayUrl}/v1/events?environment=prod`, { headers: { authorization: `Bearer ${c.token}` }, signal: abort.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('"instance.running"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    abort.abort();
    const events = text.trim().split('\n').map((l) => JSON.parse(l).result);
    assert.equal(events[0].type, 'environment.created');
    assert.ok(events.some((e: any) => e.type === 'service.created' && e.service === 'web'));
    assert.ok(events.some((e: any) => e.type === 'instance.awarded' && e.service === 'web'));
    assert.ok(events.every((e: any, i: number) => i === 0 || Number(e.sequence) > Number(events[i - 1].sequence)));
  });

  it('refuses clients without a certificate, from another CA, and agents calling PodApi; reflection lists the services', async () => {
    const ca = readFileSync(join(c.certsDir, 'ca.crt'));
    const none = c.podApi(credentials.createSsl(ca));
    await assert.rejects(listHosts(none), (e: ServiceError) => e.code === status.UNAUTHENTICATED);
    none.close();

    const other = await loadOrCreateAuthority(join(c.dir, 'other-ca'), 'podium.local');
    const forged = await issueKeyPair(other, { role: 'operator', name: 'admin', spiffeId: spiffeIdFor('podium.local', 'operator', 'admin') }, 3600);
    const stranger = c.podApi(credentials.createSsl(ca, Buffer.from(forged.keyPem), Buffer.from(forged.certPem)));
    await assert.rejects(listHosts(stranger), (e: ServiceError) => e.code === status.UNAUTHENTICATED);
    stranger.close();

    const agentDir = join(c.dir, 'agents', c.hosts[0]!);
    const agent = c.podApi(
      credentials.createSsl(ca, readFileSync(join(agentDir, 'agent.key')), readFileSync(join(agentDir, 'agent.crt'))),
    );
    await assert.rejects(listHosts(agent), (e: ServiceError) => e.code === status.PERMISSION_DENIED);
    agent.close();

    const tls = ['-cacert', join(c.certsDir, 'ca.crt'), '-cert', join(c.certsDir, 'operator.crt'), '-key', join(c.certsDir, 'operator.key')];
    const { stdout } = await run('grpcurl', [...tls, c.serverAddress, 'list']);
    for (const s of ['podium.v1.PodApi', 'podium.v1.AgentService', 'podium.v1.CertificateService']) assert.match(stdout, new RegExp(s.replace(/\./g, '\\.')));
    const hosts = JSON.parse((await run('grpcurl', [...tls, c.serverAddress, 'podium.v1.PodApi/ListHosts'])).stdout);
    assert.equal(hosts.hosts.length, 3);
    await assert.rejects(run('grpcurl', ['-cacert', join(c.certsDir, 'ca.crt'), c.serverAddress, 'podium.v1.PodApi/ListHosts']));
  });

  it('comes back with the same state after the server is SIGKILLed, starting no container twice', async () => {
    const containers = await c.containers();
    const before = containers.map((x) => x.id).sort();
    const web = (await c.rest('GET', '/v1/environments/prod/services/web')).body;
    const started = new Map<string, string>();
    for (const x of containers) started.set(x.id, (await c.engineOf(x.host).inspectContainer(x.id)).State.StartedAt);

    await c.kill('server', 'SIGKILL');
    c.startServer();
    await poll('the Pod API after restart', () => c.health(), 30_000);
    await c.waitHostsUp(c.hosts);
    // Agents reconnected by themselves: each host has a live session (a round can reach it).
    await poll('agents reconnected', () => c.log('server').split('\n').filter((l) => l.includes('agent connected')).length >= 6);

    const again = await running(c, 'prod', 'web', 3);
    assert.deepEqual(
      again.instances.map((i: any) => [i.id, i.host, i.containerId]).sort(),
      web.instances.map((i: any) => [i.id, i.host, i.containerId]).sort(),
    );
    // Give the reconciliation time to do anything wrong, then compare.
    await new Promise((r) => setTimeout(r, 2000));
    const now = await c.containers();
    assert.deepEqual(now.map((x) => x.id).sort(), before);
    for (const x of now) assert.equal((await c.engineOf(x.host).inspectContainer(x.id)).State.StartedAt, started.get(x.id), `container ${x.id} restarted`);
  });

  it('an agent restarted within the TTL finds its containers by label and keeps them', async () => {
    const host = c.hosts[2]!;
    const mine = async () => (await c.containers()).filter((x) => x.labels['podium.host'] === host).map((x) => x.id).sort();
    const before = await mine();
    assert.ok(before.length > 0);
    const web = (await c.rest('GET', '/v1/environments/prod/services/web')).body;
    const sessions = () => c.log('server').split('\n').filter((l) => l.includes('"agent connected"') && l.includes(host)).length;
    const opened = sessions();
    await c.kill(host, 'SIGKILL');
    c.startAgent(host);
    await poll('the agent reconnected', () => sessions() > opened);
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await mine(), before);
    const again = await running(c, 'prod', 'web', 3);
    assert.deepEqual(again.instances.map((i: any) => i.id).sort(), web.instances.map((i: any) => i.id).sort());
    const hosts = await c.fleet();
    assert.equal(hosts.find((h: any) => h.id === host).state, 'HOST_STATE_UP');
  });

  it('re-places the replica of a killed agent on the remaining free host after the TTL, and cleans up when it returns', async () => {
    await c.rest('DELETE', '/v1/environments/prod/services/web4');
    const pair = await c.rest('POST', '/v1/environments/prod/services', { ...WEB, name: 'pair', replicas: 2 });
    assert.equal(pair.status, 200);
    const svc = await running(c, 'prod', 'pair', 2);
    const used = svc.instances.map((i: any) => i.host);
    const free = c.hosts.find((h) => !used.includes(h))!;
    const victim = used[0];
    await c.kill(victim, 'SIGKILL');

    const moved = await poll('the replica re-placed', async () => {
      const { body } = await c.rest('GET', '/v1/environments/prod/services/pair');
      const up = body.instances.filter((i: any) => i.state === 'INSTANCE_STATE_RUNNING');
      return up.length === 2 && up.some((i: any) => i.host === free) ? body : undefined;
    }, 60_000);
    assert.ok(moved.instances.some((i: any) => i.host === victim && i.state === 'INSTANCE_STATE_LOST'));
    const hosts = await c.fleet();
    assert.equal(hosts.find((h: any) => h.id === victim).state, 'HOST_STATE_DOWN');

    // The host returns: its lost containers are removed, nothing is double-run.
    c.startAgent(victim);
    await c.waitHostsUp([victim]);
    await poll('the lost containers removed', async () => {
      const left = (await c.containers()).filter((x) => x.labels['podium.host'] === victim && x.labels['podium.service'] === 'pair');
      return left.length === 0;
    });
    const final = (await c.rest('GET', '/v1/environments/prod/services/pair')).body;
    assert.equal(final.instances.filter((i: any) => i.state === 'INSTANCE_STATE_LOST').length, 0);
    const pairContainers = (await c.containers()).filter((x) => x.labels['podium.service'] === 'pair');
    assert.equal(pairContainers.length, 2);
    await running(c, 'prod', 'web', 3);
  });

  it('moves the replica of a host that stalls past the TTL, and reconciles the host when it wakes', async () => {
    const svc = await running(c, 'prod', 'pair', 2);
    const used = svc.instances.filter((i: any) => i.state === 'INSTANCE_STATE_RUNNING').map((i: any) => i.host);
    const free = c.hosts.find((h) => !used.includes(h))!;
    const stalled = used[0];
    c.signal(stalled, 'SIGSTOP');
    try {
      await poll('the replica moved off the stalled host', async () => {
        const { body } = await c.rest('GET', '/v1/environments/prod/services/pair');
        const up = body.instances.filter((i: any) => i.state === 'INSTANCE_STATE_RUNNING');
        return up.length === 2 && up.some((i: any) => i.host === free);
      }, 60_000);
    } finally {
      c.signal(stalled, 'SIGCONT');
    }
    // Its stream never broke, yet it must come back up and drop what was placed elsewhere.
    await c.waitHostsUp([stalled]);
    await poll('the stalled host reconciled', async () =>
      (await c.containers()).every((x) => !(x.labels['podium.host'] === stalled && x.labels['podium.service'] === 'pair')),
    );
    assert.equal((await c.containers()).filter((x) => x.labels['podium.service'] === 'pair').length, 2);
  });

  it('exposes Prometheus metrics of the Pod API and the gateway', async () => {
    const server = await (await fetch(`http://127.0.0.1:${c.metricsPort}/metrics`)).text();
    assert.match(server, /^podium_hosts\{state="up"\} 3$/m);
    assert.match(server, /^podium_agent_sessions 3$/m);
    assert.match(server, /^podium_instances\{state="running"\} [1-9]/m);
    assert.match(server, /^podium_auction_lots_total\{outcome="awarded"\} [1-9]/m);
    const gateway = await (await fetch(`${c.gatewayUrl}/metrics`)).text();
    assert.match(gateway, /podium_gateway_http_requests_total\{method="POST",route="\/v1\/environments\/\{environment\}\/services",status_code="200"\} [1-9]/);
  });

  it('DELETE stops and removes the containers', async () => {
    const res = await c.rest('DELETE', '/v1/environments/prod/services/web');
    assert.equal(res.status, 200);
    assert.equal((await c.rest('GET', '/v1/environments/prod/services/web')).status, 404);
    await poll('web containers removed', async () => (await c.containers()).every((x) => x.labels['podium.service'] !== 'web'));
  });
});
