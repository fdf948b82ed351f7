/**
 * bench/floor.c's work in TypeScript on node (bench/router.ts set-up `nodefloor`): the project's
 * own queue binding (NfQueue: one recvmmsg and one call into JS per wake-up, the verdicts in one
 * sendto) and its Ctnetlink (an anchor and two pinholes in one batch), with per packet only what
 * the C floor does: a same-length translation of the phone's address (Buffer.indexOf of its text),
 * the UDP checksum, and for an INVITE from the LAN or a 200 from the WAN with an audio line the
 * anchor and its pinholes. No dialogs, registrations, deletes, metrics or timers. Beside the C
 * floor it is what node itself (libuv's wake-up, N-API, the JIT's code, GC) adds to a message, and
 * the lower bound of any ALG written as sip-alg is.
 *
 *   node --single-threaded-gc dist/bench/floor-node.js --queue N --wan-ip A.B.C.D
 */
import { NfQueue } from '../src/native/queue';
import { NF_ACCEPT } from '../src/native/binding';
import { Ctnetlink, IPPROTO_UDP, type PinholeSpec, type Tuple } from '../src/conntrack/ctnetlink';
import { finish, sum16 } from '../src/packet/checksum';
import { ipv4Text } from '../src/packet/ip';
import { ipv4Value } from '../src/packet/addr';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const num = Number(arg('--queue') ?? 0);
const wanText = arg('--wan-ip') ?? '';
const wan = Buffer.from(wanText, 'latin1');
const wanValue = ipv4Value(wanText);
const INVITE = Buffer.from('INVITE ', 'latin1');
const OK200 = Buffer.from('SIP/2.0 200', 'latin1');
const MLINE = Buffer.from('\nm=audio ', 'latin1');

const ct = new Ctnetlink();
let anchorSport = 1024, anchorDport = 1024, nextPort = 1024;
let packets = 0, anchors = 0, pinholes = 0, failed = 0;

function startsWith(b: Buffer, at: number, p: Buffer): boolean {
  return b.length - at >= p.length && b.compare(p, 0, p.length, at, at + p.length) === 0;
}

function pin(privateIp: string, privatePort: number, remoteIp: string | undefined): void {
  if (++anchorSport > 65535) { anchorSport = 1024; anchorDport = anchorDport === 65535 ? 1024 : anchorDport + 1; }
  const anchor: Tuple = { src: '127.0.8.1', dst: '127.1.8.1', sport: anchorSport, dport: anchorDport, proto: IPPROTO_UDP };
  const specs: PinholeSpec[] = [];
  for (let k = 0; k < 2; k++) {
    if (nextPort < 1024 || nextPort > 65534) nextPort = 1024;
    specs.push({ remoteIp, publicIp: wanText, publicPort: nextPort++, privateIp, privatePort: privatePort + k, cls: 1, timeoutSec: 180 });
  }
  try {
    const r = ct.createAnchorWithExpectations(anchor, 3720, specs, 0x5eed0000 + anchorSport);
    anchors++;
    for (const e of r) if (e) failed++; else pinholes++;
  } catch {
    failed += 2;
  }
}

function packet(b: Buffer): void {
  if (b.length < 28 || b[0]! >> 4 !== 4 || b[9] !== IPPROTO_UDP) return;
  const ihl = (b[0]! & 15) * 4, sip = ihl + 8;
  const src = b.readUInt32BE(12), dst = b.readUInt32BE(16);
  const fromLan = src !== wanValue && src >>> 24 === 10;
  const otherText = ipv4Text(fromLan ? src : dst);
  let changed = false;
  if (otherText.length === wan.length) {
    const from = fromLan ? otherText : wanText, to = fromLan ? wanText : otherText;
    for (let at = b.indexOf(from, sip, 'latin1'); at >= 0; at = b.indexOf(from, at + from.length, 'latin1')) {
      b.write(to, at, 'latin1');
      changed = true;
    }
  }
  if (fromLan ? startsWith(b, sip, INVITE) : startsWith(b, sip, OK200)) {
    const m = b.indexOf(MLINE, sip);
    if (m >= 0) {
      let port = 0;
      for (let c = m + MLINE.length; c < b.length && b[c]! >= 48 && b[c]! <= 57; c++) port = port * 10 + b[c]! - 48;
      if (port > 0 && port < 65535) pin(otherText, port, fromLan ? undefined : ipv4Text(src));
    }
  }
  if (changed) {
    const ulen = b.length - ihl;
    b[ihl + 6] = 0;
    b[ihl + 7] = 0;
    // pseudo-header: addresses, protocol, UDP length; then the datagram
    let s = sum16(b, 12, 20, IPPROTO_UDP + ulen);
    s = sum16(b, ihl, b.length, s);
    const c = finish(s) || 0xffff;
    b[ihl + 6] = c >> 8;
    b[ihl + 7] = c & 255;
  }
}

// eslint-disable-next-line prefer-const
let q: NfQueue;
q = new NfQueue(num, { failOpen: true, maxLen: 4096 }, (count) => {
  for (let i = 0; i < count; i++) {
    const b = q.payload(i);
    packet(b);
    packets++;
    q.verdict(q.id(i), NF_ACCEPT, b);
  }
  q.flush();
});
process.stdout.write(`floor ready on queue ${num} (node)\n`);
const end = () => {
  q.close();
  ct.close();
  process.stdout.write(`${JSON.stringify({ packets, anchors, expectations: pinholes, expectations_failed: failed })}\n`);
  process.exit(0);
};
process.on('SIGTERM', end);
process.on('SIGINT', end);
