import assert from 'node:assert/strict';
import type { ContainerSpec } from '../../gen/podium/v1/agent';
import {
  ContainerSpecError,
  DEFAULT_PIDS_LIMIT,
  assertConfined,
  containerBody,
  containerName,
  networkName,
  type ContainerBodyOptions,
} from '../../agent/runtime';

function spec(over: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    instanceId: '3f2a9c1e-4b7d-4e21-9a0c-5d6e7f8a9b0c',
    tenant: 'acme',
    environment: 'prod',
    service: 'web',
    image: 'podium/busybox:latest',
    command: ['httpd', '-f', '-p', '8080'],
    resources: { cpuMillis: 250, memoryMib: 64 },
    capabilities: [],
    haGroup: '',
    readOnlyRoot: false,
    writablePaths: [],
    ...over,
  };
}

const opts: ContainerBodyOptions = { hostId: 'host-1', network: 'podium-host-1-acme-prod-0123', apparmorProfile: null };

describe('runtime/container-spec: containerBody', () => {
  it('drops every capability and adds back only those asked for, normalized', () => {
    const body = containerBody(spec({ capabilities: ['net_bind_service', 'CAP_SETUID', 'NET_BIND_SERVICE'] }), opts);
    assert.deepEqual(body.HostConfig.CapDrop, ['ALL']);
    assert.deepEqual(body.HostConfig.CapAdd, ['NET_BIND_SERVICE', 'SETUID']);
    assert.deepEqual(containerBody(spec(), opts).HostConfig.CapAdd, []);
  });

  it('refuses capabilities that leave the container, ALL included', () => {
    for (const cap of ['ALL', 'SYS_ADMIN', 'CAP_SYS_PTRACE', 'NET_ADMIN', 'NET_RAW', 'MKNOD', 'SYS_MODULE', '']) {
      assert.throws(() => containerBody(spec({ capabilities: [cap] }), opts), ContainerSpecError, cap);
    }
  });

  it('sets memory without swap, CPU in nano-CPUs and a pids limit', () => {
    const body = containerBody(spec({ resources: { cpuMillis: 1500, memoryMib: 512 } }), opts);
    assert.equal(body.HostConfig.Memory, 512 * 1024 * 1024);
    assert.equal(body.HostConfig.MemorySwap, body.HostConfig.Memory);
    assert.equal(body.HostConfig.NanoCpus, 1_500_000_000);
    assert.equal(body.HostConfig.PidsLimit, DEFAULT_PIDS_LIMIT);
    assert.equal(containerBody(spec(), { ...opts, pidsLimit: 32 }).HostConfig.PidsLimit, 32);
    assert.throws(() => containerBody(spec(), { ...opts, pidsLimit: 0 }), ContainerSpecError);
  });

  it('refuses a spec without resources or with limits Docker cannot apply', () => {
    assert.throws(() => containerBody(spec({ resources: undefined }), opts), /resources are required/);
    assert.throws(() => containerBody(spec({ resources: { cpuMillis: 0, memoryMib: 64 } }), opts), /cpuMillis/);
    assert.throws(() => containerBody(spec({ resources: { cpuMillis: 100, memoryMib: 5 } }), opts), /memoryMib/);
    assert.throws(() => containerBody(spec({ resources: { cpuMillis: 1.5, memoryMib: 64 } }), opts), /cpuMillis/);
    // 5 millicores is a CFS quota of 500 µs, which the kernel refuses when runc writes it.
    assert.throws(() => containerBody(spec({ resources: { cpuMillis: 5, memoryMib: 64 } }), opts), /cpuMillis must be an integer of at least 10/);
  });

  it('labels the container with host, service, instance, environment and tenant', () => {
    const body = containerBody(spec(), opts);
    assert.deepEqual(body.Labels, {
      'podium.host': 'host-1',
      'podium.service': 'web',
      'podium.instance': '3f2a9c1e-4b7d-4e21-9a0c-5d6e7f8a9b0c',
      'podium.environment': 'prod',
      'podium.tenant': 'acme',
    });
  });

  it('labels an HA replica with its group, and only an HA replica', () => {
    assert.equal(containerBody(spec({ haGroup: 'acme/prod/db' }), opts).Labels['podium.ha-group'], 'acme/prod/db');
    assert.ok(!('podium.ha-group' in containerBody(spec(), opts).Labels));
  });

  it('hardens: no-new-privileges, default seccomp, not privileged, init, no restart policy, no mounts', () => {
    const body = containerBody(spec(), opts);
    const h = body.HostConfig;
    assert.deepEqual(h.SecurityOpt, ['no-new-privileges:true']);
    assert.ok(!h.SecurityOpt.some((o) => o.startsWith('seccomp')));
    assert.equal(h.Privileged, false);
    assert.equal(h.Init, true);
    assert.deepEqual(h.RestartPolicy, { Name: 'no' });
    assert.equal(h.Binds, undefined);
    assert.equal(h.Mounts, undefined);
    assert.equal(h.ReadonlyRootfs, false);
    assert.deepEqual(body.Cmd, ['httpd', '-f', '-p', '8080']);
    assert.equal(containerBody(spec({ command: [] }), opts).Cmd, undefined);
  });

  it('asks for the AppArmor profile when one is given, and never for "unconfined"', () => {
    const body = containerBody(spec(), { ...opts, apparmorProfile: 'podium-acme-prod-web-0011223344556677' });
    assert.deepEqual(body.HostConfig.SecurityOpt, ['no-new-privileges:true', 'apparmor=podium-acme-prod-web-0011223344556677']);
    assert.throws(() => containerBody(spec(), { ...opts, apparmorProfile: 'unconfined' }), ContainerSpecError);
    assert.throws(() => containerBody(spec(), { ...opts, apparmorProfile: 'x,seccomp=unconfined' }), ContainerSpecError);
  });

  it('joins the given network and never the host, bridge or another container', () => {
    assert.equal(containerBody(spec(), opts).HostConfig.NetworkMode, opts.network);
    for (const network of ['host', 'bridge', 'default', 'none', 'container:abc', '']) {
      assert.throws(() => containerBody(spec(), { ...opts, network }), ContainerSpecError, network);
    }
  });

  it('makes the root read-only with scratch tmpfs when the spec asks', () => {
    const body = containerBody(spec({ readOnlyRoot: true }), opts);
    assert.equal(body.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(body.HostConfig.Tmpfs, { '/tmp': 'rw,nosuid,nodev,size=64m', '/run': 'rw,nosuid,nodev,noexec,size=16m' });
  });

  it("gives each service a tmpfs on its own writable paths under a read-only root, sized to its memory", () => {
    const db = containerBody(spec({ service: 'db', readOnlyRoot: true, writablePaths: ['/var/lib/data/'], resources: { cpuMillis: 250, memoryMib: 256 } }), opts);
    const web = containerBody(spec({ service: 'web', readOnlyRoot: true, writablePaths: ['/srv/www', '/var/cache/web'] }), opts);
    assert.deepEqual(db.HostConfig.Tmpfs, {
      '/tmp': 'rw,nosuid,nodev,size=64m',
      '/run': 'rw,nosuid,nodev,noexec,size=16m',
      '/var/lib/data': 'rw,nosuid,nodev,size=256m',
    });
    assert.deepEqual(web.HostConfig.Tmpfs, {
      '/tmp': 'rw,nosuid,nodev,size=64m',
      '/run': 'rw,nosuid,nodev,noexec,size=16m',
      '/srv/www': 'rw,nosuid,nodev,size=64m',
      '/var/cache/web': 'rw,nosuid,nodev,size=64m',
    });
    // A writable path that is scratch space already keeps the scratch mount.
    assert.equal(containerBody(spec({ readOnlyRoot: true, writablePaths: ['/tmp'] }), opts).HostConfig.Tmpfs?.['/tmp'], 'rw,nosuid,nodev,size=64m');
  });

  it('mounts nothing for writable paths under a writable root (the opt-out): the container layer is writable', () => {
    const body = containerBody(spec({ readOnlyRoot: false, writablePaths: ['/var/lib/data'] }), opts);
    assert.equal(body.HostConfig.ReadonlyRootfs, false);
    assert.equal(body.HostConfig.Tmpfs, undefined);
  });

  it('refuses writable paths that are not plain absolute directories of the container', () => {
    const bad: Array<[string[], RegExp]> = [
      [['/'], /must not be "\/"/],
      [['///'], /must not be "\/"/],
      [['var/lib'], /absolute/],
      [['/proc/sys'], /under \/proc/],
      [['/sys'], /under \/sys/],
      [['/dev/shm'], /under \/dev/],
      [['/data/../etc'], /"\.\."/],
      [['/data/./x'], /"\."/],
      [['/a//b'], /"\/\/"/],
      [['/data x'], /may hold only/],
      [['/data,rw'], /may hold only/],
      [['/data', '/data/'], /given twice/],
      [Array.from({ length: 17 }, (_, i) => `/d${i}`), /more than 16/],
    ];
    for (const [writablePaths, why] of bad) {
      for (const readOnlyRoot of [true, false]) {
        assert.throws(() => containerBody(spec({ readOnlyRoot, writablePaths }), opts), (e: Error) => e instanceof ContainerSpecError && why.test(e.message), JSON.stringify(writablePaths));
      }
    }
    assert.throws(() => containerBody(spec({ readOnlyRoot: undefined as unknown as boolean }), opts), /readOnlyRoot must be true or false/);
  });

  it('assertConfined, given the spec, refuses a writable root where it asked for a read-only one, and tmpfs it did not ask for', () => {
    const asked = spec({ readOnlyRoot: true, writablePaths: ['/var/lib/data'] });
    const good = containerBody(asked, opts);
    assert.doesNotThrow(() => assertConfined(good, asked));
    const edit = (f: (b: typeof good) => void): typeof good => {
      const b = structuredClone(good);
      f(b);
      return b;
    };
    const writable = edit((b) => (b.HostConfig.ReadonlyRootfs = false));
    assert.throws(() => assertConfined(writable, asked), /asks for a read-only root/);
    assert.doesNotThrow(() => assertConfined(writable), 'without the spec a writable root is no breach in itself');
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.Tmpfs!['/srv/www'] = 'rw,nosuid,nodev,size=64m')), asked), /\/srv\/www is not one of the spec's writable paths/);
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.Tmpfs!['/var/lib/data'] = 'rw,nodev,size=64m'))), /not nosuid,nodev/);
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.Tmpfs!['/var/lib/data'] = 'rw,nosuid,nodev'))), /no size limit/);
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.Tmpfs!['/dev'] = 'rw,nosuid,nodev,size=1m'))), /tmpfs \/dev: must not be under \/dev/);
  });

  it('refuses a spec field it does not know how to confine (a mount of the Docker socket, say)', () => {
    const sneaky = { ...spec(), mounts: ['/var/run/docker.sock:/var/run/docker.sock'] } as unknown as ContainerSpec;
    assert.throws(() => containerBody(sneaky, opts), /field "mounts" of the container spec is not known/);
  });

  it('assertConfined refuses a body edited to mount the Docker socket or to loosen confinement', () => {
    const good = containerBody(spec(), opts);
    assert.doesNotThrow(() => assertConfined(good));
    const edit = (f: (b: typeof good) => void): typeof good => {
      const b = structuredClone(good);
      f(b);
      return b;
    };
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.Binds = ['/var/run/docker.sock:/var/run/docker.sock']))), /socket inside/);
    assert.throws(
      () => assertConfined(edit((b) => (b.HostConfig.Mounts = [{ Type: 'bind', Source: '/run/containerd/containerd.sock', Target: '/x' }]))),
      /socket inside/,
    );
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.Binds = ['/etc:/host-etc']))), /host paths/);
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.Privileged = true))), /privileged/);
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.NetworkMode = 'host'))), /network mode host/);
    assert.throws(() => assertConfined(edit((b) => b.HostConfig.SecurityOpt.push('seccomp=unconfined'))), /seccomp/);
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.SecurityOpt = []))), /no-new-privileges/);
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.CapAdd = ['ALL']))), /ALL/);
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.MemorySwap = -1))), /swap/);
    assert.throws(() => assertConfined(edit((b) => (b.HostConfig.PidMode = 'host'))), /pid mode/);
  });
});

describe('runtime/container-spec: names', () => {
  it('containerName is podium-<host>-<service>-<short instance> in Docker\'s charset', () => {
    assert.equal(containerName(spec(), 'host-1'), 'podium-host-1-web-3f2a9c1e' + containerName(spec(), 'host-1').slice(-4));
    assert.equal(containerName(spec({ instanceId: 'i-42' }), 'host-1'), 'podium-host-1-web-i42');
    const odd = containerName(spec({ service: 'My Web/App!', instanceId: 'ÄÖ 1' }), 'Host #7');
    assert.match(odd, /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/);
    assert.ok(odd.startsWith('podium-host-7-my-web-app-'), odd);
  });

  it('containerName keeps apart instance ids that share a long prefix', () => {
    const a = containerName(spec({ instanceId: 'lot-2024-06-01-000001' }), 'h');
    const b = containerName(spec({ instanceId: 'lot-2024-06-01-000002' }), 'h');
    assert.notEqual(a, b);
  });

  it('containerName keeps apart hosts whose long ids share their first 24 characters', () => {
    const long = 'podiumtest-host-12345-abcdef';
    const a = containerName(spec(), `${long}-1`);
    const b = containerName(spec(), `${long}-2`);
    assert.notEqual(a, b);
    assert.match(a, /^podium-podiumtest-host-[0-9a-f]{8}-web-/);
    assert.ok(containerName(spec(), 'local-1').startsWith('podium-local-1-web-'), 'short ids stay readable');
  });

  it('networkName is per host and per environment, and unambiguous across tenants', () => {
    const n = networkName('host-1', 'acme', 'prod');
    assert.match(n, /^podium-host-1-acme-prod-[0-9a-f]{16}$/);
    assert.equal(networkName('host-1', 'acme', 'prod'), n);
    assert.notEqual(networkName('host-2', 'acme', 'prod'), n);
    assert.notEqual(networkName('host-1', 'acme', 'staging'), n);
    // The same readable text from different (tenant, environment) splits must not share a network.
    assert.notEqual(networkName('h', 'a-b', 'c'), networkName('h', 'a', 'b-c'));
    assert.notEqual(networkName('h', 'Acme', 'prod'), networkName('h', 'acme', 'prod'));
    // Hosts on one engine whose ids agree in the part the name keeps readable.
    const long = 'podiumtest-host-12345-abcdef';
    assert.notEqual(networkName(`${long}-1`, 'acme', 'prod'), networkName(`${long}-2`, 'acme', 'prod'));
  });
});
