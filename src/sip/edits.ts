/** Byte-range edits applied to a message: everything outside the edits is copied byte for byte. */

export interface Edit {
  start: number;
  end: number;
  text: string;
}

/** The edits sorted by position, without overlaps (of two overlapping edits the first one wins). */
export function normalizeEdits(edits: Edit[]): Edit[] {
  edits.sort((a, b) => a.start - b.start);
  const out: Edit[] = [];
  let o = -1;
  for (const e of edits) {
    if (e.start < o) continue;
    out.push(e);
    o = e.end;
  }
  return out;
}

/** Applies non-overlapping edits (any order) to buf[start,end) and returns the new bytes. */
export function applyEdits(buf: Buffer, start: number, end: number, edits: Edit[]): Buffer {
  if (edits.length === 0) return buf.subarray(start, end);
  const parts: Buffer[] = [];
  let o = start;
  for (const e of normalizeEdits(edits)) {
    parts.push(buf.subarray(o, e.start), Buffer.from(e.text, 'latin1'));
    o = e.end;
  }
  parts.push(buf.subarray(o, end));
  return Buffer.concat(parts);
}
