/**
 * The leak guard (issue 13): which outcomes may leak, and the test of the sender's address in a
 * packet; then the real junk flood of the lab through the processor: every datagram judged, those
 * that would leak the phone's address caught.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { carriesSourceAddress, mayLeak } from '../../../src/policy/leak-guard';
import { Processor } from '../../../src/alg/processor';
import { PortAllocator } from '../../../src/nat/port-allocator';
import type { Binding, BindingResolver } from '../../../src/nat/binding-resolver';
import { junkFlood } from '../../../src/lab/junk';
import { udpPacket } from '../../helpers/packet';
import { udp6Packet } from '../../helpers/packet6';
import { INVITE } from '../../helpers/fixtures';

test('the sender\'s address in a packet: whole, cut short by truncation, or a neighbour; IPv6 in RFC 5952 form', () => {
  assert.ok(carriesSourceAddress(udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, INVITE)));
  assert.ok(carriesSourceAddress(udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, 'INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.0.1')), 'cut short');
  assert.ok(carriesSourceAddress(udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, 'x c=IN IP4 10.77.0.40')), 'a neighbour in the same /24');
  assert.ok(!carriesSourceAddress(udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, 'INVITE sip:a@203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.1:5060\r\n')));
  assert.ok(!carriesSourceAddress(udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, 'INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.')), 'too short to name anything');
  assert.ok(!carriesSourceAddress(Buffer.alloc(10)), 'not an IP packet');
  assert.ok(carriesSourceAddress(udp6Packet('fd00:77::11', '2001:db8:113::10', 5060, 5060, 'OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP [fd00:77::11]:5060\r\n')));
  assert.ok(!carriesSourceAddress(udp6Packet('fd00:77::11', '2001:db8:113::10', 5060, 5060, 'OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8:113::1]:5060\r\n')));
});

test('which outcomes may leak: failures do; a translated, identical, keep-alive or not-ours packet does not', () => {
  for (const r of ['truncated_headers', 'bad_content_length', 'bad_header', 'bad_start_line', 'not_sip', 'no_binding', 'conntrack_error', 'internal_error', 'verdict_error', 'too_large', 'bad_sdp', 'fragment']) assert.ok(mayLeak(r), r);
  for (const r of ['rewritten', 'unchanged', 'keepalive', 'not_sip_port', 'ipv6_passthrough', 'tls_passthrough']) assert.ok(!mayLeak(r), r);
});

test('the lab\'s junk flood through the processor: never a throw, every datagram a reason, every malformed one naming the phone caught by the guard', () => {
  const binding: Binding = { privateIp: '10.77.0.11', privatePort: 5060, publicIp: '203.0.113.1', publicPort: 5060, source: 'conntrack' };
  const resolver = { outbound: () => binding, inbound: () => binding } as unknown as BindingResolver;
  const p = new Processor(resolver, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 60000), { maxMessageSize: 65507, malformedPolicy: 'pass', ports: [5060] });
  const { packets, kinds } = junkFlood('10.77.0.11', '203.0.113.20', 2000, 7);
  assert.deepEqual(Object.values(kinds), [400, 400, 400, 400, 400]);
  const reasons: Record<string, number> = {};
  let leaks = 0;
  for (const payload of packets) {
    const pkt = udpPacket('10.77.0.11', '203.0.113.20', 5060, 5060, payload);
    const o = p.process(pkt, 'out', 0);
    reasons[o.reason] = (reasons[o.reason] ?? 0) + 1;
    if (o.accept && !o.packet && mayLeak(o.reason) && carriesSourceAddress(pkt)) leaks++;
    if (o.packet) assert.ok(!o.packet.includes('10.77.0.11:5060'), 'a rewritten datagram names the public binding');
  }
  // giant headers are well-formed SIP (rewritten); random bytes are not SIP; the rest are malformed
  assert.equal(reasons.rewritten, 400, JSON.stringify(reasons));
  assert.equal((reasons.truncated_headers ?? 0) + (reasons.bad_content_length ?? 0) + (reasons.bad_header ?? 0) + (reasons.bad_start_line ?? 0), 1200, JSON.stringify(reasons));
  assert.ok((reasons.not_sip ?? 0) >= 380, JSON.stringify(reasons));
  assert.ok(leaks >= 1150, `malformed datagrams naming the phone: ${leaks} (each one dropped under leak-policy drop)`);
});
