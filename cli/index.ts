/**
 * The `podium` command: the one place that wires server, agent, gateway and certs together
 * (STYLE 4), and the only one that reads flags.
 */
import { Command, Option } from 'commander';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createJoinToken, issueKeyPair, loadOrCreateAuthority, spiffeIdFor, type Role } from '../certs';
import { AGENT_DEFAULTS, startAgent } from '../agent';
import { startGateway, TokenStore } from '../gateway';
import { SERVER_DEFAULTS, Store, startServer } from '../server';
import { collect, ConfigError, parseDuration, parseLabels, parseListen, parseNames, parsePositiveInt, parseSubnetPool } from './config';
import { runDev } from './dev';
import { serveMetrics } from './metrics-endpoint';
import { processLogger } from './log';

/** Stops on SIGINT/SIGTERM by closing what was started. */
function untilSignal(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    close().finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

export function program(): Command {
  const cmd = new Command('podium').description('Podium: a secure container platform').showHelpAfterError();

  cmd
    .command('server')
    .description('run the Pod API (gRPC on TLS)')
    .option('--data-dir <dir>', 'state directory (SQLite and CA)', './.podium/server')
    .option('--listen <host:port>', 'gRPC address', `${SERVER_DEFAULTS.host}:${SERVER_DEFAULTS.port}`)
    .option('--advertise <names>', 'host names and addresses agents reach the server by, comma-separated (default: the listen address)', collect, [])
    .option('--trust-domain <td>', 'SPIFFE trust domain', SERVER_DEFAULTS.trustDomain)
    .option('--host-ttl <duration>', 'a host silent this long is down', `${SERVER_DEFAULTS.hostTtlMs / 1000}s`)
    .option('--heartbeat <duration>', 'agent heartbeat interval', `${SERVER_DEFAULTS.heartbeatIntervalMs / 1000}s`)
    .option('--cert-lifetime <duration>', 'lifetime of issued certificates', `${SERVER_DEFAULTS.certLifetimeSeconds / 3600}h`)
    .option('--seed <n>', 'seed of the auction sampling (random when absent)')
    .option('--metrics-listen <host:port>', 'Prometheus /metrics address', '127.0.0.1:7444')
    .action(async (o) => {
      const logger = processLogger('podium-server');
      const { host, port } = parseListen('--listen', o.listen);
      const metricsAt = parseListen('--metrics-listen', o.metricsListen);
      const hostTtlMs = parseDuration('--host-ttl', o.hostTtl);
      const heartbeatIntervalMs = parseDuration('--heartbeat', o.heartbeat);
      if (heartbeatIntervalMs * 2 > hostTtlMs) throw new ConfigError('--heartbeat', 'must be at most half of --host-ttl');
      const server = await startServer(
        Object.freeze({
          ...SERVER_DEFAULTS,
          dataDir: o.dataDir,
          host,
          port,
          advertise: parseNames('--advertise', o.advertise),
          trustDomain: o.trustDomain,
          hostTtlMs,
          heartbeatIntervalMs,
          certLifetimeSeconds: Math.floor(parseDuration('--cert-lifetime', o.certLifetime) / 1000),
          seed: o.seed !== undefined ? parsePositiveInt('--seed', o.seed) : Math.floor(Math.random() * 2 ** 31),
          logger,
        }),
      );
      const metrics = await serveMetrics(server.metrics.registry, metricsAt.host, metricsAt.port);
      logger.info({ address: `${metricsAt.host}:${metrics.port}` }, 'metrics listening');
      untilSignal(async () => {
        await metrics.close();
        await server.close();
      });
    });

  cmd
    .command('agent')
    .description('run a host agent')
    .requiredOption('--data-dir <dir>', 'where the key, certificate and host id are kept')
    .option('--server <host:port>', 'Pod API address', `${SERVER_DEFAULTS.host}:${SERVER_DEFAULTS.port}`)
    .option('--join-token <token>', 'join token (first start only); or PODIUM_JOIN_TOKEN')
    .option('--host-id <id>', 'host id to ask for at join')
    .option('--pod <pod>', 'customer pod of this host', 'default')
    .option('--provider <provider>', 'IaaS provider of this host', 'local')
    .option('--label <k=v>', 'host label (repeatable)', collect, [])
    .option('--cpu-millis <n>', 'advertised CPU (default: detected)')
    .option('--memory-mib <n>', 'advertised memory (default: detected)')
    .option('--docker-socket <path>', 'Docker Engine API socket', '/var/run/docker.sock')
    .option('--subnet-pool <cidr>', "IPv4 pool of the environments' network subnets on this host", AGENT_DEFAULTS.subnetPool)
    .option('--subnet-prefix <bits>', "prefix length of each environment's subnet", String(AGENT_DEFAULTS.subnetPrefix))
    .addOption(new Option('--insecure-no-apparmor', 'accept customer work on a kernel without AppArmor (containers run unconfined by it)').default(false))
    .option('--metrics-listen <host:port>', 'Prometheus /metrics address (off when absent)')
    .action(async (o) => {
      const logger = processLogger('podium-agent');
      parseListen('--server', o.server);
      const subnets = parseSubnetPool(o.subnetPool, o.subnetPrefix);
      const metricsAt = o.metricsListen !== undefined ? parseListen('--metrics-listen', o.metricsListen) : null;
      const running = await startAgent(
        Object.freeze({
          dataDir: o.dataDir,
          serverAddress: o.server,
          joinToken: o.joinToken ?? process.env.PODIUM_JOIN_TOKEN,
          hostId: o.hostId,
          pod: o.pod,
          provider: o.provider,
          labels: parseLabels('--label', o.label),
          capacity: {
            cpuMillis: o.cpuMillis !== undefined ? parsePositiveInt('--cpu-millis', o.cpuMillis) : undefined,
            memoryMib: o.memoryMib !== undefined ? parsePositiveInt('--memory-mib', o.memoryMib) : undefined,
          },
          dockerSocket: o.dockerSocket,
          ...subnets,
          insecureNoAppArmor: Boolean(o.insecureNoApparmor),
          logger,
        }),
      );
      const metrics = metricsAt && (await serveMetrics(running.agent.metrics.registry, metricsAt.host, metricsAt.port));
      untilSignal(async () => {
        await metrics?.close();
        await running.close();
      });
    });

  cmd
    .command('gateway')
    .description('run the Customer API (REST/JSON)')
    .option('--listen <host:port>', 'HTTP address', '127.0.0.1:8080')
    .option('--server <host:port>', 'Pod API address', `${SERVER_DEFAULTS.host}:${SERVER_DEFAULTS.port}`)
    .requiredOption('--certs-dir <dir>', 'ca.crt, gateway.crt and gateway.key')
    .requiredOption('--token-db <path>', 'SQLite file of API tokens')
    .option('--static-dir <dir>', 'dashboard files')
    .action(async (o) => {
      const logger = processLogger('podium-gateway');
      const { host, port } = parseListen('--listen', o.listen);
      const read = (f: string) => readFileSync(join(o.certsDir, f), 'utf8');
      const gw = await startGateway(
        Object.freeze({
          host,
          port,
          podApiAddress: o.server,
          tls: { caPem: read('ca.crt'), certPem: read('gateway.crt'), keyPem: read('gateway.key') },
          tokenDbPath: o.tokenDb,
          staticDir: o.staticDir,
          logger,
        }),
      );
      logger.info({ url: gw.url }, 'gateway listening');
      untilSignal(() => gw.close());
    });

  const certs = cmd.command('certs').description('the certificate authority');
  certs
    .command('join-token')
    .description('create a join token (printed once; only its hash is stored)')
    .option('--data-dir <dir>', "the server's state directory", './.podium/server')
    .addOption(new Option('--role <role>', 'role of who joins with it').choices(['agent', 'gateway', 'operator']).default('agent'))
    .option('--ttl <duration>', 'how long the token is valid', '24h')
    .option('--trust-domain <td>', 'SPIFFE trust domain', SERVER_DEFAULTS.trustDomain)
    .action(async (o) => {
      const token = await createStoredJoinToken(o.dataDir, o.trustDomain, o.role as Role, parseDuration('--ttl', o.ttl));
      process.stdout.write(`${token}\n`);
    });
  certs
    .command('issue')
    .description('issue a client certificate directly from the CA (operators, gateways)')
    .option('--data-dir <dir>', "the server's state directory", './.podium/server')
    .addOption(new Option('--role <role>', 'role').choices(['gateway', 'operator']).default('operator'))
    .requiredOption('--name <name>', 'name in the SPIFFE id')
    .requiredOption('--out <dir>', 'writes <role>.crt, <role>.key (0600) and ca.crt')
    .option('--lifetime <duration>', 'certificate lifetime', '720h')
    .option('--trust-domain <td>', 'SPIFFE trust domain', SERVER_DEFAULTS.trustDomain)
    .action(async (o) => {
      await issueClientCertificate(o.dataDir, o.trustDomain, o.role as Role, o.name, o.out, parseDuration('--lifetime', o.lifetime) / 1000);
      process.stdout.write(`wrote ${join(o.out, `${o.role}.crt`)}, ${join(o.out, `${o.role}.key`)} and ${join(o.out, 'ca.crt')}\n`);
    });

  const tokens = cmd.command('token').description("the gateway's API tokens");
  tokens
    .command('create')
    .description('create an API token for a tenant (printed once; only its hash is stored)')
    .requiredOption('--token-db <path>', 'SQLite file of API tokens')
    .requiredOption('--tenant <tenant>', 'tenant the token acts for')
    .requiredOption('--name <name>', 'a name to revoke it by')
    .action((o) => {
      const store = TokenStore.open(o.tokenDb);
      try {
        process.stdout.write(`${store.create(o.tenant, o.name)}\n`);
      } finally {
        store.close();
      }
    });

  cmd
    .command('dev')
    .description('run the embedded default: a Pod API, a gateway and three agents on the local Docker engine')
    .option('--dir <dir>', 'state directory', './.podium')
    .option('--reset', 'start clean: remove the state and the containers it had made', false)
    .option('--docker-socket <path>', 'Docker Engine API socket', '/var/run/docker.sock')
    .action(async (o) => runDev({ dir: o.dir, reset: Boolean(o.reset), dockerSocket: o.dockerSocket }));

  return cmd;
}

/** Stores a new join token's hash in the server's database and returns the token. */
export async function createStoredJoinToken(dataDir: string, trustDomain: string, role: Role, ttlMs: number): Promise<string> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const ca = await loadOrCreateAuthority(join(dataDir, 'ca'), trustDomain);
  const t = createJoinToken(ca.fingerprint, role);
  const store = Store.open(join(dataDir, 'podium.db'));
  try {
    store.insertJoinToken({ id: t.id, secretHash: t.secretHash, role, expiresAt: Date.now() + ttlMs });
  } finally {
    store.close();
  }
  return t.token;
}

/** Writes <role>.crt, <role>.key (0600) and ca.crt into `out`. */
export async function issueClientCertificate(dataDir: string, trustDomain: string, role: Role, name: string, out: string, lifetimeSeconds: number): Promise<void> {
  const ca = await loadOrCreateAuthority(join(dataDir, 'ca'), trustDomain);
  const pair = await issueKeyPair(ca, { role, name, spiffeId: spiffeIdFor(trustDomain, role, name) }, lifetimeSeconds);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  writeFileSync(join(out, `${role}.key`), pair.keyPem, { mode: 0o600 });
  writeFileSync(join(out, `${role}.crt`), pair.certPem, { mode: 0o644 });
  writeFileSync(join(out, 'ca.crt'), ca.caCertPem, { mode: 0o644 });
}

export function main(argv: string[]): void {
  program()
    .parseAsync(argv)
    .catch((err: unknown) => {
      process.stderr.write(`podium: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(err instanceof ConfigError ? 2 : 1);
    });
}
