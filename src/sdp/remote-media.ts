/**
 * Reads the media addresses of an SDP that came from the WAN (the far end's offer or answer) with
 * sdp-transform: this side only reads, it never writes, so the library's model fits here.
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
  let s: sdpTransform.SessionDescription;
  try {
    s = sdpTransform.parse(sdp);
  } catch {
    return undefined;
  }
  // sdp-transform returns whatever its regexes matched: check every value before trusting it
  const media: unknown = s.media;
  if (!Array.isArray(media)) return undefined;
  return media.map((m: sdpTransform.MediaDescription) => {
    const c = m.connection ?? s.connection;
    if (!c || c.version !== family || typeof m.port !== 'number' || m.port < 1 || m.port > 65535) return undefined;
    // c=IN IP4 <addr>[/ttl][/n], c=IN IP6 <addr>[/n] (RFC 4566 §5.7)
    const text = String(c.ip).split('/')[0]!;
    const ip = family === 6 ? canonicalIpv6(text) : isIPv4(text) ? text : undefined;
    if (ip === undefined) return undefined;
    const rtcp = typeof m.rtcp?.port === 'number' && m.rtcp.port > 0 && m.rtcp.port <= 65535 ? m.rtcp.port : m.port + 1;
    return { ip, port: m.port, rtcpPort: rtcp };
  });
}
