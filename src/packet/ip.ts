/**
 * IPv4 (RFC 791) and IPv6 (RFC 8200) with UDP (RFC 768): parsing a queued packet and building the
 * rewritten one with correct lengths and checksums. Parsers return results, they never throw.
 */
import { Reason } from '../errors';
import { formatIpv6 } from './addr';
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

/**
 * The dotted text of the IPv4 addresses last seen, direct-mapped by the address (256 slots): a
 * router's packets come from and go to a few addresses, so the text is built once per address, not
 * per packet (five strings each time), and the same string object comes back (its hash computed once
 * for the Map look-ups keyed by it).
 */
const V4_SLOTS = 256;
const v4Keys = new Uint32Array(V4_SLOTS);
const v4Text: (string | undefined)[] = new Array<string | undefined>(V4_SLOTS).fill(undefined);

export function ipv4ToString(b: Buffer, o: number): string {
  return ipv4Text(((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0);
}

/** The dotted text of IPv4 address `a` (its 32 bits, unsigned), from the cache above when it is there. */
export function ipv4Text(a: number): string {
  const slot = (a ^ (a >>> 8) ^ (a >>> 16) ^ (a >>> 24)) & (V4_SLOTS - 1);
  const hit = v4Text[slot];
  if (hit !== undefined && v4Keys[slot] === a) return hit;
  const text = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
  v4Keys[slot] = a;
  v4Text[slot] = text;
  return text;
}

export function parseIpUdp(buf: Buffer): ParseResult {
  const r = ipHeader(buf);
  if (!r.ok) return r;
  const h = r.h;
  if (h.proto !== IPPROTO_UDP) return { ok: false, reason: Reason.NOT_UDP };
  return udp(buf, h.family, h.hl, h.total, h.src, h.dst);
}

/** Where an IP packet's transport header starts, and which protocol it is (IPv4 or IPv6). */
export interface IpHeader {
  family: 4 | 6;
  /** transport protocol (IPv6: the first header after the extension headers) */
  proto: number;
  /** offset of the transport header */
  hl: number;
  /** bytes of the packet that belong to it */
  total: number;
  src: string;
  dst: string;
}

/**
 * The IP layer of a queued packet: IPv4 (RFC 791) with a fragment check, or IPv6 (RFC 8200) with
 * its extension headers walked (§4) up to the transport header; a fragment header means a fragment.
 */
export function ipHeader(buf: Buffer): { ok: true; h: IpHeader } | { ok: false; reason: Reason } {
  if (buf.length < 1) return { ok: false, reason: Reason.TRUNCATED_IP };
  const version = buf[0]! >> 4;
  if (version === 4) {
    if (buf.length < 20) return { ok: false, reason: Reason.TRUNCATED_IP };
    const ihl = (buf[0]! & 0x0f) * 4;
    const total = buf.readUInt16BE(2);
    if (ihl < 20 || total < ihl || total > buf.length) return { ok: false, reason: Reason.BAD_IP_HEADER };
    const frag = buf.readUInt16BE(6);
    // RFC 791 §3.1: MF flag or a non-zero offset means a fragment; SIP in fragments is passed untouched
    if ((frag & 0x2000) !== 0 || (frag & 0x1fff) !== 0) return { ok: false, reason: Reason.FRAGMENT };
    return { ok: true, h: { family: 4, proto: buf[9]!, hl: ihl, total, src: ipv4ToString(buf, 12), dst: ipv4ToString(buf, 16) } };
  }
  if (version !== 6) return { ok: false, reason: Reason.NOT_IP };
  if (buf.length < 40) return { ok: false, reason: Reason.TRUNCATED_IP };
  const total = 40 + buf.readUInt16BE(4);
  if (total > buf.length) return { ok: false, reason: Reason.BAD_IP_HEADER };
  let next = buf[6]!;
  let off = 40;
  for (let guard = 0; guard < 8; guard++) {
    if (next === 44) return { ok: false, reason: Reason.FRAGMENT };
    if (next === 0 || next === 43 || next === 60) {
      if (off + 8 > total) return { ok: false, reason: Reason.TRUNCATED_IP };
      next = buf[off]!;
      off += (buf[off + 1]! + 1) * 8;
      continue;
    }
    return { ok: true, h: { family: 6, proto: next, hl: off, total, src: formatIpv6(buf, 8), dst: formatIpv6(buf, 24) } };
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
 */
export function rebuildV4(orig: Buffer, p: UdpPacket, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(p.ipHeaderLength + 8 + payload.length);
  payload.copy(out, p.ipHeaderLength + 8);
  return frameV4(orig, p, out);
}

/**
 * The IPv4/UDP packet in `out`, whose new payload is already in place after the headers' room
 * (out.length - ipHeaderLength - 8 bytes of it): the headers copied from `orig`, lengths and
 * checksums recomputed. Returns `out`.
 */
function frameV4(orig: Buffer, p: UdpPacket, out: Buffer): Buffer {
  const hl = p.ipHeaderLength;
  const ulen = out.length - hl;
  orig.copy(out, 0, 0, hl + 8);
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

const NH_HOP_BY_HOP = 0, NH_ROUTING = 43, NH_DEST_OPTS = 60;

/**
 * Sum of the addresses of the IPv6 pseudo-header (RFC 8200 §8.1): the source, and the final
 * destination: the header's Destination Address, or with a Routing header that still has
 * segments left, the last address the packet is routed to: the last of the list in type 0
 * (RFC 2460 §4.4, deprecated by RFC 5095 but still parsable), the Home Address of type 2
 * (RFC 6275 §6.4), Segment List[0] of the Segment Routing Header type 4 (RFC 8754 §2, §4.3.1).
 * Other routing types (RPL's compressed addresses, RFC 6554) keep the header's destination.
 * `hl` is the offset of the UDP header (extension headers walked as parseV6 did).
 */
function v6PseudoAddrSum(buf: Buffer, hl: number): number {
  let dst = 24;
  let next = buf[6]!;
  for (let off = 40; off + 8 <= hl && (next === NH_HOP_BY_HOP || next === NH_ROUTING || next === NH_DEST_OPTS); ) {
    const len = (buf[off + 1]! + 1) * 8;
    if (next === NH_ROUTING && buf[off + 3]! > 0 && len >= 24) {
      const type = buf[off + 2]!;
      if (type === 0) dst = off + 8 + 16 * (Math.floor((len - 8) / 16) - 1);
      else if (type === 2 || type === 4) dst = off + 8;
    }
    next = buf[off]!;
    off += len;
  }
  return sum16(buf, dst, dst + 16, sum16(buf, 8, 24));
}

/**
 * Builds a new IPv6/UDP packet with `payload` in place of the old one (RFC 8200): the Payload
 * Length (§3: everything after the fixed header, extension headers included), the UDP length and
 * the UDP checksum over the IPv6 pseudo-header (§8.1) recomputed. Extension headers between the
 * fixed header and UDP are copied as they are. The checksum is mandatory in IPv6 (§8.1): a
 * computed zero is sent as 0xffff.
 */
export function rebuildV6(orig: Buffer, p: UdpPacket, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(p.ipHeaderLength + 8 + payload.length);
  payload.copy(out, p.ipHeaderLength + 8);
  return frameV6(orig, p, out);
}

/** frameV4 for IPv6 (RFC 8200 §3 Payload Length, §8.1 UDP checksum over the pseudo-header). */
function frameV6(orig: Buffer, p: UdpPacket, out: Buffer): Buffer {
  const hl = p.ipHeaderLength;
  const ulen = out.length - hl;
  orig.copy(out, 0, 0, hl + 8);
  out.writeUInt16BE(hl - 40 + ulen, 4);
  out.writeUInt16BE(ulen, hl + 4);
  out.writeUInt16BE(0, hl + 6);
  // pseudo-header: src, final dst, 32-bit upper-layer length, 24 zero bits + next header (UDP)
  let s = v6PseudoAddrSum(out, hl) + ulen + IPPROTO_UDP;
  s = sum16(out, hl, hl + ulen, s);
  let c = finish(s);
  if (c === 0) c = 0xffff;
  out.writeUInt16BE(c, hl + 6);
  return out;
}

/** rebuildV4 or rebuildV6 by the packet's family. */
export function rebuildUdp(orig: Buffer, p: UdpPacket, payload: Buffer): Buffer {
  return p.family === 6 ? rebuildV6(orig, p, payload) : rebuildV4(orig, p, payload);
}

/**
 * The packet rebuilt in `frame`, a buffer whose first ipHeaderLength + 8 bytes are room for the
 * headers and whose rest is the new payload, written there once (rewriteSip's headroom): the
 * headers are copied from `orig` and the lengths and checksums set, as rebuildUdp does. Returns `frame`.
 */
export function frameUdp(orig: Buffer, p: UdpPacket, frame: Buffer): Buffer {
  return p.family === 6 ? frameV6(orig, p, frame) : frameV4(orig, p, frame);
}

/**
 * Verifies the checksums of an IPv4/UDP packet (header and UDP; a zero UDP checksum means none,
 * RFC 768) or an IPv6/UDP one (UDP over the pseudo-header; a zero checksum is invalid in IPv6,
 * RFC 8200 §8.1). Used by tests and the fuzzer.
 */
export function checksumsOk(buf: Buffer): boolean {
  const r = parseIpUdp(buf);
  if (!r.ok) return false;
  const hl = r.packet.ipHeaderLength;
  const ulen = buf.readUInt16BE(hl + 4);
  if (r.packet.family === 6) {
    if (buf.readUInt16BE(hl + 6) === 0) return false;
    const s = sum16(buf, hl, hl + ulen, v6PseudoAddrSum(buf, hl) + ulen + IPPROTO_UDP);
    return finish(s) === 0;
  }
  if (finish(sum16(buf, 0, hl)) !== 0) return false;
  if (buf.readUInt16BE(hl + 6) === 0) return true;
  let s = sum16(buf, 12, 20) + IPPROTO_UDP + ulen;
  s = sum16(buf, hl, hl + ulen, s);
  return finish(s) === 0;
}
