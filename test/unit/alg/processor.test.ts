/**
 * The hot path end to end on packets, plus a bounded mutation fuzzer over real messages.
 * The conntrack lookup is replaced by a fixed binding here (no kernel in a unit test); the lab
 * tests run the real ctnetlink path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Processor } from '../../../src/alg/processor';
import { PortAllocator } from '../../../src/nat/port-allocator';
import type { BindingResolver, Binding } from '../../../src/nat/binding-resolver';
import { parseIpUdp, rebuildUdp } from '../../../src/packet/ip';
import { udpPacket, verifyChecksums, payloadOf } from '../../helpers/packet';
import { INVITE, REGISTER_200_IN, SEED_REGISTER_BEFORE } from '../../helpers/fixtures';
import { udp6Packet, udp6Checksum } from '../../helpers/packet6';

const binding: Binding = { privateIp: '10.77.0.12', privatePort: 5060, publicIp: '203.0.113.1', publicPort: 38699, source: 'conntrack' };
const resolver = { outbound: () => binding, inbound: () => binding } as unknown as BindingResolver;
const mk = (policy: 'pass' | 'drop' = 'pass') => new Processor(resolver, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 60000), { maxMessageSize: 65507, malformedPolicy: policy, ports: [5060] });

test('an outbound INVITE is rewritten into a valid packet; an inbound 200 is restored', () => {
  const p = mk();
  const o = p.process(udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, INVITE), 'out', 0);
  assert.equal(o.reason, 'rewritten');
  assert.ok(o.packet && verifyChecksums(o.packet));
  assert.match(payloadOf(o.packet!), /Via: SIP\/2\.0\/UDP 203\.0\.113\.1:38699;/);
  const i = p.process(udpPacket('203.0.113.10', '10.77.0.12', 5060, 5060, REGISTER_200_IN), 'in', 0);
  assert.equal(i.reason, 'rewritten');
  assert.match(payloadOf(i.packet!), /rport=5060;received=10\.77\.0\.12/);
});

test('malformed input is passed unchanged with a reason, or dropped by explicit policy', () => {
  const bad = udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, 'INVITE sip:a@b SIP/2.0\r\nContent-Length: 500\r\n\r\nv=0');
  assert.deepEqual([mk('pass').process(bad, 'out', 0).accept, mk('pass').process(bad, 'out', 0).reason], [true, 'bad_content_length']);
  assert.equal(mk('drop').process(bad, 'out', 0).accept, false);
  const big = udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, 'NOTIFY sip:a@b SIP/2.0\r\n' + 'X: y\r\n'.repeat(200) + '\r\n');
  const small = new Processor(resolver, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1), { maxMessageSize: 512, malformedPolicy: 'drop', ports: [5060] });
  assert.deepEqual([small.process(big, 'out', 0).reason, small.process(big, 'out', 0).accept], ['too_large', true]);
  assert.equal(mk().process(udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, '\r\n\r\n'), 'out', 0).reason, 'keepalive');
  assert.equal(mk().process(udpPacket('10.77.0.12', '203.0.113.10', 4000, 4001, INVITE), 'out', 0).reason, 'not_sip_port');
  assert.equal(mk('drop').process(udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, '\x16\x03\x01garbage'), 'out', 0).accept, true, 'non-SIP on the SIP port is passed, not dropped');
});

import { mutate, rng } from '../../helpers/mutate';

test('fuzz: 20 000 mutated real messages never throw, and every rewritten packet is valid', () => {
  const p = mk();
  const seeds = [INVITE, REGISTER_200_IN, SEED_REGISTER_BEFORE].map((s) => Buffer.from(s, 'latin1'));
  const r = rng(0x5eed);
  let rewritten = 0;
  for (let i = 0; i < 20000; i++) {
    const payload = mutate(seeds[i % seeds.length]!, r);
    const dir = i % 2 ? 'in' : 'out';
    const pkt = udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, payload);
    const o = p.process(pkt, dir, i);
    if (o.packet) {
      rewritten++;
      assert.ok(verifyChecksums(o.packet), `iteration ${i}: bad checksums`);
      const again = parseIpUdp(o.packet);
      assert.ok(again.ok, `iteration ${i}: unparsable output`);
      // written once behind room for the headers (frameUdp): the same packet rebuildUdp makes of the new payload
      const orig = parseIpUdp(pkt);
      assert.ok(orig.ok);
      assert.deepEqual(o.packet, rebuildUdp(pkt, orig.packet, Buffer.from(o.packet.subarray(orig.packet.ipHeaderLength + 8))), `iteration ${i}: headers`);
    }
  }
  assert.ok(rewritten > 1000, `only ${rewritten} mutated messages were still rewritable: the fuzzer is not reaching the rewriter`);
});

test('unknown methods: rewritten and passed by default, dropped with unknown-method-policy=drop; their metric label is bounded', () => {
  const msg = 'FOOBAR sip:x@203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.0.12:5060;branch=z9hG4bKu\r\nCall-ID: u\r\nCSeq: 1 FOOBAR\r\nContent-Length: 0\r\n\r\n';
  const pkt = udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, msg);
  const pass = mk().process(pkt, 'out', 0);
  assert.deepEqual([pass.accept, pass.reason, pass.message], [true, 'rewritten', 'other']);
  const drop = new Processor(resolver, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1), { maxMessageSize: 65507, malformedPolicy: 'pass', ports: [5060], unknownMethod: 'drop' }).process(pkt, 'out', 0);
  assert.deepEqual([drop.accept, drop.reason], [false, 'unknown_method']);
});

test('IPv6 (NAT66): an INVITE from a ULA phone is rewritten to the public IPv6 address, [v6] hosts and IN IP6 SDP included; without ipv6 it passes', () => {
  const b6: Binding = { privateIp: 'fd00:77::12', privatePort: 5060, publicIp: '2001:db8:113::1', publicPort: 38699, source: 'conntrack' };
  const r6 = { outbound: () => b6, inbound: () => b6 } as unknown as BindingResolver;
  const p = new Processor(r6, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 60000), { maxMessageSize: 65507, malformedPolicy: 'pass', ports: [5060], ipv6: true });
  const invite = INVITE.replace(/10\.77\.0\.12/g, '[fd00:77::12]').replace(/203\.0\.113\.10/g, '[2001:db8:113::10]')
    .replace(/IN IP4 \[fd00:77::12\]/g, 'IN IP6 fd00:77::12');
  const body = invite.slice(invite.indexOf('\r\n\r\n') + 4);
  const msg = invite.replace(/Content-Length: \d+/, `Content-Length: ${Buffer.byteLength(body)}`);
  const pkt = udp6Packet('fd00:77::12', '2001:db8:113::10', 5060, 5080, msg);
  const o = p.process(pkt, 'out', 0);
  assert.equal(o.reason, 'rewritten');
  const r = parseIpUdp(o.packet!);
  assert.ok(r.ok && r.packet.family === 6);
  const text = o.packet!.subarray(r.packet.payloadOffset).toString('latin1');
  assert.match(text, /^Via: SIP\/2\.0\/UDP \[2001:db8:113::1\]:38699;/m);
  assert.match(text, /^c=IN IP6 2001:db8:113::1\r$/m);
  assert.doesNotMatch(text.replace(/^Call-ID:.*$/m, ''), /fd00:77/);
  const cl = Number(/Content-Length: (\d+)/.exec(text)![1]);
  assert.equal(cl, Buffer.byteLength(text.slice(text.indexOf('\r\n\r\n') + 4)));
  // the UDP checksum over the IPv6 pseudo-header, by the test's own implementation
  const udp = o.packet!.subarray(40);
  assert.equal(udp6Checksum('fd00:77::12', '2001:db8:113::10', udp), 0);
  assert.equal(o.packet!.readUInt16BE(4), udp.length, 'payload length');
  const off = new Processor(r6, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 60000), { maxMessageSize: 65507, malformedPolicy: 'pass', ports: [5060] });
  assert.equal(off.process(pkt, 'out', 0).reason, 'ipv6_passthrough');
});
