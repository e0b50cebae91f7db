/**
 * `podium dev`: the embedded default. One Pod API, one gateway and three agents (hosts local-1..3
 * in pod "local"), each its own process, with all state in one directory. The hosts share the
 * local Docker engine, or (--hosts netns) are three separate hosts on the test bed, each with
 * its own engine (cli/dev-hosts.ts). A child that exits is restarted with backoff and said so
 * (cli/supervisor.ts); Ctrl-C stops them all. A second run resumes the same cluster; --reset
 * starts clean.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { SERVER_DEFAULTS, startLocalPostgres, type LocalPostgres } from '../server';
import { DockerEngine, ensureBusyboxImage, kernelAppArmor } from '../agent/runtime';
import { TokenStore } from '../gateway';
import { loadIdentity } from '../agent/identity';
import { createStoredJoinToken, issueClientCertificate } from './certs-commands';
import { describeDevHosts, DEV_TESTBED, prepareDevHosts, type DevHostsKind } from './dev-hosts';
import { describeSupervisorEvent, Supervisor, SUPERVISOR_DEFAULTS } from './supervisor';
import { testbedDown } from './testbed';

/** With --postgres: the local cluster's port, and the second Pod API process's. */
const DEV_POSTGRES_PORT = 7432;
const STANDBY_PORT = 7543;
const DATABASE_FILE = 'database';

export interface DevOptions {
  /** Two Pod API processes on a local PostgreSQL cluster under <dir>/postgres, instead of SQLite. */
  postgres?: boolean;
  dir: string;
  reset: boolean;
  dockerSocket: string;
  /** Where the three hosts run: all on the local engine, or separate hosts on the test bed. */
  hosts: DevHostsKind;
}

export const DEV_HOSTS = ['local-1', 'local-2', 'local-3'] as const;
const GATEWAY = { host: '127.0.0.1', port: 8080 };
/** Agents' metrics: local-1 on 7451, local-2 on 7452, local-3 on 7453. */
const AGENT_METRICS_PORT = 7451;
/** The agents' edge ports (HTTPS for published endpoints): 8443, 8444, 8445. */
const AGENT_EDGE_PORT = 8443;
const BIN = join(__dirname, '..', '..', 'bin', 'podium');

function step(msg: string): void {
  process.stdout.write(`• ${msg}\n`);
}

/** Which kind of hosts the state in `dir` was made with ("engine" when it predates the choice). */
const KIND_FILE = 'hosts-kind';
function recordedHostsKind(dir: string): DevHostsKind | null {
  if (existsSync(join(dir, KIND_FILE))) return readFileSync(join(dir, KIND_FILE), 'utf8').trim() as DevHostsKind;
  return existsSync(join(dir, 'server')) ? 'engine' : null;
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
  const testbedLog = (line: string) => process.stdout.write(`  ${line}\n`);

  // Before anything is reset or started: a running podium dev holds the gateway's port (and a
  // child that cannot bind would only be restarted again and again by the supervisor).
  if (await portOpen(GATEWAY.host, GATEWAY.port)) throw new Error(`${GATEWAY.host}:${GATEWAY.port}, for the gateway, is already in use (is another podium dev running?)`);
  if (opts.hosts === 'engine' && (await portOpen(SERVER_DEFAULTS.host, SERVER_DEFAULTS.port))) {
    throw new Error(`${SERVER_DEFAULTS.host}:${SERVER_DEFAULTS.port}, for the Pod API, is already in use (is another podium dev running?)`);
  }

  if (opts.hosts === 'engine') {
    step(`Docker engine on ${opts.dockerSocket}`);
    try {
      await engine.ping();
    } catch (err) {
      throw new Error(`no Docker engine answers on ${opts.dockerSocket} (${(err as Error).message}); scripts/dev starts one`);
    }
  }
  if (opts.reset) {
    // The state directory may come from a run with the other kind of hosts: remove what that made
    // on the local engine too, when it answers.
    const localEngine = opts.hosts === 'engine' || (await engine.ping().then(() => true, () => false));
    const n = localEngine ? await removeDevContainers(engine) : 0;
    if (opts.hosts === 'netns') {
      step(`reset: taking the test bed "${DEV_TESTBED}" down, with its engines and containers`);
      await testbedDown(DEV_TESTBED, testbedLog);
    }
    rmSync(dir, { recursive: true, force: true });
    step(`reset: removed ${show(dir)} and ${n} container(s)${localEngine && opts.hosts === 'netns' ? ' on the local engine' : ''}`);
  }
  const recorded = recordedHostsKind(dir);
  if (recorded !== null && recorded !== opts.hosts) {
    throw new Error(`${show(dir)} holds a cluster whose hosts are "--hosts ${recorded}"; run with --hosts ${recorded}, or add --reset to start clean with --hosts ${opts.hosts}`);
  }
  if (opts.hosts === 'netns') step(`test bed "${DEV_TESTBED}": ${DEV_HOSTS.length} hosts, each a network namespace with its own dockerd (scripts/lib/testbed.sh)`);
  const devHosts = await prepareDevHosts(opts.hosts, DEV_HOSTS, opts.dockerSocket, testbedLog);
  const podApi = `${devHosts.podApiHost}:${SERVER_DEFAULTS.port}`;
  if (await portOpen(devHosts.podApiHost, SERVER_DEFAULTS.port)) throw new Error(`${podApi}, for the Pod API, is already in use (is another podium dev running?)`);

  const engines = [...new Map(devHosts.hosts.map((h) => [h.dockerSocket, h.engine])).values()];
  const made = await Promise.all(engines.map((e) => ensureBusyboxImage(e)));
  const where = engines.length === 1 ? '' : ` on ${engines.length} engines`;
  step(`base image podium/busybox:latest${where} ${made.includes('created') ? 'built from busybox-static' : 'present'}`);

  step('certificates');
  const serverDir = join(dir, 'server');
  const certsDir = join(dir, 'certs');
  const gatewayDir = join(dir, 'gateway');
  const logsDir = join(dir, 'logs');
  for (const d of [dir, serverDir, gatewayDir, logsDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, KIND_FILE), `${opts.hosts}\n`);
  const database = opts.postgres ? 'postgres' : 'sqlite';
  const recordedDatabase = existsSync(join(dir, DATABASE_FILE)) ? readFileSync(join(dir, DATABASE_FILE), 'utf8').trim() : null;
  if (recordedDatabase !== null && recordedDatabase !== database) {
    throw new Error(`${show(dir)} holds a cluster on ${recordedDatabase}; run ${recordedDatabase === 'postgres' ? 'with' : 'without'} --postgres, or add --reset to start clean`);
  }
  writeFileSync(join(dir, DATABASE_FILE), `${database}\n`);
  // --postgres: a PostgreSQL cluster of dev's own, in the state directory (the postgres user must
  // reach it: the directory becomes searchable, its files stay private), stopped with dev.
  let postgres: LocalPostgres | null = null;
  if (opts.postgres) {
    if (await portOpen('127.0.0.1', DEV_POSTGRES_PORT)) throw new Error(`127.0.0.1:${DEV_POSTGRES_PORT}, for PostgreSQL, is already in use`);
    if (await portOpen(devHosts.podApiHost, STANDBY_PORT)) throw new Error(`${devHosts.podApiHost}:${STANDBY_PORT}, for the standby Pod API, is already in use`);
    chmodSync(dir, 0o711);
    step(`PostgreSQL on 127.0.0.1:${DEV_POSTGRES_PORT} (${show(join(dir, 'postgres'))})`);
    postgres = await startLocalPostgres(join(dir, 'postgres'), { port: DEV_POSTGRES_PORT });
  }
  const state = { dataDir: serverDir, database: postgres?.url, caKeyFile: join(serverDir, 'ca-key') };
  const td = SERVER_DEFAULTS.trustDomain;
  if (!existsSync(join(certsDir, 'operator.crt'))) await issueClientCertificate(state, td, 'operator', 'admin', certsDir, 30 * 24 * 3600);
  if (!existsSync(join(gatewayDir, 'gateway.crt'))) await issueClientCertificate(state, td, 'gateway', 'gateway', gatewayDir, 30 * 24 * 3600);
  // The gateway's tokens: beside it on SQLite; with --postgres in the same database, as gateways
  // that share their tokens would keep them.
  const tokenDb = postgres?.url ?? join(gatewayDir, 'tokens.db');
  const tokenPath = join(dir, 'admin.token');
  if (!existsSync(tokenPath)) {
    const tokens = await TokenStore.open(tokenDb);
    try {
      writeFileSync(tokenPath, `${await tokens.create('default', 'admin', 'admin')}\n`, { mode: 0o600 });
    } finally {
      await tokens.close();
    }
  }
  // A token per host that has no identity yet, bound to its id. It may replace: a dev host whose
  // key is gone from disk has lost that identity for good, and its old certificate is better
  // revoked than left to block the id until it expires. Three uses, not one: the supervisor
  // restarts an agent with the same token, and one that died between its Join and saving the
  // identity must be able to join again (replacing the certificate it never kept).
  const joinTokens = new Map<string, string>();
  for (const h of DEV_HOSTS) {
    if (!loadIdentity(join(dir, 'agents', h))) joinTokens.set(h, await createStoredJoinToken(state, td, 'agent', 3600_000, { hostId: h, replace: true, uses: 3 }));
  }

  const kernel = kernelAppArmor();
  if (!kernel.enabled) {
    process.stdout.write(
      `! WARNING: ${kernel.detail}.\n` +
        '!          The agents run with --insecure-no-apparmor: profiles are generated and checked, not enforced.\n',
    );
  }

  // A child that exits is started again with backoff and said so; only Ctrl-C stops them all.
  const supervisor = new Supervisor({
    onEvent: (e) => {
      if (e.kind === 'started' && e.start === 1) return;
      // Children ending as asked on Ctrl-C need no line each; one that did not is worth one.
      if (e.kind === 'exited' && e.restartInMs === null && (e.code === 0 || e.signal === 'SIGTERM')) return;
      process.stderr.write(`podium dev: ${describeSupervisorEvent(e, show)}\n`);
    },
  });
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await supervisor.stop();
    await postgres?.stop();
    const kept = opts.hosts === 'netns' ? ` (the test bed "${DEV_TESTBED}" stays up with its containers)` : '';
    process.stdout.write(`podium dev: stopped the Pod API, the gateway and ${DEV_HOSTS.length} agents${kept}\n`);
    process.exit(code);
  };
  /** Starts `podium <args>` as child `name`: an agent on its own host, the others here. */
  const start = (name: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const argv = [process.execPath, BIN, ...args];
    const on = devHosts.hosts.find((h) => h.id === name);
    supervisor.start({ name, ...(on ? on.command(argv) : { command: argv[0]!, args: argv.slice(1) }), env, logPath: join(logsDir, `${name}.log`) });
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  const token = readFileSync(tokenPath, 'utf8').trim();
  const standby = `${devHosts.podApiHost}:${STANDBY_PORT}`;
  const servers = postgres ? `${podApi},${standby}` : podApi;
  try {
    step(`Pod API on ${podApi}${postgres ? ` and ${standby} (two processes on one PostgreSQL: one leads, the other stands by)` : ''}`);
    const database = postgres ? ['--database', postgres.url, '--ca-key-file', state.caKeyFile] : [];
    start('server', ['server', '--data-dir', serverDir, '--listen', podApi, ...database]);
    if (postgres) {
      mkdirSync(join(dir, 'server-2'), { recursive: true, mode: 0o700 });
      start('server-2', ['server', '--data-dir', join(dir, 'server-2'), '--listen', standby, '--metrics-listen', '127.0.0.1:7544', ...database]);
    }
    await waitFor('the Pod API', () => portOpen(devHosts.podApiHost, SERVER_DEFAULTS.port), 30_000);

    step(`gateway on http://${GATEWAY.host}:${GATEWAY.port}`);
    start('gateway', ['gateway', '--listen', `${GATEWAY.host}:${GATEWAY.port}`, '--server', servers, '--certs-dir', gatewayDir, '--token-db', tokenDb]);
    await waitFor('the gateway', async () => (await fetch(`http://${GATEWAY.host}:${GATEWAY.port}/healthz`)).ok, 30_000);

    step(`agents ${DEV_HOSTS.join(', ')} in pod "local"${opts.hosts === 'netns' ? ', each in its host\'s namespace' : ''}`);
    for (const [i, host] of DEV_HOSTS.entries()) {
      const on = devHosts.hosts[i]!;
      const args = ['agent', '--data-dir', join(dir, 'agents', host), '--server', servers, '--host-id', host, '--pod', 'local', '--provider', 'local', '--docker-socket', on.dockerSocket, '--metrics-listen', `${on.address}:${AGENT_METRICS_PORT + i}`, '--mesh-listen', `${on.address}:0`, '--edge-listen', `${on.address}:${AGENT_EDGE_PORT + i}`];
      if (!kernel.enabled) args.push('--insecure-no-apparmor');
      const joinToken = joinTokens.get(host);
      start(host, args, joinToken ? { PODIUM_JOIN_TOKEN: joinToken } : {});
    }
    await waitFor(
      'three hosts',
      async () => {
        const res = await fetch(`http://${GATEWAY.host}:${GATEWAY.port}/v1/hosts`, { headers: { authorization: `Bearer ${token}` } });
        const body = (await res.json()) as { hosts?: Array<{ id: string; state: string }> };
        return DEV_HOSTS.every((h) => body.hosts?.some((x) => x.id === h && x.state === 'HOST_STATE_UP'));
      },
      60_000,
    );
  } catch (err) {
    stopping = true;
    await supervisor.stop();
    await postgres?.stop();
    throw new Error(`${(err as Error).message}; the logs are in ${show(logsDir)}/`);
  }

  const c = show(certsDir);
  const agentMetrics =
    opts.hosts === 'engine'
      ? [`                   http://127.0.0.1:${AGENT_METRICS_PORT}-${AGENT_METRICS_PORT + DEV_HOSTS.length - 1}/metrics (agents)`]
      : devHosts.hosts.map((h, i) => `                   http://${h.address}:${AGENT_METRICS_PORT + i}/metrics (agent ${h.id})`);
  const tb = devHosts.testbed;
  process.stdout.write(
    [
      '',
      tb
        ? `Podium is running: pod "local" with 3 separate hosts on the test bed "${tb.name}" (${tb.subnet}), each with its own Docker engine.`
        : 'Podium is running: pod "local" with 3 hosts on the local Docker engine.',
      ...describeDevHosts(devHosts),
      `  Gateway (REST)   http://${GATEWAY.host}:${GATEWAY.port}`,
      `  Pod API (gRPC)   ${podApi}${tb ? ' (on the test bed\'s bridge; the agents reach it from their hosts\' addresses)' : ''}`,
      ...(postgres
        ? [
            `                   ${standby}, a second process on the same PostgreSQL (${postgres.url}); kill the one that leads`,
            `                   (podium_leader on :7444/metrics, :7544/metrics) and the other takes over: agents and gateway follow`,
          ]
        : []),
      `  Admin token      ${show(tokenPath)}`,
      `  Operator cert    ${c}/operator.crt, ${c}/operator.key, CA ${c}/ca.crt`,
      `  Metrics          http://${GATEWAY.host}:${GATEWAY.port}/metrics (gateway), http://127.0.0.1:7444/metrics (Pod API),`,
      ...agentMetrics,
      `  Logs             ${show(logsDir)}/`,
      '',
      'Try:',
      `  curl -H "Authorization: Bearer $(cat ${show(tokenPath)})" http://${GATEWAY.host}:${GATEWAY.port}/v1/hosts`,
      `  grpcurl -cacert ${c}/ca.crt -cert ${c}/operator.crt -key ${c}/operator.key ${podApi} list`,
      ...(tb ? [`  scripts/lib/testbed.sh status ${tb.name}`] : []),
      '',
      `A child that exits is restarted after ${SUPERVISOR_DEFAULTS.initialBackoffMs / 1000} s, doubling to ${SUPERVISOR_DEFAULTS.maxBackoffMs / 1000} s, and said so here.`,
      tb
        ? `Ctrl-C stops it (the test bed stays up with its containers); \`podium dev --hosts netns\` again resumes the same cluster, \`podium dev --hosts netns --reset\` starts clean and takes the test bed down.`
        : 'Ctrl-C stops it; `podium dev` again resumes the same cluster, `podium dev --reset` starts clean.',
      '',
    ].join('\n'),
  );
}
