import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TcpAlg, NF_ACCEPT, NF_DROP, type Release } from '../../../src/tcp/tcp-alg';
import { Processor } from '../../../src/alg/processor';
import { PortAllocator } from '../../../src/nat/port-allocator';
import type { BindingResolver } from '../../../src/nat/binding-resolver';
import { parseIpTcp, rebuildTcp, tcpChecksumsOk, TCP_ACK, TCP_SYN } from '../../../src/packet/tcp';
import type { Tuple } from '../../../src/conntrack/ctnetlink';
import { Reason } from '../../../src/errors';
import { INVITE } from '../../helpers/fixtures';

const PHONE = '10.77.0.12', PHONE_PORT = 41000, REMOTE = '203.0.113.10', PUBLIC = '203.0.113.1', PUBLIC_PORT = 38699;
const tcpInvite = (n: number) => INVITE.replace(/SIP\/2\.0\/UDP/g, 'SIP/2.0/TCP').replace('1-3865@', `${n}-3865@`);

/** An IPv4/TCP packet (checksums right) built through the module under test's own builder from a template. */
function pkt(src: string, sport: number, dst: string, dport: number, seq: number, ack: number, flags: number, payload: Buffer, sack: [number, number][] = []): Buffer {
  const opt = sack.length ? Buffer.concat([Buffer.from([1, 1, 5, 2 + 8 * sack.length]), ...sack.map(([l, r]) => { const b = Buffer.alloc(8); b.writeUInt32BE(l >>> 0); b.writeUInt32BE(r >>> 0, 4); return b; })]) : Buffer.alloc(0);
  const h = Buffer.alloc(40 + opt.length);
  h[0] = 0x45; h.writeUInt16BE(h.length, 2); h[8] = 64; h[9] = 6;
  Buffer.from(src.split('.').map(Number)).copy(h, 12); Buffer.from(dst.split('.').map(Number)).copy(h, 16);
  h.writeUInt16BE(sport, 20); h.writeUInt16BE(dport, 22);
  h[32] = ((20 + opt.length) / 4) << 4; h[33] = flags; h.writeUInt16BE(65535, 34);
  opt.copy(h, 40);
  const p = parseIpTcp(h);
  assert.ok(p.ok);
  return rebuildTcp(h, p.seg, payload, seq, ack);
}

function setup(holdMs = 500, incomplete: 'pass' | 'drop' = 'pass') {
  const liberal: Tuple[] = [];
  const proc = new Processor({} as BindingResolver, new PortAllocator(PortAllocator.createShared(), 1, 20000, 29999, 60000), { maxMessageSize: 65507, ports: [5060], malformedPolicy: 'pass' });
  const alg = new TcpAlg({
    lookup: (t) => ({ orig: t, reply: { src: t.dst, sport: t.dport, dst: PUBLIC, dport: PUBLIC_PORT, proto: 6 }, status: 0, timeout: 100, id: 1, packets: 0, mark: 0 }),
    setLiberal: (t) => { liberal.push(t); },
    message: (...a) => proc.message(...a),
  }, { ports: [5060], tlsPorts: [5061], maxMessageSize: 65507, holdMs, maxConnections: 100, idleMs: 300000, incomplete });
  let id = 1;
  const ISN = 0xfffff000; // wraps past 2^32 inside the stream
  const out = (seq: number, payload: Buffer, ack = 5000, flags = TCP_ACK) => alg.segment(id++, pkt(PHONE, PHONE_PORT, REMOTE, 5060, seq, ack, flags, payload), 'out', 0);
  const inn = (seq: number, ack: number, payload = Buffer.alloc(0), sack: [number, number][] = [], flags = TCP_ACK) => alg.segment(id++, pkt(REMOTE, 5060, PHONE, PHONE_PORT, seq, ack, flags, payload, sack), 'in', 0);
  out(ISN - 1, Buffer.alloc(0), 0, TCP_SYN);
  inn(4999, ISN, Buffer.alloc(0), [], TCP_SYN | TCP_ACK);
  return { alg, out, inn, liberal, ISN };
}

const wire = (rs: Release[]) => rs.map((r) => {
  const b = r.packet ?? r.original;
  assert.ok(tcpChecksumsOk(b), 'checksums right');
  const p = parseIpTcp(b);
  assert.ok(p.ok);
  return { seq: p.seg.seq, ack: p.seg.ack, data: b.subarray(p.seg.payloadOffset), sack: p.seg.sackBlocks.map((o) => [b.readUInt32BE(o), b.readUInt32BE(o + 4)]) };
});

test('several messages in one segment: each is rewritten, the SEQ of what follows and the peer\'s ACK are mapped', () => {
  const { out, inn, liberal, ISN } = setup();
  const stream = Buffer.from(tcpInvite(1) + '\r\n\r\n' + tcpInvite(2), 'latin1');
  const r = out(ISN, stream);
  assert.equal(r.messages.length, 2);
  assert.equal(r.releases.length, 1);
  const [w] = wire(r.releases);
  const text = w!.data.toString('latin1');
  assert.doesNotMatch(text.replace(/Call-ID: [^\r]*/g, ''), /10\.77\.0\.12/, 'no private address outside Call-ID');
  assert.match(text, /Via: SIP\/2\.0\/TCP 203\.0\.113\.1:38699;branch/, 'Via names the public end of the connection');
  assert.ok(w!.data.length > stream.length);
  assert.equal(liberal.length, 1, 'conntrack told once to stop window-checking the connection');
  // the next segment's SEQ moves by the growth; the peer's ACK of everything maps back
  const grow = w!.data.length - stream.length;
  const [w2] = wire(out((ISN + stream.length) >>> 0, Buffer.from('\r\n\r\n')).releases);
  assert.equal(w2!.seq, (ISN + stream.length + grow) >>> 0);
  const [a] = wire(inn(5000, (ISN + w!.data.length) >>> 0, Buffer.alloc(0), [[(ISN + w!.data.length) >>> 0, (ISN + w!.data.length + 4) >>> 0]]).releases);
  assert.equal(a!.ack, (ISN + stream.length) >>> 0);
  assert.deepEqual(a!.sack, [[(ISN + stream.length) >>> 0, (ISN + stream.length + 4) >>> 0]], 'SACK edges mapped too');
});

test('a message spread over many segments waits, then leaves rewritten; a retransmission is rewritten the same way', () => {
  const { out, ISN } = setup();
  const stream = Buffer.from(tcpInvite(3), 'latin1');
  const held: Release[] = [];
  let s = 0;
  const chunks: Buffer[] = [];
  while (s < stream.length) {
    const c = stream.subarray(s, Math.min(stream.length, s + 37));
    const r = out((ISN + s) >>> 0, c);
    if (s + c.length < stream.length) assert.equal(r.releases.length, 0, 'held until the message is complete');
    held.push(...r.releases);
    chunks.push(c);
    s += c.length;
  }
  const ws = wire(held);
  assert.equal(ws.length, chunks.length, 'every held segment released once');
  const whole = Buffer.concat(ws.map((w) => w.data));
  let next = ISN;
  for (const w of ws) { assert.equal(w.seq, next >>> 0, 'contiguous sequence numbers'); next += w.data.length; }
  assert.match(whole.toString('latin1'), /Contact: sip:sipp@203\.0\.113\.1:38699\r\n/);
  // retransmission with other boundaries: the same bytes at the same place
  const re = wire(out(ISN, stream.subarray(0, 100)).releases)[0]!;
  assert.equal(re.seq, ISN);
  assert.ok(whole.subarray(0, re.data.length).equals(re.data));
  const re2 = wire(out((ISN + 100) >>> 0, stream.subarray(100)).releases)[0]!;
  assert.ok(whole.subarray(re.data.length).equals(re2.data));
});

test('a message that never completes is released unchanged after tcp-hold-ms and counted; out-of-order is dropped', () => {
  const { alg, out, ISN } = setup(200);
  const stream = Buffer.from(tcpInvite(4), 'latin1');
  assert.equal(out(ISN, stream.subarray(0, 300)).releases.length, 0);
  const gap = out((ISN + 400) >>> 0, stream.subarray(400, 500));
  assert.equal(gap.releases[0]!.verdict, NF_DROP);
  assert.equal(gap.releases[0]!.reason, Reason.TCP_OUT_OF_ORDER);
  assert.equal(alg.sweep(100).releases.length, 0);
  const t = alg.sweep(250);
  assert.equal(t.releases.length, 1);
  assert.equal(t.releases[0]!.verdict, NF_ACCEPT);
  assert.equal(t.releases[0]!.reason, Reason.TCP_INCOMPLETE);
  assert.ok(wire(t.releases)[0]!.data.equals(stream.subarray(0, 300)), 'passed as it was');
  // the rest of that message passes unchanged; the next message is rewritten again
  const rest = wire(out((ISN + 300) >>> 0, stream.subarray(300)).releases)[0]!;
  assert.ok(rest.data.equals(stream.subarray(300)));
  const next = wire(out((ISN + stream.length) >>> 0, Buffer.from(tcpInvite(5))).releases)[0]!;
  assert.match(next.data.toString('latin1'), /203\.0\.113\.1:38699/);
});

test('WAN→LAN: the far end\'s requests to the public end reach the phone\'s own port; TLS is counted, never parsed', () => {
  const { alg, out, inn, ISN } = setup();
  out(ISN, Buffer.from(tcpInvite(6)));
  const bye = `BYE sip:sipp@${PUBLIC}:${PUBLIC_PORT};transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP 203.0.113.10:5060;branch=z9hG4bK1\r\nFrom: <sip:pbx@203.0.113.10>;tag=a\r\nTo: <sip:sipp@203.0.113.1>;tag=b\r\nCall-ID: 6-3865@10.77.0.12\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n`;
  const r = inn(5000, ISN, Buffer.from(bye)).releases[0]!;
  assert.equal(r.verdict, NF_ACCEPT);
  const w = wire([r])[0]!;
  assert.match(w.data.toString('latin1'), /^BYE sip:sipp@10\.77\.0\.12:5060;transport=tcp SIP\/2\.0/);
  const tls = alg.segment(99, pkt(PHONE, 42000, REMOTE, 5061, 1, 0, TCP_SYN, Buffer.alloc(0)), 'out', 0);
  assert.equal(tls.releases[0]!.reason, Reason.TLS_PASSTHROUGH);
  assert.equal(tls.releases[0]!.packet, undefined);
});

test('fuzz: mutated streams, random segmentation, duplicates and gaps never throw, and every segment gets exactly one verdict', () => {
  let seed = 42;
  const r = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const { alg, ISN } = setup(100);
  const verdicts = new Map<number, number>();
  const note = (rs: Release[]) => { for (const x of rs) verdicts.set(x.id, (verdicts.get(x.id) ?? 0) + 1); };
  let id = 1000;
  let now = 0;
  for (let round = 0; round < 300; round++) {
    const msg = Buffer.from(tcpInvite(round) + (r() < 0.3 ? '\r\n\r\n' : ''), 'latin1');
    for (let k = 0; k < 3; k++) if (r() < 0.5) msg[Math.floor(r() * msg.length)] = Math.floor(r() * 256); // mutations
    const base = round * 2000;
    let s = 0;
    while (s < msg.length) {
      const len = 1 + Math.floor(r() * 600);
      const at = r() < 0.05 ? s + 50 : r() < 0.05 ? Math.max(0, s - 100) : s; // gaps and retransmissions
      const chunk = msg.subarray(at, Math.min(msg.length, at + len));
      if (chunk.length) {
        const p = pkt(PHONE, PHONE_PORT, REMOTE, 5060, (ISN + base + at) >>> 0, 5000, TCP_ACK, chunk);
        const i = id++;
        verdicts.set(i, 0);
        note(alg.segment(i, p, 'out', now).releases);
      }
      s = Math.max(s, at + chunk.length);
      now += Math.floor(r() * 40);
      if (r() < 0.1) note(alg.sweep(now).releases);
    }
    // the rest of the 2000-byte slot: filler the framer must skip or give up on
    const fill = Buffer.alloc(2000 - msg.length, r() < 0.5 ? 13 : 65);
    const i = id++;
    verdicts.set(i, 0);
    note(alg.segment(i, pkt(PHONE, PHONE_PORT, REMOTE, 5060, (ISN + base + msg.length) >>> 0, 5000, TCP_ACK, fill), 'out', now).releases);
  }
  note(alg.sweep(now + 10_000).releases);
  note(alg.releaseAll().releases);
  const bad = [...verdicts].filter(([, n]) => n !== 1);
  assert.deepEqual(bad, [], 'segments with no verdict or more than one');
});

test('SIP over TCP over IPv6: the segment is rewritten with [v6] hosts, and its checksum covers the IPv6 pseudo-header', () => {
  const v6 = (s: string) => { const b = Buffer.alloc(16); const [h, t] = s.split('::'); const hs = h ? h.split(':') : []; const ts = t ? t.split(':') : []; [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts].forEach((x, i) => b.writeUInt16BE(parseInt(x, 16), i * 2)); return b; };
  const mk6 = (src: string, sport: number, dst: string, dport: number, seq: number, flags: number, payload: Buffer) => {
    const h = Buffer.alloc(60);
    h[0] = 0x60; h.writeUInt16BE(20, 4); h[6] = 6; h[7] = 64;
    v6(src).copy(h, 8); v6(dst).copy(h, 24);
    h.writeUInt16BE(sport, 40); h.writeUInt16BE(dport, 42); h[52] = 5 << 4; h[53] = flags; h.writeUInt16BE(65535, 54);
    const p = parseIpTcp(h);
    assert.ok(p.ok && p.seg.family === 6);
    return rebuildTcp(h, p.seg, payload, seq, 1);
  };
  const proc = new Processor({} as BindingResolver, new PortAllocator(PortAllocator.createShared(), 1, 20000, 29999, 60000), { maxMessageSize: 65507, ports: [5060], malformedPolicy: 'pass' });
  const alg = new TcpAlg({
    lookup: (t) => ({ orig: t, reply: { src: t.dst, sport: t.dport, dst: '2001:db8:113::1', dport: 40000, proto: 6 }, status: 0, timeout: 100, id: 1, packets: 0, mark: 0 }),
    setLiberal: () => undefined,
    message: (...a) => proc.message(...a),
  }, { ports: [5060], tlsPorts: [5061], maxMessageSize: 65507, holdMs: 500, maxConnections: 100, idleMs: 300000 });
  alg.segment(1, mk6('fd00:77::11', 41000, '2001:db8:113::10', 5060, 99, TCP_SYN, Buffer.alloc(0)), 'out', 0);
  const msg = tcpInvite(7).replace(/10\.77\.0\.12/g, '[fd00:77::11]').replace(/203\.0\.113\.10/g, '[2001:db8:113::10]').replace(/c=IN IP4 \[fd00:77::11\]/, 'c=IN IP6 fd00:77::11').replace(/o=(.*) IN IP4 \[fd00:77::11\]/, 'o=$1 IN IP6 fd00:77::11');
  const body = msg.slice(msg.indexOf('\r\n\r\n') + 4);
  const r = alg.segment(2, mk6('fd00:77::11', 41000, '2001:db8:113::10', 5060, 100, TCP_ACK, Buffer.from(msg.replace(/Content-Length: \d+/, `Content-Length: ${Buffer.byteLength(body)}`), 'latin1')), 'out', 0);
  const out = r.releases[0]!.packet!;
  assert.ok(out && tcpChecksumsOk(out), 'IPv6 TCP checksum');
  const p = parseIpTcp(out);
  assert.ok(p.ok);
  const text = out.subarray(p.seg.payloadOffset).toString('latin1');
  assert.match(text, /^Via: SIP\/2\.0\/TCP \[2001:db8:113::1\]:40000;/m);
  assert.match(text, /^c=IN IP6 2001:db8:113::1\r$/m);
  assert.equal(out.readUInt16BE(4), out.length - 40, 'IPv6 payload length');
});

/** The bytes that crossed, laid out by sequence number from `isn`: what the receiver reassembles. */
function reassemble(rs: Release[], isn: number): string {
  const b = Buffer.alloc(8192, 0x7e);
  let end = 0;
  for (const w of wire(rs.filter((r) => r.verdict === NF_ACCEPT))) {
    const at = (w.seq - isn) >>> 0;
    w.data.copy(b, at);
    end = Math.max(end, at + w.data.length);
  }
  return b.toString('latin1', 0, end);
}
const leaks = (rs: Release[]) => wire(rs.filter((r) => r.verdict === NF_ACCEPT)).filter((w) => /10\.77\.0\.12/.test(w.data.toString('latin1').replace(/Call-ID: [^\r]*/g, ''))).length;

test('a sender stuck behind a held segment (a window of one segment after a timeout, RFC 5681 §3.1): its retransmission carries the start line ahead, the receiver can acknowledge it, and the rest completes the message, rewritten', () => {
  const { out, ISN } = setup();
  const stream = Buffer.from(tcpInvite(4), 'latin1');
  const first = stream.subarray(0, 200);
  const all: Release[] = [];
  all.push(...out(ISN, first).releases);
  assert.equal(all.length, 0, 'the first segment waits for the rest of its message');
  const again = out(ISN, first).releases;
  assert.equal(again.length, 1);
  assert.equal(again[0]!.reason, Reason.TCP_PREFIX);
  const [p] = wire(again);
  assert.equal(p!.seq, ISN);
  assert.equal(p!.data.toString('latin1'), 'INVITE sip:pbx@203.0.113.10:5080 SIP/2.0\r\n', 'the start line only: no address of the phone in it');
  all.push(...again);
  const third = out(ISN, first).releases;
  assert.deepEqual(third.map((r) => [r.verdict, r.reason]), [[NF_DROP, Reason.TCP_DUPLICATE]], 'nothing more of it can go ahead');
  // the sender's window opened: it sends from what was acknowledged
  const cut = p!.data.length;
  const rest = out((ISN + cut) >>> 0, stream.subarray(cut)).releases;
  assert.equal(rest.length, 2, 'the held segment and this one leave');
  all.push(...rest);
  const got = reassemble(all, ISN);
  assert.match(got, /^INVITE sip:pbx@203\.0\.113\.10:5080 SIP\/2\.0\r\nVia: SIP\/2\.0\/TCP 203\.0\.113\.1:38699;branch/, 'the receiver reassembles the rewritten message behind the prefix');
  assert.equal(got.length, Buffer.byteLength(got, 'latin1'));
  assert.ok(!got.includes('~'), 'no hole in what the receiver has');
  assert.equal(leaks(all), 0, 'no private address crossed');
});

test('leak-policy drop: the held segments of a message still incomplete after tcp-hold-ms are dropped, not passed unchanged; the message is kept and leaves rewritten once the sender resends and completes it', () => {
  const { alg, out, ISN } = setup(500, 'drop');
  const stream = Buffer.from(tcpInvite(5), 'latin1');
  const all: Release[] = [];
  all.push(...out(ISN, stream.subarray(0, 300)).releases);
  const swept = alg.sweep(600).releases;
  assert.deepEqual(swept.map((r) => [r.verdict, r.reason]), [[NF_DROP, Reason.TCP_INCOMPLETE]]);
  // the sender resends (its start line goes ahead), then resends it again, then the rest
  all.push(...out(ISN, stream.subarray(0, 300)).releases);
  assert.equal(all.at(-1)!.reason, Reason.TCP_PREFIX);
  all.push(...out(ISN, stream.subarray(0, 300)).releases);
  all.push(...out((ISN + 300) >>> 0, stream.subarray(300)).releases);
  const got = reassemble(all, ISN);
  assert.match(got, /^INVITE [^\r]*\r\nVia: SIP\/2\.0\/TCP 203\.0\.113\.1:38699;branch/);
  assert.ok(!got.includes('~'));
  assert.equal(leaks(all), 0);
  // leak-policy pass (the default here): the old fail-open, counted
  const p = setup(500, 'pass');
  p.out(p.ISN, stream.subarray(0, 300));
  const passed = p.alg.sweep(600).releases;
  assert.deepEqual(passed.map((r) => [r.verdict, r.reason]), [[NF_ACCEPT, Reason.TCP_INCOMPLETE]]);
  assert.equal(leaks(passed), 1, 'pass: the private address reaches the WAN');
});
