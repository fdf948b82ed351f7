/**
 * SDP address/port translation (RFC 4566 / RFC 8866 §5) for a LAN→WAN message: o= and c= (session
 * and media level) carrying the private address, m= ports, a=rtcp (RFC 3605). Works line by line on
 * the original text so that every line it does not translate stays byte for byte, attribute order
 * included. sdp-transform is the oracle for these rules in the tests (its write() re-serializes
 * every line, see BENCHMARKS.md / README "Libraries").
 *
 * IPv4 or IPv6 by the translation's addresses: with IPv6 ones only `IN IP6` addresses are
 * translated (RFC 4566 §5.2, §5.7; compared by value, written in RFC 5952 form), with IPv4 ones
 * only `IN IP4`; the other family's lines are left as they are, and so are the m= lines they
 * give an address to.
 */
import { Reason } from '../errors';
import { canonicalIpv6, parseIpv6, sameAddress } from '../packet/addr';
import { applyEdits, type Edit } from '../sip/edits';
import { isSpaceLatin1 as isSpace } from '../packet/latin1';

export interface SdpChange {
  field: 'o' | 'c' | 'm' | 'rtcp';
}

export interface SdpMediaMapping {
  /** index of the m= line (0-based), to pair with the far end's m= lines (RFC 3264 §6) */
  index: number;
  media: string;
  privatePort: number;
  publicPort: number;
  rtcpPrivatePort: number;
  rtcpPublicPort: number;
  /** a third-party media address on the LAN (another host than the one signaling), when allowed */
  privateIp?: string;
}

/** RFC 1918 and RFC 6598 (shared CGN space) addresses: LAN media that cannot be reached from the WAN as written. */
export function isPrivateV4(a: string): boolean {
  return /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.)/.test(a);
}

/**
 * The IPv6 counterpart of isPrivateV4: unique local addresses fc00::/7 (RFC 4193 §3) and
 * link-local fe80::/10 (RFC 4291 §2.5.6), neither reachable from the WAN as written.
 */
export function isPrivateV6(a: string): boolean {
  const b = parseIpv6(a);
  return b !== undefined && ((b[0]! & 0xfe) === 0xfc || (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80));
}

export type SdpResult =
  | { ok: true; text: string; changed: SdpChange[]; media: SdpMediaMapping[]; /** m= lines on a private third-party address left as they were (policy) */ refusedThirdParty: number }
  | { ok: false; reason: Reason };

/** Maps a private media port to its public one; undefined when no port is left. */
export type PortMapper = (privateIp: string, privatePort: number) => number | undefined;

/** End of the line starting at o (its LF, or the CR before it; `end` without LF). */
function lineEndAt(b: Buffer, o: number, end: number): number {
  let n = o;
  while (n < end && b[n] !== 10) n++;
  if (n >= end) return end;
  return n > o && b[n - 1] === 13 ? n - 1 : n;
}
function nextLineAt(b: Buffer, e: number, end: number): number {
  return e >= end ? e : b[e] === 13 ? e + 2 : e + 1;
}

/** Whether b[o, o+text.length) is `text` (ASCII), within `end`. */
function bytesAre(b: Buffer, o: number, end: number, text: string): boolean {
  if (o + text.length > end) return false;
  for (let i = 0; i < text.length; i++) if (b[o + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** Where a run of decimal digits starting at o ends (o when there is none). */
function digitsEnd(b: Buffer, o: number, end: number): number {
  while (o < end && b[o]! >= 48 && b[o]! <= 57) o++;
  return o;
}

function digitsValue(b: Buffer, s: number, e: number): number {
  let n = 0;
  for (let i = s; i < e; i++) n = n * 10 + (b[i]! - 48);
  return n;
}

/**
 * c=<nettype> <addrtype> <connection-address>[/ttl][/n] (RFC 4566 §5.7) from the value at v (after
 * `c=`): `IN IP4 ` or `IN IP6 ` and the address up to '/' or white space (IP6 multicast has no TTL,
 * only /n: the address ends at '/' too). Sets connType (4/6) and connEnd; returns the address's
 * first offset, or -1.
 */
let connType = 0, connEnd = 0;
function connAddress(b: Buffer, v: number, e: number): number {
  if (v + 7 >= e || !bytesAre(b, v, e, 'IN IP') || (b[v + 5] !== 52 && b[v + 5] !== 54) || b[v + 6] !== 32) return -1;
  let a = v + 7;
  while (a < e && b[a] !== 47 && !isSpace(b[a]!)) a++;
  if (a === v + 7) return -1;
  connType = b[v + 5] === 52 ? 4 : 6;
  connEnd = a;
  return v + 7;
}

/** the offsets of an o= line's five spaces (reused) */
const O_SPACES = new Int32Array(5);

/** A media section's own c= of the other address family: its m= line is not ours to translate. */
const OTHER_FAMILY = Symbol('other family');

export type SdpField = SdpChange['field'];

export type SdpTranslation =
  | { ok: true; changed: SdpField[]; media: SdpMediaMapping[]; refusedThirdParty: number; /** bytes the body grows by (negative: shrinks) */ delta: number }
  | { ok: false; reason: Reason };

/**
 * The media type of an m= line (RFC 4566 §5.14) as text: the common ones as one shared string each (a
 * dialog keeps its lines for the call's life: `audio` was a string of its own in every dialog).
 */
function mediaName(b: Buffer, s: number, e: number): string {
  if (e - s === 5) {
    if (b[s] === 97 && b[s + 1] === 117 && b[s + 2] === 100 && b[s + 3] === 105 && b[s + 4] === 111) return 'audio';
    if (b[s] === 118 && b[s + 1] === 105 && b[s + 2] === 100 && b[s + 3] === 101 && b[s + 4] === 111) return 'video';
  }
  return b.toString('latin1', s, e);
}

/**
 * The SDP body b[start, end) translated from its bytes: the edits (offsets in b) are pushed to
 * `edits`, one per changed line part, every other byte stays as it is. No string is made of the
 * body; only the addresses that are compared (c=, o=, a=rtcp) and the media names are read as text.
 * `fromIp` and `toIp` are both IPv4 or both IPv6 (of different families nothing is translated).
 * @param thirdParty media on another private LAN address than the signaling host's (a media
 *   gateway, a PBX's media server): 'allow' translates it and pins to that address, 'block' leaves
 *   it untranslated and without pinhole, counted.
 */
export function translateSdp(b: Buffer, start: number, end: number, fromIp: string, toIp: string, mapPort: PortMapper, thirdParty: 'allow' | 'block', edits: Edit[]): SdpTranslation {
  // the family is the translation's: IPv6 when its addresses are IPv6 text, then written in RFC 5952 form
  const v6 = fromIp.indexOf(':') >= 0;
  const family = v6 ? 6 : 4;
  if (v6) {
    fromIp = canonicalIpv6(fromIp) ?? fromIp;
    toIp = canonicalIpv6(toIp) ?? toIp;
  }
  // from and to of different families (NAT46/64) is no translation conntrack can make: nothing is ours then
  const oneFamily = v6 === toIp.indexOf(':') >= 0;
  const same = (a: string, c: string) => (v6 ? sameAddress(a, c) : a === c);
  const isPrivate = (a: string) => (v6 ? isPrivateV6(a) : isPrivateV4(a));
  /** the address as the port mapper and SdpMediaMapping.privateIp see it (IPv6: RFC 5952 form) */
  const norm = (a: string) => (v6 ? canonicalIpv6(a) ?? a : a);
  const ours = (a: string | undefined) => oneFamily && a !== undefined && (same(a, fromIp) || (thirdParty === 'allow' && isPrivate(a)));
  let refusedThirdParty = 0;
  let delta = 0;
  if (end - start < 2 || b[start] !== 118 /* v */ || b[start + 1] !== 61 /* = */) return { ok: false, reason: Reason.BAD_SDP };
  // pass 1: structure: session c=, each media section's own c=
  let sessionConn: string | undefined;
  const mediaConn: (string | typeof OTHER_FAMILY | undefined)[] = [];
  let level = -1;
  for (let o = start; o < end;) {
    const e = lineEndAt(b, o, end);
    if (e - o < 2 || b[o + 1] !== 61 /* = */) {
      if (e === o) { o = nextLineAt(b, e, end); continue; } // tolerate an empty line
      return { ok: false, reason: Reason.BAD_SDP };
    }
    const k = b[o];
    if (k === 109 /* m */) {
      level++;
      mediaConn.push(undefined);
    } else if (k === 99 /* c */) {
      const a = connAddress(b, o + 2, e);
      const addr = a >= 0 && connType === family ? b.toString('latin1', a, connEnd) : undefined;
      if (level < 0) sessionConn = addr;
      else mediaConn[level] = a >= 0 && connType !== family ? OTHER_FAMILY : addr;
    }
    o = nextLineAt(b, e, end);
  }
  // pass 2: translate
  const changed: SdpField[] = [];
  const media: SdpMediaMapping[] = [];
  let current: SdpMediaMapping | undefined;
  level = -1;
  for (let o = start; o < end;) {
    const e = lineEndAt(b, o, end);
    const k = b[o];
    switch (k) {
      case 111 /* o */: {
        // o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address> (§5.2):
        // exactly six fields separated by single spaces
        const sp = O_SPACES;
        let n = 0;
        for (let i = o + 2; i < e; i++) {
          if (b[i] !== 32) continue;
          if (n === 5) { n = 6; break; }
          sp[n++] = i;
        }
        if (n !== 5) break;
        // f[3] = [sp2+1, sp3) is "IN", f[4] = [sp3+1, sp4) the translation's addrtype, f[5] = [sp4+1, e) the address
        const t3 = sp[2]! + 1, t4 = sp[3]! + 1, t5 = sp[4]! + 1;
        if (sp[3]! - t3 !== 2 || b[t3] !== 73 || b[t3 + 1] !== 78) break;
        if (sp[4]! - t4 !== 3 || b[t4] !== 73 || b[t4 + 1] !== 80 || b[t4 + 2] !== (v6 ? 54 : 52)) break;
        const addr = b.toString('latin1', t5, e);
        if (!ours(addr)) break;
        edits.push({ start: t5, end: e, text: toIp });
        delta += toIp.length - (e - t5);
        changed.push('o');
        break;
      }
      case 99 /* c */: {
        const a = connAddress(b, o + 2, e);
        if (a < 0 || connType !== family) break;
        const ae = connEnd;
        if (!ours(b.toString('latin1', a, ae))) break;
        edits.push({ start: a, end: ae, text: toIp });
        delta += toIp.length - (ae - a);
        changed.push('c');
        break;
      }
      case 109 /* m */: {
        level++;
        current = undefined;
        // m=<media> <port>[/<number of ports>] <proto> <fmt> ... (§5.14)
        let w = o + 2;
        while (w < e && !isSpace(b[w]!)) w++;
        if (w === o + 2 || w >= e || b[w] !== 32) return { ok: false, reason: Reason.BAD_SDP };
        const ps = w + 1;
        const pe = digitsEnd(b, ps, e);
        if (pe === ps) return { ok: false, reason: Reason.BAD_SDP };
        if (b[pe] !== 32 || pe >= e) {
          const ne = b[pe] === 47 /* / */ && pe < e ? digitsEnd(b, pe + 1, e) : pe;
          if (ne === pe + 1 || ne === pe || ne >= e || b[ne] !== 32) return { ok: false, reason: Reason.BAD_SDP };
        }
        const port = digitsValue(b, ps, pe);
        if (port > 65535) return { ok: false, reason: Reason.BAD_SDP };
        const own = mediaConn[level];
        const conn = own === OTHER_FAMILY ? undefined : own ?? sessionConn;
        // port 0: rejected/disabled stream (RFC 3264 §6); other addresses: not ours to translate
        if (port !== 0 && conn !== undefined && !same(conn, fromIp) && !ours(conn) && isPrivate(conn)) refusedThirdParty++;
        if (port === 0 || conn === undefined || !ours(conn)) break;
        const pub = mapPort(norm(conn), port);
        if (pub === undefined) return { ok: false, reason: Reason.PORTS_EXHAUSTED };
        current = { index: level, media: mediaName(b, o + 2, w), privatePort: port, publicPort: pub, rtcpPrivatePort: port + 1, rtcpPublicPort: pub + 1 };
        if (!same(conn, fromIp)) current.privateIp = norm(conn);
        media.push(current);
        if (pub !== port) {
          const text = String(pub);
          edits.push({ start: ps, end: pe, text });
          delta += text.length - (pe - ps);
          changed.push('m');
        }
        break;
      }
      case 97 /* a */: {
        // a=rtcp:<port> [<nettype> <addrtype> <connection-address>] (RFC 3605 §2.1)
        if (!current || !bytesAre(b, o, e, 'a=rtcp:')) break;
        const ds = o + 7, de = digitsEnd(b, ds, e);
        if (de === ds) break;
        // the optional address part: " IN IP4 " or " IN IP6 " and at least one non-space octet
        let as = -1, ae = -1, atype = 0;
        if (de + 8 < e && bytesAre(b, de, e, ' IN IP') && (b[de + 6] === 52 || b[de + 6] === 54) && b[de + 7] === 32 && !isSpace(b[de + 8]!)) {
          atype = b[de + 6] === 52 ? 4 : 6;
          as = de + 8;
          ae = as;
          while (ae < e && !isSpace(b[ae]!)) ae++;
        }
        const rp = digitsValue(b, ds, de);
        let pub: number | undefined;
        if (rp === current.privatePort + 1) pub = current.publicPort + 1;
        else pub = mapPort(current.privateIp ?? fromIp, rp);
        if (pub === undefined) return { ok: false, reason: Reason.PORTS_EXHAUSTED };
        current.rtcpPrivatePort = rp;
        current.rtcpPublicPort = pub;
        // the port as the decimal number (leading zeros dropped); the address only when it is of the
        // translation's family (the other one is written back as it was)
        const pt = String(pub);
        const portChanged = de - ds !== pt.length || !bytesAre(b, ds, de, pt);
        const addr = as >= 0 && atype === family ? b.toString('latin1', as, ae) : undefined;
        const addrChanged = addr !== undefined && ours(addr) && addr !== toIp;
        if (!portChanged && !addrChanged) break;
        if (portChanged) {
          edits.push({ start: ds, end: de, text: pt });
          delta += pt.length - (de - ds);
        }
        if (addrChanged) {
          edits.push({ start: as, end: ae, text: toIp });
          delta += toIp.length - (ae - as);
        }
        changed.push('rtcp');
        break;
      }
    }
    o = nextLineAt(b, e, end);
  }
  return { ok: true, changed, media, refusedThirdParty, delta };
}

/**
 * The same translation on a text (latin1: one character per byte), the translated text returned:
 * the API the tests and the benchmark compare with sdp-transform and the line-by-line version.
 */
export function rewriteSdp(sdp: string, fromIp: string, toIp: string, mapPort: PortMapper, thirdParty: 'allow' | 'block' = 'block'): SdpResult {
  const b = Buffer.from(sdp, 'latin1');
  const edits: Edit[] = [];
  const r = translateSdp(b, 0, b.length, fromIp, toIp, mapPort, thirdParty, edits);
  if (!r.ok) return r;
  const text = edits.length ? applyEdits(b, 0, b.length, edits).toString('latin1') : sdp;
  return { ok: true, text, changed: r.changed.map((field) => ({ field })), media: r.media, refusedThirdParty: r.refusedThirdParty };
}
