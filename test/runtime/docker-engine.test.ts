import assert from 'node:assert/strict';
import Modem from 'docker-modem';
import http from 'node:http';
import type { ContainerSpec } from '../../gen/podium/v1/agent';
import {
  DockerEngine,
  DockerEngineError,
  containerBody,
  containerName,
  ensureBusyboxImage,
  kernelAppArmor,
  networkName,
} from '../../agent/runtime';
import { uniquePrefix } from './unique-prefix';
import { poll } from '../support/poll';
import { sweepStaleTestResources } from './sweep';

const SOCKET = '/var/run/docker.sock';

/** Networks named exactly `name`, read straight from the engine (not through the code under test). */
function networksNamed(name: string): Promise<Array<{ Id: string; Name: string }>> {
  const modem = new Modem({ socketPath: SOCKET, version: 'v1.41' });
  return new Promise((resolve, reject) => {
    modem.dial({ path: '/networks?', method: 'GET', options: { _query: { filters: { name: [name] } } }, statusCodes: { 200: true } }, (err, list) => {
      if (err !== null) return reject(err);
      resolve((list as Array<{ Id: string; Name: string }>).filter((n) => n.Name === name));
    });
  });
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** "Key:\tvalue" lines of /proc/<pid>/status as a map. */
function statusFields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) out.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return out;
}

describe('runtime/docker-engine against the real Docker engine', function () {
  this.timeout(120_000);
  const engine = new DockerEngine({ socketPath: SOCKET });
  const hostId = uniquePrefix('host');
  const image = `${uniquePrefix('image')}/busybox:latest`;
  const networks = new Set<string>();

  before(async () => {
    await engine.ping();
    await sweepStaleTestResources(engine, SOCKET);
    assert.equal(await ensureBusyboxImage(engine, image), 'created');
  });

  after(async () => {
    // Every cleanup step runs even when one fails; the first failure is reported at the end.
    const failures: unknown[] = [];
    const attempt = async (step: () => Promise<unknown>): Promise<void> => {
      await step().catch((err: unknown) => failures.push(err));
    };
    for (const c of await engine.listContainers({ 'podium.host': hostId })) await attempt(() => engine.removeContainer(c.id));
    for (const n of networks) for (const net of await networksNamed(n)) await attempt(() => engine.removeNetwork(net.Id));
    await attempt(() => engine.removeImage(image));
    assert.deepEqual(await engine.listContainers({ 'podium.host': hostId }), [], 'containers left behind');
    if (failures.length > 0) throw failures[0];
  });

  it('pings and reports the host\'s CPUs, memory and name', async () => {
    const info = await engine.info();
    assert.ok(Number.isInteger(info.cpus) && info.cpus >= 1, `cpus ${info.cpus}`);
    assert.ok(Number.isInteger(info.memoryMib) && info.memoryMib > 64, `memoryMib ${info.memoryMib}`);
    assert.ok(info.name.length > 0);
  });

  it('errors name the operation and carry Docker\'s message and status', async () => {
    const name = `${hostId}-missing-image`;
    await assert.rejects(engine.createContainer(name, { Image: 'podium-test-no-such-image:latest', Labels: { 'podium.host': hostId } }), (err: unknown) => {
      assert.ok(err instanceof DockerEngineError);
      assert.equal(err.message, `create container ${name}: No such image: podium-test-no-such-image:latest`);
      assert.equal(err.statusCode, 404);
      return true;
    });
    await assert.rejects(engine.inspectContainer(`${hostId}-nothing`), (err: unknown) => {
      assert.ok(err instanceof DockerEngineError);
      assert.match(err.message, new RegExp(`^inspect container ${hostId}-nothing: No such container`));
      assert.equal(err.statusCode, 404);
      return true;
    });
    await assert.rejects(new DockerEngine({ socketPath: '/nonexistent/docker.sock' }).ping(), (err: unknown) => {
      assert.ok(err instanceof DockerEngineError);
      assert.match(err.message, /^ping: .*ENOENT/);
      assert.equal(err.statusCode, undefined);
      return true;
    });
    await assert.rejects(engine.removeContainer('../images/x'), /not a valid Docker id or name/);
    const junk = `${uniquePrefix('image')}/junk:1`;
    await assert.rejects(engine.importImage(junk, Buffer.alloc(2048, 0x41)), (err: unknown) => {
      assert.ok(err instanceof DockerEngineError);
      assert.match(err.message, new RegExp(`^import image ${junk}: .*invalid tar header`));
      return true;
    });
    assert.equal(await engine.imageExists(junk), false);
  });

  it('stop and remove of a container that is gone succeed (reconciliation repeats them)', async () => {
    await engine.stopContainer(`${hostId}-gone`, 1);
    await engine.removeContainer(`${hostId}-gone`);
  });

  it('ensureNetwork creates once, is idempotent, survives concurrent creates and refuses foreign labels', async () => {
    const name = networkName(hostId, 'acme', 'race');
    networks.add(name);
    const labels = { 'podium.host': hostId, 'podium.tenant': 'acme', 'podium.environment': 'race' };
    // One engine object shares a create in-process; four others race it through the engine, as
    // separate agents would (409, or a duplicate the engine let through).
    const others = [1, 2, 3, 4].map(() => new DockerEngine({ socketPath: SOCKET }));
    const ids = await Promise.all([engine, engine, ...others].map((e) => e.ensureNetwork(name, labels)));
    assert.equal(new Set(ids).size, 1, `ids ${ids.join(', ')}`);
    assert.deepEqual((await networksNamed(name)).map((n) => n.Id), [ids[0]], 'exactly one network of that name is left');
    assert.equal(await engine.ensureNetwork(name, labels), ids[0]);
    await assert.rejects(engine.ensureNetwork(name, { ...labels, 'podium.tenant': 'mallory' }), /network exists with label podium.tenant="acme", expected "mallory"/);
  });

  describe('a busybox httpd container built by containerBody', () => {
    const spec: ContainerSpec = {
      instanceId: `inst-${process.pid}-0001`,
      tenant: 'acme',
      environment: 'prod',
      service: 'web',
      image,
      command: ['httpd', '-f', '-p', '8080'],
      resources: { cpuMillis: 250, memoryMib: 64 },
      capabilities: [],
      haGroup: '',
      // A read-only root; httpd's document root is where it writes.
      readOnlyRoot: true,
      writablePaths: ['/var/www'],
    };
    const network = networkName(hostId, spec.tenant, spec.environment);
    let id = '';

    before(async () => {
      networks.add(network);
      await engine.ensureNetwork(network, { 'podium.host': hostId, 'podium.tenant': spec.tenant, 'podium.environment': spec.environment });
      const body = containerBody(spec, { hostId, network, apparmorProfile: null });
      id = await engine.createContainer(containerName(spec, hostId), body);
      await engine.startContainer(id);
      await engine.startContainer(id); // already running: tolerated
    });

    it('runs, and inspect shows the limits, the hardening and the labels', async () => {
      const c = await engine.inspectContainer(id);
      assert.equal(c.State.Running, true);
      assert.equal(c.Name, `/${containerName(spec, hostId)}`);
      const h = c.HostConfig;
      assert.equal(h.Memory, 64 * 1024 * 1024);
      assert.equal(h.MemorySwap, 64 * 1024 * 1024);
      assert.equal(h.NanoCpus, 250_000_000);
      assert.equal(h.PidsLimit, 256);
      assert.deepEqual(h.CapDrop, ['ALL']);
      assert.ok(h.CapAdd === null || h.CapAdd.length === 0, `CapAdd ${JSON.stringify(h.CapAdd)}`);
      assert.deepEqual(h.SecurityOpt, ['no-new-privileges:true']);
      assert.equal(h.Privileged, false);
      assert.equal(h.NetworkMode, network);
      assert.equal(h.RestartPolicy.Name, 'no');
      assert.equal(h.Init, true);
      assert.deepEqual(h.Binds, null);
      assert.deepEqual(c.Mounts, []);
      assert.equal(c.Config.WorkingDir, '/var/www');
      assert.deepEqual(
        Object.fromEntries(Object.entries(c.Config.Labels as Record<string, string>).filter(([k]) => k.startsWith('podium.'))),
        {
          'podium.host': hostId,
          'podium.service': 'web',
          'podium.instance': spec.instanceId,
          'podium.environment': 'prod',
          'podium.tenant': 'acme',
        },
      );
    });

    it('inspect shows a read-only root with bounded nosuid,nodev tmpfs on /tmp, /run and its writable path, and no AppArmor profile on a kernel without AppArmor', async () => {
      const c = await engine.inspectContainer(id);
      const h = c.HostConfig;
      assert.equal(h.ReadonlyRootfs, true);
      assert.deepEqual(h.Tmpfs, { '/tmp': 'rw,nosuid,nodev,size=64m', '/run': 'rw,nosuid,nodev,noexec,size=16m', '/var/www': 'rw,nosuid,nodev,size=64m' });
      assert.deepEqual(h.SecurityOpt, ['no-new-privileges:true']);
      assert.deepEqual(h.CapDrop, ['ALL']);
      // The body asked for none (apparmorProfile null, as the agent does where the kernel cannot
      // enforce one), so Docker reports none rather than a profile nothing enforces.
      if (!kernelAppArmor().enabled) assert.equal(c.AppArmorProfile, '');
    });

    it('inside, the root refuses writes (read-only file system) and the writable path and scratch take them, as bounded tmpfs', async () => {
      for (const path of ['/probe', '/etc/probe', '/var/probe']) {
        const w = await engine.execInContainer(id, ['sh', '-c', `echo x > ${path}`]);
        assert.notEqual(w.exitCode, 0, `writing ${path} succeeded`);
        assert.match(w.stderr, /Read-only file system/, path);
      }
      for (const dir of ['/var/www', '/tmp', '/run']) {
        const w = await engine.execInContainer(id, ['sh', '-c', `echo podium-rw > ${dir}/probe && cat ${dir}/probe && rm ${dir}/probe`]);
        assert.equal(w.exitCode, 0, `${dir}: ${w.stderr}`);
        assert.equal(w.stdout, 'podium-rw\n');
      }
      const mounts = (await engine.execInContainer(id, ['cat', '/proc/mounts'])).stdout.split('\n').map((l) => l.split(' '));
      const root = mounts.find((m) => m[1] === '/');
      assert.ok(root && root[3]!.split(',').includes('ro'), `/ is mounted ${root?.[3]}`);
      const www = mounts.find((m) => m[1] === '/var/www');
      assert.ok(www, 'no mount on /var/www');
      assert.equal(www[2], 'tmpfs');
      for (const flag of ['rw', 'nosuid', 'nodev', 'size=65536k']) assert.ok(www[3]!.split(',').includes(flag), `/var/www is mounted ${www[3]}, without ${flag}`);
    });

    it('inside, a process has NoNewPrivs 1, no effective capabilities and seccomp filtering', async () => {
      const r = await engine.execInContainer(id, ['cat', '/proc/self/status']);
      assert.equal(r.exitCode, 0, r.stderr);
      const s = statusFields(r.stdout);
      assert.equal(s.get('NoNewPrivs'), '1');
      assert.equal(s.get('CapEff'), '0000000000000000');
      assert.equal(s.get('CapPrm'), '0000000000000000');
      assert.equal(s.get('CapBnd'), '0000000000000000');
      assert.equal(s.get('Seccomp'), '2', 'seccomp mode 2 (filter): the default profile is on');
    });

    it('every process of the container (init, httpd) is equally confined', async () => {
      const r = await engine.execInContainer(id, ['sh', '-c', 'for f in /proc/[0-9]*/status; do grep -E "^(Name|NoNewPrivs|CapEff):" "$f"; done']);
      const blocks = r.stdout.trim().split(/\n(?=Name:)/).map(statusFields);
      const names = blocks.map((b) => b.get('Name'));
      assert.ok(names.includes('httpd'), `processes: ${names.join(', ')}`);
      assert.ok(names.some((n) => n === 'docker-init' || n === 'tini'), `processes: ${names.join(', ')}`);
      for (const b of blocks) {
        assert.equal(b.get('NoNewPrivs'), '1', `${b.get('Name')}`);
        assert.equal(b.get('CapEff'), '0000000000000000', `${b.get('Name')}`);
      }
    });

    it('the kernel enforces the limits (cgroup files seen from inside)', async () => {
      const read = async (path: string): Promise<string | undefined> => {
        const r = await engine.execInContainer(id, ['cat', path]);
        return r.exitCode === 0 ? r.stdout.trim() : undefined;
      };
      const v1Memory = await read('/sys/fs/cgroup/memory/memory.limit_in_bytes');
      if (v1Memory !== undefined) {
        assert.equal(v1Memory, String(64 * 1024 * 1024));
        assert.equal(await read('/sys/fs/cgroup/pids/pids.max'), '256');
        const quota = Number(await read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
        const period = Number(await read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
        assert.equal(quota / period, 0.25);
      } else {
        assert.equal(await read('/sys/fs/cgroup/memory.max'), String(64 * 1024 * 1024));
        assert.equal(await read('/sys/fs/cgroup/pids.max'), '256');
        const [quota, period] = (await read('/sys/fs/cgroup/cpu.max'))!.split(' ').map(Number);
        assert.equal(quota! / period!, 0.25);
      }
    });

    it('has no Docker socket inside and cannot gain privileges or write kernel settings', async () => {
      const sock = await engine.execInContainer(id, ['ls', '/var/run/docker.sock', '/run/docker.sock']);
      assert.notEqual(sock.exitCode, 0);
      const sysctl = await engine.execInContainer(id, ['sh', '-c', 'echo 1 > /proc/sys/kernel/sysrq']);
      assert.notEqual(sysctl.exitCode, 0, 'writing /proc/sys must fail');
      const mount = await engine.execInContainer(id, ['mount', '-t', 'tmpfs', 'none', '/mnt']);
      assert.notEqual(mount.exitCode, 0, 'mount must fail without CAP_SYS_ADMIN');
    });

    it('serves HTTP on its environment network, from /var/www', async () => {
      const w = await engine.execInContainer(id, ['sh', '-c', 'echo podium-ok > /var/www/index.html']);
      assert.equal(w.exitCode, 0, w.stderr);
      const c = await engine.inspectContainer(id);
      const ip: string = c.NetworkSettings.Networks[network].IPAddress;
      assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
      const res = await poll('httpd to answer', () => httpGet(`http://${ip}:8080/`), 10_000, 50);
      assert.equal(res.status, 200);
      assert.equal(res.body, 'podium-ok\n');
    });

    it('is listed by its labels, stops, and is removed', async () => {
      const listed = await engine.listContainers({ 'podium.host': hostId, 'podium.instance': spec.instanceId });
      assert.equal(listed.length, 1);
      assert.equal(listed[0]!.id, id);
      assert.equal(listed[0]!.running, true);
      assert.equal(listed[0]!.state, 'running');
      assert.equal(listed[0]!.labels['podium.tenant'], 'acme');
      assert.deepEqual(await engine.listContainers({ 'podium.host': hostId, 'podium.instance': 'someone-else' }), []);

      await engine.stopContainer(id, 5);
      await engine.stopContainer(id, 5); // already stopped: tolerated
      const stopped = await engine.listContainers({ 'podium.host': hostId, 'podium.instance': spec.instanceId });
      assert.equal(stopped[0]!.running, false);
      assert.equal(stopped[0]!.state, 'exited');

      await engine.removeContainer(id);
      assert.deepEqual(await engine.listContainers({ 'podium.host': hostId, 'podium.instance': spec.instanceId }), []);
      await assert.rejects(engine.inspectContainer(id), (err: unknown) => err instanceof DockerEngineError && err.statusCode === 404);
    });
  });
});
