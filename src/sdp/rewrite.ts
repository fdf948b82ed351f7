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

/**
 * The lines of an SDP body without making an object per line: `next(o)` is where the line starting
 * at o ends (its text), `after(e)` where the following one starts (past CRLF or LF).
 */
function lineEndAt(sdp: string, o: number): number {
  const n = sdp.indexOf('\n', o);
  if (n < 0) return sdp.length;
  return n > o && sdp.charCodeAt(n - 1) === 13 ? n - 1 : n;
}
function nextLineAt(sdp: string, e: number): number {
  return e >= sdp.length ? e : sdp.charCodeAt(e) === 13 ? e + 2 : e + 1;
}

/**
 * c=<nettype> <addrtype> <connection-address>[/ttl][/n] (RFC 4566 §5.7): the address part of an
 * `IN IP4` or `IN IP6` line (IP6 multicast has no TTL, only /n: the address ends at '/' too).
 */
function connAddress(v: string): { type: 'IP4' | 'IP6'; addr: string; start: number; end: number } | undefined {
  const m = /^IN (IP[46]) ([^/\s]+)/.exec(v);
  if (!m) return undefined;
  return { type: m[1] as 'IP4' | 'IP6', addr: m[2]!, start: 7, end: 7 + m[2]!.length };
}

/** A media section's own c= of the other address family: its m= line is not ours to translate. */
const OTHER_FAMILY = Symbol('other family');

/**
 * `fromIp` and `toIp` are both IPv4 or both IPv6 (of different families nothing is translated).
 * @param thirdParty media on another private LAN address than the signaling host's (a media
 *   gateway, a PBX's media server): 'allow' translates it and pins to that address, 'block' leaves
 *   it untranslated and without pinhole, counted.
 */
export function rewriteSdp(sdp: string, fromIp: string, toIp: string, mapPort: PortMapper, thirdParty: 'allow' | 'block' = 'block'): SdpResult {
  // the family is the translation's: IPv6 when its addresses are IPv6 text, then written in RFC 5952 form
  const v6 = fromIp.indexOf(':') >= 0;
  const addrType = v6 ? 'IP6' : 'IP4';
  if (v6) {
    fromIp = canonicalIpv6(fromIp) ?? fromIp;
    toIp = canonicalIpv6(toIp) ?? toIp;
  }
  const same = v6 ? sameAddress : (a: string, b: string) => a === b;
  const isPrivate = v6 ? isPrivateV6 : isPrivateV4;
  /** the address as the port mapper and SdpMediaMapping.privateIp see it (IPv6: RFC 5952 form) */
  const norm = v6 ? (a: string) => canonicalIpv6(a) ?? a : (a: string) => a;
  // from and to of different families (NAT46/64) is no translation conntrack can make: nothing is ours then
  const oneFamily = v6 === toIp.indexOf(':') >= 0;
  const ours = (a: string | undefined) => oneFamily && a !== undefined && (same(a, fromIp) || (thirdParty === 'allow' && isPrivate(a)));
  let refusedThirdParty = 0;
  if (!sdp.startsWith('v=')) return { ok: false, reason: Reason.BAD_SDP };
  // pass 1: structure: session c=, each media section's own c=
  let sessionConn: string | undefined;
  const mediaConn: (string | typeof OTHER_FAMILY | undefined)[] = [];
  let level = -1;
  for (let o = 0; o < sdp.length;) {
    const e = lineEndAt(sdp, o);
    if (e - o < 2 || sdp.charCodeAt(o + 1) !== 61 /* = */) {
      if (e === o) { o = nextLineAt(sdp, e); continue; } // tolerate an empty line
      return { ok: false, reason: Reason.BAD_SDP };
    }
    const k = sdp.charCodeAt(o);
    if (k === 109 /* m */) {
      level++;
      mediaConn.push(undefined);
    } else if (k === 99 /* c */) {
      const c = connAddress(sdp.slice(o + 2, e));
      const addr = c?.type === addrType ? c.addr : undefined;
      if (level < 0) sessionConn = addr;
      else mediaConn[level] = c && c.type !== addrType ? OTHER_FAMILY : addr;
    }
    o = nextLineAt(sdp, e);
  }
  // pass 2: translate; the text between translated lines is copied as it is
  const changed: SdpChange[] = [];
  const media: SdpMediaMapping[] = [];
  let current: SdpMediaMapping | undefined;
  level = -1;
  let out = '';
  let copied = 0;
  for (let o = 0; o < sdp.length;) {
    const e = lineEndAt(sdp, o);
    const k = sdp.charCodeAt(o);
    if (k !== 111 && k !== 99 && k !== 109 && k !== 97) { o = nextLineAt(sdp, e); continue; }
    const line = sdp.slice(o, e);
    let t = line;
    switch (k) {
      case 111 /* o */: {
        // o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address> (§5.2)
        const f = t.slice(2).split(' ');
        if (f.length === 6 && f[3] === 'IN' && f[4] === addrType && ours(f[5])) {
          f[5] = toIp;
          t = 'o=' + f.join(' ');
          changed.push({ field: 'o' });
        }
        break;
      }
      case 99 /* c */: {
        const c = connAddress(t.slice(2));
        if (c && c.type === addrType && ours(c.addr)) {
          t = 'c=' + t.slice(2, 2 + c.start) + toIp + t.slice(2 + c.end);
          changed.push({ field: 'c' });
        }
        break;
      }
      case 109 /* m */: {
        level++;
        current = undefined;
        // m=<media> <port>[/<number of ports>] <proto> <fmt> ... (§5.14)
        const m = /^m=(\S+) (\d+)(\/\d+)? /.exec(t);
        if (!m) return { ok: false, reason: Reason.BAD_SDP };
        const port = Number(m[2]);
        if (port > 65535) return { ok: false, reason: Reason.BAD_SDP };
        const own = mediaConn[level];
        const conn = own === OTHER_FAMILY ? undefined : own ?? sessionConn;
        // port 0: rejected/disabled stream (RFC 3264 §6); other addresses: not ours to translate
        if (port !== 0 && conn !== undefined && !same(conn, fromIp) && !ours(conn) && isPrivate(conn)) refusedThirdParty++;
        if (port === 0 || conn === undefined || !ours(conn)) break;
        const pub = mapPort(norm(conn), port);
        if (pub === undefined) return { ok: false, reason: Reason.PORTS_EXHAUSTED };
        current = { index: level, media: m[1]!, privatePort: port, publicPort: pub, rtcpPrivatePort: port + 1, rtcpPublicPort: pub + 1 };
        if (!same(conn, fromIp)) current.privateIp = norm(conn);
        media.push(current);
        if (pub !== port) {
          const ps = 2 + m[1]!.length + 1;
          t = t.slice(0, ps) + String(pub) + t.slice(ps + m[2]!.length);
          changed.push({ field: 'm' });
        }
        break;
      }
      case 97 /* a */: {
        // a=rtcp:<port> [<nettype> <addrtype> <connection-address>] (RFC 3605 §2.1)
        if (!current || !t.startsWith('a=rtcp:')) break;
        const r = /^a=rtcp:(\d+)(?: IN (IP[46]) (\S+))?/.exec(t);
        if (!r) break;
        const rp = Number(r[1]);
        let pub: number | undefined;
        if (rp === current.privatePort + 1) pub = current.publicPort + 1;
        else pub = mapPort(current.privateIp ?? fromIp, rp);
        if (pub === undefined) return { ok: false, reason: Reason.PORTS_EXHAUSTED };
        current.rtcpPrivatePort = rp;
        current.rtcpPublicPort = pub;
        // the address only when it is of the translation's family (the other one is written back as it was)
        const addr = r[2] === addrType && ours(r[3]) ? toIp : r[3];
        const nt = `a=rtcp:${pub}${addr !== undefined ? ` IN ${r[2]} ${addr}` : ''}`;
        if (nt !== r[0]) {
          t = nt + t.slice(r[0].length);
          changed.push({ field: 'rtcp' });
        }
        break;
      }
    }
    if (t !== line) {
      out += sdp.slice(copied, o) + t;
      copied = e;
    }
    o = nextLineAt(sdp, e);
  }
  out = copied === 0 ? sdp : out + sdp.slice(copied);
  return { ok: true, text: out, changed, media, refusedThirdParty };
}
