/**
 * The mesh on the real engine, as `podium dev` runs it (issue 8): real agents in-process, each with
 * its proxy on loopback, under a harness Pod API, their containers on the local Docker engine, one
 * environment network per host and environment. A `web` container reaches `api` on the other host
 * at `$API_HOST:$API_PORT` through both proxies; a container of another tenant on the same host
 * reaches neither `api`'s container nor the endpoint `web` was given; containers of one network
 * do not reach each other directly.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ListHostsResponse } from '../../gen/podium/v1/pod_api';
import { HostState, PortProtocol } from '../../gen/podium/v1/resources';
import { BUSYBOX_IMAGE } from '../../agent/runtime';
import { DOCKER_SOCKET } from '../support/local-engine';
import { call, PodApiDriver, startPodApiHarness, type PodApiHarness } from '../support/pod-api-harness';
import { poll } from '../support/poll';
import { RealAgents } from '../support/real-agents';

const run = promisify(execFile);

/** An HTTP/1.0 GET from inside a container (busybox's nc: its static wget crashes in this image). */
const get = (host: string, port: string | number) => `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${port}`;

/** `docker exec <container> sh -c <script>`: what the container itself sees. */
async function inside(containerId: string, script: string): Promise<{ out: string; ok: boolean }> {
  try {
    const { stdout } = await run('docker', ['-H', `unix://${DOCKER_SOCKET}`, 'exec', containerId, 'sh', '-c', script], { timeout: 20_000 });
    return { out: stdout, ok: true };
  } catch (err) {
    return { out: String((err as { stdout?: string }).stdout ?? ''), ok: false };
  }
}

describe('the mesh on the real engine', function () {
  this.timeout(180_000);
  let h: PodApiHarness;
  let d: PodApiDriver;
  let fleet: RealAgents | undefined;
  const httpd = (text: string) => ['sh', '-c', `mkdir -p /tmp/www && echo ${text} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www`];
  const resources = { cpuMillis: 50, memoryMib: 16 };

  before(async () => {
    h = await startPodApiHarness();
    d = new PodApiDriver(h);
    fleet = await RealAgents.start(h, 2, { mesh: true });
    await poll('both hosts up', async () => {
      const res = await call<object, ListHostsResponse>(h.operator, 'listHosts', {});
      return res.hosts.filter((x) => fleet!.hosts.includes(x.id) && x.state === HostState.HOST_STATE_UP).length === 2;
    }, 20_000);
    await d.createEnvironment('acme', 'prod');
    await d.createEnvironment('globex', 'prod');
  });
  after(async () => {
    await fleet?.stop();
    await h?.close();
  });

  it('carries web\'s request to api on the other host through both proxies, and no one else\'s', async () => {
    await d.createService('acme', 'prod', { name: 'api', image: BUSYBOX_IMAGE, command: httpd('hello-from-api'), resources, ports: [{ name: 'http', port: 8080, protocol: PortProtocol.PORT_PROTOCOL_HTTP }] });
    const api = await d.running('acme', 'prod', 'api', 1, 60_000);
    await d.createService('acme', 'prod', { name: 'web', image: BUSYBOX_IMAGE, command: ['sleep', '3600'], resources });
    const web = await d.running('acme', 'prod', 'web', 1, 60_000);
    assert.notEqual(web.instances[0]!.host, api.instances[0]!.host, 'spread puts them on different hosts');
    const webContainer = web.instances[0]!.containerId;

    const vars = await inside(webContainer, 'echo $API_HOST $API_PORT $API_HTTP_PORT');
    const [apiHost, apiPort, apiHttpPort] = vars.out.trim().split(' ');
    assert.match(apiHost ?? '', /^\d+\.\d+\.\d+\.\d+$/, `API_HOST is the network's gateway: ${vars.out}`);
    assert.equal(apiPort, '8080');
    assert.equal(apiHttpPort, '8080');
    // The registry may reach web's host a moment after web started: the request is retried.
    const got = await poll('api through the mesh', async () => {
      const r = await inside(webContainer, get('$API_HOST', '$API_PORT'));
      return r.out.includes('hello-from-api') ? r.out : undefined;
    }, 20_000, 250);
    assert.match(got, /^HTTP\/1\.[01] 200/);

    // Another tenant's container on web's host: neither web's endpoint nor api's container.
    await d.createService('globex', 'prod', { name: 'spy', image: BUSYBOX_IMAGE, command: ['sleep', '3600'], resources });
    const spy = await d.running('globex', 'prod', 'spy', 1, 60_000);
    const spyContainer = spy.instances[0]!.containerId;
    const apiInspect = JSON.parse((await run('docker', ['-H', `unix://${DOCKER_SOCKET}`, 'inspect', api.instances[0]!.containerId])).stdout)[0];
    const apiIp = Object.values(apiInspect.NetworkSettings.Networks as Record<string, { IPAddress: string }>)[0]!.IPAddress;
    const reached = async (container: string, host: string) => (await inside(container, get(host, 8080))).out.includes('hello-from-api');
    assert.equal(await reached(spyContainer, apiHost!), false, 'the endpoint web was given refuses another tenant');
    assert.equal(await reached(spyContainer, apiIp), false, 'api\'s container is not reachable across networks');
    // Nor does web itself reach api's container but through the proxy.
    assert.equal(await reached(webContainer, apiIp), false);
  });
});
