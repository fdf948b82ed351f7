/**
 * rewriteSip as it was until the SDP was translated from its bytes (issue 21): the body turned into
 * a string, translated by the line-by-line SDP rewrite and written back whole, the Content-Type
 * matched by a regular expression, the far end's media read by sdp-transform. The oracle of
 * src/sip/rewrite.ts in test/unit/sip/rewrite.test.ts. Test-only.
 */
import { Reason } from '../../../src/errors';
import type { PortMapper, SdpMediaMapping } from '../../../src/sdp/rewrite';
import { rewriteSdpReference as rewriteSdp } from '../sdp/rewrite-reference';
import { remoteMediaReference as remoteMedia, type RemoteMedia } from '../../../src/sdp/remote-media';
import { applyEdits, type Edit } from '../../../src/sip/edits';
import { canonicalIpv6 } from '../../../src/packet/addr';
import { hostIs, sipHost, uriHostPorts, viaParms, type HostPort } from '../../../src/sip/hostport';
import type { SipMessage } from '../../../src/sip/message';

interface Translation {
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

type Direction = 'out' | 'in';

type RewriteResult =
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

export function rewriteSipReference(b: Buffer, start: number, end: number, msg: SipMessage, dir: Direction, tr: Translation, mapPort?: PortMapper, thirdParty: 'allow' | 'block' = 'block'): RewriteResult {
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
  let contentType: string | undefined;
  let clHeader: { s: number; e: number } | undefined;
  let topVia = true;
  for (const h of msg.headers) {
    if (h.name === 'content-type') contentType = b.toString('latin1', h.valueStart, h.valueEnd);
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
  let body: string | undefined;
  let media: SdpMediaMapping[] | undefined;
  let remote: (RemoteMedia | undefined)[] | undefined;
  let refusedThirdParty = 0;
  const isSdp = msg.bodyEnd > msg.bodyStart && contentType !== undefined && /^application\/sdp\s*(;|$)/i.test(contentType);
  if (isSdp && dir === 'in') remote = remoteMedia(b.toString('latin1', msg.bodyStart, msg.bodyEnd), v6 ? 6 : 4);
  if (isSdp && dir === 'out' && mapPort) {
    const r = rewriteSdp(b.toString('latin1', msg.bodyStart, msg.bodyEnd), tr.fromIp, tr.toIp, mapPort, thirdParty);
    if (!r.ok) return r;
    media = r.media;
    refusedThirdParty = r.refusedThirdParty;
    if (r.changed.length) {
      // the SDP text is latin1 (one character per byte): its length is its byte length
      body = r.text;
      for (const c of r.changed) fields.push(`sdp_${c.field}`);
    }
  }
  if (edits.length === 0 && !body) return { ok: true, payload: undefined, fields, media, remote, refusedThirdParty };
  if (body) {
    if (clHeader) {
      edits.push({ start: clHeader.s, end: clHeader.e, text: String(body.length) });
      fields.push('content_length');
    }
    edits.push({ start: msg.bodyStart, end: msg.bodyEnd, text: body });
  }
  return { ok: true, payload: applyEdits(b, start, end, edits), fields, media, remote, refusedThirdParty };
}
