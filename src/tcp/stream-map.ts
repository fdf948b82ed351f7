/**
 * One direction of a TCP connection whose bytes the ALG rewrites: the edits in stream coordinates
 * (positions in the sender's original byte stream, counted from its first byte), and the mapping
 * between the original and the rewritten stream that sequence numbers (sender → receiver) and
 * acknowledgement numbers and SACK edges (receiver → sender) go through (RFC 9293 §3.4,
 * RFC 2018 §3).
 *
 * One edit is one whole message: its original range and its rewritten text. The rewritten text
 * is laid over the original range offset for offset, and the length change lands in the segment
 * that holds the message's end: a message spread over full-sized segments does not grow any of
 * them but the last (which is usually short), so the router does not have to send a segment
 * larger than the path MTU.
 *
 * Because edits live in stream coordinates and not per packet, any segment covering any range,
 * including a retransmission with other boundaries than the first transmission, is rewritten
 * exactly as the bytes were the first time (issue 7: "rewritten the same way"). The kernel's own
 * seqadj keeps only the last correction point per direction (nf_conntrack_seqadj.c); this keeps
 * every edit still inside the window that can be retransmitted or acknowledged.
 */

export interface StreamEdit {
  /** original stream position of the first replaced byte */
  pos: number;
  /** original bytes replaced */
  oldLen: number;
  text: Buffer;
  /** cumulative length change of all edits before this one */
  before: number;
}

export class StreamMap {
  private readonly edits: StreamEdit[] = [];
  /** length change of the edits pruned from the front */
  private base = 0;

  get size(): number {
    return this.edits.length;
  }

  /** The total length change so far (rewritten minus original). */
  get delta(): number {
    const last = this.edits[this.edits.length - 1];
    return last ? last.before + last.text.length - last.oldLen : this.base;
  }

  /** Adds an edit; edits come in stream order and never overlap an earlier one. */
  add(pos: number, oldLen: number, text: Buffer): void {
    const last = this.edits[this.edits.length - 1];
    if (last && pos < last.pos + last.oldLen) throw new RangeError(`stream edit at ${pos} overlaps the one at ${last.pos}`);
    this.edits.push({ pos, oldLen, text, before: this.delta });
  }

  /** Index of the first edit whose original range ends after x (or, for an insertion, starts at or after x). */
  private firstEndingAfter(x: number): number {
    let lo = 0, hi = this.edits.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      const e = this.edits[m]!;
      if (e.pos + e.oldLen > x || (e.oldLen === 0 && e.pos >= x)) hi = m;
      else lo = m + 1;
    }
    return lo;
  }

  /**
   * The rewritten position of original position x. Inside an edit, offsets are kept (clamped to the
   * text when it is shorter), and the whole length change comes at the edit's end.
   */
  newPos(x: number): number {
    const i = this.firstEndingAfter(x);
    const e = this.edits[i];
    if (e && e.pos < x) return e.pos + e.before + Math.min(x - e.pos, e.text.length);
    const prev = this.edits[i - 1];
    return x + (prev ? prev.before + prev.text.length - prev.oldLen : this.base);
  }

  /**
   * The original position acknowledged by rewritten position y, never beyond `limit` (what the
   * sender has sent). Inside a message, offsets map back one for one; in the grown tail of a
   * message, to just before its end: the sender is told less than the receiver has, and resends
   * bytes the ALG rewrites again identically.
   */
  origPos(y: number, limit = Infinity): number {
    // last edit whose rewritten start is at or before y
    let lo = 0, hi = this.edits.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      const e = this.edits[m]!;
      if (e.pos + e.before <= y) lo = m + 1;
      else hi = m;
    }
    const e = this.edits[lo - 1];
    let x: number;
    if (!e) x = y - this.base;
    else {
      const off = y - (e.pos + e.before);
      if (off < e.text.length) x = e.pos + (off < e.oldLen ? off : Math.max(0, e.oldLen - 1));
      else x = y - (e.before + e.text.length - e.oldLen);
    }
    return Math.min(x, limit);
  }

  /** The rewritten bytes of the original segment `payload` that starts at original position s. */
  transform(payload: Buffer, s: number): Buffer {
    const end = s + payload.length;
    let i = this.firstEndingAfter(s);
    if (i >= this.edits.length || this.edits[i]!.pos >= end) return payload;
    const parts: Buffer[] = [];
    let o = s;
    for (; i < this.edits.length; i++) {
      const e = this.edits[i]!;
      if (e.pos >= end) break;
      if (e.pos > o) parts.push(payload.subarray(o - s, e.pos - s));
      const n = e.text.length;
      const from = Math.min(n, Math.max(s, e.pos) - e.pos);
      const to = end >= e.pos + e.oldLen ? n : Math.min(n, end - e.pos);
      if (to > from) parts.push(e.text.subarray(from, to));
      o = Math.min(end, e.pos + e.oldLen);
    }
    if (o < end) parts.push(payload.subarray(o - s));
    return Buffer.concat(parts);
  }

  /** Forgets edits that end before original position x (acknowledged long ago); mapping beyond x is unchanged. */
  prune(x: number): void {
    let n = 0;
    while (n < this.edits.length && this.edits[n]!.pos + this.edits[n]!.oldLen < x) n++;
    if (n === 0) return;
    const last = this.edits[n - 1]!;
    this.base = last.before + last.text.length - last.oldLen;
    this.edits.splice(0, n);
  }
}
