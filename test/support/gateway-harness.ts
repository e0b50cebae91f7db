/**
 * The real gateway (`startGateway`) in the test process, in front of a PodApiHarness: a
 * certificate with role `gateway` issued by the harness CA, its token database in a temporary
 * directory, HTTP on 127.0.0.1 port 0. Requests go through real HTTP, the real transcoder and
 * real mutual TLS to the real Pod API.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startGateway, type Gateway } from '../../gateway';
import { PodApiDriver, startPodApiHarness, type PodApiHarness } from './pod-api-harness';

export interface GatewayHarness {
  readonly gateway: Gateway;
  /** Base URL, without a trailing slash. */
  readonly url: string;
  readonly tokenDbPath: string;
  /** `fetch(url + path)` with `Authorization: Bearer <token>`. */
  request(token: string, path: string, init?: RequestInit): Promise<Response>;
  /** Stops the gateway and removes its directory (the Pod API is the caller's to close). */
  close(): Promise<void>;
}

export interface GatewayHarnessOptions {
  /** An existing token database (e.g. one written by the CLI); a fresh one otherwise. */
  tokenDbPath?: string;
  /** The name in the gateway's SPIFFE id. */
  name?: string;
}

export async function startGatewayHarness(podApi: PodApiHarness, opts: GatewayHarnessOptions = {}): Promise<GatewayHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'podium-gateway-harness-'));
  const tokenDbPath = opts.tokenDbPath ?? join(dir, 'tokens.db');
  let gateway: Gateway;
  try {
    const tls = await podApi.clientPems('gateway', opts.name ?? 'gateway');
    gateway = await startGateway({
      host: '127.0.0.1',
      port: 0,
      podApiAddress: podApi.address,
      tls,
      tokenDbPath,
      logger: pino({ level: process.env.PODIUM_TEST_LOG ?? 'silent' }),
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    gateway,
    url: gateway.url,
    tokenDbPath,
    request: (token, path, init = {}) =>
      fetch(gateway.url + path, {
        ...init,
        headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) },
      }),
    close: async () => {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The `result` objects of an NDJSON stream (the gateway's framing of a server stream), read
 * until `enough` holds for what was read so far; then the stream is cancelled. Throws on an
 * `{"error"}` line or when the stream ends first.
 */
export async function readNdjsonResults<T>(res: Response, enough: (results: readonly T[]) => boolean): Promise<T[]> {
  if (!res.body) throw new Error('the response has no body');
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const results: T[] = [];
  let pending = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`the stream ended after ${results.length} results`);
      pending += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line === '') continue;
        const frame = JSON.parse(line) as { result?: T; error?: unknown };
        if (frame.error !== undefined) throw new Error(`stream error: ${JSON.stringify(frame.error)}`);
        results.push(frame.result as T);
        if (enough(results)) return results;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const json = (res: Response): Promise<any> => res.json();
export const post = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

export interface CustomerRest {
  readonly h: PodApiHarness;
  readonly gw: GatewayHarness;
  readonly d: PodApiDriver;
  /** A request to the gateway with tenant acme's customer token. */
  request(path: string, init?: RequestInit): Promise<Response>;
}

/**
 * For a suite (registers mocha's before and after): a Pod API, the gateway in front of it, a
 * customer token of tenant acme and its `environments`, made through REST.
 */
export function customerRest(environments: readonly string[]): CustomerRest {
  const s = {} as { h: PodApiHarness; gw: GatewayHarness; d: PodApiDriver; token: string };
  before(async () => {
    s.h = await startPodApiHarness();
    s.gw = await startGatewayHarness(s.h);
    s.d = new PodApiDriver(s.h);
    s.token = await s.gw.gateway.tokens.create('acme', 'acme-ci');
    for (const name of environments) {
      const res = await s.gw.request(s.token, '/v1/environments', post({ name }));
      if (res.status !== 200) throw new Error(`creating environment ${name}: ${res.status} ${await res.text()}`);
    }
  });
  after(async () => {
    s.d?.closeAgents();
    await s.gw?.close();
    await s.h?.close();
  });
  return {
    get h() {
      return s.h;
    },
    get gw() {
      return s.gw;
    },
    get d() {
      return s.d;
    },
    request: (path, init) => s.gw.request(s.token, path, init),
  };
}
