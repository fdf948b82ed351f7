/**
 * Builds IPv6/UDP packets for tests (RFC 8200 §3 fixed header, §4 extension headers, §8.1 UDP
 * checksum over the pseudo-header), with its own checksum and address code: independent of
 * src/packet, so the code under test is checked against it.
 */
import { csum, words } from './packet';

/** 16 bytes of hex IPv6 text with at most one "::" (no dotted quads: tests write plain forms). */
export function ip6(s: string): Buffer {
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (all.length !== 8) throw new Error(`bad test address ${s}`);
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** An extension header: its Next Header value (0 hop-by-hop, 43 routing, 60 destination options) and the bytes after its first two. */
export interface ExtHeader {
  type: number;
  /** everything after Next Header and Hdr Ext Len; 2 + body.length must be a multiple of 8 */
  body: Buffer;
}

/** A hop-by-hop or destination options header holding one PadN option (RFC 8200 §4.2). */
export const padOptions = (type: 0 | 60): ExtHeader => ({ type, body: Buffer.from([1, 4, 0, 0, 0, 0]) });

/** A routing header (RFC 8200 §4.4) of `routingType` with `segmentsLeft`, 4 type-specific bytes, then `addrs`. */
export function routingHeader(routingType: number, segmentsLeft: number, addrs: string[], typeSpecific = Buffer.alloc(4)): ExtHeader {
  return { type: 43, body: Buffer.concat([Buffer.from([routingType, segmentsLeft]), typeSpecific, ...addrs.map(ip6)]) };
}

export interface Udp6Options {
  ext?: ExtHeader[];
  /** the final destination when a routing header routes elsewhere first (RFC 8200 §8.1); dst by default */
  pseudoDst?: string;
  /** write this UDP checksum instead of the computed one */
  checksum?: number;
}

/** The UDP checksum of `udp` (header with a zero checksum, then data) between src and dst (RFC 8200 §8.1). */
export function udp6Checksum(src: string, dst: string, udp: Buffer): number {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(udp.length);
  const pseudo = Buffer.concat([ip6(src), ip6(dst), len, Buffer.from([0, 0, 0, 17]), udp]);
  return csum(words(pseudo));
}

/** An IPv6/UDP packet; traffic class 0xb8 (EF) and flow label 0x12345, hop limit 64, so tests see them kept. */
export function udp6Packet(src: string, dst: string, sport: number, dport: number, payload: Buffer | string, opts: Udp6Options = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const ext = opts.ext ?? [];
  const exts = ext.map((e, i) => {
    if ((2 + e.body.length) % 8 !== 0) throw new Error('extension header length is not a multiple of 8');
    return Buffer.concat([Buffer.from([ext[i + 1]?.type ?? 17, (2 + e.body.length) / 8 - 1]), e.body]);
  });
  const extLen = exts.reduce((n, b) => n + b.length, 0);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + data.length, 4);
  const c = udp6Checksum(src, opts.pseudoDst ?? dst, Buffer.concat([udp, data]));
  udp.writeUInt16BE(opts.checksum ?? (c || 0xffff), 6);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE((6 << 28) | (0xb8 << 20) | 0x12345, 0);
  ip.writeUInt16BE(extLen + 8 + data.length, 4);
  ip[6] = ext[0]?.type ?? 17;
  ip[7] = 64;
  ip6(src).copy(ip, 8);
  ip6(dst).copy(ip, 24);
  return Buffer.concat([ip, ...exts, udp, data]);
}
