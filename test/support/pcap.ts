/**
 * Just enough of the pcap format (what `tcpdump -w` writes) to read the TCP payload of every flow
 * in a capture: Ethernet, Linux "cooked" v1 and v2 link layers (tcpdump -i any), IPv4, TCP.
 * Retransmissions and the copies `-i any` sees on each interface of a bridge are dropped by
 * sequence number, so each direction's bytes come out once and in order.
 */
import { readFileSync } from 'node:fs';

export interface Flow {
  /** "src:port>dst:port". */
  key: string;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

const LINK_HEADER: Record<number, number> = { 1: 14, 113: 16, 276: 20 };

export function tcpFlows(file: string): Flow[] {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${file}: not a pcap file`);
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const link = u32(20) & 0xffff;
  const linkLen = LINK_HEADER[link];
  if (linkLen === undefined) throw new Error(`${file}: link type ${link} is not read here`);
  const segments = new Map<string, { flow: Omit<Flow, 'payload'>; bySeq: Map<number, Buffer> }>();
  for (let o = 24; o + 16 <= b.length; ) {
    const caplen = u32(o + 8);
    const pkt = b.subarray(o + 16, o + 16 + caplen);
    o += 16 + caplen;
    const etherType = link === 1 ? pkt.readUInt16BE(12) : link === 113 ? pkt.readUInt16BE(14) : pkt.readUInt16BE(0);
    if (etherType !== 0x0800) continue;
    const ip = pkt.subarray(linkLen);
    if (ip.length < 20 || ip[9] !== 6) continue;
    const ihl = (ip[0]! & 0x0f) * 4;
    const total = ip.readUInt16BE(2);
    const tcp = ip.subarray(ihl, total);
    if (tcp.length < 20) continue;
    const dataOffset = (tcp[12]! >> 4) * 4;
    const data = tcp.subarray(dataOffset);
    if (data.length === 0) continue;
    const src = `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
    const dst = `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`;
    const srcPort = tcp.readUInt16BE(0);
    const dstPort = tcp.readUInt16BE(2);
    const key = `${src}:${srcPort}>${dst}:${dstPort}`;
    let s = segments.get(key);
    if (!s) segments.set(key, (s = { flow: { key, src, dst, srcPort, dstPort }, bySeq: new Map() }));
    const seq = tcp.readUInt32BE(4);
    if (!s.bySeq.has(seq)) s.bySeq.set(seq, Buffer.from(data));
  }
  return [...segments.values()].map(({ flow, bySeq }) => {
    // Sequence numbers relative to the first seen (wrap-around is not expected in a short capture).
    const ordered = [...bySeq.entries()].sort((x, y) => x[0] - y[0]);
    return { ...flow, payload: Buffer.concat(ordered.map(([, d]) => d)) };
  });
}

/**
 * Whether `bytes` is a sequence of whole TLS records (content types 20-23, version 3.x, length at
 * most 2^14 + 2048), the last of which may be cut short by the end of the capture. Null when it
 * is; else where and why not.
 */
export function notTls(bytes: Buffer): string | null {
  let o = 0;
  while (o < bytes.length) {
    if (o + 5 > bytes.length) return null;
    const type = bytes[o]!;
    const major = bytes[o + 1]!;
    const length = bytes.readUInt16BE(o + 3);
    if (type < 20 || type > 23) return `byte ${o}: content type ${type} is not TLS`;
    if (major !== 3) return `byte ${o}: version ${major}.${bytes[o + 2]} is not TLS`;
    if (length > 16384 + 2048) return `byte ${o}: a record of ${length} bytes`;
    o += 5 + length;
  }
  return null;
}
