import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostIs, sipHost, uriHostPorts, viaParms } from '../../../src/sip/hostport';

const hp = (s: string) => uriHostPorts(s).map((h) => [h.host, h.port, h.defaultPort, s.slice(h.hostStart, h.portEnd)]);

test('IPv6references in SIP URIs (RFC 3261 §25.1; RFC 5118 §4.1, §4.3, §4.4)', () => {
  assert.deepEqual(hp('sip:[2001:db8::10]:5070'), [['2001:db8::10', 5070, 5060, '[2001:db8::10]:5070']], '§4.4 port unambiguous');
  assert.deepEqual(hp('<sip:user@[2001:db8::10]>;tag=1'), [['2001:db8::10', undefined, 5060, '[2001:db8::10]']], 'no port: the default applies');
  assert.deepEqual(hp('sips:[2001:db8::10]'), [['2001:db8::10', undefined, 5061, '[2001:db8::10]']]);
  assert.deepEqual(hp('sip:[2001:db8::10:5070]'), [['2001:db8::10:5070', undefined, 5060, '[2001:db8::10:5070]']], '§4.3: the "port" is inside the address');
  assert.deepEqual(hp('<sip:[2001:db8::10];lr>, <sip:u@[::ffff:192.0.2.1]:5080;transport=udp>'), [['2001:db8::10', undefined, 5060, '[2001:db8::10]'], ['::ffff:192.0.2.1', 5080, 5060, '[::ffff:192.0.2.1]:5080']]);
});

test('RFC 5118 §4.2: an IPv6 address without brackets is not a host[:port]; an unclosed bracket neither', () => {
  assert.deepEqual(hp('sip:user@2001:db8::10'), []);
  assert.deepEqual(hp('<sip:user@[2001:db8::10>'), []);
});

test('Via sent-by as an IPv6reference; received= with and without brackets (RFC 3261 §18.2.1, RFC 5118 §4.5)', () => {
  const v = 'SIP/2.0/UDP [2001:db8::9:1]:5070;received=[2001:db8::9:255];branch=z9hG4bKas3-111, SIP/2.0/TCP [2001:db8::9:1];received=2001:db8::9:255;rport=5070';
  const vps = viaParms(v);
  assert.deepEqual(vps.map((p) => [p.transport, p.host, p.port, p.defaultPort, p.received && v.slice(p.received.start, p.received.end), p.rport && v.slice(p.rport.start, p.rport.end)]), [
    ['UDP', '2001:db8::9:1', 5070, 5060, '[2001:db8::9:255]', undefined],
    ['TCP', '2001:db8::9:1', undefined, 5060, '2001:db8::9:255', '5070'],
  ]);
});

test('hostIs: IPv6 by value, IPv4 by text; sipHost brackets IPv6 in RFC 5952 form', () => {
  assert.ok(hostIs('FD00:77::0011', 'fd00:77::11'));
  assert.ok(hostIs('[fd00:77::11]', 'fd00:77:0:0::11'), 'a received= value may keep its brackets');
  assert.ok(!hostIs('fd00:77::12', 'fd00:77::11'));
  assert.ok(!hostIs('pbx.example', 'fd00:77::11'));
  assert.ok(hostIs('10.77.0.12', '10.77.0.12'));
  assert.ok(!hostIs('10.77.0.12', '10.77.0.13'));
  assert.equal(sipHost('2001:DB8:0::1'), '[2001:db8::1]');
  assert.equal(sipHost('203.0.113.1'), '203.0.113.1');
});
