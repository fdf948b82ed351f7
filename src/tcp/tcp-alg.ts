/**
 * SIP over TCP through the NAT (issue 7). The kernel does not adjust sequence numbers for a
 * payload changed in NFQUEUE here (netfilter-facts.md §1: no conntrack glue), so this does:
 *
 * - Framing (RFC 3261 §18.3): the byte stream of each direction is cut into messages by the
 *   header end and Content-Length; CRLF keep-alives (RFC 5626 §3.5.1) between messages are skipped.
 *   Several messages in one segment are each rewritten; a message spread over several segments is
 *   rewritten once it is complete, and the segments holding its bytes wait in the queue until then
 *   (bounded by tcp-hold-ms and max-message-size; past either, it passes unchanged and is counted).
 * - Rewritten messages are kept in stream coordinates (StreamMap), so sequence numbers of every later segment,
 *   ACK numbers and SACK edges of the other side, and retransmissions are all mapped for the life
 *   of the connection.
 * - The connection's conntrack entry is switched to liberal window tracking
 *   (IP_CT_TCP_FLAG_BE_LIBERAL, nf_conntrack_proto_tcp.c tcp_in_window) once its length changes:
 *   conntrack sees the original sequence space before the queue, the peers see the rewritten one.
 *
 * Only the first queue carries TCP (the rules send it there), so one worker sees both directions
 * of every connection.
 */
import { Reason } from '../errors';
import type { Conntrack, Tuple } from '../conntrack/ctnetlink';
import { parseIpTcp, rebuildTcp, IPPROTO_TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpSegment } from '../packet/tcp';
import type { Direction } from '../sip/rewrite';
import type { Addressing, MessageBinding, Outcome } from '../alg/processor';
import { StreamMap } from './stream-map';
import { sameAddress } from '../packet/addr';

export const NF_DROP = 0, NF_ACCEPT = 1;
const TWO32 = 0x100000000;
const EMPTY = Buffer.alloc(0);
/** acknowledged messages older than this are forgotten (far beyond any window that can still be retransmitted) */
const PRUNE_MARGIN = 1 << 20;

export interface TcpOptions {
  ports: number[];
  tlsPorts: number[];
  maxMessageSize: number;
  holdMs: number;
  maxConnections: number;
  /** state of a connection idle this long is dropped once conntrack no longer has it */
  idleMs: number;
  /**
   * leak-policy: what happens to LAN→WAN segments of a message still incomplete after holdMs.
   * 'pass' releases them unchanged and gives the message up (its private addresses reach the WAN);
   * 'drop' drops them and keeps waiting (TCP resends them; counted tcp_incomplete). WAN→LAN always passes.
   */
  incomplete?: 'pass' | 'drop';
}

export interface TcpDeps {
  /** the conntrack entry holding this tuple in either direction */
  lookup(t: Tuple): Conntrack | undefined;
  /** window tracking off for this connection (both directions) */
  setLiberal(t: Tuple): void;
  /** Processor.message: frame-level SIP processing */
  message(buf: Buffer, start: number, end: number, dir: Direction, p: Addressing, proto: number, now: number, bind: () => MessageBinding | undefined): { outcome: Outcome; payload?: Buffer };
}

export interface Release {
  id: number;
  dir: Direction;
  verdict: number;
  /** the packet to send instead, when changed */
  packet: Buffer | undefined;
  reason: Reason;
  original: Buffer;
}

export interface TcpResult {
  releases: Release[];
  messages: { dir: Direction; outcome: Outcome }[];
}

interface Held {
  id: number;
  pkt: Buffer;
  seg: TcpSegment;
  rel: number;
}

/** One direction's byte stream (data sent by that side). */
class Side {
  /** sequence number of stream position 0 */
  isn: number | undefined;
  /** next original stream position expected */
  next = 0;
  readonly map = new StreamMap();
  /** bytes of the message being assembled, from stream position bufStart */
  buf: Buffer = EMPTY;
  bufStart = 0;
  /** length of the message being assembled once its header is complete */
  pendingLen: number | undefined;
  /** bytes up to this position are passed without framing (a message given up on) */
  skipTo = 0;
  /** framing lost (picked up mid-stream, or a header never completed): resume at a segment that starts a message */
  unframed = false;
  held: Held[] = [];
  heldSince = 0;
  /** a FIN was seen: it takes the sequence number after the last byte (RFC 9293 §3.4) */
  fin = false;
  /** the incomplete message's bytes up to this stream position went out ahead of it (safePrefixEnd) */
  prefixSent = 0;

  init(seq: number, first: number): void {
    this.isn = (seq + (first ? 1 : 0)) >>> 0;
    this.next = 0;
    this.bufStart = 0;
    this.unframed = first === 0;
  }

  /** The stream position of sequence number `seq`, unwrapped near `ref`. */
  pos(seq: number, ref: number): number {
    const cand = (seq - this.isn!) >>> 0;
    return cand + Math.round((ref - cand) / TWO32) * TWO32;
  }

  /** where an incomplete message starts, if one is being assembled */
  get incompleteStart(): number | undefined {
    return this.buf.length > 0 ? this.bufStart : undefined;
  }
}

interface Conn {
  key: string;
  privateIp: string;
  privatePort: number;
  remoteIp: string;
  remotePort: number;
  /** public endpoint of the connection, once learned from conntrack */
  publicIp?: string;
  publicPort?: number;
  /** the port the phone names for itself in its Via (its listening port), for WAN→LAN mapping */
  lanPort?: number;
  liberal: boolean;
  lastSeen: number;
  out: Side;
  in: Side;
}

const START_LINE = /^(?:[A-Za-z]+ \S+ SIP\/2\.0\r?\n|SIP\/2\.0 \d{3}[ \r\n])/;
const CONTENT_LENGTH = /^(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})[ \t]*\r?$/im;
const TOP_VIA = /^(?:via|v)[ \t]*:[ \t]*SIP\/2\.0\/TCP[ \t]+(\[[^\]]+\]|[^\s;:,]+)(?::(\d+))?/im;

export class TcpAlg {
  private readonly conns = new Map<string, Conn>();

  constructor(private readonly deps: TcpDeps, private opts: TcpOptions) {}

  setOptions(opts: TcpOptions): void {
    this.opts = opts;
  }

  get size(): number {
    return this.conns.size;
  }

  /** A queued TCP segment: returns the verdicts to issue now (this one, earlier held ones, or none while it waits). */
  segment(id: number, pkt: Buffer, dir: Direction, now: number): TcpResult {
    const res: TcpResult = { releases: [], messages: [] };
    const r = parseIpTcp(pkt);
    if (!r.ok) {
      res.releases.push({ id, dir, verdict: NF_ACCEPT, packet: undefined, reason: r.reason, original: pkt });
      return res;
    }
    const s = r.seg;
    if (this.opts.tlsPorts.includes(s.srcPort) || this.opts.tlsPorts.includes(s.dstPort)) {
      // RFC 5630: SIPS is end-to-end TLS; the ALG cannot read or change it (see README)
      res.releases.push({ id, dir, verdict: NF_ACCEPT, packet: undefined, reason: Reason.TLS_PASSTHROUGH, original: pkt });
      return res;
    }
    if (!this.opts.ports.includes(s.srcPort) && !this.opts.ports.includes(s.dstPort)) {
      res.releases.push({ id, dir, verdict: NF_ACCEPT, packet: undefined, reason: Reason.NOT_SIP_PORT, original: pkt });
      return res;
    }
    const key = dir === 'out' ? `${s.src}:${s.srcPort}>${s.dst}:${s.dstPort}` : `${s.dst}:${s.dstPort}>${s.src}:${s.srcPort}`;
    let c = this.conns.get(key);
    if (s.flags & TCP_SYN) {
      // a new connection (or a reused 4-tuple): state starts over at the ISN
      if (!c || (!(s.flags & TCP_ACK) && c[dir].isn !== ((s.seq + 1) >>> 0))) {
        if (c) { this.releaseHeld(c, 'out', res, true); this.releaseHeld(c, 'in', res, true); this.conns.delete(key); }
        c = this.create(key, s, dir);
      }
      if (c) { c[dir].init(s.seq, 1); c.lastSeen = now; }
      res.releases.push({ id, dir, verdict: NF_ACCEPT, packet: undefined, reason: Reason.UNCHANGED, original: pkt });
      return res;
    }
    if (!c) c = this.create(key, s, dir);
    if (!c) {
      res.releases.push({ id, dir, verdict: NF_ACCEPT, packet: undefined, reason: Reason.UNCHANGED, original: pkt });
      return res;
    }
    c.lastSeen = now;
    const me = c[dir];
    if (me.isn === undefined) me.init(s.seq, 0); // picked up mid-stream (e.g. after a restart)
    const rel = me.pos(s.seq, me.next);
    const len = s.payloadLength;
    if (s.flags & TCP_FIN) me.fin = true;
    /** nothing in it the ALG has not seen: a retransmission */
    const resent = len > 0 && rel + len <= me.next;
    if (len > 0) {
      if (rel > me.next) {
        // a gap before this segment: it cannot be framed yet; the sender resends it after the gap
        res.releases.push({ id, dir, verdict: NF_DROP, packet: undefined, reason: Reason.TCP_OUT_OF_ORDER, original: pkt });
        return res;
      }
      if (rel + len > me.next) {
        const from = s.payloadOffset + (me.next - rel);
        // copied: the queue's buffer is not ours to keep
        const fresh = Buffer.from(pkt.subarray(from, s.payloadOffset + len));
        this.feed(c, dir, fresh, now, res);
      }
    }
    this.releaseHeld(c, dir, res, false);
    const start = me.incompleteStart;
    if (len > 0 && start !== undefined && rel + len > start) {
      // nothing new in it: the sender resends what it has not had acknowledged. With a small
      // congestion window (after a timeout: one segment, RFC 5681 §3.1) it sends nothing more until
      // then, and the message can never complete in the queue. The part of the message that no
      // rewrite can change (safePrefixEnd) goes out ahead, the receiver acknowledges it, and the
      // sender's window opens for the rest
      if (resent && !(s.flags & (TCP_FIN | TCP_RST))) {
        const cut = this.safePrefixEnd(c, dir);
        if (cut > rel && cut > me.prefixSent) {
          me.prefixSent = cut;
          res.releases.push(this.emit(c, dir, id, pkt, s, rel, Reason.TCP_PREFIX, cut - rel));
          return res;
        }
      }
      if (me.held.some((h) => h.rel === rel && h.seg.payloadLength === len)) {
        // the sender's probe of a segment still held: the held one goes on when the message is complete
        res.releases.push({ id, dir, verdict: NF_DROP, packet: undefined, reason: Reason.TCP_DUPLICATE, original: pkt });
        return res;
      }
      if (me.held.length === 0) me.heldSince = now;
      me.held.push({ id, pkt, seg: s, rel });
      return res;
    }
    res.releases.push(this.emit(c, dir, id, pkt, s, rel, Reason.UNCHANGED));
    if (s.flags & TCP_RST) {
      this.releaseHeld(c, 'out', res, true);
      this.releaseHeld(c, 'in', res, true);
      this.conns.delete(key);
    }
    return res;
  }

  /** Hold timeouts and idle connections. */
  sweep(now: number): TcpResult {
    const res: TcpResult = { releases: [], messages: [] };
    for (const c of this.conns.values()) {
      for (const dir of ['out', 'in'] as const) {
        const me = c[dir];
        if (me.held.length && now - me.heldSince >= this.opts.holdMs) {
          if (dir === 'out' && this.opts.incomplete === 'drop') {
            // leak-policy drop: the held segments go, the message stays; the sender resends them
            for (const h of me.held) res.releases.push({ id: h.id, dir, verdict: NF_DROP, packet: undefined, reason: Reason.TCP_INCOMPLETE, original: h.pkt });
            me.held = [];
          } else {
            this.giveUp(me);
            this.releaseHeld(c, dir, res, true, Reason.TCP_INCOMPLETE);
          }
        }
      }
      if (now - c.lastSeen >= this.opts.idleMs && !c.out.held.length && !c.in.held.length) {
        let alive = true;
        try { alive = this.deps.lookup(this.tuple(c)) !== undefined; } catch { /* keep it, look again next time */ }
        if (!alive) this.conns.delete(c.key);
        else c.lastSeen = now;
      }
    }
    return res;
  }

  /** Every held segment, released as it is (shutdown). */
  releaseAll(): TcpResult {
    const res: TcpResult = { releases: [], messages: [] };
    for (const c of this.conns.values()) {
      this.releaseHeld(c, 'out', res, true);
      this.releaseHeld(c, 'in', res, true);
    }
    return res;
  }

  private tuple(c: Conn): Tuple {
    return { src: c.privateIp, sport: c.privatePort, dst: c.remoteIp, dport: c.remotePort, proto: IPPROTO_TCP };
  }

  private create(key: string, s: TcpSegment, dir: Direction): Conn | undefined {
    if (!this.conns.has(key) && this.conns.size >= this.opts.maxConnections) return undefined;
    const [privateIp, privatePort, remoteIp, remotePort] = dir === 'out' ? [s.src, s.srcPort, s.dst, s.dstPort] : [s.dst, s.dstPort, s.src, s.srcPort];
    const c: Conn = { key, privateIp, privatePort, remoteIp, remotePort, liberal: false, lastSeen: 0, out: new Side(), in: new Side() };
    this.conns.set(key, c);
    return c;
  }

  /** The connection's public endpoint from conntrack: the tuple whose source is the remote end has it as destination. */
  private binding(c: Conn, dir: Direction): MessageBinding | undefined {
    if (c.publicIp === undefined) {
      const ct = this.deps.lookup(this.tuple(c));
      if (!ct) return undefined;
      for (const t of [ct.reply, ct.orig]) {
        if (t.src === c.remoteIp && t.sport === c.remotePort) { c.publicIp = t.dst; c.publicPort = t.dport; break; }
      }
      if (c.publicIp === undefined) return undefined;
    }
    const tr = dir === 'out'
      ? { fromIp: c.privateIp, fromPort: c.privatePort, toIp: c.publicIp, toPort: c.publicPort!, anyFromPort: true }
      : { fromIp: c.publicIp, fromPort: c.publicPort!, toIp: c.privateIp, toPort: c.lanPort ?? c.privatePort };
    return { tr, privateIp: c.privateIp, publicIp: c.publicIp, source: 'tcp' };
  }

  /** New in-order bytes of one direction: frame, rewrite complete messages, record them in the stream map. */
  private feed(c: Conn, dir: Direction, bytes: Buffer, now: number, res: TcpResult): void {
    const me = c[dir];
    let at = me.next;
    me.next += bytes.length;
    if (me.skipTo > at) {
      const skip = Math.min(bytes.length, me.skipTo - at);
      bytes = bytes.subarray(skip);
      at += skip;
      if (!bytes.length) return;
    } else if (me.unframed) {
      if (!START_LINE.test(bytes.toString('latin1', 0, Math.min(bytes.length, 64)))) return;
      me.unframed = false;
    }
    if (me.buf.length === 0) me.bufStart = at;
    const b = me.buf.length ? Buffer.concat([me.buf, bytes]) : bytes;
    let o = 0;
    for (;;) {
      // CRLF keep-alives and pongs between messages (RFC 5626 §3.5.1)
      while (o < b.length && (b[o] === 13 || b[o] === 10)) o++;
      if (o >= b.length) break;
      let hdrEnd = b.indexOf('\r\n\r\n', o, 'latin1');
      if (hdrEnd >= 0) hdrEnd += 4;
      else {
        const lf = b.indexOf('\n\n', o, 'latin1');
        if (lf >= 0) hdrEnd = lf + 2;
      }
      if (hdrEnd < 0) {
        me.pendingLen = undefined;
        if (b.length - o > this.opts.maxMessageSize) { me.unframed = true; o = b.length; }
        break;
      }
      if (!START_LINE.test(b.toString('latin1', o, Math.min(b.length, o + 64)))) {
        // no message starts where one must: framing is lost until a segment starts one
        me.unframed = true;
        o = b.length;
        break;
      }
      // RFC 3261 §18.3: on a stream Content-Length is mandatory; without it the body is empty
      const cl = CONTENT_LENGTH.exec(b.toString('latin1', o, hdrEnd));
      const msgLen = hdrEnd - o + (cl ? Number(cl[1]) : 0);
      if (msgLen > this.opts.maxMessageSize) {
        me.skipTo = me.bufStart + o + msgLen;
        o = b.length;
        break;
      }
      if (b.length - o < msgLen) { me.pendingLen = msgLen; break; }
      this.message(c, dir, b, o, o + msgLen, me.bufStart, now, res);
      o += msgLen;
    }
    me.bufStart += o;
    me.buf = o >= b.length ? EMPTY : Buffer.from(b.subarray(o));
    if (me.buf.length === 0) me.pendingLen = undefined;
  }

  private message(c: Conn, dir: Direction, b: Buffer, start: number, end: number, base: number, now: number, res: TcpResult): void {
    const head = b.toString('latin1', start, Math.min(end, start + 2048));
    if (dir === 'out' && c.lanPort === undefined) {
      const v = TOP_VIA.exec(head);
      if (v && sameAddress(v[1]!, c.privateIp)) c.lanPort = v[2] ? Number(v[2]) : 5060;
    }
    const addressing: Addressing = dir === 'out'
      ? { src: c.privateIp, srcPort: c.privatePort, dst: c.remoteIp, dstPort: c.remotePort }
      : { src: c.remoteIp, srcPort: c.remotePort, dst: c.privateIp, dstPort: c.privatePort };
    const r = this.deps.message(b, start, end, dir, addressing, IPPROTO_TCP, now, () => this.binding(c, dir));
    res.messages.push({ dir, outcome: r.outcome });
    if (!r.payload) return;
    const map = c[dir].map;
    map.add(base + start, end - start, Buffer.from(r.payload));
    if (!c.liberal && map.delta !== 0) {
      c.liberal = true;
      try { this.deps.setLiberal(this.tuple(c)); } catch { c.liberal = false; }
    }
  }

  /**
   * The stream position up to which the incomplete message's bytes are final: its start line up to
   * the first address a rewrite could change (the phone's private one, or the public one coming
   * in). Only the start line: header rewrites can change lengths (Content-Length follows the body).
   * While the start line is incomplete, its last bytes could begin an address and are kept back.
   */
  private safePrefixEnd(c: Conn, dir: Direction): number {
    const me = c[dir];
    const start = me.incompleteStart;
    if (start === undefined) return 0;
    const text = me.buf.toString('latin1', 0, Math.min(me.buf.length, 4096));
    const eol = text.indexOf('\n');
    const addrs = [c.privateIp, c.publicIp].filter((a): a is string => !!a);
    let end = eol >= 0 ? eol + 1 : Math.max(0, text.length - Math.max(...addrs.map((a) => a.length + 2)));
    for (const a of addrs) {
      const i = text.indexOf(a);
      if (i >= 0 && i < end) end = i;
    }
    return start + end;
  }

  private giveUp(me: Side): void {
    if (me.pendingLen !== undefined) me.skipTo = me.bufStart + me.pendingLen;
    else me.unframed = true;
    me.bufStart += me.buf.length;
    me.buf = EMPTY;
    me.pendingLen = undefined;
  }

  /** Releases held segments of `dir` that no incomplete message covers any more (all when `all`). */
  private releaseHeld(c: Conn, dir: Direction, res: TcpResult, all: boolean, reason: Reason = Reason.UNCHANGED): void {
    const me = c[dir];
    if (!me.held.length) return;
    const start = me.incompleteStart;
    const keep: Held[] = [];
    for (const h of me.held) {
      if (!all && start !== undefined && h.rel + h.seg.payloadLength > start) keep.push(h);
      else res.releases.push(this.emit(c, dir, h.id, h.pkt, h.seg, h.rel, reason));
    }
    me.held = keep;
  }

  /** The segment as it goes out: rewritten bytes, mapped SEQ, and ACK/SACK mapped back for the other side. */
  private emit(c: Conn, dir: Direction, id: number, pkt: Buffer, s: TcpSegment, rel: number, reason: Reason, keep?: number): Release {
    const me = c[dir];
    const peer = c[dir === 'out' ? 'in' : 'out'];
    const seq = (me.isn! + me.map.newPos(rel)) >>> 0;
    // `keep`: only the first bytes of the segment go (a safe prefix); the rest is resent by the sender
    const orig = pkt.subarray(s.payloadOffset, s.payloadOffset + (keep ?? s.payloadLength));
    const payload = orig.length ? me.map.transform(orig, rel) : orig;
    let ack = s.ack;
    let sack: ((edge: number) => number) | undefined;
    if (s.flags & TCP_ACK && peer.isn !== undefined && (peer.map.size > 0 || peer.map.delta !== 0)) {
      const ref = peer.map.newPos(peer.next);
      const back = (v: number) => (peer.isn! + peer.map.origPos(peer.pos(v, ref), peer.next + (peer.fin ? 1 : 0))) >>> 0;
      ack = back(s.ack);
      if (s.sackBlocks.length) sack = back;
      peer.map.prune(peer.pos(ack, peer.next) - PRUNE_MARGIN);
    }
    if (keep === undefined && seq === s.seq && ack === s.ack && payload === orig && !sack) return { id, dir, verdict: NF_ACCEPT, packet: undefined, reason, original: pkt };
    return { id, dir, verdict: NF_ACCEPT, packet: rebuildTcp(pkt, s, payload, seq, ack, sack), reason: reason === Reason.UNCHANGED ? Reason.REWRITTEN : reason, original: pkt };
  }
}
