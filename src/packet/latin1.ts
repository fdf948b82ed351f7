/** Byte classes of latin1 text (one octet per character), as JavaScript's regular expressions see them. */

/** `\d` */
export function isDigitLatin1(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** `[A-Za-z]` */
export function isLetterLatin1(c: number): boolean {
  const l = c | 0x20;
  return l >= 97 && l <= 122;
}

/** `\s` within latin1: HT LF VT FF CR, SP and NBSP (what the reference regular expressions stop at). */
export function isSpaceLatin1(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 160;
}
