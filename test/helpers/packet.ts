/** Builds IPv4/UDP packets for tests with an independent checksum implementation. */
export function csum(words: number[]): number {
  let s = 0;
  for (const w of words) s += w;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
export function words(b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.length; i += 2) out.push((b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0));
  return out;
}
const ip4 = (s: string) => Buffer.from(s.split('.').map(Number));

export function udpPacket(src: string, dst: string, sport: number, dport: number, payload: Buffer | string, opts: { flagsFrag?: number } = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + data.length, 2);
  ip.writeUInt16BE(0x1234, 4);
  ip.writeUInt16BE(opts.flagsFrag ?? 0x4000, 6);
  ip[8] = 64;
  ip[9] = 17;
  ip4(src).copy(ip, 12);
  ip4(dst).copy(ip, 16);
  ip.writeUInt16BE(csum(words(ip)), 10);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + data.length, 4);
  const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 17]), udp.subarray(4, 6), udp, data]);
  udp.writeUInt16BE(csum(words(pseudo)) || 0xffff, 6);
  return Buffer.concat([ip, udp, data]);
}

/** True when the IPv4 header and UDP checksums of `p` verify (independent of src/packet). */
export function verifyChecksums(p: Buffer): boolean {
  const hl = (p[0]! & 15) * 4;
  if (csum(words(p.subarray(0, hl))) !== 0) return false;
  const ulen = p.readUInt16BE(hl + 4);
  const pseudo = Buffer.concat([p.subarray(12, 20), Buffer.from([0, 17]), p.subarray(hl + 4, hl + 6), p.subarray(hl, hl + ulen)]);
  return csum(words(pseudo)) === 0 && p.readUInt16BE(2) === p.length && ulen === p.length - hl;
}

export function payloadOf(p: Buffer): string {
  const hl = (p[0]! & 15) * 4;
  return p.subarray(hl + 8).toString('latin1');
}
