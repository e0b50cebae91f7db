/**
 * `podium dev`: the embedded default. One Pod API, one gateway and three agents (hosts local-1..3
 * in pod "local"), each its own process, on the local Docker engine, with all state in one
 * directory. A second run resumes the same cluster; --reset starts clean.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { SERVER_DEFAULTS } from '../server';
import { DockerEngine, ensureBusyboxImage, kernelAppArmor } from '../agent/runtime';
import { TokenStore } from '../gateway';
import { loadIdentity } from '../agent/identity';
import { createStoredJoinToken, issueClientCertificate } from './index';

export interface DevOptions {
  dir: string;
  reset: boolean;
  dockerSocket: string;
}

export const DEV_HOSTS = ['local-1', 'local-2', 'local-3'] as const;
const GATEWAY = { host: '127.0.0.1', port: 8080 };
const POD_API = `${SERVER_DEFAULTS.host}:${SERVER_DEFAULTS.port}`;
/** Agents' metrics: local-1 on 7451, local-2 on 7452, local-3 on 7453. */
const AGENT_METRICS_PORT = 7451;
const BIN = join(__dirname, '..', '..', 'bin', 'podium');

function step(msg: string): void {
  process.stdout.write(`• ${msg}\n`);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not come up within ${timeoutMs / 1000} s`);
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host, port }, () => {
      s.end();
      res(true);
    });
    s.on('error', () => res(false));
  });
}

/** Removes every container and network the dev hosts made (found by label), on the shared engine.
 *  Networks go with force: Docker 20.10 can keep stale endpoints that refuse a plain removal, and
 *  nothing of the dev hosts is left on them once their containers are gone. */
async function removeDevContainers(engine: DockerEngine): Promise<number> {
  let n = 0;
  for (const host of DEV_HOSTS) {
    for (const c of await engine.listContainers({ 'podium.host': host })) {
      await engine.removeContainer(c.id);
      n++;
    }
    for (const net of await engine.listNetworks({ 'podium.host': host })) await engine.forceRemoveNetwork(net.id);
  }
  return n;
}

export async function runDev(opts: DevOptions): Promise<void> {
  const dir = resolve(opts.dir);
  const show = (p: string) => relative(process.cwd(), p) || '.';
  const engine = new DockerEngine({ socketPath: opts.dockerSocket });

  step(`Docker engine on ${opts.dockerSocket}`);
  try {
    await engine.ping();
  } catch (err) {
    throw new Error(`no Docker engine answers on ${opts.dockerSocket} (${(err as Error).message}); scripts/dev starts one`);
  }
  if (opts.reset) {
    const n = await removeDevContainers(engine);
    rmSync(dir, { recursive: true, force: true });
    step(`reset: removed ${show(dir)} and ${n} container(s)`);
  }
  const created = await ensureBusyboxImage(engine);
  step(`base image podium/busybox:latest ${created === 'created' ? 'built from busybox-static' : 'present'}`);

  step('certificates');
  const serverDir = join(dir, 'server');
  const certsDir = join(dir, 'certs');
  const gatewayDir = join(dir, 'gateway');
  const logsDir = join(dir, 'logs');
  for (const d of [dir, serverDir, gatewayDir, logsDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const td = SERVER_DEFAULTS.trustDomain;
  if (!existsSync(join(certsDir, 'operator.crt'))) await issueClientCertificate(serverDir, td, 'operator', 'admin', certsDir, 30 * 24 * 3600);
  if (!existsSync(join(gatewayDir, 'gateway.crt'))) await issueClientCertificate(serverDir, td, 'gateway', 'gateway', gatewayDir, 30 * 24 * 3600);
  const tokenPath = join(dir, 'admin.token');
  if (!existsSync(tokenPath)) {
    const tokens = TokenStore.open(join(gatewayDir, 'tokens.db'));
    try {
      writeFileSync(tokenPath, `${tokens.create('default', 'admin')}\n`, { mode: 0o600 });
    } finally {
      tokens.close();
    }
  }
  const needJoin = DEV_HOSTS.some((h) => !loadIdentity(join(dir, 'agents', h)));
  const joinToken = needJoin ? await createStoredJoinToken(serverDir, td, 'agent', 3600_000) : '';

  const kernel = kernelAppArmor();
  if (!kernel.enabled) {
    process.stdout.write(
      `! WARNING: ${kernel.detail}.\n` +
        '!          The agents run with --insecure-no-apparmor: profiles are generated and checked, not enforced.\n',
    );
  }

  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const c of children.values()) c.kill('SIGTERM');
    await Promise.all([...children.values()].map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
    process.exit(code);
  };
  const start = (name: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const log = openSync(join(logsDir, `${name}.log`), 'a');
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', log, log], env: { ...process.env, ...env } });
    children.set(name, child);
    child.once('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`podium dev: ${name} exited (${signal ?? code}); see ${show(join(logsDir, `${name}.log`))}\n`);
      void stopAll(1);
    });
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  for (const [what, port] of [['the Pod API', SERVER_DEFAULTS.port], ['the gateway', GATEWAY.port]] as const) {
    if (await portOpen('127.0.0.1', port)) throw new Error(`127.0.0.1:${port}, for ${what}, is already in use (is another podium dev running?)`);
  }
  step(`Pod API on ${POD_API}`);
  start('server', ['server', '--data-dir', serverDir, '--listen', POD_API]);
  await waitFor('the Pod API', () => portOpen(SERVER_DEFAULTS.host, SERVER_DEFAULTS.port), 30_000);

  step(`gateway on http://${GATEWAY.host}:${GATEWAY.port}`);
  start('gateway', ['gateway', '--listen', `${GATEWAY.host}:${GATEWAY.port}`, '--server', POD_API, '--certs-dir', gatewayDir, '--token-db', join(gatewayDir, 'tokens.db')]);
  await waitFor('the gateway', async () => (await fetch(`http://${GATEWAY.host}:${GATEWAY.port}/healthz`)).ok, 30_000);

  step(`agents ${DEV_HOSTS.join(', ')} in pod "local"`);
  for (const [i, host] of DEV_HOSTS.entries()) {
    const args = ['agent', '--data-dir', join(dir, 'agents', host), '--server', POD_API, '--host-id', host, '--pod', 'local', '--provider', 'local', '--docker-socket', opts.dockerSocket, '--metrics-listen', `127.0.0.1:${AGENT_METRICS_PORT + i}`];
    if (!kernel.enabled) args.push('--insecure-no-apparmor');
    start(host, args, joinToken ? { PODIUM_JOIN_TOKEN: joinToken } : {});
  }
  const token = readFileSync(tokenPath, 'utf8').trim();
  await waitFor(
    'three hosts',
    async () => {
      const res = await fetch(`http://${GATEWAY.host}:${GATEWAY.port}/v1/hosts`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await res.json()) as { hosts?: Array<{ id: string; state: string }> };
      return DEV_HOSTS.every((h) => body.hosts?.some((x) => x.id === h && x.state === 'HOST_STATE_UP'));
    },
    60_000,
  );

  const c = show(certsDir);
  process.stdout.write(
    [
      '',
      'Podium is running: pod "local" with 3 hosts on the local Docker engine.',
      `  Gateway (REST)   http://${GATEWAY.host}:${GATEWAY.port}`,
      `  Pod API (gRPC)   ${POD_API}`,
      `  Admin token      ${show(tokenPath)}`,
      `  Operator cert    ${c}/operator.crt, ${c}/operator.key, CA ${c}/ca.crt`,
      `  Metrics          http://${GATEWAY.host}:${GATEWAY.port}/metrics (gateway), http://127.0.0.1:7444/metrics (Pod API),`,
      `                   http://127.0.0.1:${AGENT_METRICS_PORT}-${AGENT_METRICS_PORT + DEV_HOSTS.length - 1}/metrics (agents)`,
      `  Logs             ${show(logsDir)}/`,
      '',
      'Try:',
      `  curl -H "Authorization: Bearer $(cat ${show(tokenPath)})" http://${GATEWAY.host}:${GATEWAY.port}/v1/hosts`,
      `  grpcurl -cacert ${c}/ca.crt -cert ${c}/operator.crt -key ${c}/operator.key ${POD_API} list`,
      '',
      'Ctrl-C stops it; `podium dev` again resumes the same cluster, `podium dev --reset` starts clean.',
      '',
    ].join('\n'),
  );
}
