/**
 * IPv4 (RFC 791) and IPv6 (RFC 8200) with UDP (RFC 768): parsing a queued packet and building the
 * rewritten one with correct lengths and checksums. Parsers return results, they never throw.
 */
import { Reason } from '../errors';
import { finish, sum16 } from './checksum';

export interface UdpPacket {
  family: 4 | 6;
  ipHeaderLength: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** Offset of the UDP payload in the packet buffer. */
  payloadOffset: number;
  payloadLength: number;
}

export type ParseResult = { ok: true; packet: UdpPacket } | { ok: false; reason: Reason };

const IPPROTO_UDP = 17;

export function ipv4ToString(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

function ipv6ToString(b: Buffer, o: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(o + i).toString(16));
  // RFC 5952 §4.2.3: compress the longest run of zero groups
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && parts[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return parts.join(':');
  return `${parts.slice(0, best).join(':')}::${parts.slice(best + bestLen).join(':')}`;
}

export function parseIpUdp(buf: Buffer): ParseResult {
  if (buf.length < 1) return { ok: false, reason: Reason.TRUNCATED_IP };
  const version = buf[0]! >> 4;
  if (version === 4) return parseV4(buf);
  if (version === 6) return parseV6(buf);
  return { ok: false, reason: Reason.NOT_IP };
}

function parseV4(buf: Buffer): ParseResult {
  if (buf.length < 20) return { ok: false, reason: Reason.TRUNCATED_IP };
  const ihl = (buf[0]! & 0x0f) * 4;
  const total = buf.readUInt16BE(2);
  if (ihl < 20 || total < ihl || total > buf.length) return { ok: false, reason: Reason.BAD_IP_HEADER };
  const frag = buf.readUInt16BE(6);
  // RFC 791 §3.1: MF flag or a non-zero offset means a fragment; SIP in fragments is passed untouched
  if ((frag & 0x2000) !== 0 || (frag & 0x1fff) !== 0) return { ok: false, reason: Reason.FRAGMENT };
  if (buf[9] !== IPPROTO_UDP) return { ok: false, reason: Reason.NOT_UDP };
  return udp(buf, 4, ihl, total, ipv4ToString(buf, 12), ipv4ToString(buf, 16));
}

function parseV6(buf: Buffer): ParseResult {
  if (buf.length < 40) return { ok: false, reason: Reason.TRUNCATED_IP };
  const total = 40 + buf.readUInt16BE(4);
  if (total > buf.length) return { ok: false, reason: Reason.BAD_IP_HEADER };
  // Walk extension headers (RFC 8200 §4) up to UDP; a fragment header means a fragment.
  let next = buf[6]!;
  let off = 40;
  for (let guard = 0; guard < 8; guard++) {
    if (next === IPPROTO_UDP) return udp(buf, 6, off, total, ipv6ToString(buf, 8), ipv6ToString(buf, 24));
    if (next === 44) return { ok: false, reason: Reason.FRAGMENT };
    if (next === 0 || next === 43 || next === 60) {
      if (off + 8 > total) return { ok: false, reason: Reason.TRUNCATED_IP };
      next = buf[off]!;
      off += (buf[off + 1]! + 1) * 8;
      continue;
    }
    return { ok: false, reason: Reason.NOT_UDP };
  }
  return { ok: false, reason: Reason.BAD_IP_HEADER };
}

function udp(buf: Buffer, family: 4 | 6, hl: number, total: number, src: string, dst: string): ParseResult {
  if (total - hl < 8) return { ok: false, reason: Reason.TRUNCATED_UDP };
  const ulen = buf.readUInt16BE(hl + 4);
  if (ulen < 8 || hl + ulen > total) return { ok: false, reason: Reason.TRUNCATED_UDP };
  return {
    ok: true,
    packet: {
      family,
      ipHeaderLength: hl,
      src,
      dst,
      srcPort: buf.readUInt16BE(hl),
      dstPort: buf.readUInt16BE(hl + 2),
      payloadOffset: hl + 8,
      payloadLength: ulen - 8,
    },
  };
}

/**
 * Builds a new IPv4/UDP packet with `payload` in place of the old one: IP total length and header
 * checksum (RFC 791 §3.1), UDP length and checksum over the pseudo-header (RFC 768) recomputed.
 * IPv4 only: IPv6 rewriting comes with issue 7, IPv6 SIP passes unchanged until then.
 */
export function rebuildV4(orig: Buffer, p: UdpPacket, payload: Buffer): Buffer {
  const hl = p.ipHeaderLength;
  const ulen = 8 + payload.length;
  const out = Buffer.allocUnsafe(hl + ulen);
  orig.copy(out, 0, 0, hl + 8);
  payload.copy(out, hl + 8);
  out.writeUInt16BE(hl + ulen, 2);
  out.writeUInt16BE(0, 10);
  out.writeUInt16BE(finish(sum16(out, 0, hl)), 10);
  out.writeUInt16BE(ulen, hl + 4);
  out.writeUInt16BE(0, hl + 6);
  // pseudo-header: src, dst, zero+proto, UDP length
  let s = sum16(out, 12, 20);
  s += IPPROTO_UDP + ulen;
  s = sum16(out, hl, hl + ulen, s);
  let c = finish(s);
  if (c === 0) c = 0xffff; // RFC 768: a computed zero is sent as all ones
  out.writeUInt16BE(c, hl + 6);
  return out;
}

/** Verifies IPv4 header and UDP checksums (used by tests and the fuzzer). */
export function checksumsOk(buf: Buffer): boolean {
  const r = parseIpUdp(buf);
  if (!r.ok || r.packet.family !== 4) return false;
  const hl = r.packet.ipHeaderLength;
  if (finish(sum16(buf, 0, hl)) !== 0) return false;
  const ulen = buf.readUInt16BE(hl + 4);
  if (buf.readUInt16BE(hl + 6) === 0) return true;
  let s = sum16(buf, 12, 20) + IPPROTO_UDP + ulen;
  s = sum16(buf, hl, hl + ulen, s);
  return finish(s) === 0;
}
