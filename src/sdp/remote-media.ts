/**
 * Reads the media addresses of an SDP that came from the WAN (the far end's offer or answer): the
 * c=, m= and a=rtcp lines only, read on the packet path without building the whole model.
 * sdp-transform's reading of the same lines (its grammar's regular expressions, its integer rule)
 * is the reference: remoteMediaReference below, which the unit tests hold this one to.
 */
import { isIPv4 } from 'node:net';
import * as sdpTransform from 'sdp-transform';
import { canonicalIpv6 } from '../packet/addr';

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
  let session: Connection | undefined;
  const media: { port: number | string | undefined; c: Connection | undefined; rtcp: number | string | undefined }[] = [];
  // sdp-transform: lines split at CRLF, CR or LF; a line is <a-z>=<value> (its validLine)
  for (const line of sdp.split(LINE)) {
    if (line.length < 2 || line.charCodeAt(1) !== 61) continue;
    const t = line.charCodeAt(0);
    if (t === 109 /* m */) {
      const m = M_LINE.exec(line.slice(2));
      media.push({ port: m ? toIntIfInt(m[2]!) : undefined, c: undefined, rtcp: undefined });
    } else if (t === 99 /* c */) {
      const m = C_LINE.exec(line.slice(2));
      if (!m) continue;
      const c = { version: toIntIfInt(m[1]!), ip: m[2]! };
      if (media.length) media[media.length - 1]!.c = c;
      else session = c;
    } else if (t === 97 /* a */ && media.length) {
      const m = RTCP_LINE.exec(line.slice(2));
      if (m) media[media.length - 1]!.rtcp = toIntIfInt(m[1]!);
    }
  }
  return media.map((m) => fromLines(m.c ?? session, m.port, m.rtcp, family));
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
  const ip = family === 6 ? canonicalIpv6(text) : isIPv4(text) ? text : undefined;
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
