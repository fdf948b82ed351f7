import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpUdp, rebuildV4, checksumsOk } from '../../../src/packet/ip';
import { udpPacket, verifyChecksums, payloadOf } from '../../helpers/packet';

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
