/**
 * Netlink message encoding and decoding (RFC 3549; Linux netlink(7), nfnetlink). Pure TypeScript
 * over Buffers; the socket is the native boundary's.
 */
import { NetlinkError } from '../errors';
import { native } from '../native/binding';
import { writeIpv6 } from '../packet/addr';

export const NETLINK_NETFILTER = 12;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_DUMP = 0x300;
export const NLA_F_NESTED = 0x8000;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const ETIMEDOUT = 110;
/** sizeof(struct nlmsghdr) + sizeof(struct nfgenmsg) (include/uapi/linux/netlink.h, netfilter/nfnetlink.h) */
const NLMSG_NFHDRLEN = 16 + 4;
/**
 * Messages per sendmsg in requestBatch: every one is answered by its own ACK skb, and those must
 * fit the socket's receive buffer together (an overrun drops them: recv fails with ENOBUFS).
 */
const MAX_BATCH = 64;

/** A netlink attribute tree to encode: [type, value] where value is bytes or nested attributes. */
export type Attr = [type: number, value: Buffer | Attr[]];

/** Writes a message's attributes straight into the writer (the allocation-free alternative to an Attr tree). */
export type AttrWriter = (w: NlWriter) => void;

const align4 = (n: number) => (n + 3) & ~3;

/**
 * Netlink messages and attributes written into one growable buffer that is reused from message to
 * message: no allocation per attribute. Layout of netlink(7) / include/uapi/linux/netlink.h:
 * struct nlmsghdr {u32 len, u16 type, u16 flags, u32 seq, u32 pid} in host order, then (nfnetlink)
 * struct nfgenmsg {u8 family, u8 version, be16 res_id}, then struct nlattr {u16 nla_len,
 * u16 nla_type} + payload, each padded with zeros to NLA_ALIGNTO (4). nla_len counts the header and
 * the unpadded payload; a nested attribute carries NLA_F_NESTED and its nla_len covers its
 * children with their padding (lib/nlattr.c nla_nest_end). Host order is little-endian here, as in
 * the rest of this file.
 */
export class NlWriter {
  private buf: Buffer;
  /** bytes written so far */
  len = 0;

  constructor(size = 8192) {
    this.buf = Buffer.alloc(size);
  }

  reset(): this {
    this.len = 0;
    return this;
  }

  /** The bytes written since `from`: a view of the internal buffer, valid until the next write or reset. */
  view(from = 0): Buffer {
    return this.buf.subarray(from, this.len);
  }

  /** The bytes written since `from`, copied out. */
  copy(from = 0): Buffer {
    return Buffer.from(this.buf.subarray(from, this.len));
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  private hdr(type: number, len: number): void {
    const b = this.buf, o = this.len;
    b[o] = len & 0xff;
    b[o + 1] = (len >>> 8) & 0xff;
    b[o + 2] = type & 0xff;
    b[o + 3] = (type >>> 8) & 0xff;
    this.len = o + 4;
  }

  private pad(): void {
    const end = align4(this.len);
    while (this.len < end) this.buf[this.len++] = 0;
  }

  /** Starts an nfnetlink message: nlmsghdr (NLM_F_REQUEST added, pid 0: the kernel) + nfgenmsg (NFNETLINK_V0, res_id 0). Returns its offset for endMessage. */
  beginMessage(type: number, flags: number, seq: number, family: number): number {
    this.room(NLMSG_NFHDRLEN);
    const b = this.buf, o = this.len;
    b.writeUInt32LE(0, o); // nlmsg_len, set by endMessage
    b.writeUInt16LE(type, o + 4);
    b.writeUInt16LE((flags | NLM_F_REQUEST) & 0xffff, o + 6);
    b.writeUInt32LE(seq >>> 0, o + 8);
    b.writeUInt32LE(0, o + 12);
    b[o + 16] = family;
    b[o + 17] = 0; // NFNETLINK_V0
    b[o + 18] = 0; // res_id (big-endian 0)
    b[o + 19] = 0;
    this.len = o + NLMSG_NFHDRLEN;
    return o;
  }

  endMessage(start: number): void {
    this.buf.writeUInt32LE(this.len - start, start);
  }

  /** Starts a nested attribute (NLA_F_NESTED); returns its offset for endNest. */
  beginNest(type: number): number {
    this.room(4);
    const start = this.len;
    this.hdr(type | NLA_F_NESTED, 0);
    return start;
  }

  endNest(start: number): void {
    const len = this.len - start;
    this.buf[start] = len & 0xff;
    this.buf[start + 1] = (len >>> 8) & 0xff;
  }

  bytes(type: number, v: Uint8Array): void {
    this.room(4 + v.length + 3);
    this.hdr(type, 4 + v.length);
    this.buf.set(v, this.len);
    this.len += v.length;
    this.pad();
  }

  u8(type: number, v: number): void {
    this.room(8);
    this.hdr(type, 5);
    this.buf[this.len++] = v & 0xff;
    this.pad();
  }

  /** NLA_BE16: network byte order, as ctnetlink's ports are. */
  u16be(type: number, v: number): void {
    this.room(8);
    this.hdr(type, 6);
    const b = this.buf, o = this.len;
    b[o] = (v >>> 8) & 0xff;
    b[o + 1] = v & 0xff;
    b[o + 2] = 0;
    b[o + 3] = 0;
    this.len = o + 4;
  }

  /** NLA_BE32: network byte order, as ctnetlink's timeouts, status and classes are. */
  u32be(type: number, v: number): void {
    this.room(8);
    this.hdr(type, 8);
    const b = this.buf, o = this.len;
    b[o] = (v >>> 24) & 0xff;
    b[o + 1] = (v >>> 16) & 0xff;
    b[o + 2] = (v >>> 8) & 0xff;
    b[o + 3] = v & 0xff;
    this.len = o + 4;
  }

  /** An IPv4 address from dotted-quad text, 4 bytes in network order (NLA_IN_ADDR), parsed without allocating. */
  ip4(type: number, addr: string): void {
    this.room(8);
    this.hdr(type, 8);
    const b = this.buf;
    let o = this.len, v = 0;
    const end = o + 4;
    for (let i = 0; i < addr.length && o < end; i++) {
      const c = addr.charCodeAt(i);
      if (c === 46 /* . */) {
        b[o++] = v & 0xff;
        v = 0;
      } else v = v * 10 + (c - 48);
    }
    if (o < end) b[o++] = v & 0xff;
    while (o < end) b[o++] = 0;
    this.len = end;
  }

  /**
   * An IPv6 address from text in any RFC 4291 §2.2 form, 16 bytes in network order (NLA_IN6_ADDR,
   * ctnetlink's CTA_IP_V6_SRC/DST and CTA_NAT_V6_MINIP/MAXIP), parsed into the buffer without
   * allocating. Throws EINVAL on text that is not an IPv6 address (nothing is written): unlike a
   * mistyped IPv4 quad, a lenient parse could turn into "::", the wildcard of an expectation.
   */
  ip6(type: number, addr: string): void {
    this.room(20);
    const o = this.len;
    if (!writeIpv6(addr, this.buf, o + 4)) throw new NetlinkError(22, `not an IPv6 address: ${JSON.stringify(addr)}`);
    this.hdr(type, 20);
    this.len = o + 20;
  }

  /** A NUL-terminated ASCII string (NLA_NUL_STRING, e.g. CTA_HELP_NAME "sip"). */
  strz(type: number, s: string): void {
    this.room(4 + s.length + 1 + 3);
    this.hdr(type, 4 + s.length + 1);
    const b = this.buf;
    for (let i = 0; i < s.length; i++) b[this.len++] = s.charCodeAt(i) & 0xff;
    b[this.len++] = 0;
    this.pad();
  }

  /** An Attr tree, byte for byte as the attributes would be written one by one. */
  attrs(list: readonly Attr[]): void {
    for (const [type, value] of list) {
      if (Array.isArray(value)) {
        const start = this.beginNest(type);
        this.attrs(value);
        this.endNest(start);
      } else this.bytes(type, value);
    }
  }

  /** One whole nfnetlink message whose attributes are a tree or written by a function. */
  message(type: number, flags: number, seq: number, family: number, attrs: readonly Attr[] | AttrWriter): void {
    const start = this.beginMessage(type, flags, seq, family);
    if (typeof attrs === 'function') attrs(this);
    else this.attrs(attrs);
    this.endMessage(start);
  }
}

const scratch = new NlWriter(4096);

/** The attributes of a tree as one Buffer (a copy: the encoding itself reuses one buffer). */
export function encodeAttrs(attrs: Attr[]): Buffer {
  scratch.reset().attrs(attrs);
  return scratch.copy();
}

/** Decodes one level of attributes into a map of type -> value bytes (last one wins). */
export function decodeAttrs(buf: Buffer, start = 0, end = buf.length): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let o = start;
  while (o + 4 <= end) {
    const len = buf.readUInt16LE(o);
    const type = buf.readUInt16LE(o + 2) & 0x3fff;
    if (len < 4 || o + len > end) break;
    out.set(type, buf.subarray(o + 4, o + len));
    o += align4(len);
  }
  return out;
}

// Attr-tree leaves; allocUnsafe takes them from Node's shared pool instead of a fresh zeroed ArrayBuffer each
export const u8 = (v: number) => { const b = Buffer.allocUnsafe(1); b[0] = v & 0xff; return b; };
export const u16be = (v: number) => { const b = Buffer.allocUnsafe(2); b.writeUInt16BE(v); return b; };
export const u32be = (v: number) => { const b = Buffer.allocUnsafe(4); b.writeUInt32BE(v >>> 0); return b; };

/** One message of a batch (NetlinkSocket.requestBatch). */
export interface NlMessage {
  type: number;
  flags: number;
  family: number;
  attrs: readonly Attr[] | AttrWriter;
}

/** What the kernel answered to one message of a batch. */
export interface NlReply {
  /** its NLMSG_ERROR with a non-zero error (or ETIMEDOUT when no answer came in time); undefined when acknowledged */
  error: NetlinkError | undefined;
  /** payloads (after nlmsghdr) of the data messages answering it */
  payloads: Buffer[];
  /** its ACK, error or NLMSG_DONE has arrived */
  done: boolean;
}

/**
 * Files the messages of one received datagram under the batch messages they answer: the message
 * with sequence number `firstSeq + i` (31-bit, wrapping as NetlinkSocket numbers them) is
 * `replies[i]`. A message is answered by an NLMSG_ERROR whose error is 0 (ACK) or a negative errno
 * (netlink(7): struct nlmsgerr, the error then the request's header), or by NLMSG_DONE; others are
 * data. Returns how many messages this datagram completed; other sequence numbers are ignored.
 */
export function fileReplies(buf: Buffer, firstSeq: number, replies: NlReply[]): number {
  let o = 0, completed = 0;
  while (o + 16 <= buf.length) {
    const len = buf.readUInt32LE(o);
    const mtype = buf.readUInt16LE(o + 4);
    const mseq = buf.readUInt32LE(o + 8);
    if (len < 16 || o + len > buf.length) break;
    const r = replies[(mseq - firstSeq) & 0x7fffffff];
    if (r && !r.done && mseq <= 0x7fffffff) {
      if (mtype === NLMSG_ERROR || mtype === NLMSG_DONE) {
        const err = mtype === NLMSG_ERROR && o + 20 <= buf.length ? -buf.readInt32LE(o + 16) : 0;
        if (err !== 0) r.error = new NetlinkError(err, 'netlink request failed');
        r.done = true;
        completed++;
      } else r.payloads.push(buf.subarray(o + 16, o + len));
    }
    o += align4(len);
  }
  return completed;
}

/** One netlink socket with synchronous request/response (ctnetlink answers in microseconds). */
export class NetlinkSocket {
  private fd: number;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly timeoutMs: number;
  /** every outgoing message is written here: one buffer per socket, reused */
  private readonly out = new NlWriter();

  constructor(protocol = NETLINK_NETFILTER, timeoutMs = 200) {
    this.fd = native().netlinkOpen(protocol);
    this.timeoutMs = timeoutMs;
  }

  /** runs before each request leaves (Ctnetlink: requests that rode another datagram go first, so the kernel sees them in call order) */
  beforeSend: (() => void) | undefined;

  private nextSeq(): number {
    return (this.seq = (this.seq + 1) & 0x7fffffff);
  }

  /**
   * Sends one nfnetlink request and collects the replies with its sequence number until the ACK,
   * error or DONE. Resolves to the payloads (after nlmsghdr) of data messages.
   */
  request(type: number, flags: number, family: number, attrs: readonly Attr[] | AttrWriter): Buffer[] {
    if (this.fd < 0) throw new NetlinkError(9, 'netlink socket closed');
    this.beforeSend?.();
    const seq = this.nextSeq();
    this.out.reset().message(type, flags, seq, family, attrs);
    const nl = native();
    const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
    // sendto(2) copies the bytes: the buffer is free again on return. Not a dump: the answer is
    // already queued when sendto returns, and netlinkTransact takes it in the same call
    let first: Buffer | null = dump ? (nl.netlinkSend(this.fd, this.out.view()), null) : nl.netlinkTransact(this.fd, this.out.view());
    const out: Buffer[] = [];
    const deadline = Date.now() + (dump ? 10000 : this.timeoutMs);
    for (;;) {
      const left = deadline - Date.now();
      const buf = first?.length ? first : left > 0 ? nl.netlinkRecv(this.fd, left) : null;
      first = null;
      if (!buf) throw new NetlinkError(ETIMEDOUT, 'netlink request timed out');
      let o = 0;
      while (o + 16 <= buf.length) {
        const len = buf.readUInt32LE(o);
        const mtype = buf.readUInt16LE(o + 4);
        const mseq = buf.readUInt32LE(o + 8);
        if (len < 16 || o + len > buf.length) break;
        if (mseq === seq) {
          if (mtype === NLMSG_ERROR) {
            const err = -buf.readInt32LE(o + 16);
            if (err !== 0) throw new NetlinkError(err, 'netlink request failed');
            return out;
          }
          if (mtype === NLMSG_DONE) return out;
          out.push(buf.subarray(o + 16, o + len));
          if (!(flags & (NLM_F_ACK | NLM_F_DUMP))) return out;
        }
        o += align4(len);
      }
    }
  }

  /**
   * Sends several requests in one sendmsg: their nlmsghdrs back to back, each with NLM_F_ACK and
   * its own sequence number. The kernel handles them one after the other, in order, within that
   * sendmsg (net/netlink/af_netlink.c netlink_rcv_skb, reached from nfnetlink_rcv for a message
   * that is not an NFNL_MSG_BATCH_BEGIN), and one failing does not stop the next: each gets its own
   * ACK or error. So a later message may rely on what an earlier one created. Not for dumps.
   * Returns one reply per message, in order; a message not answered within the timeout gets
   * ETIMEDOUT. Throws only when the socket is closed or sending fails.
   */
  requestBatch(msgs: readonly NlMessage[]): NlReply[] {
    if (this.fd < 0) throw new NetlinkError(9, 'netlink socket closed');
    this.beforeSend?.();
    const nl = native();
    const replies: NlReply[] = [];
    for (let from = 0; from < msgs.length; from += MAX_BATCH) {
      const chunk: NlReply[] = [];
      const w = this.out.reset();
      let firstSeq = -1;
      for (let i = from; i < msgs.length && i < from + MAX_BATCH; i++) {
        const m = msgs[i]!;
        const seq = this.nextSeq();
        if (firstSeq < 0) firstSeq = seq;
        w.message(m.type, m.flags | NLM_F_ACK, seq, m.family, m.attrs);
        chunk.push({ error: undefined, payloads: [], done: false });
      }
      // every ACK is queued when sendto returns: one send and one recvmmsg (netlinkTransact)
      let pending = chunk.length - fileReplies(nl.netlinkTransact(this.fd, w.view()), firstSeq, chunk);
      const deadline = Date.now() + this.timeoutMs;
      while (pending > 0) {
        const left = deadline - Date.now();
        const buf = left > 0 ? nl.netlinkRecv(this.fd, left) : null;
        if (!buf) break;
        pending -= fileReplies(buf, firstSeq, chunk);
      }
      for (const r of chunk) {
        if (!r.done) r.error = new NetlinkError(ETIMEDOUT, 'netlink request timed out');
        replies.push(r);
      }
    }
    return replies;
  }

  close(): void {
    if (this.fd >= 0) native().netlinkClose(this.fd);
    this.fd = -1;
  }
}
