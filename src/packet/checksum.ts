/** Internet checksum (RFC 1071) over Buffer ranges, without copying. */

/** One's-complement sum of buf[start,end) folded to 32 bits; `initial` chains several ranges. */
export function sum16(buf: Buffer, start: number, end: number, initial = 0): number {
  let s = initial;
  let i = start;
  const even = end - ((end - start) & 1);
  for (; i < even; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) s += buf[i]! << 8;
  return s;
}

export function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

export function finish(s: number): number {
  return ~fold(s) & 0xffff;
}
