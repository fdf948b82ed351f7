/**
 * SDP address/port translation (RFC 4566 / RFC 8866 §5) for a LAN→WAN message: o= and c= (session
 * and media level) carrying the private address, m= ports, a=rtcp (RFC 3605). Works line by line on
 * the original text so that every line it does not translate stays byte for byte, attribute order
 * included. sdp-transform is the oracle for these rules in the tests (its write() re-serializes
 * every line, see BENCHMARKS.md / README "Libraries").
 */
import { Reason } from '../errors';

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

export type SdpResult =
  | { ok: true; text: string; changed: SdpChange[]; media: SdpMediaMapping[]; /** m= lines on a private third-party address left as they were (policy) */ refusedThirdParty: number }
  | { ok: false; reason: Reason };

/** Maps a private media port to its public one; undefined when no port is left. */
export type PortMapper = (privateIp: string, privatePort: number) => number | undefined;

interface Line {
  text: string;
  eol: string;
}

function splitLines(sdp: string): Line[] {
  const out: Line[] = [];
  let o = 0;
  while (o < sdp.length) {
    const n = sdp.indexOf('\n', o);
    if (n < 0) {
      out.push({ text: sdp.slice(o), eol: '' });
      break;
    }
    const cr = n > o && sdp[n - 1] === '\r';
    out.push({ text: sdp.slice(o, cr ? n - 1 : n), eol: cr ? '\r\n' : '\n' });
    o = n + 1;
  }
  return out;
}

/** c=<nettype> <addrtype> <connection-address>[/ttl][/n] (RFC 4566 §5.7): the address part */
function connAddress(v: string): { addr: string; start: number; end: number } | undefined {
  const m = /^IN IP4 ([^/\s]+)/.exec(v);
  if (!m) return undefined;
  return { addr: m[1]!, start: 7, end: 7 + m[1]!.length };
}

/**
 * @param thirdParty media on another private LAN address than the signaling host's (a media
 *   gateway, a PBX's media server): 'allow' translates it and pins to that address, 'block' leaves
 *   it untranslated and without pinhole, counted.
 */
export function rewriteSdp(sdp: string, fromIp: string, toIp: string, mapPort: PortMapper, thirdParty: 'allow' | 'block' = 'block'): SdpResult {
  const ours = (a: string | undefined) => a !== undefined && (a === fromIp || (thirdParty === 'allow' && isPrivateV4(a)));
  let refusedThirdParty = 0;
  const lines = splitLines(sdp);
  if (lines.length === 0 || !lines[0]!.text.startsWith('v=')) return { ok: false, reason: Reason.BAD_SDP };
  // pass 1: structure: session c=, each media section's own c=
  let sessionConn: string | undefined;
  const mediaConn: (string | undefined)[] = [];
  let level = -1;
  for (const l of lines) {
    const t = l.text;
    if (t.length < 2 || t[1] !== '=') {
      if (t.length === 0) continue; // tolerate a trailing empty line
      return { ok: false, reason: Reason.BAD_SDP };
    }
    if (t[0] === 'm') {
      level++;
      mediaConn.push(undefined);
    } else if (t[0] === 'c') {
      const c = connAddress(t.slice(2));
      if (level < 0) sessionConn = c?.addr;
      else mediaConn[level] = c?.addr;
    }
  }
  // pass 2: translate
  const changed: SdpChange[] = [];
  const media: SdpMediaMapping[] = [];
  let current: SdpMediaMapping | undefined;
  level = -1;
  let out = '';
  for (const l of lines) {
    let t = l.text;
    switch (t[0]) {
      case 'o': {
        // o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address> (§5.2)
        const f = t.slice(2).split(' ');
        if (f.length === 6 && f[3] === 'IN' && f[4] === 'IP4' && ours(f[5])) {
          f[5] = toIp;
          t = 'o=' + f.join(' ');
          changed.push({ field: 'o' });
        }
        break;
      }
      case 'c': {
        const c = connAddress(t.slice(2));
        if (c && ours(c.addr)) {
          t = 'c=' + t.slice(2, 2 + c.start) + toIp + t.slice(2 + c.end);
          changed.push({ field: 'c' });
        }
        break;
      }
      case 'm': {
        level++;
        current = undefined;
        // m=<media> <port>[/<number of ports>] <proto> <fmt> ... (§5.14)
        const m = /^m=(\S+) (\d+)(\/\d+)? /.exec(t);
        if (!m) return { ok: false, reason: Reason.BAD_SDP };
        const port = Number(m[2]);
        if (port > 65535) return { ok: false, reason: Reason.BAD_SDP };
        const conn = mediaConn[level] ?? sessionConn;
        // port 0: rejected/disabled stream (RFC 3264 §6); other addresses: not ours to translate
        if (port !== 0 && conn !== undefined && conn !== fromIp && !ours(conn) && isPrivateV4(conn)) refusedThirdParty++;
        if (port === 0 || !ours(conn)) break;
        const pub = mapPort(conn!, port);
        if (pub === undefined) return { ok: false, reason: Reason.PORTS_EXHAUSTED };
        current = { index: level, media: m[1]!, privatePort: port, publicPort: pub, rtcpPrivatePort: port + 1, rtcpPublicPort: pub + 1 };
        if (conn !== fromIp) current.privateIp = conn;
        media.push(current);
        if (pub !== port) {
          const ps = 2 + m[1]!.length + 1;
          t = t.slice(0, ps) + String(pub) + t.slice(ps + m[2]!.length);
          changed.push({ field: 'm' });
        }
        break;
      }
      case 'a': {
        // a=rtcp:<port> [<nettype> <addrtype> <connection-address>] (RFC 3605 §2.1)
        const r = /^a=rtcp:(\d+)(?: IN IP4 (\S+))?/.exec(t);
        if (!r || !current) break;
        const rp = Number(r[1]);
        let pub: number | undefined;
        if (rp === current.privatePort + 1) pub = current.publicPort + 1;
        else pub = mapPort(current.privateIp ?? fromIp, rp);
        if (pub === undefined) return { ok: false, reason: Reason.PORTS_EXHAUSTED };
        current.rtcpPrivatePort = rp;
        current.rtcpPublicPort = pub;
        const addr = ours(r[2]) ? toIp : r[2];
        const nt = `a=rtcp:${pub}${addr !== undefined ? ` IN IP4 ${addr}` : ''}`;
        if (nt !== r[0]) {
          t = nt + t.slice(r[0].length);
          changed.push({ field: 'rtcp' });
        }
        break;
      }
    }
    out += t + l.eol;
  }
  return { ok: true, text: out, changed, media, refusedThirdParty };
}
