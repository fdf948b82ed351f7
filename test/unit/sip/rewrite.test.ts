import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSip } from '../../../src/sip/message';
import { rewriteSip, type Direction, type Translation } from '../../../src/sip/rewrite';
import { rewriteSipReference } from './rewrite-reference';
import { mutate, rng } from '../../helpers/mutate';
import { crlf, INVITE, REGISTER_200_IN, SEED_REGISTER_AFTER, SEED_REGISTER_BEFORE } from '../../helpers/fixtures';

function rw(text: string, dir: Direction, tr: Translation, mapPort = (_ip: string, p: number) => p as number | undefined) {
  const b = Buffer.from(text, 'latin1');
  const p = parseSip(b, 0, b.length);
  assert.ok(p.ok, `parse: ${!p.ok ? p.reason : ''}`);
  const r = rewriteSip(b, 0, b.length, p.msg, dir, tr, mapPort);
  assert.ok(r.ok);
  return { text: r.payload ? r.payload.toString('latin1') : text, fields: r.fields, changed: r.payload !== undefined, media: r.media };
}

const OUT = { fromIp: '10.77.0.12', fromPort: 5060, toIp: '203.0.113.1', toPort: 38699 };
const IN = { fromIp: '203.0.113.1', fromPort: 38699, toIp: '10.77.0.12', toPort: 5060 };

test('seed 004: the REGISTER comes out exactly as the good ALG wrote it (Via, Contact; Call-ID kept)', () => {
  const r = rw(SEED_REGISTER_BEFORE, 'out', { fromIp: '192.168.20.100', fromPort: 5060, toIp: '207.252.1.145', toPort: 1024 });
  assert.equal(r.text, SEED_REGISTER_AFTER);
  assert.deepEqual(r.fields.sort(), ['contact', 'via']);
});

test('LAN→WAN INVITE: Via, From, Contact, SDP o=/c= and Content-Length; Call-ID and branch untouched', () => {
  const r = rw(INVITE, 'out', OUT);
  assert.match(r.text, /^Via: SIP\/2\.0\/UDP 203\.0\.113\.1:38699;branch=z9hG4bK-3865-1-0;rport\r$/m);
  assert.match(r.text, /^From: sipp <sip:sipp@203\.0\.113\.1:38699>;tag=3865SIPpTag001\r$/m);
  assert.match(r.text, /^Contact: sip:sipp@203\.0\.113\.1:38699\r$/m);
  assert.match(r.text, /^Call-ID: 1-3865@10\.77\.0\.12\r$/m, 'RFC 3261 §8.1.1.4: Call-ID is never changed');
  assert.match(r.text, /^c=IN IP4 203\.0\.113\.1\r$/m);
  assert.match(r.text, /^o=user1 53655765 2353687637 IN IP4 203\.0\.113\.1\r$/m);
  const body = r.text.slice(r.text.indexOf('\r\n\r\n') + 4);
  assert.equal(Number(/Content-Length: (\d+)/.exec(r.text)![1]), Buffer.byteLength(body, 'latin1'));
  // headers that needed no change are byte for byte the same
  for (const h of ['To: <sip:pbx@203.0.113.10:5080>', 'CSeq: 1 INVITE', 'Max-Forwards: 70', 'Subject: Performance Test', 'Content-Type: application/sdp']) assert.ok(r.text.includes(`\r\n${h}\r\n`), h);
  // nothing private left outside Call-ID
  assert.equal(r.text.split('\r\n').filter((l) => l.includes('10.77.0.12') && !l.startsWith('Call-ID')).length, 0);
});

test('WAN→LAN 200 to REGISTER: Via sent-by, received=, rport=, To/From/Contact restored to the private binding', () => {
  const r = rw(REGISTER_200_IN, 'in', IN);
  assert.match(r.text, /^Via: SIP\/2\.0\/UDP 10\.77\.0\.12:5060;branch=z9hG4bK-1-0;rport=5060;received=10\.77\.0\.12\r$/m);
  assert.match(r.text, /^Contact: <sip:phone2@10\.77\.0\.12:5060>;expires=300\r$/m);
  assert.match(r.text, /^To: <sip:phone2@10\.77\.0\.12:5060>;tag=e0b3a2c1\r$/m);
  assert.deepEqual(new Set(r.fields), new Set(['via', 'via_received', 'via_rport', 'from', 'to', 'contact']));
});

test('a port-less URI means the default port 5060 (RFC 3261 §19.1.2) and stays port-less when the binding keeps 5060', () => {
  const msg = crlf(['OPTIONS sip:10.77.0.11 SIP/2.0', 'Via: SIP/2.0/UDP 10.77.0.11;branch=z9hG4bKx', 'From: <sip:a@10.77.0.11>;tag=1', 'To: <sip:b@198.51.100.7>', 'Call-ID: c@10.77.0.11', 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', '']);
  const same = rw(msg, 'out', { fromIp: '10.77.0.11', fromPort: 5060, toIp: '203.0.113.1', toPort: 5060 });
  assert.match(same.text, /^Via: SIP\/2\.0\/UDP 203\.0\.113\.1;branch/m);
  assert.match(same.text, /^OPTIONS sip:203\.0\.113\.1 SIP\/2\.0/);
  const moved = rw(msg, 'out', { fromIp: '10.77.0.11', fromPort: 5060, toIp: '203.0.113.1', toPort: 40000 });
  assert.match(moved.text, /^Via: SIP\/2\.0\/UDP 203\.0\.113\.1:40000;branch/m);
  assert.match(moved.text, /^From: <sip:a@203\.0\.113\.1:40000>;tag=1/m);
});

test('compact forms, comma-joined Via and Contact lists, multiple Via headers', () => {
  const msg = crlf([
    'SIP/2.0 200 OK',
    'v: SIP/2.0/UDP 203.0.113.1:38699;branch=z9hG4bKa;rport=38699;received=203.0.113.1, SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bKb',
    'Via: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bKc',
    'f: <sip:x@203.0.113.1:38699>;tag=a',
    't: <sip:y@198.51.100.9>;tag=b',
    'i: abc@10.77.0.12',
    'CSeq: 2 INVITE',
    'm: <sip:x@203.0.113.1:38699>;expires=60, <sip:x@198.51.100.9>',
    'l: 0',
    '',
    '',
  ]);
  const r = rw(msg, 'in', IN);
  assert.match(r.text, /^v: SIP\/2\.0\/UDP 10\.77\.0\.12:5060;branch=z9hG4bKa;rport=5060;received=10\.77\.0\.12, SIP\/2\.0\/UDP 198\.51\.100\.9:5060;branch=z9hG4bKb\r$/m);
  assert.match(r.text, /^Via: SIP\/2\.0\/UDP 198\.51\.100\.10;branch=z9hG4bKc\r$/m);
  assert.match(r.text, /^m: <sip:x@10\.77\.0\.12:5060>;expires=60, <sip:x@198\.51\.100\.9>\r$/m);
  assert.match(r.text, /^i: abc@10\.77\.0\.12\r$/m);
});

test('Record-Route and Route carrying the private address are translated; others are not', () => {
  const msg = crlf(['BYE sip:pbx@203.0.113.10 SIP/2.0', 'Via: SIP/2.0/UDP 10.77.0.12:5060;branch=z9hG4bKq', 'Route: <sip:10.77.0.12:5060;lr>, <sip:203.0.113.10;lr>', 'Record-Route: <sip:10.77.0.12;lr>', 'From: <sip:a@10.77.0.12>;tag=1', 'To: <sip:b@203.0.113.10>;tag=2', 'Call-ID: z', 'CSeq: 3 BYE', 'Content-Length: 0', '', '']);
  const r = rw(msg, 'out', OUT);
  assert.match(r.text, /^Route: <sip:203\.0\.113\.1:38699;lr>, <sip:203\.0\.113\.10;lr>\r$/m);
  assert.match(r.text, /^Record-Route: <sip:203\.0\.113\.1:38699;lr>\r$/m);
});

test('NAT-aware endpoints: public addresses, and private addresses with another port, are left alone', () => {
  const msg = crlf(['INVITE sip:pbx@203.0.113.10 SIP/2.0', 'Via: SIP/2.0/UDP 203.0.113.1:38699;branch=z9hG4bKn;rport', 'From: <sip:a@203.0.113.1:38699>;tag=1', 'To: <sip:pbx@203.0.113.10>', 'Call-ID: n@10.77.0.12', 'CSeq: 1 INVITE', 'Contact: <sip:a@10.77.0.12:5099>', 'Content-Length: 0', '', '']);
  const r = rw(msg, 'out', OUT);
  assert.equal(r.changed, false);
  assert.equal(r.text, msg);
});

test('the Request-URI of an inbound request addressed to the public binding is restored (RFC 3261 §16.12)', () => {
  const msg = crlf(['INVITE sip:phone2@203.0.113.1:38699 SIP/2.0', 'Via: SIP/2.0/UDP 203.0.113.10;branch=z9hG4bKk', 'From: <sip:p@203.0.113.10>;tag=1', 'To: <sip:phone2@203.0.113.10>', 'Call-ID: k', 'CSeq: 1 INVITE', 'Content-Length: 0', '', '']);
  const r = rw(msg, 'in', IN);
  assert.match(r.text, /^INVITE sip:phone2@10\.77\.0\.12:5060 SIP\/2\.0\r$/m, 'an explicit port stays explicit');
  assert.deepEqual(r.fields, ['request_uri']);
});

// the phone at [fd00:77::11]:5060 behind the router's IPv6 NAT binding [2001:db8::1]:40000
const OUT6: Translation = { fromIp: 'fd00:77::11', fromPort: 5060, toIp: '2001:db8::1', toPort: 40000 };
const IN6: Translation = { fromIp: '2001:db8::1', fromPort: 40000, toIp: 'fd00:77::11', toPort: 5060 };

test('LAN→WAN IPv6 INVITE: [v6] hosts matched by value, written [2001:db8::1]:port; SDP IN IP6; Call-ID untouched', () => {
  const sdp = crlf(['v=0', 'o=- 1 1 IN IP6 fd00:77::11', 's=-', 'c=IN IP6 FD00:77::0011', 't=0 0', 'm=audio 6000 RTP/AVP 0', '']);
  const msg = crlf([
    'INVITE sip:bob@[2001:db8::10]:5070 SIP/2.0',
    'Via: SIP/2.0/UDP [FD00:77::0011]:5060;branch=z9hG4bK6a;rport',
    'From: <sip:alice@[fd00:77:0:0:0:0:0:11]>;tag=a6',
    'To: <sip:bob@[2001:db8::10]:5070>',
    'Call-ID: v6@[fd00:77::11]',
    'CSeq: 1 INVITE',
    'Contact: <sip:alice@[fd00:77::11]:5060;transport=udp>',
    'Record-Route: <sip:[fd00:77::11]:5099;lr>',
    'Content-Type: application/sdp',
    `Content-Length: ${sdp.length}`,
    '',
    sdp,
  ]);
  const r = rw(msg, 'out', OUT6);
  assert.match(r.text, /^INVITE sip:bob@\[2001:db8::10\]:5070 SIP\/2\.0\r$/m, 'the far end is not ours');
  assert.match(r.text, /^Via: SIP\/2\.0\/UDP \[2001:db8::1\]:40000;branch=z9hG4bK6a;rport\r$/m);
  assert.match(r.text, /^From: <sip:alice@\[2001:db8::1\]:40000>;tag=a6\r$/m, 'no port = 5060 = ours; the new port is written');
  assert.match(r.text, /^Contact: <sip:alice@\[2001:db8::1\]:40000;transport=udp>\r$/m);
  assert.match(r.text, /^Record-Route: <sip:\[fd00:77::11\]:5099;lr>\r$/m, 'another port is not the flow');
  assert.match(r.text, /^Call-ID: v6@\[fd00:77::11\]\r$/m, 'RFC 3261 §8.1.1.4');
  assert.match(r.text, /^o=- 1 1 IN IP6 2001:db8::1\r$/m);
  assert.match(r.text, /^c=IN IP6 2001:db8::1\r$/m);
  const body = r.text.slice(r.text.indexOf('\r\n\r\n') + 4);
  assert.equal(Number(/Content-Length: (\d+)/.exec(r.text)![1]), Buffer.byteLength(body, 'latin1'));
  assert.deepEqual(new Set(r.fields), new Set(['via', 'from', 'contact', 'sdp_o', 'sdp_c', 'content_length']));
  assert.deepEqual(r.media, [{ index: 0, media: 'audio', privatePort: 6000, publicPort: 6000, rtcpPrivatePort: 6001, rtcpPublicPort: 6001 }]);
});

test('WAN→LAN IPv6 200: Via sent-by, rport=, received= bare or bracketed as it came (RFC 3261 §18.2.1, RFC 3581 §4, RFC 5118 §4.5)', () => {
  const cases: [string, string][] = [['2001:DB8:0::1', 'fd00:77::11'], ['[2001:db8::1]', '[fd00:77::11]']];
  for (const [received, back] of cases) {
    const msg = crlf(['SIP/2.0 200 OK', `Via: SIP/2.0/UDP [2001:db8::1]:40000;branch=z9hG4bK6b;rport=40000;received=${received}`, 'Via: SIP/2.0/UDP [2001:db8::1]:40000;branch=z9hG4bK6c;received=2001:db8::1',
      'From: <sip:alice@[2001:db8::1]:40000>;tag=a6', 'To: <sip:bob@[2001:db8::10]:5070>;tag=b6', 'Call-ID: v6', 'CSeq: 1 REGISTER', 'Contact: <sip:alice@[2001:db8::1]:40000>;expires=300', 'Content-Length: 0', '', '']);
    const r = rw(msg, 'in', IN6);
    assert.ok(r.text.includes(`\r\nVia: SIP/2.0/UDP [fd00:77::11]:5060;branch=z9hG4bK6b;rport=5060;received=${back}\r\n`), received);
    assert.match(r.text, /^Via: SIP\/2\.0\/UDP \[fd00:77::11\]:5060;branch=z9hG4bK6c;received=2001:db8::1\r$/m, 'received= of a lower Via is not ours to restore');
    assert.match(r.text, /^Contact: <sip:alice@\[fd00:77::11\]:5060>;expires=300\r$/m);
    assert.deepEqual(new Set(r.fields), new Set(['via', 'via_received', 'via_rport', 'from', 'contact']));
  }
});

test('RFC 5118 §4.3/§4.4: [2001:db8::10:5070] is an address, [2001:db8::10]:5070 a host and port; a port-less v6 host stays port-less', () => {
  const tr: Translation = { fromIp: '2001:db8::10', fromPort: 5070, toIp: 'fd00:77::10', toPort: 5070 };
  const msg = (uri: string) => crlf([`OPTIONS ${uri} SIP/2.0`, 'Via: SIP/2.0/UDP [2001:db8::20];branch=z9hG4bKp', 'From: <sip:x@[2001:db8::20]>;tag=1', 'To: <sip:y@[2001:db8::30]>', 'Call-ID: p', 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', '']);
  assert.equal(rw(msg('sip:[2001:db8::10:5070]'), 'in', tr).changed, false, '§4.3: another address');
  assert.match(rw(msg('sip:[2001:db8::10]:5070'), 'in', tr).text, /^OPTIONS sip:\[fd00:77::10\]:5070 SIP\/2\.0\r$/m, '§4.4');
  assert.equal(rw(msg('sip:user@2001:db8::10'), 'in', { ...tr, fromPort: 5060, toPort: 5060 }).changed, false, '§4.2: no brackets, no host');
  const def: Translation = { fromIp: '2001:db8::10', fromPort: 5060, toIp: 'fd00:77::10', toPort: 5060 };
  assert.match(rw(msg('sip:[2001:db8::10]'), 'in', def).text, /^OPTIONS sip:\[fd00:77::10\] SIP\/2\.0\r$/m, 'the default port stays implicit');
  assert.match(rw(msg('sip:[2001:db8::10]'), 'in', { ...def, toPort: 5062 }).text, /^OPTIONS sip:\[fd00:77::10\]:5062 SIP\/2\.0\r$/m);
});

test('an IPv4 translation leaves IPv6 hosts alone and an IPv6 one IPv4 hosts', () => {
  const msg = crlf(['REGISTER sip:pbx.example SIP/2.0', 'Via: SIP/2.0/UDP 10.77.0.12:5060;branch=z9hG4bKm', 'Via: SIP/2.0/UDP [fd00:77::11]:5060;branch=z9hG4bKn',
    'From: <sip:a@pbx.example>;tag=1', 'To: <sip:a@pbx.example>', 'Call-ID: m', 'CSeq: 1 REGISTER', 'Contact: <sip:a@10.77.0.12:5060>, <sip:a@[fd00:77::11]:5060>', 'Content-Length: 0', '', '']);
  const four = rw(msg, 'out', OUT);
  assert.match(four.text, /^Via: SIP\/2\.0\/UDP 203\.0\.113\.1:38699;branch=z9hG4bKm\r\nVia: SIP\/2\.0\/UDP \[fd00:77::11\]:5060;branch=z9hG4bKn\r$/m);
  assert.match(four.text, /^Contact: <sip:a@203\.0\.113\.1:38699>, <sip:a@\[fd00:77::11\]:5060>\r$/m);
  const six = rw(msg, 'out', OUT6);
  assert.match(six.text, /^Via: SIP\/2\.0\/UDP 10\.77\.0\.12:5060;branch=z9hG4bKm\r\nVia: SIP\/2\.0\/UDP \[2001:db8::1\]:40000;branch=z9hG4bKn\r$/m);
  assert.match(six.text, /^Contact: <sip:a@10\.77\.0\.12:5060>, <sip:a@\[2001:db8::1\]:40000>\r$/m);
});

test('WAN→LAN IPv6 SDP: the far end\'s IN IP6 media is read, in RFC 5952 form', () => {
  const sdp = crlf(['v=0', 'o=- 1 1 IN IP6 2001:db8::10', 's=-', 'c=IN IP6 2001:DB8::0010', 't=0 0', 'm=audio 30000 RTP/AVP 0', 'm=audio 30002 RTP/AVP 0', 'c=IN IP4 198.51.100.7', '']);
  const text = crlf(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP [2001:db8::1]:40000;branch=z9hG4bK6d', 'From: <sip:a@[2001:db8::1]:40000>;tag=1', 'To: <sip:b@[2001:db8::10]>;tag=2', 'Call-ID: s6', 'CSeq: 1 INVITE', 'Content-Type: application/sdp', `Content-Length: ${sdp.length}`, '', sdp]);
  const b = Buffer.from(text, 'latin1');
  const p = parseSip(b, 0, b.length);
  assert.ok(p.ok);
  const six = rewriteSip(b, 0, b.length, p.msg, 'in', IN6);
  assert.ok(six.ok);
  assert.deepEqual(six.remote, [{ ip: '2001:db8::10', port: 30000, rtcpPort: 30001 }, undefined], 'IPv4 media is no pinhole of an IPv6 call');
  const four = rewriteSip(b, 0, b.length, p.msg, 'in', IN);
  assert.ok(four.ok);
  assert.deepEqual(four.remote, [undefined, { ip: '198.51.100.7', port: 30002, rtcpPort: 30003 }], 'and the other way round, as before');
});

test('rewriteSip (SDP translated and read from its bytes, Content-Type matched from its bytes) answers as the string-based version did, over 24000 mutated messages (both directions, both third-party policies)', () => {
  const answer = crlf([
    'SIP/2.0 200 OK',
    'Via: SIP/2.0/UDP 203.0.113.1:38699;branch=z9hG4bK776;rport=38699;received=203.0.113.1',
    'From: <sip:100@203.0.113.1:38699>;tag=a1',
    'To: <sip:200@203.0.113.10>;tag=b2',
    'Call-ID: c1@10.77.0.12',
    'CSeq: 1 INVITE',
    'Contact: <sip:200@203.0.113.10:5080>',
    'Content-Type: Application/SDP ; charset=x',
    'Content-Length: 168',
    '',
    'v=0\r\no=- 1 1 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\na=rtcp:7001\r\nm=video 7002/2 RTP/AVP 96\r\nc=IN IP4 198.51.100.9/127\r\n',
  ]);
  const seeds = [INVITE, answer, INVITE.replace('Content-Type: application/sdp', 'c: application/sdp\t'), INVITE.replace(/\r\n/g, '\n')].map((s) => Buffer.from(s, 'latin1'));
  const r = rng(21);
  const map = (_ip: string, p: number) => (p % 97 === 0 ? undefined : p + 7);
  let compared = 0, rewritten = 0;
  for (let i = 0; i < 24000; i++) {
    const b = i < seeds.length ? seeds[i]! : mutate(seeds[i % seeds.length]!, r);
    const p = parseSip(b, 0, b.length);
    if (!p.ok) continue;
    for (const [dir, tr] of [['out', OUT], ['in', IN]] as const) {
      for (const third of ['block', 'allow'] as const) {
        const r = rewriteSip(b, 0, b.length, p.msg, dir, tr, map, third);
        // `frame` is new (the buffer written with headroom for the packet's headers); none without headroom
        if (r.ok) assert.equal(r.frame, undefined);
        const got = r.ok ? (({ frame: _f, ...rest }) => rest)(r) : r;
        const want = rewriteSipReference(b, 0, b.length, p.msg, dir, tr, map, third);
        assert.deepEqual(got, want, `${dir} ${third}: ${JSON.stringify(b.toString('latin1'))}`);
        compared++;
        if (got.ok && got.payload) rewritten++;
      }
    }
  }
  assert.ok(compared > 12000 && rewritten > 5000, `compared ${compared}, rewritten ${rewritten}: the mutations are not reaching the rewriter`);
});
