/**
 * The per-packet hot path: parse IP/UDP, frame SIP, learn the NAT binding, rewrite, rebuild.
 * Fail open: anything it cannot handle is accepted unchanged with a reason code; only the
 * configured malformed-policy=drop drops.
 */
import { NetlinkError, Reason } from '../errors';
import { frameUdp, parseIpUdp } from '../packet/ip';
import { findHeader, METHOD_NAMES, parseSip } from '../sip/message';
import { rewriteSip, type Direction, type Translation } from '../sip/rewrite';
import type { BindingResolver } from '../nat/binding-resolver';
import type { PortAllocator } from '../nat/port-allocator';
import type { SipEvent } from '../dialog/dialog-table';
import { dialogInfo } from '../sip/dialog-info';
import { contactExpiry, registrationAor } from '../sip/registration-info';
import { IPPROTO_UDP, type Tuple } from '../conntrack/ctnetlink';

export interface ProcessorOptions {
  maxMessageSize: number;
  /** requests with a method outside KNOWN_METHODS: rewrite and pass, or drop */
  unknownMethod?: 'pass' | 'drop';
  /** SIP ports: a packet with neither port in the list is not ours (custom rules may queue more) */
  ports: number[];
  malformedPolicy: 'pass' | 'drop';
  /** SDP media on another private LAN host than the signaling one */
  thirdPartyMedia?: 'allow' | 'block';
  /** IPv6 SIP is translated (NAT66, a public IPv6 address is known); otherwise passed unchanged */
  ipv6?: boolean;
}

/** The addresses a message travelled between (packet or TCP connection, as seen in the queue). */
export interface Addressing {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
}

/** The NAT binding of a message's flow, as the rewrite needs it. */
export interface MessageBinding {
  tr: Translation;
  privateIp: string;
  publicIp: string;
  /** how the binding was learned (metrics) */
  source: string;
}

export interface Outcome {
  accept: boolean;
  /** the rewritten packet, when there is one */
  packet: Buffer | undefined;
  reason: Reason;
  /** method for requests, status class (e.g. "2xx") for responses, "" when not SIP */
  message: string;
  fields: string[];
  bindingSource?: string;
  /** what the dialog table needs of a SIP message that may move media or end a dialog */
  event?: SipEvent;
  /** a 2xx to REGISTER that crossed WAN→LAN: the phone's registration through this binding */
  registration?: { aor: string; flow: Tuple; publicIp: string; publicPort: number; expires: number };
  /** packet addresses, for per-source policy */
  src?: string;
  dst?: string;
  /** a request that starts something new (INVITE without To tag, REGISTER): subject to rate limits */
  initial?: boolean;
  /** SDP media lines on a private third-party address that policy left untranslated */
  refusedThirdParty?: number;
}

const NO_FIELDS: string[] = [];

/**
 * Every outcome is made here, with every field in the same order, so the code that reads outcomes
 * sees one object shape (monomorphic property access) whichever path made it.
 */
export function makeOutcome(accept: boolean, reason: Reason, message: string, fields: string[] = NO_FIELDS): Outcome {
  return { accept, packet: undefined, reason, message, fields, bindingSource: undefined, event: undefined, registration: undefined, src: undefined, dst: undefined, initial: false, refusedThirdParty: undefined };
}

// RFC 3261 §27.4 methods and the extensions seen on trunks (RFC 3262, 3265/6665, 3311, 3428, 3515, 3903, 6086)
export const KNOWN_METHODS = new Set(METHOD_NAMES);

const TEARDOWN = new Set(['BYE', 'CANCEL']);
/** a response's metric label by its status class (parseSip admits 1xx-6xx): one string each, not one per message */
const STATUS_CLASS = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx', '6xx'];
const MALFORMED = new Set<Reason>([Reason.TRUNCATED_HEADERS, Reason.BAD_START_LINE, Reason.BAD_HEADER, Reason.BAD_CONTENT_LENGTH, Reason.BAD_SDP]);

export class Processor {
  constructor(private readonly resolver: BindingResolver, private readonly ports: PortAllocator, private opts: ProcessorOptions) {}

  setOptions(opts: ProcessorOptions): void {
    this.opts = opts;
  }

  private pass(reason: Reason, message = ''): Outcome {
    const drop = this.opts.malformedPolicy === 'drop' && MALFORMED.has(reason);
    return makeOutcome(!drop, reason, message);
  }

  process(pkt: Buffer, dir: Direction, now: number): Outcome {
    const ip = parseIpUdp(pkt);
    if (!ip.ok) return this.pass(ip.reason);
    const p = ip.packet;
    if (p.family === 6 && !this.opts.ipv6) return this.pass(Reason.IPV6_PASSTHROUGH);
    if (!this.opts.ports.includes(p.srcPort) && !this.opts.ports.includes(p.dstPort)) return this.pass(Reason.NOT_SIP_PORT);
    if (p.payloadLength > this.opts.maxMessageSize) return this.pass(Reason.TOO_LARGE);
    const start = p.payloadOffset, end = p.payloadOffset + p.payloadLength;
    const r = this.message(pkt, start, end, dir, p, IPPROTO_UDP, now, () => {
      const b = dir === 'out' ? this.resolver.outbound(p.src, p.srcPort, p.dst, p.dstPort, now) : this.resolver.inbound(p.src, p.srcPort, p.dst, p.dstPort, now);
      return b && { tr: translation(b, dir), privateIp: b.privateIp, publicIp: b.publicIp, source: b.source };
    }, p.ipHeaderLength + 8);
    // the message was written after room for the headers: the packet is completed where it is
    if (r.frame) r.outcome.packet = frameUdp(pkt, p, r.frame);
    return r.outcome;
  }

  /**
   * One framed SIP message buf[start,end) from the packet or stream addressed `p`: parse, learn the
   * binding (`bind`, called once the message is known to be SIP), rewrite. Returns the outcome with
   * no packet, and the new message bytes when rewritten; with `headroom`, also the buffer they were
   * written into with that many bytes in front (`frame`, for the packet's headers).
   */
  message(pkt: Buffer, start: number, end: number, dir: Direction, p: Addressing, proto: number, now: number, bind: () => MessageBinding | undefined, headroom = 0): { outcome: Outcome; payload?: Buffer; frame?: Buffer } {
    const sip = parseSip(pkt, start, end);
    if (!sip.ok) return { outcome: this.pass(sip.reason) };
    const msg = sip.msg;
    // metric label: bounded set (an attacker must not mint label values)
    const known = !msg.isRequest || KNOWN_METHODS.has(msg.method);
    const label = msg.isRequest ? (known ? msg.method : 'other') : STATUS_CLASS[Math.floor(msg.status / 100)]!;
    if (!known && this.opts.unknownMethod === 'drop') return { outcome: makeOutcome(false, Reason.UNKNOWN_METHOD, label) };
    let binding: MessageBinding | undefined;
    try {
      binding = bind();
    } catch (e) {
      if (e instanceof NetlinkError) return { outcome: this.pass(Reason.CONNTRACK_ERROR, label) };
      throw e;
    }
    if (!binding) return { outcome: this.pass(Reason.NO_BINDING, label) };
    const tr = binding.tr;
    if (tr.fromIp === tr.toIp && tr.fromPort === tr.toPort) {
      const o = this.pass(Reason.UNCHANGED, label);
      o.bindingSource = binding.source;
      return { outcome: o };
    }
    const r = rewriteSip(pkt, start, end, msg, dir, tr, (ipAddr, port) => this.ports.allocate(ipAddr, port, now), this.opts.thirdPartyMedia, headroom);
    if (!r.ok) {
      const o = this.pass(r.reason, label);
      o.bindingSource = binding.source;
      return { outcome: o };
    }
    let event: SipEvent | undefined;
    let initial = false;
    if (r.media !== undefined || r.remote !== undefined || !msg.isRequest || TEARDOWN.has(msg.method) || msg.method === 'INVITE' || msg.method === 'REGISTER') {
      const info = dialogInfo(pkt, msg);
      if (info) {
        const se = findHeader(pkt, msg, 'session-expires');
        const seconds = se ? /^\s*(\d{1,7})/.exec(se)?.[1] : undefined;
        const flow: Tuple = dir === 'out' ? { src: p.src, sport: p.srcPort, dst: p.dst, dport: p.dstPort, proto } : { src: p.dst, sport: p.dstPort, dst: p.src, dport: p.srcPort, proto };
        event = { dir, isRequest: msg.isRequest, method: msg.method, status: msg.status, info, privateIp: binding.privateIp, publicIp: binding.publicIp, local: r.media, remote: r.remote, sessionExpires: seconds ? Number(seconds) : undefined, flow };
        initial = msg.method === 'REGISTER' || (msg.method === 'INVITE' && !info.toTag);
      }
    }
    const refusedThirdParty = r.refusedThirdParty || undefined;
    let registration: Outcome['registration'];
    if (dir === 'in' && !msg.isRequest && msg.status >= 200 && msg.status < 300 && event?.info.cseqMethod === 'REGISTER') {
      const pub = { ip: tr.fromIp, port: tr.fromPort };
      registration = {
        aor: registrationAor(pkt, msg),
        flow: { src: p.dst, sport: p.dstPort, dst: p.src, dport: p.srcPort, proto },
        publicIp: pub.ip,
        publicPort: pub.port,
        expires: contactExpiry(pkt, msg, pub.ip, pub.port),
      };
    }
    const outcome = makeOutcome(true, r.payload ? Reason.REWRITTEN : Reason.UNCHANGED, label, r.fields);
    outcome.bindingSource = binding.source;
    outcome.event = event;
    outcome.registration = registration;
    outcome.src = p.src;
    outcome.dst = p.dst;
    outcome.initial = initial;
    outcome.refusedThirdParty = refusedThirdParty;
    return { outcome, payload: r.payload, frame: r.frame };
  }
}

/** How a binding translates a message crossing in direction `dir`. */
export function translation(b: { privateIp: string; privatePort: number; publicIp: string; publicPort: number }, dir: Direction): Translation {
  return dir === 'out'
    ? { fromIp: b.privateIp, fromPort: b.privatePort, toIp: b.publicIp, toPort: b.publicPort }
    : { fromIp: b.publicIp, fromPort: b.publicPort, toIp: b.privateIp, toPort: b.privatePort };
}
