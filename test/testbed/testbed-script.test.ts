/**
 * scripts/lib/testbed.sh on the real machine: `up` makes separate hosts (a namespace, an address
 * and an engine each) that reach each other and the root namespace, idempotently and without two
 * test beds ever taking one subnet; `down` and `sweep` leave nothing behind, also when the
 * engines, their containers' shims and the owner were killed with SIGKILL first.
 * Each test makes its own small test beds (random names) and takes them down.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { DockerEngine, ensureBusyboxImage, BUSYBOX_IMAGE } from '../../agent/runtime';
import { registerTestbedProcess, testbedDown, testbedSweep, testbedUp, TESTBED_SCRIPT, type Testbed } from '../../cli';
import { poll } from '../support/poll';

const run = promisify(execFile);
const RUN_ROOT = '/run/podium-testbed';
const DATA_ROOT = '/var/lib/podium-testbed';

const tbName = () => `tt${randomBytes(3).toString('hex')}`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Everything of test bed `name` the machine still holds, one line per thing; [] when none. */
async function leftovers(name: string, shimSockets: string[] = []): Promise<string[]> {
  const found: string[] = [];
  const own = new RegExp(`^ptb-${name}(-\\d+)?$`);
  for (const ns of (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '')) {
    if (own.test(ns)) found.push(`namespace ${ns}`);
  }
  for (const l of (await run('ip', ['-o', 'link', 'show'])).stdout.split('\n')) {
    const dev = (l.split(': ')[1] ?? '').replace(/@.*/, '');
    if (own.test(dev)) found.push(`link ${dev}`);
  }
  for (const r of (await run('iptables', ['-w', '-S', 'FORWARD'])).stdout.split('\n')) {
    if (r.includes(`podium-testbed-${name} `)) found.push(`iptables ${r}`);
  }
  for (const dir of [`${RUN_ROOT}/${name}`, `${DATA_ROOT}/${name}`]) if (existsSync(dir)) found.push(`directory ${dir}`);
  for (const m of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const at = m.split(' ')[4] ?? '';
    if (at.startsWith(`${RUN_ROOT}/${name}/`) || at.startsWith(`${DATA_ROOT}/${name}/`)) found.push(`mount ${at}`);
  }
  for (const ctrl of readdirSync('/sys/fs/cgroup')) {
    for (const d of existsSync(`/sys/fs/cgroup/${ctrl}`) ? safeReaddir(`/sys/fs/cgroup/${ctrl}`) : []) {
      if (own.test(d)) found.push(`cgroup ${ctrl}/${d}`);
    }
  }
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (cmd.includes(`/podium-testbed/${name}/`)) found.push(`process ${pid} ${cmd.slice(0, 120)}`);
  }
  for (const s of shimSockets) if (existsSync(s)) found.push(`shim socket ${s}`);
  return found;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The socket a containerd shim keeps for container `id` (sha256 of "<address>/moby/<id>"). */
function shimSocket(containerdAddress: string, id: string): string {
  return `/run/containerd/s/${createHash('sha256').update(`${containerdAddress}/moby/${id}`).digest('hex')}`;
}

async function webOn(engine: DockerEngine, name: string, hostPort: number): Promise<string> {
  await ensureBusyboxImage(engine);
  const id = await engine.createContainer(name, {
    Image: BUSYBOX_IMAGE,
    Cmd: ['httpd', '-f', '-p', '8080'],
    ExposedPorts: { '8080/tcp': {} },
    HostConfig: { PortBindings: { '8080/tcp': [{ HostPort: String(hostPort) }] } },
  });
  await engine.startContainer(id);
  return id;
}

/** The HTTP status a GET of `url` gets from inside the namespace at `netnsPath`. */
async function statusFrom(netnsPath: string, url: string): Promise<number> {
  const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(5000) }).then((r) => console.log(r.status), (e) => { console.log(0); })`;
  const { stdout } = await run('nsenter', [`--net=${netnsPath}`, '--', process.execPath, '-e', script]);
  return Number(stdout.trim());
}

function script(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('bash', [TESTBED_SCRIPT, ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

describe('test bed script (scripts/lib/testbed.sh)', function () {
  this.timeout(180_000);
  const made = new Set<string>();
  const children: ChildProcess[] = [];
  const up = async (name: string, n: number, owner?: number): Promise<Testbed> => {
    made.add(name);
    return testbedUp(name, n, { subnet: 'auto', owner });
  };

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const name of made) await testbedDown(name);
  });

  it('makes separate hosts that reach each other and the root namespace, idempotently, never sharing a subnet', async () => {
    const a = tbName();
    const b = tbName();
    // Concurrent ups: the lock makes the second pick another subnet.
    const [ta, tb] = await Promise.all([up(a, 2), up(b, 1)]);
    assert.notEqual(ta.subnet, tb.subnet);
    const prefix = ta.subnet.replace(/\.0\/24$/, '');
    assert.equal(ta.bridgeAddress, `${prefix}.1`);
    assert.deepEqual(ta.hosts.map((h) => [h.name, h.netns, h.address, h.bip]), [
      [`${a}-1`, `ptb-${a}-1`, `${prefix}.11`, '172.30.1.1/24'],
      [`${a}-2`, `ptb-${a}-2`, `${prefix}.12`, '172.30.2.1/24'],
    ]);
    for (const h of ta.hosts) {
      const ns = ['--net=' + h.netnsPath, '--'];
      assert.match((await run('nsenter', [...ns, 'ip', '-o', '-4', 'addr', 'show', 'eth0'])).stdout, new RegExp(`inet ${h.address.replace(/\./g, '\\.')}/24`));
      assert.match((await run('nsenter', [...ns, 'ip', 'route', 'show', 'default'])).stdout, new RegExp(`default via ${ta.bridgeAddress.replace(/\./g, '\\.')} dev eth0`));
      await new DockerEngine({ socketPath: h.dockerSocket }).ping();
    }
    // A taken subnet is refused, not shared.
    const clash = await script(['up', tbName(), '1', '--subnet', ta.subnet]);
    assert.notEqual(clash.code, 0);
    assert.match(clash.out, /is in use/);

    // A container published on host 1 answers from the root namespace and from host 2, and
    // exists on host 1's engine only.
    const [e1, e2] = ta.hosts.map((h) => new DockerEngine({ socketPath: h.dockerSocket }));
    const id = await webOn(e1!, `${a}-web`, 18080);
    await assert.rejects(e2!.inspectContainer(id), /No such container/);
    const url = `http://${ta.hosts[0]!.address}:18080/`;
    const fromRoot = await poll('httpd on host 1 from the root namespace', async () => (await fetch(url, { signal: AbortSignal.timeout(3000) })).status);
    assert.ok(fromRoot >= 200 && fromRoot < 500, `status ${fromRoot}`);
    const fromHost2 = await poll('httpd on host 1 from host 2', async () => (await statusFrom(ta.hosts[1]!.netnsPath, url)) || undefined, 15_000);
    assert.ok(fromHost2 >= 200 && fromHost2 < 500, `status ${fromHost2}`);

    // Up again as asked: the same engines, nothing restarted.
    const pids = () => ta.hosts.map((h, i) => readFileSync(`${RUN_ROOT}/${a}/${i + 1}/dockerd.pid`, 'utf8').trim());
    const before = pids();
    const again = await up(a, 2);
    assert.deepEqual(again, ta);
    assert.deepEqual(pids(), before);
    assert.equal((await script(['status', a])).code, 0);

    await testbedDown(a);
    await testbedDown(b);
    assert.deepEqual(await leftovers(a), []);
    assert.deepEqual(await leftovers(b), []);
    const st = await script(['status', a]);
    assert.equal(st.code, 3, st.out);
  });

  it('sweep removes a test bed whose owner was killed, after its engines were SIGKILLed too, leaving nothing', async () => {
    const name = tbName();
    const owner = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const rootProc = spawn(process.execPath, ['-e', 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    children.push(owner, rootProc);
    const tb = await up(name, 2, owner.pid);
    registerTestbedProcess(name, rootProc.pid!);

    // A running container on each host: shims, cgroups, overlay mounts, network namespaces.
    const shims: string[] = [];
    const containerPids: number[] = [];
    for (const [i, h] of tb.hosts.entries()) {
      const engine = new DockerEngine({ socketPath: h.dockerSocket });
      const id = await webOn(engine, `${name}-web${i}`, 18081);
      containerPids.push((await engine.inspectContainer(id)).State.Pid);
      shims.push(shimSocket(`${RUN_ROOT}/${name}/${i + 1}/exec/containerd/containerd.sock`, id));
    }
    assert.ok(shims.every((s) => existsSync(s)), 'the shims made their sockets where they are looked for');
    const seen = await leftovers(name, shims);
    for (const kind of ['namespace', 'link', 'iptables', 'directory', 'mount', 'cgroup', 'process', 'shim socket']) {
      assert.ok(seen.some((l) => l.startsWith(`${kind} `)), `the check sees a ${kind}: ${seen.join('\n')}`);
    }

    // A crash: host 1's dockerd, containerd and its container's shim die with SIGKILL (the
    // container lives on, and the shim's socket stays), then the owner dies the same way.
    const pidOf = (f: string) => Number(readFileSync(f, 'utf8').trim());
    const dockerd = pidOf(`${RUN_ROOT}/${name}/1/dockerd.pid`);
    const containerd = pidOf(`${RUN_ROOT}/${name}/1/exec/containerd/containerd.pid`);
    const inHost1 = (await run('ip', ['netns', 'pids', tb.hosts[0]!.netns])).stdout.split('\n').filter((p) => p !== '');
    const shim = inHost1.map(Number).find((p) => {
      try {
        return /containerd-shim/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8'));
      } catch {
        return false;
      }
    });
    assert.ok(shim !== undefined, 'host 1 runs a containerd shim');
    for (const pid of [dockerd, containerd, shim]) process.kill(pid, 'SIGKILL');
    owner.kill('SIGKILL');
    await poll('the engine and the owner gone', () => ![dockerd, containerd, shim].some(alive) && owner.signalCode !== null);
    assert.ok(containerPids.every(alive), 'the containers outlived their engine');
    assert.ok(existsSync(shims[0]!), "the killed shim's socket stays behind");

    // Another run's sweep, with its own test bed up: only the orphan goes.
    const other = tbName();
    await up(other, 1, process.pid);
    await testbedSweep();
    assert.deepEqual(await leftovers(name, shims), []);
    assert.ok(!containerPids.some(alive), 'the containers are gone');
    assert.ok(!alive(rootProc.pid!), 'the registered process is gone (it ignored SIGTERM)');
    assert.ok((await leftovers(other)).length > 0, "a live owner's test bed is kept");
    await testbedDown(other);
    assert.deepEqual(await leftovers(other), []);
  });

  it('up over what a killed run left starts clean', async () => {
    const name = tbName();
    await up(name, 1);
    const dockerd = Number(readFileSync(`${RUN_ROOT}/${name}/1/dockerd.pid`, 'utf8').trim());
    process.kill(dockerd, 'SIGKILL');
    await poll('dockerd gone', () => !alive(dockerd));
    const second = await up(name, 1);
    const again = Number(readFileSync(`${RUN_ROOT}/${name}/1/dockerd.pid`, 'utf8').trim());
    assert.notEqual(again, dockerd);
    assert.match(second.hosts[0]!.address, /\.11$/);
    await new DockerEngine({ socketPath: second.hosts[0]!.dockerSocket }).ping();
    await testbedDown(name);
    assert.deepEqual(await leftovers(name), []);
  });
});
