/**
 * The environments' networks on this host, as a resource the agent manages: each made on a subnet
 * of the agent's own pool (never from Docker's default address pools, which hold about 30
 * networks per engine), and removed when the last container of its environment on this host goes.
 *
 * - **Every network of the engine counts.** Several agents may share one engine (`podium dev`
 *   runs three hosts on one): a subnet is free only when no network of the engine, whoever made
 *   it, overlaps it, and none of this agent's creates in flight holds it. When the engine still
 *   refuses the create for an overlap (another agent took it between our list and our create),
 *   the next free subnet is tried. Each host starts its search at a point of the pool derived
 *   from its id, so agents on one engine rarely reach for the same subnet at once.
 * - **One network, one queue.** Everything done to a network runs under its lock: an award's
 *   "network present, container created on it" and a removal's "no container left, network
 *   removed" never interleave, so a removal cannot pull a network from under a new container.
 *   A container that exists (created, running or exited) keeps its network; only once none is
 *   left is the network removed, with its stale endpoints disconnected by force.
 * - **One endpoint change at a time.** Starting a container joins it to the network and stopping
 *   it leaves; Docker 20.10 keeps a count of each network's endpoints that concurrent joins and
 *   leaves can leave too high (seen: a network with no container and no endpoint refusing
 *   removal for "active endpoints" until the engine restarts). Starts and stops of one network's
 *   containers therefore queue on its lock too; other networks' do not wait.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ContainerEngine } from './container-engine';
import { KeyedLock } from './keyed-lock';
import { LABEL_ENVIRONMENT, LABEL_HOST, LABEL_TENANT, DockerEngineError, networkName } from './runtime';
import { formatIpv4Cidr, parseIpv4Cidr, type Ipv4Cidr, type SubnetPool } from './subnet-pool';

/** Creates tried per network before giving up: each refusal for an overlap means another agent
 *  won a race for that subnet, and a new list shows it; more than a few in a row means something
 *  else is wrong. */
const CREATE_ATTEMPTS = 8;

export class EnvironmentNetworks {
  private readonly lock = new KeyedLock();
  /** Subnets of creates in flight in this agent, which the engine does not list yet. */
  private readonly claimed = new Set<string>();
  private readonly start: number;

  constructor(
    private readonly engine: ContainerEngine,
    private readonly opts: { hostId: string; pool: SubnetPool },
    private readonly log: Logger,
  ) {
    this.start = parseInt(createHash('sha256').update(opts.hostId).digest('hex').slice(0, 8), 16) % opts.pool.size;
  }

  /**
   * Runs `use(network)` under the environment's network lock, with the network present: found, or
   * created on a free subnet of the pool. `use` should create the container (so that it exists
   * before any removal looks) and not wait for long.
   */
  withNetwork<T>(tenant: string, environment: string, use: (network: string) => Promise<T>): Promise<T> {
    const name = networkName(this.opts.hostId, tenant, environment);
    return this.lock.run(name, async () => {
      await this.ensure(name, this.labels(tenant, environment));
      return use(name);
    });
  }

  /** Runs `change` (a container's start, or its stop and removal) under the environment's network
   *  lock, so that no two endpoint changes of one network overlap. */
  withEndpoints<T>(tenant: string, environment: string, change: () => Promise<T>): Promise<T> {
    return this.lock.run(networkName(this.opts.hostId, tenant, environment), change);
  }

  /** Networks with work queued or running. */
  get busy(): number {
    return this.lock.busy;
  }

  /** Removes the environment's network when no container of that environment is left on this
   *  host. Safe to call at any time, as often as wanted. */
  release(tenant: string, environment: string): Promise<void> {
    const name = networkName(this.opts.hostId, tenant, environment);
    return this.lock.run(name, async () => {
      const labels = this.labels(tenant, environment);
      if ((await this.engine.listContainers(labels)).length > 0) return;
      // By labels, not by name: duplicates left by a create race go too.
      for (const net of await this.engine.listNetworks(labels)) {
        await this.engine.forceRemoveNetwork(net.id);
        this.log.info({ network: net.name, subnets: net.subnets }, 'network removed');
      }
    });
  }

  /** Removes the networks of this host that no container uses (left by a crash between a
   *  container's removal and its network's). */
  async removeStrays(): Promise<void> {
    const key = (labels: Record<string, string>) => `${labels[LABEL_TENANT]}\0${labels[LABEL_ENVIRONMENT]}`;
    const seen = new Map<string, { tenant: string; environment: string }>();
    for (const net of await this.engine.listNetworks({ [LABEL_HOST]: this.opts.hostId })) {
      const tenant = net.labels[LABEL_TENANT];
      const environment = net.labels[LABEL_ENVIRONMENT];
      if (!tenant || !environment) continue; // not an environment network: not ours to judge
      seen.set(key(net.labels), { tenant, environment });
    }
    if (seen.size === 0) return;
    // One listing for the host, so that a sweep costs two engine calls, not one per network;
    // release() looks again under the network's lock before it removes anything.
    const used = new Set((await this.engine.listContainers({ [LABEL_HOST]: this.opts.hostId })).map((c) => key(c.labels)));
    for (const [k, { tenant, environment }] of seen) if (!used.has(k)) await this.release(tenant, environment);
  }

  private labels(tenant: string, environment: string): Record<string, string> {
    return { [LABEL_HOST]: this.opts.hostId, [LABEL_TENANT]: tenant, [LABEL_ENVIRONMENT]: environment };
  }

  /** Finds the network or creates it on a free subnet; called under the network's lock. */
  private async ensure(name: string, labels: Record<string, string>): Promise<void> {
    const refused: Ipv4Cidr[] = [];
    for (let attempt = 1; ; attempt++) {
      const all = await this.engine.listNetworks();
      // Present already: ensureNetwork checks its labels (and never asks for a subnet).
      if (all.some((n) => n.name === name)) {
        await this.engine.ensureNetwork(name, labels);
        return;
      }
      const used = [...all.flatMap((n) => n.subnets), ...this.claimed].map(parseIpv4Cidr).filter((c): c is Ipv4Cidr => c !== undefined);
      const subnet = this.opts.pool.pick([...used, ...refused], this.start);
      if (subnet === undefined) throw new DockerEngineError(`create network ${name}`, `no free /${this.opts.pool.prefix} subnet left in the pool ${formatIpv4Cidr(this.opts.pool.pool)}`);
      this.claimed.add(subnet);
      try {
        await this.engine.ensureNetwork(name, labels, { subnet });
        this.log.info({ network: name, subnet }, 'network created');
        return;
      } catch (err) {
        if (!isOverlap(err) || attempt >= CREATE_ATTEMPTS) throw err;
        this.log.info({ network: name, subnet, attempt }, 'subnet taken meanwhile; trying the next free one');
        refused.push(parseIpv4Cidr(subnet)!);
      } finally {
        this.claimed.delete(subnet);
      }
    }
  }
}

/** The engine's refusal of a subnet that overlaps another network's (403 "Pool overlaps…"). */
export function isOverlap(err: unknown): boolean {
  return err instanceof DockerEngineError && err.statusCode === 403 && /overlap/i.test(err.message);
}
