import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4ToString, parseIpUdp, rebuildV4, rebuildV6, rebuildUdp, checksumsOk } from '../../../src/packet/ip';
import { udpPacket, verifyChecksums, payloadOf } from '../../helpers/packet';
import { padOptions, routingHeader, udp6Checksum, udp6Packet, type Udp6Options } from '../../helpers/packet6';

test('IPv4/UDP is parsed; a rebuilt packet has right lengths and checksums (RFC 791, RFC 768)', () => {
  const pkt = udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, 'OPTIONS sip:x SIP/2.0\r\n\r\n');
  assert.ok(verifyChecksums(pkt) && checksumsOk(pkt));
  const r = parseIpUdp(pkt);
  assert.ok(r.ok);
  assert.deepEqual([r.packet.src, r.packet.dst, r.packet.srcPort, r.packet.dstPort], ['10.77.0.12', '203.0.113.10', 5060, 5080]);
  for (const len of [0, 1, 7, 26, 1000, 1473, 9000]) {
    const out = rebuildV4(pkt, r.packet, Buffer.alloc(len, 0x41 + (len % 26)));
    assert.ok(verifyChecksums(out), `len ${len}`);
    assert.equal(payloadOf(out).length, len);
  }
});

test('fragments, non-UDP, truncated and IPv6 packets are recognised', () => {
  const pkt = udpPacket('10.0.0.1', '10.0.0.2', 5060, 5060, 'x');
  const frag = udpPacket('10.0.0.1', '10.0.0.2', 5060, 5060, 'x', { flagsFrag: 0x2000 });
  assert.deepEqual(parseIpUdp(frag), { ok: false, reason: 'fragment' });
  const tcp = Buffer.from(pkt);
  tcp[9] = 6;
  assert.deepEqual(parseIpUdp(tcp), { ok: false, reason: 'not_udp' });
  assert.deepEqual(parseIpUdp(pkt.subarray(0, 10)), { ok: false, reason: 'truncated_ip' });
  const badLen = Buffer.from(pkt);
  badLen.writeUInt16BE(9999, 2);
  assert.deepEqual(parseIpUdp(badLen), { ok: false, reason: 'bad_ip_header' });
  assert.deepEqual(parseIpUdp(Buffer.from([0x20, 1, 2])), { ok: false, reason: 'not_ip' });
  // IPv6 + UDP
  const v6 = Buffer.alloc(40 + 8 + 3);
  v6[0] = 0x60;
  v6.writeUInt16BE(11, 4);
  v6[6] = 17;
  v6[23] = 1;
  v6[39] = 2;
  v6.writeUInt16BE(5060, 40);
  v6.writeUInt16BE(5060, 42);
  v6.writeUInt16BE(11, 44);
  const r6 = parseIpUdp(v6);
  assert.ok(r6.ok);
  assert.equal(r6.packet.family, 6);
  assert.equal(r6.packet.src, '::1');
});

const A6 = 'fd00:77::11', B6 = '2001:db8::10';

/** rebuildV6 of a packet built with `opts` must be, byte for byte, the packet built around the new payload. */
function rebuildsAs(opts: Udp6Options, what: string): void {
  const pkt = udp6Packet(A6, B6, 5060, 5070, 'REGISTER sip:[2001:db8::10] SIP/2.0\r\n\r\n', opts);
  assert.ok(checksumsOk(pkt), `${what}: the original verifies`);
  const r = parseIpUdp(pkt);
  assert.ok(r.ok, what);
  assert.deepEqual([r.packet.family, r.packet.src, r.packet.dst, r.packet.srcPort, r.packet.dstPort], [6, A6, B6, 5060, 5070], what);
  for (const len of [0, 1, 7, 26, 1000, 1453, 9000]) {
    const payload = Buffer.alloc(len, 0x41 + (len % 26));
    const out = rebuildV6(pkt, r.packet, payload);
    assert.deepEqual(out, udp6Packet(A6, B6, 5060, 5070, payload, opts), `${what}, payload ${len}`);
    assert.ok(checksumsOk(out), `${what}, payload ${len}: checksumsOk`);
    assert.deepEqual(rebuildUdp(pkt, r.packet, payload), out, 'rebuildUdp picks rebuildV6 for family 6');
  }
}

test('IPv6/UDP rebuilt: Payload Length, UDP length and checksum over the pseudo-header (RFC 8200 §3, §8.1); traffic class, flow label, hop limit kept', () => {
  rebuildsAs({}, 'no extension headers');
});

test('IPv6 extension headers before UDP are kept as they are and counted in the Payload Length (RFC 8200 §4)', () => {
  rebuildsAs({ ext: [padOptions(0)] }, 'hop-by-hop');
  rebuildsAs({ ext: [padOptions(0), padOptions(60)] }, 'hop-by-hop + destination options');
  // a routing header with no segments left: the header's destination is the final one
  rebuildsAs({ ext: [routingHeader(2, 0, ['2001:db8:aaaa::1'])] }, 'routing type 2, segments left 0');
});

test('with segments left in a routing header the pseudo-header carries the final destination (RFC 8200 §8.1)', () => {
  // type 2 (RFC 6275 §6.4): the Home Address
  rebuildsAs({ ext: [routingHeader(2, 1, ['2001:db8:aaaa::1'])], pseudoDst: '2001:db8:aaaa::1' }, 'type 2');
  // type 0 (RFC 2460 §4.4): the last address of the list
  rebuildsAs({ ext: [padOptions(0), routingHeader(0, 2, ['2001:db8:bbbb::1', '2001:db8:bbbb::2'])], pseudoDst: '2001:db8:bbbb::2' }, 'type 0');
  // Segment Routing Header (RFC 8754 §2): Segment List[0] is the last segment; Last Entry 1, Flags 0, Tag 0
  rebuildsAs({ ext: [routingHeader(4, 1, ['2001:db8:cccc::9', B6], Buffer.from([1, 0, 0, 0]))], pseudoDst: '2001:db8:cccc::9' }, 'SRH');
  // and the packet's own destination would give another checksum: the cases above do test the rule
  const srh = udp6Packet(A6, B6, 5060, 5070, 'x', { ext: [routingHeader(4, 1, ['2001:db8:cccc::9', B6], Buffer.from([1, 0, 0, 0]))] });
  assert.ok(!checksumsOk(srh), 'a checksum over the first segment is wrong');
});

test('IPv6: a computed zero UDP checksum is sent as 0xffff; a zero or wrong checksum does not verify (RFC 8200 §8.1)', () => {
  // a payload word that brings the one's complement sum to 0xffff: then the checksum computes as 0
  const probe = Buffer.from([0, 0, 0x53, 0x49, 0x50]);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(5060, 0);
  udp.writeUInt16BE(5070, 2);
  udp.writeUInt16BE(8 + probe.length, 4);
  const c0 = udp6Checksum(A6, B6, Buffer.concat([udp, probe]));
  const payload = Buffer.from(probe);
  payload.writeUInt16BE(c0, 0);
  const pkt = udp6Packet(A6, B6, 5060, 5070, 'x');
  const r = parseIpUdp(pkt);
  assert.ok(r.ok);
  const out = rebuildV6(pkt, r.packet, payload);
  assert.equal(out.readUInt16BE(40 + 6), 0xffff);
  assert.ok(checksumsOk(out), '0xffff verifies as zero (one\'s complement)');
  const zero = Buffer.from(pkt);
  zero.writeUInt16BE(0, 46);
  assert.ok(!checksumsOk(zero), 'no checksum is not allowed in IPv6');
  const flipped = Buffer.from(pkt);
  flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 1;
  assert.ok(!checksumsOk(flipped));
});

test('rebuildUdp keeps IPv4 byte for byte as rebuildV4', () => {
  const pkt = udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, 'OPTIONS sip:x SIP/2.0\r\n\r\n');
  const r = parseIpUdp(pkt);
  assert.ok(r.ok);
  for (const len of [0, 33, 1400]) {
    const payload = Buffer.alloc(len, 0x61);
    assert.deepEqual(rebuildUdp(pkt, r.packet, payload), rebuildV4(pkt, r.packet, payload));
  }
});

test('ipv4ToString: the dotted text of any address, from its cache of recent ones or built (colliding slots, 0.0.0.0, 255.255.255.255)', () => {
  const b = Buffer.alloc(4);
  const text = (a: number) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
  let x = 12345;
  const addrs = [0, 0xffffffff, 0x0a4d000b, 0x0b4c010a, 0x0a4d000b];
  for (let i = 0; i < 3000; i++) addrs.push((x = (Math.imul(x, 1103515245) + 12345) >>> 0));
  // the same addresses again (hits) and in another order (a slot taken by another address between)
  for (const a of [...addrs, ...addrs.slice().reverse()]) {
    b.writeUInt32BE(a, 0);
    assert.equal(ipv4ToString(b, 0), text(a));
  }
});
