/**
 * The agent process's door: identity (join on first start, renewal before expiry), the Docker
 * engine, what the host offers, and the session with the Pod API.
 */
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AppArmorMode, type Resources } from '../gen/podium/v1/resources';
import { renewalTime, validityOf } from '../certs';
import { Agent } from './agent';
import { joinFleet, loadIdentity, renew, saveIdentity, type AgentIdentity } from './identity';
import { DockerEngine, kernelAppArmor } from './runtime';
import { SubnetPool } from './subnet-pool';

export { Agent } from './agent';
export type { AgentOptions } from './agent';
export { AgentCore } from './agent-core';
export { SubnetPool, SubnetPoolError } from './subnet-pool';

/** Defaults of what `podium agent` can be told, with their units. */
export const AGENT_DEFAULTS = Object.freeze({
  /** The per-host pool the environments' subnets come from (not Docker's default pools). */
  subnetPool: '10.210.0.0/16',
  /** Bits of each environment's subnet: a /26 holds 61 containers, and a /16 pool 1024 of them. */
  subnetPrefix: 26,
  /** The full check of the containers, behind the engine's event stream. */
  watchIntervalMs: 5_000,
});

export interface AgentConfig {
  /** Key, certificate, CA and host id live here. */
  dataDir: string;
  /** Pod API processes, tried in turn (any of them serves Join and Renew; the leader, sessions). */
  serverAddresses: readonly string[];
  /** Needed on first start only. */
  joinToken?: string;
  /**
   * The host id this agent must have, as a check: at join it must be the one the token is bound
   * to, and later the one in the stored identity. The id itself comes from the token or the server.
   */
  hostId?: string;
  pod: string;
  provider: string;
  labels: Record<string, string>;
  /** Advertised capacity; detected from the engine when absent. */
  capacity?: Partial<Resources>;
  dockerSocket: string;
  /** Take customer work on a kernel without AppArmor (containers then run unconfined by it). */
  insecureNoAppArmor: boolean;
  /** IPv4 CIDR of the environments' subnets on this host (AGENT_DEFAULTS.subnetPool). */
  subnetPool?: string;
  /** Prefix length of each environment's subnet (AGENT_DEFAULTS.subnetPrefix). */
  subnetPrefix?: number;
  /** Full check of the containers, in ms (AGENT_DEFAULTS.watchIntervalMs). */
  watchIntervalMs?: number;
  /** The host's mesh proxy: where it listens for other hosts' proxies and the host they reach it
   *  by. Absent: no proxy (the environment's services are not reachable from its containers). */
  mesh?: { listenHost: string; listenPort: number; advertiseHost: string; edge?: { host: string; port: number } };
  logger: Logger;
}

export interface RunningAgent {
  agent: Agent;
  hostId: string;
  apparmor: AppArmorMode;
  close(): Promise<void>;
}

export function appArmorMode(kernelEnforces: boolean, insecureNoAppArmor: boolean): AppArmorMode {
  if (kernelEnforces) return AppArmorMode.APP_ARMOR_MODE_ENFORCED;
  return insecureNoAppArmor ? AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE : AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE;
}

/** Starts the agent. Throws SubnetPoolError (field 'pool' or 'prefix') for a pool that makes no
 *  sense, before anything else is done. */
export async function startAgent(config: AgentConfig): Promise<RunningAgent> {
  const log = config.logger;
  const subnetPool = SubnetPool.parse(config.subnetPool ?? AGENT_DEFAULTS.subnetPool, config.subnetPrefix ?? AGENT_DEFAULTS.subnetPrefix);
  let identity = loadIdentity(config.dataDir);
  if (identity && config.hostId && identity.hostId !== config.hostId) {
    throw new Error(`--host-id ${config.hostId} does not match the identity in ${config.dataDir}, which is host ${identity.hostId}`);
  }
  if (!identity) {
    if (!config.joinToken) throw new Error(`no identity in ${config.dataDir} and no join token given (--join-token)`);
    const token = config.joinToken;
    identity = await firstAnswer(config.serverAddresses, (address) => joinFleet(address, token, config.hostId ?? ''));
    saveIdentity(config.dataDir, identity);
    log.info({ host: identity.hostId }, 'joined the fleet');
  }
  const engine = new DockerEngine({ socketPath: config.dockerSocket, logger: log });
  const info = await engine.info();
  const capacity: Resources = {
    cpuMillis: config.capacity?.cpuMillis ?? info.cpus * 1000,
    memoryMib: config.capacity?.memoryMib ?? info.memoryMib,
  };
  const kernel = kernelAppArmor();
  const apparmor = appArmorMode(kernel.enabled, config.insecureNoAppArmor);
  if (apparmor === AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE) {
    log.error({ detail: kernel.detail }, 'this kernel has no AppArmor: refusing customer work (start with --insecure-no-apparmor to accept it unconfined)');
  } else if (apparmor === AppArmorMode.APP_ARMOR_MODE_UNAVAILABLE_INSECURE) {
    log.warn({ detail: kernel.detail }, 'INSECURE: this kernel has no AppArmor; containers run without their AppArmor profile');
  }
  const agent = new Agent(
    identity,
    engine,
    {
      serverAddresses: config.serverAddresses,
      pod: config.pod,
      provider: config.provider,
      labels: config.labels,
      capacity,
      apparmor,
      backoffMinMs: 200,
      backoffMaxMs: 10_000,
      watchIntervalMs: config.watchIntervalMs ?? AGENT_DEFAULTS.watchIntervalMs,
      subnetPool,
      mesh: config.mesh,
    },
    log.child({ host: identity.hostId }),
  );
  await agent.start();

  // Renewal at a random point between 50 % and 80 % of the lifetime spreads a fleet's renewals.
  let renewTimer: NodeJS.Timeout | null = null;
  const scheduleRenewal = (id: AgentIdentity) => {
    const { notBefore, notAfter } = validityOf(id.certPem);
    const at = renewalTime(notBefore, notAfter, Math.random).getTime();
    renewTimer = setTimeout(async () => {
      try {
        const next = await firstAnswer(config.serverAddresses, (address) => renew(address, id));
        saveIdentity(config.dataDir, next);
        agent.setIdentity(next);
        log.info({ notAfter: validityOf(next.certPem).notAfter }, 'certificate renewed');
        scheduleRenewal(next);
      } catch (err) {
        log.error({ err: (err as Error).message }, 'certificate renewal failed; retrying in 30 s');
        renewTimer = setTimeout(() => scheduleRenewal(id), 30_000);
      }
    }, Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1));
  };
  scheduleRenewal(identity);

  return {
    agent,
    hostId: identity.hostId,
    apparmor,
    close: async () => {
      if (renewTimer) clearTimeout(renewTimer);
      await agent.stop();
    },
  };
}

/**
 * The answer of the first Pod API process that gives one: any of them serves Join and Renew (the
 * authority is in their shared database). Only a process that cannot be reached, or is not
 * serving, is passed over; a refusal (a bad token, a taken host) is an answer, and is thrown.
 */
async function firstAnswer<T>(addresses: readonly string[], call: (address: string) => Promise<T>): Promise<T> {
  let last: unknown;
  for (const address of addresses) {
    try {
      return await call(address);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== status.UNAVAILABLE && code !== status.DEADLINE_EXCEEDED && typeof code === 'number') throw err;
      last = err;
    }
  }
  throw last;
}
