// What bench:mesh and bench:mesh-hosts measure of a path, the same way for the proxied and the
// direct one: round trips of 64 bytes on one open connection, a new connection per request
// (connect, one round trip, close), and bulk throughput one way into a sink.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { percentile } from './sim/placements';

/** Round trips of 64 bytes on one connection from `from`, in ms each. */
export async function roundTrips(port: number, host: string, n: number, from: string): Promise<number[]> {
  const s = net.connect({ host, port, localAddress: from });
  s.setNoDelay(true);
  await new Promise((r) => s.once('connect', r));
  const payload = Buffer.alloc(64, 'x');
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let got = 0;
      const onData = (d: Buffer) => {
        got += d.length;
        if (got >= 64) {
          s.off('data', onData);
          resolve();
        }
      };
      s.on('data', onData);
      s.write(payload);
    });
    times.push(performance.now() - t0);
  }
  s.destroy();
  return times;
}

/** A new connection per request: connect, one round trip, close; ms each. */
export async function connections(port: number, host: string, n: number, from: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host, port, localAddress: from }, () => s.write('ping'));
      s.once('data', () => {
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
    times.push(performance.now() - t0);
  }
  return times;
}

/** MiB/s one way into a sink that answers with the byte count when the sender ends. */
export async function throughput(port: number, host: string, mib: number, from: string): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 'y');
  const s = net.connect({ host, port, localAddress: from });
  await new Promise((r) => s.once('connect', r));
  const t0 = performance.now();
  const done = new Promise<void>((resolve) => s.once('data', () => resolve()));
  for (let i = 0; i < (mib * 1024 * 1024) / chunk.length; i++) {
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  await done;
  const seconds = (performance.now() - t0) / 1000;
  s.destroy();
  return mib / seconds;
}

export const stats = (xs: number[]) => ({ p50: Math.round(percentile(xs, 50) * 1000) / 1000, p99: Math.round(percentile(xs, 99) * 1000) / 1000 });

/** The echo server (round trips) and the sink (throughput) a bench calls. */
export function targets(): { echo: net.Server; sink: net.Server } {
  const echo = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
  });
  const sink = net.createServer((s) => {
    let bytes = 0;
    s.on('data', (d) => (bytes += d.length));
    s.on('end', () => s.end(String(bytes)));
  });
  return { echo, sink };
}

export function listen(server: net.Server, host: string, port = 0): Promise<number> {
  return new Promise((resolve) => server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port)));
}
