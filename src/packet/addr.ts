/**
 * IP address text: IPv6 in any RFC 4291 §2.2 form to 16 bytes and back in the canonical form of
 * RFC 5952 §4 (lower case, leading zeros dropped, the longest run of two or more zero groups
 * compressed, the first of equal runs), and comparison of addresses by value, so SIP text such as
 * `[FD00:77::0011]` is the packet's `fd00:77::11`. Validation is node:net's; the parser then
 * writes into a caller's buffer without allocating (the netlink writer uses it directly).
 *
 * Not handled: zone identifiers (`fe80::1%eth0`, RFC 4007 §11 / RFC 6874) are not part of the
 * 128-bit address, packets never carry them; such text is not parsed (compared as text only).
 * IPv4-mapped addresses are written in hex (`::ffff:c000:201`), as the packet parser writes them,
 * not in RFC 5952 §5's mixed notation: one address has one text in this program.
 */
import { isIPv6 } from 'node:net';

/** 16-bit groups of the text being parsed (one parse at a time: JS runs this synchronously). */
const groups = new Uint16Array(8);

function hexValue(c: number): number {
  if (c <= 57) return c - 48; // 0-9
  return (c | 0x20) - 87; // a-f, A-F
}

/**
 * Writes the 16 bytes (network order) of IPv6 text `text` at out[offset]. Returns false, writing
 * nothing, when `text` is not an IPv6 address (node:net isIPv6) or carries a zone identifier.
 */
export function writeIpv6(text: string, out: Uint8Array, offset = 0): boolean {
  if (text.indexOf('%') >= 0 || !isIPv6(text)) return false;
  let n = 0; // groups written
  let gap = -1; // index in `groups` where "::" stands
  let v = 0, digits = 0, groupStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 58 /* : */) {
      if (digits) groups[n++] = v;
      v = 0;
      digits = 0;
      if (text.charCodeAt(i + 1) === 58) {
        gap = n;
        i++;
      }
      groupStart = i + 1;
    } else if (c === 46 /* . */) {
      // RFC 4291 §2.2 form 3: the last 32 bits as a dotted quad (node:net has checked it)
      const q = text.slice(groupStart).split('.');
      groups[n++] = (Number(q[0]) << 8) | Number(q[1]);
      groups[n++] = (Number(q[2]) << 8) | Number(q[3]);
      digits = 0;
      break;
    } else {
      v = (v << 4) | hexValue(c);
      digits++;
    }
  }
  if (digits) groups[n++] = v;
  if (gap < 0 ? n !== 8 : n > 7) return false; // isIPv6 has excluded this; kept as a guard
  const zeros = gap < 0 ? 0 : 8 - n;
  let o = offset;
  for (let i = 0; i < n; i++) {
    if (i === gap) for (let z = 0; z < zeros; z++) { out[o++] = 0; out[o++] = 0; }
    out[o++] = groups[i]! >>> 8;
    out[o++] = groups[i]! & 0xff;
  }
  if (gap === n) for (let z = 0; z < zeros; z++) { out[o++] = 0; out[o++] = 0; }
  return true;
}

/** The 16 bytes of IPv6 text, or undefined when it is not an IPv6 address (see writeIpv6). */
export function parseIpv6(text: string): Buffer | undefined {
  const b = Buffer.alloc(16);
  return writeIpv6(text, b) ? b : undefined;
}

/** RFC 5952 §4 text of the IPv6 address in b[o, o+16). */
export function formatIpv6(b: Uint8Array, o = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[o + i]! << 8) | b[o + i + 1]!).toString(16)); // §4.1, §4.3
  // §4.2.1-§4.2.3: compress the longest run of zero groups, never a single one, the first of equals
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

const scratch = new Uint8Array(16);

/** The RFC 5952 text of an IPv6 address written in any valid form; undefined when `text` is not one. */
export function canonicalIpv6(text: string): string | undefined {
  return writeIpv6(text, scratch) ? formatIpv6(scratch) : undefined;
}

/**
 * One text per address: IPv4 as it is (node:net accepts dotted decimal without leading zeros
 * only, so it has one form), IPv6 in RFC 5952 form; undefined when `text` is neither.
 */
export function canonicalIp(text: string): string | undefined {
  if (isIpv4Text(text)) return text;
  return canonicalIpv6(text);
}

/** `text` without one pair of enclosing brackets (RFC 3261 §25.1 IPv6reference, RFC 3986 IP-literal). */
export function unbracket(text: string): string {
  return text.length >= 2 && text.charCodeAt(0) === 91 /* [ */ && text.charCodeAt(text.length - 1) === 93 /* ] */ ? text.slice(1, -1) : text;
}

const sa = new Uint8Array(16), sb = new Uint8Array(16);

/**
 * Whether two address texts name the same address: equal text, or two IPv6 texts (bracketed or
 * not) of the same 128 bits. IPv4 text has one form (see canonicalIp), so different IPv4 texts
 * are different addresses; an IPv4 address and its IPv4-mapped IPv6 form are different addresses
 * (different families on the wire).
 */
export function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  const x = unbracket(a), y = unbracket(b);
  if (x.indexOf(':') < 0 || y.indexOf(':') < 0) return false;
  if (!writeIpv6(x, sa) || !writeIpv6(y, sb)) return false;
  for (let i = 0; i < 16; i++) if (sa[i] !== sb[i]) return false;
  return true;
}

/**
 * node:net's isIPv4 (dotted quad of decimal 0-255, no leading zeros, nothing else) by a scan of the
 * characters instead of its regular expression: the packet path asks it several times a message
 * (a test compares the two on a million strings).
 */
export function isIpv4Text(text: string): boolean {
  return ipv4Value(text) >= 0;
}

/** The 32 bits of IPv4 text (dotted quad, as isIpv4Text admits it), unsigned; -1 when `text` is not one. */
export function ipv4Value(text: string): number {
  const n = text.length;
  if (n < 7 || n > 15) return -1;
  let parts = 0, digits = 0, v = 0, first = 0, a = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 46;
    if (c === 46 /* . */) {
      if (digits === 0 || (digits > 1 && first === 48) || v > 255) return -1;
      parts++;
      a = a * 256 + v;
      digits = 0;
      v = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 0) first = c;
      if (++digits > 3) return -1;
      v = v * 10 + c - 48;
    } else return -1;
  }
  return parts === 4 ? a : -1;
}

/**
 * The key of endpoint ip:port in the tables that index private media endpoints (the port leases,
 * the dialogs holding each endpoint): for IPv4 a number, the address's 32 bits and the port (a heap
 * number, 16 B), otherwise the text `ip:port`. As text an IPv4 key cost ~90 B (a flat `ip:` string,
 * the port's text and the string joining them), and two tables kept one per call (issue 21, memory).
 */
export function endpointKey(ip: string, port: number): string | number {
  const a = ipv4Value(ip);
  return a < 0 ? `${ip}:${port}` : a * 65536 + port;
}

/**
 * Writes the 4 bytes of IPv4 text (as isIpv4Text admits it) at out[offset]. Returns false, writing
 * nothing, when `text` is not one.
 */
export function writeIpv4(text: string, out: Uint8Array, offset = 0): boolean {
  const a = ipv4Value(text);
  if (a < 0) return false;
  out[offset] = a >>> 24;
  out[offset + 1] = (a >>> 16) & 255;
  out[offset + 2] = (a >>> 8) & 255;
  out[offset + 3] = a & 255;
  return true;
}

/** 6 for IPv6 text (bracketed or not), 4 for IPv4 text, undefined otherwise. */
export function ipFamily(text: string): 4 | 6 | undefined {
  if (isIpv4Text(text)) return 4;
  return isIPv6(unbracket(text)) ? 6 : undefined;
}
