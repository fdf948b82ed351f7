/**
 * The far end's media and a stranger's, for the pinhole lab (src/lab/media.ts): one process in the
 * provider namespace that sends paced RTP-sized datagrams on command, from any of its addresses and
 * ports, so the lab decides which source sends when (SIPp plays a pcap from one fixed port only).
 * Commands are JSON lines on stdin; each answers one JSON line on stdout when its last packet left.
 *
 *   {"src":"203.0.113.10","sport":7000,"dst":"203.0.113.1","dport":6000,"count":100,"intervalMs":20,"tag":"x"}
 *
 * Sockets stay bound until stdin ends, so a port that also receives (the far end's SDP port, where
 * the phone's RTP arrives) answers no ICMP port unreachable. `listen` binds without sending.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { rtpPacket } from './rtp-driver';

interface Command { src: string; sport: number; dst?: string; dport?: number; count?: number; intervalMs?: number; tag?: string; listen?: boolean; ssrc?: number }

const sockets = new Map<string, Promise<Socket>>();
function socketOf(src: string, sport: number): Promise<Socket> {
  const k = `${src}:${sport}`;
  let p = sockets.get(k);
  if (!p) {
    p = new Promise((resolve, reject) => {
      const s = createSocket('udp4');
      s.on('message', () => { /* counted on the wire */ });
      s.once('error', reject);
      s.bind(sport, src, () => resolve(s));
    });
    sockets.set(k, p);
  }
  return p;
}

async function run(c: Command): Promise<void> {
  const s = await socketOf(c.src, c.sport);
  let sent = 0;
  if (!c.listen && c.dst && c.dport) {
    const ssrc = c.ssrc ?? ((c.sport << 8) ^ 0x11000000);
    for (let i = 0; i < (c.count ?? 1); i++) {
      await new Promise<void>((r) => s.send(rtpPacket(ssrc, i), c.dport!, c.dst!, () => r()));
      sent++;
      if (c.intervalMs) await new Promise((r) => setTimeout(r, c.intervalMs));
    }
  }
  process.stdout.write(JSON.stringify({ tag: c.tag ?? '', sent }) + '\n');
}

if (require.main === module) {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let c: Command;
    try { c = JSON.parse(line) as Command; } catch { return; }
    run(c).catch((e: Error) => process.stdout.write(JSON.stringify({ tag: c.tag ?? '', error: e.message }) + '\n'));
  });
  rl.on('close', () => { void Promise.all(sockets.values()).then((all) => { for (const s of all) s.close(); }); });
  process.stdout.write('ready\n');
}
