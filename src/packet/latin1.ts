/** Byte classes of latin1 text (one octet per character), as JavaScript's regular expressions see them. */

/** `\s` within latin1: HT LF VT FF CR, SP and NBSP (what the reference regular expressions stop at). */
export function isSpaceLatin1(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 160;
}
