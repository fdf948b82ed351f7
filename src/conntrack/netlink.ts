/**
 * Netlink message encoding and decoding (RFC 3549; Linux netlink(7), nfnetlink). Pure TypeScript
 * over Buffers; the socket is the native boundary's.
 */
import { NetlinkError } from '../errors';
import { native } from '../native/binding';

export const NETLINK_NETFILTER = 12;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_DUMP = 0x300;
export const NLA_F_NESTED = 0x8000;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;

/** A netlink attribute tree to encode: [type, value] where value is bytes or nested attributes. */
export type Attr = [type: number, value: Buffer | Attr[]];

const align4 = (n: number) => (n + 3) & ~3;

export function encodeAttrs(attrs: Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const [type, value] of attrs) {
    const nested = Array.isArray(value);
    const body = nested ? encodeAttrs(value) : value;
    const hdr = Buffer.alloc(4);
    hdr.writeUInt16LE(4 + body.length, 0);
    hdr.writeUInt16LE(nested ? type | NLA_F_NESTED : type, 2);
    parts.push(hdr, body, Buffer.alloc(align4(body.length) - body.length));
  }
  return Buffer.concat(parts);
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

export const u8 = (v: number) => Buffer.from([v]);
export const u16be = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };
export const u32be = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return b; };

/** One netlink socket with synchronous request/response (ctnetlink answers in microseconds). */
export class NetlinkSocket {
  private fd: number;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly timeoutMs: number;

  constructor(protocol = NETLINK_NETFILTER, timeoutMs = 200) {
    this.fd = native().netlinkOpen(protocol);
    this.timeoutMs = timeoutMs;
  }

  /**
   * Sends one nfnetlink request and collects the replies with its sequence number until the ACK,
   * error or DONE. Resolves to the payloads (after nlmsghdr) of data messages.
   */
  request(type: number, flags: number, family: number, attrs: Attr[]): Buffer[] {
    if (this.fd < 0) throw new NetlinkError(9, 'netlink socket closed');
    const seq = (this.seq = (this.seq + 1) & 0x7fffffff);
    const body = encodeAttrs(attrs);
    const msg = Buffer.alloc(16 + 4 + body.length);
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt16LE(type, 4);
    msg.writeUInt16LE(flags | NLM_F_REQUEST, 6);
    msg.writeUInt32LE(seq, 8);
    msg.writeUInt32LE(0, 12);
    msg[16] = family; // nfgenmsg
    msg[17] = 0; // NFNETLINK_V0
    msg.writeUInt16BE(0, 18);
    body.copy(msg, 20);
    const nl = native();
    nl.netlinkSend(this.fd, msg);
    const out: Buffer[] = [];
    const deadline = Date.now() + ((flags & NLM_F_DUMP) === NLM_F_DUMP ? 10000 : this.timeoutMs);
    for (;;) {
      const left = deadline - Date.now();
      const buf = left > 0 ? nl.netlinkRecv(this.fd, left) : null;
      if (!buf) throw new NetlinkError(110, 'netlink request timed out');
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

  close(): void {
    if (this.fd >= 0) native().netlinkClose(this.fd);
    this.fd = -1;
  }
}
