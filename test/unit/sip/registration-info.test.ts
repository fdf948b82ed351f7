import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSip } from '../../../src/sip/message';
import { contactExpiry, registrationAor } from '../../../src/sip/registration-info';
import { crlf, REGISTER_200_IN } from '../../helpers/fixtures';

const parse = (s: string) => {
  const b = Buffer.from(s, 'latin1');
  const r = parseSip(b, 0, b.length);
  assert.ok(r.ok);
  return { b, msg: r.msg };
};

test('the 2xx to REGISTER: our contact\'s expires, the AOR (RFC 3261 §10.3)', () => {
  const { b, msg } = parse(REGISTER_200_IN);
  assert.equal(contactExpiry(b, msg, '203.0.113.1', 38699), 300);
  assert.equal(contactExpiry(b, msg, '203.0.113.1', 5060), 0, 'another binding is not ours');
  assert.equal(registrationAor(b, msg), 'sip:phone2@203.0.113.1:38699');
});

test('several contacts, the Expires header as default, and a 2xx listing none of ours', () => {
  const msg = (contacts: string[], extra: string[] = []) => parse(crlf(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKr', 'To: <sip:100@pbx.example>;tag=9', 'From: <sip:100@pbx.example>;tag=1', 'Call-ID: r1', 'CSeq: 2 REGISTER', ...contacts, ...extra, 'Content-Length: 0', '', '']));
  const a = msg(['Contact: <sip:100@198.51.100.5:5060>;expires=60, <sip:100@203.0.113.1:5060>;expires=1800']);
  assert.equal(contactExpiry(a.b, a.msg, '203.0.113.1', 5060), 1800);
  const b = msg(['Contact: <sip:100@203.0.113.1>'], ['Expires: 120']);
  assert.equal(contactExpiry(b.b, b.msg, '203.0.113.1', 5060), 120, 'no port = 5060; no expires param = Expires header');
  const c = msg([]);
  assert.equal(contactExpiry(c.b, c.msg, '203.0.113.1', 5060), 0, 'unregistered');
});

test('an IPv6 contact is found by value: [FD00:77::0011] is fd00:77::11 (RFC 3261 §25.1 IPv6reference)', () => {
  const { b, msg } = parse(crlf(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP [2001:db8::1]:40000;branch=z9hG4bKr6', 'To: <sip:100@pbx.example>;tag=9', 'From: <sip:100@pbx.example>;tag=1', 'Call-ID: r6', 'CSeq: 2 REGISTER',
    'Contact: <sip:100@[2001:DB8:0::1]:40000>;expires=240, <sip:100@[2001:db8::1]>;expires=60', 'Content-Length: 0', '', '']));
  assert.equal(contactExpiry(b, msg, '2001:db8::1', 40000), 240);
  assert.equal(contactExpiry(b, msg, '2001:db8::1', 5060), 60, 'no port = 5060');
  assert.equal(contactExpiry(b, msg, '2001:db8::2', 40000), 0);
});
