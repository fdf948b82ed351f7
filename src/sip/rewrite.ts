/**
 * Address translation of one SIP message by direction (RFC 3261; the rules follow the kernel's
 * net/netfilter/nf_nat_sip.c and the direction table in shared/seeds/002):
 *  - LAN→WAN: the flow's private ip:port becomes the public binding wherever it appears in the
 *    Request-URI, Via sent-by, Contact, From, To, Route and Record-Route; SDP o=/c=/m=/a=rtcp too.
 *  - WAN→LAN: the public binding becomes the private ip:port in the same places, and in the top
 *    Via's received=/rport= (RFC 3581 §4) so the phone sees the transport it used.
 * Only that exact ip:port pair is translated (a URI without a port means the transport default,
 * RFC 3261 §19.1.2), so NAT-aware endpoints that already write public addresses are left alone and
 * Call-ID, tags, branch and every untouched header stay byte for byte. Content-Length is recomputed
 * when the body changes (§20.14).
 * IPv6 translations (fromIp/toIp IPv6 text): a host `[...]` matches fromIp by value (RFC 5952
 * forms need not be the packet's), and the new host is written `[toIp]` in RFC 5952 form; Via
 * received= matches with or without brackets and keeps the form it had (RFC 3261 §18.2.1 writes
 * the bare address, RFC 5118 §4.5 shows both); SDP `IN IP6` lines as in sdp/rewrite.ts.
 */
import { Reason } from '../errors';
import { translateSdp, type PortMapper, type SdpMediaMapping } from '../sdp/rewrite';
import { remoteMediaAt, type RemoteMedia } from '../sdp/remote-media';
import { applyEdits, type Edit } from './edits';
import { canonicalIpv6 } from '../packet/addr';
import { isSpaceLatin1 } from '../packet/latin1';
import { hostIs, sipHost, uriHostPorts, viaParms, type HostPort } from './hostport';
import type { SipMessage } from './message';

export interface Translation {
  fromIp: string;
  fromPort: number;
  toIp: string;
  toPort: number;
  /**
   * Match the private host with any port (SIP over TCP, LAN→WAN): a phone's Via/Contact name its
   * listening port, not the connection's ephemeral one, and the far end must reach it through the
   * connection's public ip:port (RFC 5923 connection reuse; RFC 3261 §18.2.2 responses on the
   * connection).
   */
  anyFromPort?: boolean;
}

export type Direction = 'out' | 'in';

export type RewriteResult =
  | {
      ok: true;
      payload: Buffer | undefined;
      fields: string[];
      /** LAN→WAN SDP: the translated media (empty on hold or when nothing was private); undefined without SDP */
      media: SdpMediaMapping[] | undefined;
      /** WAN→LAN SDP: the far end's media per m= line */
      remote: (RemoteMedia | undefined)[] | undefined;
      /** SDP media on a private third-party address left untranslated (third-party-media=block) */
      refusedThirdParty?: number;
      /** with `headroom`: the buffer the payload was written into, `headroom` bytes in front of it */
      frame: Buffer | undefined;
    }
  | { ok: false; reason: Reason };

const URI_HEADERS: Record<string, string> = { contact: 'contact', from: 'from', to: 'to', route: 'route', 'record-route': 'record_route' };

/** `toHost`: tr.toIp as a SIP host (sipHost: brackets for IPv6) */
function hostPortEdit(value: string, base: number, hp: HostPort, tr: Translation, toHost: string): Edit | undefined {
  const port = hp.port ?? hp.defaultPort;
  if (!hostIs(hp.host, tr.fromIp) || (port !== tr.fromPort && !tr.anyFromPort)) return undefined;
  // keep the port absent when the new one is the default, write it otherwise
  const text = toHost + (hp.port !== undefined || tr.toPort !== hp.defaultPort ? `:${tr.toPort}` : '');
  if (value.slice(hp.hostStart, hp.portEnd) === text) return undefined;
  return { start: base + hp.hostStart, end: base + hp.portEnd, text };
}

/** The IPv4 address text last searched for, as bytes (one address per flow: a cache of one). */
let lastIp = '';
let lastIpBytes = Buffer.alloc(0);

/**
 * Where the IPv4 address `ip` occurs as text in b[from, to): the header fields that hold none of
 * these offsets cannot name it (hostIs compares IPv4 hosts as text) and are skipped without being
 * decoded or parsed. Most headers of a message never name the phone.
 */
function occurrences(b: Buffer, from: number, to: number, ip: string): number[] {
  if (ip !== lastIp) {
    lastIp = ip;
    lastIpBytes = Buffer.from(ip, 'latin1');
  }
  const at: number[] = [];
  for (let i = b.indexOf(lastIpBytes, from); i >= 0 && i + lastIpBytes.length <= to; i = b.indexOf(lastIpBytes, i + 1)) at.push(i);
  return at;
}

/**
 * @param headroom bytes to leave in front of the rewritten payload (`frame`): the caller writes the
 *   packet's IP and UDP headers there, and the message is copied once
 */
export function rewriteSip(b: Buffer, start: number, end: number, msg: SipMessage, dir: Direction, tr: Translation, mapPort?: PortMapper, thirdParty: 'allow' | 'block' = 'block', headroom = 0): RewriteResult {
  const edits: Edit[] = [];
  const fields: string[] = [];
  const v6 = tr.fromIp.indexOf(':') >= 0;
  const toHost = sipHost(tr.toIp);
  // IPv4: only the fields where the address occurs as text are looked at (IPv6 hosts compare by
  // value, in any of their written forms: every field is)
  const at = v6 ? undefined : occurrences(b, start, Math.min(msg.bodyStart, end), tr.fromIp);
  const names = (s: number, e: number) => {
    if (!at) return true;
    for (let k = 0; k < at.length; k++) if (at[k]! >= s && at[k]! < e) return true;
    return false;
  };
  // Request-URI (RFC 3261 §8.1.1.1 / §16.12)
  if (msg.isRequest && names(msg.uriStart, msg.uriEnd)) {
    const v = b.toString('latin1', msg.uriStart, msg.uriEnd);
    for (const hp of uriHostPorts(v)) {
      const e = hostPortEdit(v, msg.uriStart, hp, tr, toHost);
      if (e) { edits.push(e); fields.push('request_uri'); }
    }
  }
  let isSdpType = false;
  let clHeader: { s: number; e: number } | undefined;
  let topVia = true;
  for (const h of msg.headers) {
    if (h.name === 'content-type') isSdpType = isApplicationSdp(b, h.valueStart, h.valueEnd);
    else if (h.name === 'content-length') clHeader = { s: h.valueStart, e: h.valueEnd };
    else if (h.name === 'via') {
      if (!names(h.valueStart, h.valueEnd)) {
        topVia = false;
        continue;
      }
      // Via sent-by (RFC 3261 §18.2.1, §20.42); received/rport of our own Via (RFC 3581 §4)
      const v = b.toString('latin1', h.valueStart, h.valueEnd);
      for (const vp of viaParms(v)) {
        const e = hostPortEdit(v, h.valueStart, vp, tr, toHost);
        const isTop = topVia;
        topVia = false;
        if (!e) continue;
        edits.push(e);
        fields.push('via');
        if (dir === 'in' && isTop && !msg.isRequest) {
          const received = vp.received && v.slice(vp.received.start, vp.received.end);
          if (vp.received && received && hostIs(received, tr.fromIp)) {
            // IPv6: the bare address (RFC 3261 §18.2.1), or bracketed when the proxy wrote it so (RFC 5118 §4.5)
            const text = !v6 ? tr.toIp : received.startsWith('[') ? toHost : canonicalIpv6(tr.toIp) ?? tr.toIp;
            edits.push({ start: h.valueStart + vp.received.start, end: h.valueStart + vp.received.end, text });
            fields.push('via_received');
          }
          if (vp.rport && vp.rport.end > vp.rport.start && v.slice(vp.rport.start, vp.rport.end) === String(tr.fromPort)) {
            edits.push({ start: h.valueStart + vp.rport.start, end: h.valueStart + vp.rport.end, text: String(tr.toPort) });
            fields.push('via_rport');
          }
        }
      }
      topVia = false;
    } else {
      const label = URI_HEADERS[h.name];
      if (!label || !names(h.valueStart, h.valueEnd)) continue;
      const v = b.toString('latin1', h.valueStart, h.valueEnd);
      for (const hp of uriHostPorts(v)) {
        const e = hostPortEdit(v, h.valueStart, hp, tr, toHost);
        if (e) { edits.push(e); fields.push(label); }
      }
    }
  }
  // SDP body (RFC 3264 offer/answer in INVITE, 18x, 2xx, ACK, PRACK, UPDATE): LAN→WAN only
  let media: SdpMediaMapping[] | undefined;
  let remote: (RemoteMedia | undefined)[] | undefined;
  let refusedThirdParty = 0;
  let bodyDelta = 0, bodyChanged = false;
  const isSdp = msg.bodyEnd > msg.bodyStart && isSdpType;
  if (isSdp && dir === 'in') remote = remoteMediaAt(b, msg.bodyStart, msg.bodyEnd, v6 ? 6 : 4);
  if (isSdp && dir === 'out' && mapPort) {
    // the body's edits go to the same list as the headers' (offsets in b)
    const r = translateSdp(b, msg.bodyStart, msg.bodyEnd, tr.fromIp, tr.toIp, mapPort, thirdParty, edits);
    if (!r.ok) return r;
    media = r.media;
    refusedThirdParty = r.refusedThirdParty;
    if (r.changed.length) {
      bodyChanged = true;
      bodyDelta = r.delta;
      for (const c of r.changed) fields.push(SDP_FIELD[c]);
    }
  }
  if (edits.length === 0 && !bodyChanged) return { ok: true, payload: undefined, fields, media, remote, refusedThirdParty, frame: undefined };
  if (bodyChanged && clHeader) {
    edits.push({ start: clHeader.s, end: clHeader.e, text: String(msg.bodyEnd - msg.bodyStart + bodyDelta) });
    fields.push('content_length');
  }
  const frame = applyEdits(b, start, end, edits, headroom);
  return { ok: true, payload: headroom ? frame.subarray(headroom) : frame, fields, media, remote, refusedThirdParty, frame: headroom ? frame : undefined };
}

const SDP_FIELD = { o: 'sdp_o', c: 'sdp_c', m: 'sdp_m', rtcp: 'sdp_rtcp' } as const;

const APPLICATION_SDP = 'application/sdp';

/**
 * Content-Type `application/sdp` (RFC 3261 §20.15, RFC 4566 §8.1; type and subtype are
 * case-insensitive, RFC 2045 §5.1), with parameters or not, read from its bytes.
 */
function isApplicationSdp(b: Buffer, s: number, e: number): boolean {
  if (e - s < APPLICATION_SDP.length) return false;
  for (let i = 0; i < APPLICATION_SDP.length; i++) {
    const c = APPLICATION_SDP.charCodeAt(i);
    // letters either case; '/' as it is
    if ((c === 47 ? b[s + i] : b[s + i]! | 0x20) !== c) return false;
  }
  let i = s + APPLICATION_SDP.length;
  // \s as /^application\/sdp\s*(;|$)/i read it
  while (i < e && isSpaceLatin1(b[i]!)) i++;
  return i === e || b[i] === 59;
}
