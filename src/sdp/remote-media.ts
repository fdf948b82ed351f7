/**
 * Reads the media addresses of an SDP that came from the WAN (the far end's offer or answer): the
 * c=, m= and a=rtcp lines only, read on the packet path without building the whole model.
 * sdp-transform's reading of the same lines (its grammar's regular expressions, its integer rule)
 * is the reference: remoteMediaReference below, which the unit tests hold this one to.
 */
import * as sdpTransform from 'sdp-transform';
import { canonicalIpv6, ipv4Value, isIpv4Text } from '../packet/addr';
import { ipv4Text } from '../packet/ip';
import { isDigitLatin1 as isDigit, isLetterLatin1, isSpaceLatin1 as isSpace } from '../packet/latin1';

export interface RemoteMedia {
  ip: string;
  port: number;
  rtcpPort: number;
}

/**
 * One entry per m= line, in order; undefined entries for port 0 or media of another address
 * family than `family` (`IN IP4` for 4, `IN IP6` for 6: a pinhole is of the signaling flow's
 * family). IPv6 addresses in RFC 5952 form. RFC 4566 §5.7, §5.14; RFC 3605.
 */
export function remoteMedia(sdp: string, family: 4 | 6 = 4): (RemoteMedia | undefined)[] | undefined {
  const b = Buffer.from(sdp, 'latin1');
  return remoteMediaAt(b, 0, b.length, family);
}

const isWord = (c: number) => isDigit(c) || isLetterLatin1(c) || c === 95;

/**
 * A port as sdp-transform reads it (toIntIfInt: a number only when the digits are exactly its
 * decimal form), kept when it is a usable port (1-65535); -1 otherwise.
 */
function portOf(b: Buffer, s: number, e: number): number {
  if (e === s || e - s > 5 || (b[s] === 48 && e - s > 1)) return -1;
  let n = 0;
  for (let i = s; i < e; i++) n = n * 10 + b[i]! - 48;
  return n >= 1 && n <= 65535 ? n : -1;
}

/**
 * remoteMedia from the body's bytes b[start, end), read as sdp-transform reads those lines (lines
 * end at CRLF, CR or LF; `m=`, `c=` and `a=rtcp:` by its grammar) without a string per line: only
 * the connection addresses are read as text.
 */
export function remoteMediaAt(b: Buffer, start: number, end: number, family: 4 | 6 = 4): (RemoteMedia | undefined)[] | undefined {
  // the session's c= (its address span and IP version; version -1: none), then per m= line: port, c=, rtcp
  let sv = -1, ss = 0, se = 0;
  const out: (RemoteMedia | undefined)[] = [];
  let inMedia = false;
  let port = -1, cv = -1, cs = 0, ce = 0, rtcp = -1;
  const close = () => {
    if (!inMedia) return;
    const v = cv >= 0 ? cv : sv, s = cv >= 0 ? cs : ss, e = cv >= 0 ? ce : se;
    out.push(v === family && port > 0 ? media(b, s, e, family, port, rtcp) : undefined);
  };
  for (let o = start; o < end;) {
    let e = o;
    while (e < end && b[e] !== 13 && b[e] !== 10) e++;
    const next = e < end && b[e] === 13 && e + 1 < end && b[e + 1] === 10 ? e + 2 : e + 1;
    if (e - o >= 2 && b[o + 1] === 61) {
      const t = b[o];
      const v = o + 2;
      if (t === 109 /* m */) {
        close();
        inMedia = true;
        cv = -1;
        rtcp = -1;
        // ^(\w*) (\d*) ([\w/]*)(?: (.*))?
        let i = v;
        while (i < e && isWord(b[i]!)) i++;
        if (i < e && b[i] === 32) {
          const ps = i + 1;
          let j = ps;
          while (j < e && isDigit(b[j]!)) j++;
          port = j < e && b[j] === 32 ? portOf(b, ps, j) : -1;
        } else port = -1;
      } else if (t === 99 /* c */) {
        // ^IN IP(\d) (\S*)
        if (e - v >= 7 && b[v] === 73 && b[v + 1] === 78 && b[v + 2] === 32 && b[v + 3] === 73 && b[v + 4] === 80 && isDigit(b[v + 5]!) && b[v + 6] === 32) {
          let i = v + 7;
          while (i < e && !isSpace(b[i]!)) i++;
          if (inMedia) { cv = b[v + 5]! - 48; cs = v + 7; ce = i; }
          else { sv = b[v + 5]! - 48; ss = v + 7; se = i; }
        }
      } else if (t === 97 /* a */ && inMedia && e - v >= 5 && b[v] === 114 && b[v + 1] === 116 && b[v + 2] === 99 && b[v + 3] === 112 && b[v + 4] === 58) {
        // ^rtcp:(\d*)
        let i = v + 5;
        while (i < e && isDigit(b[i]!)) i++;
        rtcp = portOf(b, v + 5, i);
      }
    }
    o = next;
  }
  close();
  return out;
}

/** One m= line's media address from its c= address b[s, e), its port and a=rtcp port (-1: none); undefined when unusable. */
function media(b: Buffer, s: number, e: number, family: 4 | 6, port: number, rtcpPort: number): RemoteMedia | undefined {
  // c=IN IP4 <addr>[/ttl][/n], c=IN IP6 <addr>[/n] (RFC 4566 §5.7)
  let a = s;
  while (a < e && b[a] !== 47) a++;
  const text = b.toString('latin1', s, a);
  // an IPv4 address's text from the address cache: a dialog keeps the far end's address for the
  // call's life, and one provider's calls then share one string, not one each (issue 21, memory)
  const v4 = family === 4 ? ipv4Value(text) : -1;
  const ip = family === 6 ? canonicalIpv6(text) : v4 >= 0 ? ipv4Text(v4) : undefined;
  if (ip === undefined) return undefined;
  return { ip, port, rtcpPort: rtcpPort > 0 ? rtcpPort : port + 1 };
}

interface Connection { version: number | string; ip: string }
const LINE = /\r\n|\r|\n/;
// sdp-transform's grammar (lib/grammar.js): m, c and a=rtcp
const M_LINE = /^(\w*) (\d*) ([\w/]*)(?: (.*))?/;
const C_LINE = /^IN IP(\d) (\S*)/;
const RTCP_LINE = /^rtcp:(\d*)(?: (\S*) IP(\d) (\S*))?/;
/** sdp-transform's toIntIfInt: a number when the text is exactly one */
const toIntIfInt = (v: string): number | string => (String(Number(v)) === v ? Number(v) : v);

/** One m= line's media address from its (or the session's) c= line, its port and a=rtcp port; undefined when unusable. */
function fromLines(c: Connection | undefined, port: unknown, rtcpPort: unknown, family: 4 | 6): RemoteMedia | undefined {
  if (!c || c.version !== family || typeof port !== 'number' || port < 1 || port > 65535) return undefined;
  // c=IN IP4 <addr>[/ttl][/n], c=IN IP6 <addr>[/n] (RFC 4566 §5.7)
  const text = String(c.ip).split('/')[0]!;
  const ip = family === 6 ? canonicalIpv6(text) : isIpv4Text(text) ? text : undefined;
  if (ip === undefined) return undefined;
  const rtcp = typeof rtcpPort === 'number' && rtcpPort > 0 && rtcpPort <= 65535 ? rtcpPort : port + 1;
  return { ip, port, rtcpPort: rtcp };
}

/** remoteMedia by sdp-transform's whole model: the reference the unit tests and the benchmark compare with. */
export function remoteMediaReference(sdp: string, family: 4 | 6 = 4): (RemoteMedia | undefined)[] | undefined {
  let s: sdpTransform.SessionDescription;
  try {
    s = sdpTransform.parse(sdp);
  } catch {
    return undefined;
  }
  // sdp-transform returns whatever its regexes matched: check every value before trusting it
  const media: unknown = s.media;
  if (!Array.isArray(media)) return undefined;
  return media.map((m: sdpTransform.MediaDescription) => fromLines(m.connection ?? s.connection, m.port, m.rtcp?.port, family));
}
