/**
 * The SDP rewrite as it was written until issue 21 (an object per line, the output rebuilt line by
 * line): the oracle of src/sdp/rewrite.ts, which copies the untouched text and scans lines in place.
 * Test-only; the exported helpers of the original that the oracle does not need are kept as they were.
 */
import { Reason } from '../../../src/errors';
import { canonicalIpv6, sameAddress } from '../../../src/packet/addr';

import { isPrivateV4, isPrivateV6, type PortMapper, type SdpChange, type SdpMediaMapping, type SdpResult } from '../../../src/sdp/rewrite';

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
export function rewriteSdpReference(sdp: string, fromIp: string, toIp: string, mapPort: PortMapper, thirdParty: 'allow' | 'block' = 'block'): SdpResult {
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
  const lines = splitLines(sdp);
  if (lines.length === 0 || !lines[0]!.text.startsWith('v=')) return { ok: false, reason: Reason.BAD_SDP };
  // pass 1: structure: session c=, each media section's own c=
  let sessionConn: string | undefined;
  const mediaConn: (string | typeof OTHER_FAMILY | undefined)[] = [];
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
      const addr = c?.type === addrType ? c.addr : undefined;
      if (level < 0) sessionConn = addr;
      else mediaConn[level] = c && c.type !== addrType ? OTHER_FAMILY : addr;
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
        if (f.length === 6 && f[3] === 'IN' && f[4] === addrType && ours(f[5])) {
          f[5] = toIp;
          t = 'o=' + f.join(' ');
          changed.push({ field: 'o' });
        }
        break;
      }
      case 'c': {
        const c = connAddress(t.slice(2));
        if (c && c.type === addrType && ours(c.addr)) {
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
      case 'a': {
        // a=rtcp:<port> [<nettype> <addrtype> <connection-address>] (RFC 3605 §2.1)
        const r = /^a=rtcp:(\d+)(?: IN (IP[46]) (\S+))?/.exec(t);
        if (!r || !current) break;
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
    out += t + l.eol;
  }
  return { ok: true, text: out, changed, media, refusedThirdParty };
}
