/**
 * Hostile and malformed SIP datagrams for the lab's flood tests and the junk benchmark (issue 13):
 * truncated INVITEs, lying Content-Length, NUL bytes, giant headers, random bytes. Deterministic
 * (seeded), so a failing run can be replayed. Most of them name the sender's private address, as a
 * broken or looping phone's would: an ALG that passes them unchanged leaks it to the WAN.
 *
 *   node junk.js FROM_IP TO_IP TO_PORT COUNT [SEED] [FROM_PORT]
 *     sends COUNT datagrams from FROM_IP:FROM_PORT (default 5060, the port the messages name, as a
 *     looping phone's would) as fast as the socket takes them; prints {"sent":N,"ms":T,"kinds":{...}}
 */
import { createSocket } from 'node:dgram';

export type JunkKind = 'truncated' | 'lying_length' | 'nul' | 'giant_header' | 'random';
export const JUNK_KINDS: JunkKind[] = ['truncated', 'lying_length', 'nul', 'giant_header', 'random'];

/** xorshift32: a small seeded generator (the same seed gives the same flood). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

function invite(from: string, to: string, i: number, extra = ''): string {
  const sdp = `v=0\r\no=- ${i} 1 IN IP4 ${from}\r\ns=-\r\nc=IN IP4 ${from}\r\nt=0 0\r\nm=audio ${10000 + 2 * (i % 1000)} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n`;
  return `INVITE sip:junk${i}@${to} SIP/2.0\r\nVia: SIP/2.0/UDP ${from}:5060;branch=z9hG4bKjunk${i};rport\r\nMax-Forwards: 70\r\n` +
    `From: <sip:flood@${from}>;tag=j${i}\r\nTo: <sip:junk${i}@${to}>\r\nCall-ID: junk${i}@${from}\r\nCSeq: 1 INVITE\r\n` +
    `Contact: <sip:flood@${from}:5060>\r\n${extra}Content-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`;
}

/** The i-th junk datagram of a flood from `from` to `to`. */
export function junkDatagram(kind: JunkKind, from: string, to: string, i: number, rand: () => number): Buffer {
  switch (kind) {
    case 'truncated': {
      const m = invite(from, to, i);
      return Buffer.from(m.slice(0, 40 + Math.floor(rand() * (m.indexOf('\r\n\r\n') - 40))), 'latin1');
    }
    case 'lying_length':
      return Buffer.from(invite(from, to, i).replace(/Content-Length: \d+/, `Content-Length: ${900 + Math.floor(rand() * 60000)}`), 'latin1');
    case 'nul': {
      const b = Buffer.from(invite(from, to, i), 'latin1');
      for (let k = 0; k < 3; k++) b[20 + Math.floor(rand() * 200)] = 0;
      return b;
    }
    case 'giant_header':
      return Buffer.from(invite(from, to, i, `X-Junk: ${'A'.repeat(2000 + Math.floor(rand() * 6000))}\r\n`), 'latin1');
    case 'random': {
      const b = Buffer.allocUnsafe(16 + Math.floor(rand() * 1400));
      for (let k = 0; k < b.length; k++) b[k] = Math.floor(rand() * 256);
      return b;
    }
  }
}

/** `count` datagrams, the kinds in turn. */
export function junkFlood(from: string, to: string, count: number, seed = 13): { packets: Buffer[]; kinds: Record<JunkKind, number> } {
  const rand = rng(seed);
  const kinds = Object.fromEntries(JUNK_KINDS.map((k) => [k, 0])) as Record<JunkKind, number>;
  const packets: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const kind = JUNK_KINDS[i % JUNK_KINDS.length]!;
    kinds[kind]++;
    packets.push(junkDatagram(kind, from, to, i, rand));
  }
  return { packets, kinds };
}

function main(argv: string[]): void {
  const [from, to, port, n, seed, fromPort] = argv;
  if (!from || !to || !port || !n) {
    process.stderr.write('usage: node junk.js FROM_IP TO_IP TO_PORT COUNT [SEED] [FROM_PORT]\n');
    process.exit(2);
  }
  const { packets, kinds } = junkFlood(from, to, Number(n), Number(seed ?? 13));
  const s = createSocket('udp4');
  s.bind(Number(fromPort ?? 5060), from, async () => {
    const t0 = Date.now();
    let sent = 0;
    // as fast as the socket takes them: up to 64 sends in flight
    for (let i = 0; i < packets.length; i += 64) {
      await Promise.all(packets.slice(i, i + 64).map((p) => new Promise<void>((r) => s.send(p, Number(port), to, (e) => { if (!e) sent++; r(); }))));
    }
    process.stdout.write(JSON.stringify({ sent, ms: Date.now() - t0, kinds }) + '\n');
    s.close();
  });
}

if (require.main === module) main(process.argv.slice(2));
