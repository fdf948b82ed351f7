/**
 * RTP for many calls of one host at once, each from its own media port (SIPp 3.6.1 plays every
 * call's rtp_stream from one port, so a trunk's calls would share one media flow). One RTP packet
 * (RFC 3550 §5.1: version 2, PCMA, its own SSRC, sequence and timestamp per stream) every 20 ms
 * from each port to the far end, for the given time; the far end (SIPp -rtp_echo) sends each back,
 * and the lab counts both directions on the wire. The payload is 188 bytes, so the lab tells these
 * packets (UDP length 208) from the 160-byte G.711 frames of the phones.
 *
 *   node rtp-driver.js LOCAL_IP DEST_IP DEST_PORT SECONDS PORT[,PORT...]
 */
import { createSocket, type Socket } from 'node:dgram';

export const DRIVER_PAYLOAD = 188;
export const DRIVER_UDP_LENGTH = 8 + 12 + DRIVER_PAYLOAD;

/** Packet `seq` of stream `ssrc`: 12-byte RTP header (PT 8, 160 samples a packet) and a pattern. */
export function rtpPacket(ssrc: number, seq: number): Buffer {
  const b = Buffer.alloc(12 + DRIVER_PAYLOAD, 0xd5);
  b[0] = 0x80;
  b[1] = 8;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE((seq * 160) >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  return b;
}

function main(argv: string[]): void {
  const [ip, dest, destPortS, secondsS, portsS] = argv;
  const ports = (portsS ?? '').split(',').map(Number).filter((p) => p > 0 && p < 65536);
  if (!ip || !dest || !(Number(destPortS) > 0) || !(Number(secondsS) > 0) || !ports.length) {
    process.stderr.write('usage: rtp-driver.js LOCAL_IP DEST_IP DEST_PORT SECONDS PORT[,PORT...]\n');
    process.exit(2);
  }
  const socks: Socket[] = [];
  let bound = 0, seq = 0, sent = 0;
  const end = Date.now() + Number(secondsS) * 1000;
  const tick = () => {
    if (Date.now() >= end) {
      for (const s of socks) s.close();
      process.stdout.write(JSON.stringify({ streams: socks.length, sent }) + '\n');
      return;
    }
    seq++;
    socks.forEach((s, i) => { s.send(rtpPacket(0x5a000000 + i, seq), Number(destPortS), dest); sent++; });
    setTimeout(tick, 20);
  };
  for (const p of ports) {
    const s = createSocket('udp4');
    s.on('message', () => { /* the echo: counted on the wire */ });
    s.on('error', (e) => { process.stderr.write(`port ${p}: ${e.message}\n`); process.exit(1); });
    s.bind(p, ip, () => { if (++bound === ports.length) tick(); });
    socks.push(s);
  }
}

if (require.main === module) main(process.argv.slice(2));
