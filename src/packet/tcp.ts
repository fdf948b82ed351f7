/**
 * TCP (RFC 9293) over IPv4 or IPv6: parsing a queued segment and building the rewritten one with a new
 * payload, sequence and acknowledgement numbers, SACK blocks (RFC 2018) and correct lengths and
 * checksums. Parsers return results, they never throw.
 */
import { Reason } from '../errors';
import { finish, sum16 } from './checksum';
import { ipHeader } from './ip';

export const IPPROTO_TCP = 6;
export const TCP_FIN = 0x01, TCP_SYN = 0x02, TCP_RST = 0x04, TCP_ACK = 0x10;

export interface TcpSegment {
  family: 4 | 6;
  /** offset of the TCP header (IPv6: after the extension headers) */
  ipHeaderLength: number;
  tcpHeaderLength: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  payloadOffset: number;
  payloadLength: number;
  /** offsets (in the packet) of SACK option blocks: each is 8 bytes, left edge then right edge */
  sackBlocks: number[];
}

export type TcpParseResult = { ok: true; seg: TcpSegment } | { ok: false; reason: Reason };

/** True when the buffer is an IP packet carrying TCP (a cheap check for IPv4; IPv6 walks its extension headers). */
export function isTcp(buf: Buffer): boolean {
  if (buf.length >= 20 && buf[0]! >> 4 === 4) return buf[9] === IPPROTO_TCP;
  if (buf.length < 40 || buf[0]! >> 4 !== 6) return false;
  const r = ipHeader(buf);
  return r.ok && r.h.proto === IPPROTO_TCP;
}

export function parseIpTcp(buf: Buffer): TcpParseResult {
  const r = ipHeader(buf);
  if (!r.ok) return r;
  const { family, proto, hl: ihl, total, src, dst } = r.h;
  if (proto !== IPPROTO_TCP) return { ok: false, reason: Reason.NOT_UDP };
  if (total - ihl < 20) return { ok: false, reason: Reason.TRUNCATED_TCP };
  const thl = (buf[ihl + 12]! >> 4) * 4;
  if (thl < 20 || ihl + thl > total) return { ok: false, reason: Reason.TRUNCATED_TCP };
  // options (RFC 9293 §3.2): kind 0 ends, 1 pads, others carry a length; SACK is kind 5 (RFC 2018 §3)
  const sackBlocks: number[] = [];
  let o = ihl + 20;
  const oe = ihl + thl;
  while (o < oe) {
    const kind = buf[o]!;
    if (kind === 0) break;
    if (kind === 1) { o++; continue; }
    if (o + 1 >= oe) break;
    const len = buf[o + 1]!;
    if (len < 2 || o + len > oe) break;
    if (kind === 5) for (let b = o + 2; b + 8 <= o + len; b += 8) sackBlocks.push(b);
    o += len;
  }
  return {
    ok: true,
    seg: {
      family,
      ipHeaderLength: ihl,
      tcpHeaderLength: thl,
      src,
      dst,
      srcPort: buf.readUInt16BE(ihl),
      dstPort: buf.readUInt16BE(ihl + 2),
      seq: buf.readUInt32BE(ihl + 4),
      ack: buf.readUInt32BE(ihl + 8),
      flags: buf[ihl + 13]!,
      payloadOffset: ihl + thl,
      payloadLength: total - ihl - thl,
      sackBlocks,
    },
  };
}

/** The pseudo-header sum (RFC 9293 §3.1; RFC 8200 §8.1 for IPv6) of a TCP segment of `tlen` bytes. */
function pseudo(out: Buffer, family: 4 | 6, tlen: number): number {
  if (family === 4) return sum16(out, 12, 20) + IPPROTO_TCP + tlen;
  return sum16(out, 8, 40) + Math.floor(tlen / 0x10000) + (tlen & 0xffff) + IPPROTO_TCP;
}

/**
 * The segment with `payload` in place of the old one and the given sequence number, ACK number and
 * SACK edges (`sack(edge)` maps each one): the IP length fields (IPv4 total length and header
 * checksum, RFC 791 §3.1; IPv6 payload length, RFC 8200 §3) and the TCP checksum over the
 * pseudo-header recomputed. Bytes past the IP packet are not copied.
 */
export function rebuildTcp(orig: Buffer, s: TcpSegment, payload: Buffer, seq: number, ack: number, sack?: (edge: number) => number): Buffer {
  const hl = s.ipHeaderLength, th = s.tcpHeaderLength;
  const tlen = th + payload.length;
  const out = Buffer.allocUnsafe(hl + tlen);
  orig.copy(out, 0, 0, hl + th);
  payload.copy(out, hl + th);
  if (s.family === 4) {
    out.writeUInt16BE(hl + tlen, 2);
    out.writeUInt16BE(0, 10);
    out.writeUInt16BE(finish(sum16(out, 0, hl)), 10);
  } else out.writeUInt16BE(hl - 40 + tlen, 4);
  out.writeUInt32BE(seq >>> 0, hl + 4);
  out.writeUInt32BE(ack >>> 0, hl + 8);
  if (sack) for (const b of s.sackBlocks) {
    out.writeUInt32BE(sack(out.readUInt32BE(b)) >>> 0, b);
    out.writeUInt32BE(sack(out.readUInt32BE(b + 4)) >>> 0, b + 4);
  }
  out.writeUInt16BE(0, hl + 16);
  out.writeUInt16BE(finish(sum16(out, hl, hl + tlen, pseudo(out, s.family, tlen))), hl + 16);
  return out;
}

/** Verifies the IPv4 header and TCP checksums (tests). */
export function tcpChecksumsOk(buf: Buffer): boolean {
  const r = parseIpTcp(buf);
  if (!r.ok) return false;
  const { family, ipHeaderLength: hl } = r.seg;
  if (family === 4 && finish(sum16(buf, 0, hl)) !== 0) return false;
  const tlen = (family === 4 ? buf.readUInt16BE(2) : 40 + buf.readUInt16BE(4)) - hl;
  return finish(sum16(buf, hl, hl + tlen, pseudo(buf, family, tlen))) === 0;
}
