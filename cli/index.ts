/**
 * The `podium` command: the one place that wires server, agent, gateway and certs together
 * (STYLE 4), and the only one that reads flags.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TENANT_NAME_RULE, type Role } from '../certs';
import { AGENT_DEFAULTS, startAgent } from '../agent';
import { startGateway, TokenStore } from '../gateway';
import { DEFAULT_REVOKE_REASON, SERVER_DEFAULTS, startServer } from '../server';
import { createStoredJoinToken, issueClientCertificate, revokeFromCli } from './certs-commands';
export { createStoredJoinToken, issueClientCertificate, revokeFromCli, type JoinTokenOptions } from './certs-commands';
export type { StateLocation } from './server-state';
import { collect, ConfigError, parseCount, parseDuration, parseLabels, parseListen, parseNames, parsePositiveInt, parseQuota, parseServers, parseSubnetPool, parseTenant } from './config';
import { runDev } from './dev';
import { DEV_HOSTS_KINDS, type DevHostsKind } from './dev-hosts';
import { serveMetrics } from './metrics-endpoint';
import { processLogger } from './log';

export { inHost, readTestbed, registerTestbedProcess, testbedDown, testbedSweep, testbedUp, TESTBED_SCRIPT } from './testbed';
export type { Testbed, TestbedHost, TestbedUpOptions } from './testbed';

const TOKEN_DB_HELP = "the gateway's API tokens: a SQLite file, or postgres://… shared by several gateways";

async function withTokens(target: string, fn: (store: TokenStore) => Promise<void>): Promise<void> {
  const store = await TokenStore.open(target);
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

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
    .option('--data-dir <dir>', 'state directory (the SQLite database by default, the CA key file)', './.podium/server')
    .option('--database <url>', 'postgres://… for several Pod API processes on one PostgreSQL, or a SQLite path (default <data-dir>/podium.db)')
    .option('--ca-key-file <path>', 'key file opening the CA key sealed in the database; the same for every process (default <data-dir>/ca-key)')
    .option('--listen <host:port>', 'gRPC address', `${SERVER_DEFAULTS.host}:${SERVER_DEFAULTS.port}`)
    .option('--advertise <names>', 'host names and addresses agents reach the server by, comma-separated (default: the listen address)', collect, [])
    .option('--trust-domain <td>', 'SPIFFE trust domain', SERVER_DEFAULTS.trustDomain)
    .option('--host-ttl <duration>', 'a host silent this long is down', `${SERVER_DEFAULTS.hostTtlMs / 1000}s`)
    .option('--heartbeat <duration>', 'agent heartbeat interval on a small fleet', `${SERVER_DEFAULTS.heartbeatIntervalMs / 1000}s`)
    .option('--max-heartbeats <n>', 'heartbeats heard per second at most: a larger fleet heartbeats less often, the TTL in step (0: no limit)', `${SERVER_DEFAULTS.maxHeartbeatsPerSecond}`)
    .option('--restart-grace <duration>', 'after a start, how long hosts that were up have to reconnect (at least the TTL)', `${SERVER_DEFAULTS.restartGraceMs / 1000}s`)
    .option('--admit-rate <n>', 'agent sessions admitted per second; more are told when to come back', `${SERVER_DEFAULTS.admitRatePerSecond}`)
    .option('--cert-lifetime <duration>', 'lifetime of issued certificates', `${SERVER_DEFAULTS.certLifetimeSeconds / 3600}h`)
    .option('--public-domain <domain>', 'published endpoints with a certificate of the Pod API\'s CA are named <…>.<tenant>.<domain>', SERVER_DEFAULTS.publicDomain)
    .option('--workload-cert-lifetime <duration>', 'lifetime of workload certificates (the instances\' identities in the mesh)', `${SERVER_DEFAULTS.workloadCertLifetimeSeconds / 60}m`)
    .option('--seed <n>', 'seed of the auction sampling (random when absent)')
    .option(
      '--default-quota <limits>',
      'quota of a tenant without one of its own: cpu=<mCPU>,memory=<MiB>,instances=<n>',
      `cpu=${SERVER_DEFAULTS.defaultQuota.cpuMillis},memory=${SERVER_DEFAULTS.defaultQuota.memoryMib},instances=${SERVER_DEFAULTS.defaultQuota.instances}`,
    )
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
          database: o.database,
          caKeyFile: o.caKeyFile,
          host,
          port,
          advertise: parseNames('--advertise', o.advertise),
          trustDomain: o.trustDomain,
          hostTtlMs,
          restartGraceMs: parseDuration('--restart-grace', o.restartGrace),
          admitRatePerSecond: parsePositiveInt('--admit-rate', o.admitRate),
          heartbeatIntervalMs,
          maxHeartbeatsPerSecond: parseCount('--max-heartbeats', o.maxHeartbeats),
          certLifetimeSeconds: Math.floor(parseDuration('--cert-lifetime', o.certLifetime) / 1000),
          workloadCertLifetimeSeconds: Math.floor(parseDuration('--workload-cert-lifetime', o.workloadCertLifetime) / 1000),
          publicDomain: o.publicDomain,
          seed: o.seed !== undefined ? parsePositiveInt('--seed', o.seed) : Math.floor(Math.random() * 2 ** 31),
          defaultQuota: parseQuota('--default-quota', o.defaultQuota, SERVER_DEFAULTS.defaultQuota),
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
    .option('--server <host:port>', 'Pod API addresses, comma-separated or repeated: the processes of one Pod API, tried in turn', collect, [])
    .option('--join-token <token>', 'join token (first start only); or PODIUM_JOIN_TOKEN')
    .option('--host-id <id>', 'the host id this agent must have: checked against its join token and its stored identity')
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
    .option('--mesh-listen <host:port>', "the host proxy's mTLS address for other hosts' proxies (port 0: any free one; off when absent)")
    .option('--mesh-advertise <host>', 'the address other hosts reach this proxy by (default: the --mesh-listen host)')
    .option('--edge-listen <host:port>', 'HTTPS for the published endpoints of the services this host runs (with --mesh-listen; off when absent)')
    .action(async (o) => {
      const logger = processLogger('podium-agent');
      const subnets = parseSubnetPool(o.subnetPool, o.subnetPrefix);
      const meshAt = o.meshListen !== undefined ? parseListen('--mesh-listen', o.meshListen) : null;
      const edgeAt = o.edgeListen !== undefined ? parseListen('--edge-listen', o.edgeListen) : undefined;
      if (edgeAt && !meshAt) throw new Error('--edge-listen needs --mesh-listen: the edge is part of the host\'s proxy');
      const metricsAt = o.metricsListen !== undefined ? parseListen('--metrics-listen', o.metricsListen) : null;
      const running = await startAgent(
        Object.freeze({
          dataDir: o.dataDir,
          serverAddresses: parseServers('--server', o.server),
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
          mesh: meshAt ? { listenHost: meshAt.host, listenPort: meshAt.port, advertiseHost: o.meshAdvertise ?? meshAt.host, edge: edgeAt } : undefined,
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
    .option('--server <host:port>', 'Pod API addresses, comma-separated or repeated: the processes of one Pod API', collect, [])
    .requiredOption('--certs-dir <dir>', 'ca.crt, gateway.crt and gateway.key')
    .requiredOption('--token-db <path|url>', TOKEN_DB_HELP)
    .option('--static-dir <dir>', 'dashboard files')
    .action(async (o) => {
      const logger = processLogger('podium-gateway');
      const { host, port } = parseListen('--listen', o.listen);
      const read = (f: string) => readFileSync(join(o.certsDir, f), 'utf8');
      const gw = await startGateway(
        Object.freeze({
          host,
          port,
          podApiAddress: parseServers('--server', o.server),
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
    .option('--database <url>', "the server's database, when not <data-dir>/podium.db")
    .option('--ca-key-file <path>', "the server's CA key file, when not <data-dir>/ca-key")
    .addOption(new Option('--role <role>', 'role of who joins with it').choices(['agent', 'gateway', 'operator']).default('agent'))
    .option('--ttl <duration>', 'how long the token is valid', '24h')
    .option('--uses <n>', 'how many joins it allows', '1')
    .option('--host-id <id>', 'bind it to this host id (agents only): the joining host gets exactly this id')
    .option('--replace', 'let it take over a host id that still holds a valid certificate, revoking that (needs --host-id)', false)
    .option('--trust-domain <td>', 'SPIFFE trust domain', SERVER_DEFAULTS.trustDomain)
    .action(async (o) => {
      const at = { dataDir: o.dataDir, database: o.database, caKeyFile: o.caKeyFile };
      const token = await createStoredJoinToken(at, o.trustDomain, o.role as Role, parseDuration('--ttl', o.ttl), {
        uses: parsePositiveInt('--uses', o.uses),
        hostId: o.hostId,
        replace: Boolean(o.replace),
      });
      process.stdout.write(`${token}\n`);
    });
  certs
    .command('revoke')
    .description('revoke a host (every certificate of it; its instances are placed again) or one certificate; works with the server running or stopped')
    .option('--data-dir <dir>', "the server's state directory", './.podium/server')
    .option('--database <url>', "the server's database, when not <data-dir>/podium.db")
    .option('--host <id>', 'revoke every certificate of this host, mark it down and re-place its instances')
    .option('--serial <hex>', 'revoke one certificate by its serial number (hex; colons and case do not matter)')
    .option('--reason <text>', 'why (kept with the revocation, shown in events)', DEFAULT_REVOKE_REASON)
    .action(async (o) => {
      const at = o.database ? { dataDir: o.dataDir, database: o.database } : o.dataDir;
      process.stdout.write(`${await revokeFromCli(at, { host: o.host, serial: o.serial, reason: o.reason })}\n`);
    });
  certs
    .command('issue')
    .description('issue a client certificate directly from the CA (operators, gateways)')
    .option('--data-dir <dir>', "the server's state directory", './.podium/server')
    .option('--database <url>', "the server's database, when not <data-dir>/podium.db")
    .option('--ca-key-file <path>', "the server's CA key file, when not <data-dir>/ca-key")
    .addOption(new Option('--role <role>', 'role').choices(['gateway', 'operator']).default('operator'))
    .requiredOption('--name <name>', 'name in the SPIFFE id')
    .requiredOption('--out <dir>', 'writes <role>.crt, <role>.key (0600) and ca.crt')
    .option('--lifetime <duration>', 'certificate lifetime', '720h')
    .option('--trust-domain <td>', 'SPIFFE trust domain', SERVER_DEFAULTS.trustDomain)
    .action(async (o) => {
      const at = { dataDir: o.dataDir, database: o.database, caKeyFile: o.caKeyFile };
      await issueClientCertificate(at, o.trustDomain, o.role as Role, o.name, o.out, parseDuration('--lifetime', o.lifetime) / 1000);
      process.stdout.write(`wrote ${join(o.out, `${o.role}.crt`)}, ${join(o.out, `${o.role}.key`)} and ${join(o.out, 'ca.crt')}\n`);
    });

  const tokens = cmd.command('token').description("the gateway's API tokens");
  tokens
    .command('create')
    .description('create an API token for a tenant (printed once; only its hash is stored)')
    .requiredOption('--token-db <path|url>', TOKEN_DB_HELP)
    .requiredOption('--tenant <tenant>', `tenant the token acts for (${TENANT_NAME_RULE})`)
    .requiredOption('--name <name>', 'a name to revoke it by')
    .option('--admin', "an admin token: besides its tenant's resources it sees the fleet (GET /v1/hosts)", false)
    .action(async (o) => {
      // Checked before the database is opened: a refused token leaves nothing behind.
      const tenant = parseTenant('--tenant', o.tenant);
      await withTokens(o.tokenDb, async (store) => {
        process.stdout.write(`${await store.create(tenant, o.name, o.admin ? 'admin' : 'customer')}\n`);
      });
    });
  tokens
    .command('list')
    .description('the API tokens: tenant, name, role and creation time (never the tokens)')
    .requiredOption('--token-db <path|url>', TOKEN_DB_HELP)
    .action(async (o) => {
      await withTokens(o.tokenDb, async (store) => {
        for (const t of await store.list()) process.stdout.write(`${t.name}\t${t.tenant}\t${t.role}\t${new Date(t.createdAt).toISOString()}\n`);
      });
    });
  tokens
    .command('revoke')
    .description('revoke an API token by name (the next request with it is refused, on every gateway sharing the database)')
    .requiredOption('--token-db <path|url>', TOKEN_DB_HELP)
    .requiredOption('--name <name>', 'the name it was created with')
    .action(async (o) => {
      await withTokens(o.tokenDb, async (store) => {
        if (!(await store.revoke(o.name))) throw new Error(`no API token is named "${o.name}"`);
        process.stdout.write(`revoked the API token "${o.name}"\n`);
      });
    });

  cmd
    .command('dev')
    .description('run the embedded default: a Pod API, a gateway and three agents (on the local Docker engine, or on three separate hosts with --hosts netns)')
    .option('--dir <dir>', 'state directory', './.podium')
    .option('--reset', 'start clean: remove the state and the containers it had made (with --hosts netns, also the test bed)', false)
    .option('--docker-socket <path>', 'Docker Engine API socket (with --hosts engine)', '/var/run/docker.sock')
    .addOption(
      new Option('--hosts <kind>', 'where the three hosts run: "engine", all on the local Docker engine; "netns", three separate hosts on the test bed (a network namespace and a dockerd each; needs root)')
        .choices([...DEV_HOSTS_KINDS])
        .default('engine'),
    )
    .option('--postgres', 'two Pod API processes on a local PostgreSQL cluster under <dir>/postgres, to see one take over from the other', false)
    .action(async (o) => runDev({ dir: o.dir, reset: Boolean(o.reset), dockerSocket: o.dockerSocket, hosts: o.hosts as DevHostsKind, postgres: Boolean(o.postgres) }));

  return cmd;
}

export function main(argv: string[]): void {
  program()
    .parseAsync(argv)
    .catch((err: unknown) => {
      process.stderr.write(`podium: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(err instanceof ConfigError ? 2 : 1);
    });
}
