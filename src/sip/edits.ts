/** Byte-range edits applied to a message: everything outside the edits is copied byte for byte. */

export interface Edit {
  start: number;
  end: number;
  text: string;
}

/** The edits sorted by position, without overlaps (of two overlapping edits the first one wins). */
export function normalizeEdits(edits: Edit[]): Edit[] {
  // insertion sort, stable as Array.prototype.sort: the edits come nearly in order (headers, then
  // the body, then Content-Length), and sort's work array was ~0.9 KB of garbage per INVITE
  for (let i = 1; i < edits.length; i++) {
    const e = edits[i]!;
    let j = i - 1;
    while (j >= 0 && edits[j]!.start > e.start) {
      edits[j + 1] = edits[j]!;
      j--;
    }
    edits[j + 1] = e;
  }
  const out: Edit[] = [];
  let o = -1;
  for (const e of edits) {
    if (e.start < o) continue;
    out.push(e);
    o = e.end;
  }
  return out;
}

/**
 * Applies non-overlapping edits (any order) to buf[start,end) and returns the new bytes, written
 * once into one new buffer (the edits' texts are latin1: one byte per character). With `headroom`,
 * the buffer returned has that many bytes in front of the new bytes, left for the caller to fill
 * (the IP and UDP headers of the rebuilt packet: the message is written once, where it goes).
 */
export function applyEdits(buf: Buffer, start: number, end: number, edits: Edit[], headroom = 0): Buffer {
  if (edits.length === 0 && headroom === 0) return buf.subarray(start, end);
  const list = normalizeEdits(edits);
  let len = end - start;
  for (const e of list) len += e.text.length - (e.end - e.start);
  const out = Buffer.allocUnsafe(headroom + len);
  let o = start, w = headroom;
  for (const e of list) {
    w += buf.copy(out, w, o, e.start);
    w += out.write(e.text, w, 'latin1');
    o = e.end;
  }
  buf.copy(out, w, o, end);
  return out;
}
