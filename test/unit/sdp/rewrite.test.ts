import { test } from 'node:test';
import { mutations } from '../../helpers/mutate';
import assert from 'node:assert/strict';
import * as sdpTransform from 'sdp-transform';
import { isPrivateV4, isPrivateV6, rewriteSdp } from '../../../src/sdp/rewrite';
import { rewriteSdpReference } from './rewrite-reference';
import { crlf, SDP_OFFER } from '../../helpers/fixtures';

const PRIV = '10.77.0.12', PUB = '203.0.113.1';

test('o=, session c= and m= are translated; sdp-transform reads the result as expected', () => {
  const r = rewriteSdp(SDP_OFFER, PRIV, PUB, (_ip, p) => p + 100);
  assert.ok(r.ok);
  const s = sdpTransform.parse(r.text);
  assert.equal(s.origin?.address, PUB);
  assert.equal(s.connection?.ip, PUB);
  assert.equal(s.media[0]!.port, 6100);
  assert.deepEqual(r.media, [{ index: 0, media: 'audio', privatePort: 6000, publicPort: 6100, rtcpPrivatePort: 6001, rtcpPublicPort: 6101 }]);
  // untouched lines are byte for byte
  assert.ok(r.text.includes('\r\na=rtpmap:0 PCMU/8000\r\n'));
  assert.ok(r.text.includes('\r\ns=-\r\nc='));
});

test('several media, media-level c=, a=rtcp with address (RFC 3605), a rejected stream and another host', () => {
  const sdp = crlf([
    'v=0', 'o=- 1 1 IN IP4 10.77.0.12', 's=call', 'c=IN IP4 198.51.100.50', 't=0 0',
    'm=audio 40000 RTP/AVP 0 8', 'c=IN IP4 10.77.0.12', 'a=rtcp:40001 IN IP4 10.77.0.12', 'a=sendrecv',
    'm=video 0 RTP/AVP 96', 'c=IN IP4 10.77.0.12',
    'm=audio 42000 RTP/AVP 0', 'a=rtcp:42005',
    'm=audio 44000 RTP/AVP 0', 'c=IN IP4 10.77.0.12', 'a=rtcp:44009',
    '',
  ]);
  const map = new Map([[40000, 50000], [44000, 50002], [44009, 50004]]);
  const r = rewriteSdp(sdp, PRIV, PUB, (_ip, p) => map.get(p));
  assert.ok(r.ok);
  const s = sdpTransform.parse(r.text);
  assert.equal(s.connection?.ip, '198.51.100.50', 'session c= of another host stays');
  assert.equal(s.media[0]!.port, 50000);
  assert.equal(s.media[0]!.connection?.ip, PUB);
  assert.deepEqual(s.media[0]!.rtcp, { port: 50001, netType: 'IN', ipVer: 4, address: PUB });
  assert.equal(s.media[1]!.port, 0, 'port 0 = rejected stream (RFC 3264 §6) is left alone');
  assert.equal(s.media[2]!.port, 42000, 'media whose address is another host is left alone');
  assert.equal(s.media[2]!.rtcp?.port, 42005);
  assert.equal(s.media[3]!.port, 50002);
  assert.equal(s.media[3]!.rtcp?.port, 50004, 'a non-adjacent RTCP port gets its own public port');
});

test('hold with c=0.0.0.0 (RFC 3264 §8.4) is not touched; LF-only line ends are kept', () => {
  const sdp = 'v=0\no=- 2 2 IN IP4 10.77.0.12\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 6000 RTP/AVP 0\na=sendonly\n';
  const r = rewriteSdp(sdp, PRIV, PUB, (_ip, p) => p);
  assert.ok(r.ok);
  assert.equal(r.text, sdp.replace('IN IP4 10.77.0.12', 'IN IP4 203.0.113.1'));
});

test('bad SDP and exhausted ports are reported, not thrown', () => {
  assert.deepEqual(rewriteSdp('hello', PRIV, PUB, (_i, p) => p), { ok: false, reason: 'bad_sdp' });
  assert.deepEqual(rewriteSdp('v=0\r\nm=audio x RTP/AVP 0\r\n', PRIV, PUB, (_i, p) => p), { ok: false, reason: 'bad_sdp' });
  const r = rewriteSdp(SDP_OFFER, PRIV, PUB, () => undefined);
  assert.deepEqual(r, { ok: false, reason: 'ports_exhausted' });
});

test('third-party media on another LAN host: block leaves it and counts it; allow translates it and maps that host', () => {
  const sdp = crlf(['v=0', `o=- 1 1 IN IP4 ${PRIV}`, 's=-', `c=IN IP4 ${PRIV}`, 't=0 0', 'm=audio 6000 RTP/AVP 0', 'c=IN IP4 10.77.0.50', 'm=video 6002 RTP/AVP 96', 'c=IN IP4 198.51.100.9', '']);
  const seen: string[] = [];
  const blocked = rewriteSdp(sdp, PRIV, PUB, (ip, p) => { seen.push(`${ip}:${p}`); return p + 100; });
  assert.ok(blocked.ok);
  assert.equal(blocked.refusedThirdParty, 1, 'the gateway line; the public address is not a LAN host');
  assert.ok(blocked.text.includes('c=IN IP4 10.77.0.50'));
  assert.deepEqual(blocked.media, []);
  assert.equal(seen.length, 0);
  const allowed = rewriteSdp(sdp, PRIV, PUB, (ip, p) => { seen.push(`${ip}:${p}`); return p + 100; }, 'allow');
  assert.ok(allowed.ok);
  assert.equal(allowed.refusedThirdParty, 0);
  const s = sdpTransform.parse(allowed.text);
  assert.equal(s.media[0]!.connection?.ip, PUB);
  assert.equal(s.media[0]!.port, 6100);
  assert.equal(s.media[1]!.connection?.ip, '198.51.100.9', 'a public third party is left alone');
  assert.deepEqual(allowed.media.map((m) => [m.privateIp, m.privatePort, m.publicPort]), [['10.77.0.50', 6000, 6100]]);
  assert.deepEqual(seen, ['10.77.0.50:6000']);
});

const PRIV6 = 'fd00:77::11', PUB6 = '2001:db8::1';

test('IN IP6 (RFC 4566 §5.2, §5.7; RFC 3605): o=, c= and a=rtcp matched by value, written in RFC 5952 form; m= ports mapped', () => {
  // RFC 5118 §4.6-like offer, with the phone's address written in three different forms
  const sdp = crlf(['v=0', 'o=assistant 971731711378798081 0 IN IP6 FD00:77::0011', 's=Live video feed', 'c=IN IP6 fd00:77:0:0:0:0:0:11', 't=0 0',
    'm=audio 6000 RTP/AVP 0', 'a=rtcp:6001 IN IP6 [fd00:77::11]', 'a=rtcp-mux', 'm=video 6002 RTP/AVP 96', 'a=rtcp:6009 IN IP6 fd00:77::11', '']);
  const seen: string[] = [];
  const r = rewriteSdp(sdp, PRIV6, '2001:DB8:0::1', (ip, p) => { seen.push(`${ip} ${p}`); return p + 100; });
  assert.ok(r.ok);
  assert.equal(r.text, crlf(['v=0', `o=assistant 971731711378798081 0 IN IP6 ${PUB6}`, 's=Live video feed', `c=IN IP6 ${PUB6}`, 't=0 0',
    'm=audio 6100 RTP/AVP 0', `a=rtcp:6101 IN IP6 ${PUB6}`, 'a=rtcp-mux', 'm=video 6102 RTP/AVP 96', `a=rtcp:6109 IN IP6 ${PUB6}`, '']),
    'a bracketed address is not SDP syntax (RFC 4566 §9 IP6-address) but is still the private one: written as the public one, in SDP form');
  assert.deepEqual(seen, [`${PRIV6} 6000`, `${PRIV6} 6002`, `${PRIV6} 6009`], 'the port mapper sees the canonical private address');
  assert.deepEqual(r.media.map((m) => [m.privatePort, m.publicPort, m.rtcpPrivatePort, m.rtcpPublicPort, m.privateIp]), [[6000, 6100, 6001, 6101, undefined], [6002, 6102, 6009, 6109, undefined]]);
  const s = sdpTransform.parse(r.text);
  assert.deepEqual(s.origin && [s.origin.ipVer, s.origin.address], [6, PUB6]);
  assert.deepEqual(s.connection, { version: 6, ip: PUB6 });
  assert.deepEqual(s.media[1]!.rtcp, { port: 6109, netType: 'IN', ipVer: 6, address: PUB6 });
});

test('one family per translation: IPv6 leaves IN IP4 lines and their m= alone, IPv4 leaves IN IP6 ones (RFC 5118 §4.8)', () => {
  const sdp = crlf(['v=0', 'o=- 1 1 IN IP4 10.77.0.12', 's=-', 'c=IN IP4 10.77.0.12', 't=0 0',
    'm=audio 6000 RTP/AVP 0', 'a=rtcp:6001 IN IP4 10.77.0.12',
    'm=audio 7000 RTP/AVP 0', 'c=IN IP6 fd00:77::11', 'a=rtcp:7001 IN IP6 fd00:77::11', '']);
  const four = rewriteSdp(sdp, PRIV, PUB, (_ip, p) => p + 100);
  assert.ok(four.ok);
  assert.equal(four.text, crlf(['v=0', `o=- 1 1 IN IP4 ${PUB}`, 's=-', `c=IN IP4 ${PUB}`, 't=0 0',
    'm=audio 6100 RTP/AVP 0', `a=rtcp:6101 IN IP4 ${PUB}`,
    'm=audio 7000 RTP/AVP 0', 'c=IN IP6 fd00:77::11', 'a=rtcp:7001 IN IP6 fd00:77::11', '']), 'the IPv6 media section is not on the session address');
  assert.deepEqual(four.media.map((m) => m.index), [0]);
  const six = rewriteSdp(sdp, PRIV6, PUB6, (_ip, p) => p + 100);
  assert.ok(six.ok);
  assert.equal(six.text, crlf(['v=0', 'o=- 1 1 IN IP4 10.77.0.12', 's=-', 'c=IN IP4 10.77.0.12', 't=0 0',
    'm=audio 6000 RTP/AVP 0', 'a=rtcp:6001 IN IP4 10.77.0.12',
    'm=audio 7100 RTP/AVP 0', `c=IN IP6 ${PUB6}`, `a=rtcp:7101 IN IP6 ${PUB6}`, '']));
  assert.deepEqual(six.media.map((m) => m.index), [1]);
  // IPv4 a=rtcp address inside IPv6 media: the port is the media's, the address not ours
  const mixed = crlf(['v=0', `o=- 1 1 IN IP6 ${PRIV6}`, 's=-', `c=IN IP6 ${PRIV6}`, 't=0 0', 'm=audio 6000 RTP/AVP 0', 'a=rtcp:6001 IN IP4 10.77.0.12', '']);
  const m = rewriteSdp(mixed, PRIV6, PUB6, (_ip, p) => p + 100);
  assert.ok(m.ok);
  assert.ok(m.text.includes('\r\na=rtcp:6101 IN IP4 10.77.0.12\r\n'));
  // from and to of different families: nothing is translated, nothing mapped
  const none = rewriteSdp(mixed, PRIV6, PUB, () => { throw new Error('no mapping expected'); });
  assert.ok(none.ok);
  assert.equal(none.text, mixed);
  assert.deepEqual(none.media, []);
});

test('IPv6 hold (c=IN IP6 ::, RFC 3264 §8.4 by analogy) and a rejected stream are left alone; IP6 multicast /n is kept', () => {
  const sdp = crlf(['v=0', `o=- 2 2 IN IP6 ${PRIV6}`, 's=-', 'c=IN IP6 ::', 't=0 0', 'm=audio 6000 RTP/AVP 0', 'a=sendonly',
    'm=video 0 RTP/AVP 96', `c=IN IP6 ${PRIV6}`, 'm=audio 8000 RTP/AVP 0', 'c=IN IP6 FF15::101/3', '']);
  const r = rewriteSdp(sdp, PRIV6, PUB6, (_ip, p) => p + 1);
  assert.ok(r.ok);
  assert.equal(r.text, sdp.replace(`IN IP6 ${PRIV6}\r\ns=-`, `IN IP6 ${PUB6}\r\ns=-`).replace(`c=IN IP6 ${PRIV6}`, `c=IN IP6 ${PUB6}`));
  assert.deepEqual(r.media, []);
});

test('isPrivateV6: unique local fc00::/7 (RFC 4193) and link-local fe80::/10 (RFC 4291 §2.5.6)', () => {
  for (const a of ['fc00::1', 'fd00:77::11', 'FDFF:ffff::', 'fe80::1', 'febf:ffff::1', 'FE80:0:0:0:0:0:0:1']) assert.ok(isPrivateV6(a), a);
  for (const a of ['fec0::1', 'fe00::1', 'fbff::1', '2001:db8::1', '::1', '::', 'ff02::1', '10.0.0.1', '[fd00::1]', 'fd00::1%eth0', 'pbx.example']) assert.ok(!isPrivateV6(a), a);
  assert.ok(isPrivateV4('10.1.2.3') && !isPrivateV4('fd00::1'));
});

test('IPv6 third-party media: block counts a ULA or link-local host, allow maps it under its canonical address; public hosts stay', () => {
  const sdp = crlf(['v=0', `o=- 1 1 IN IP6 ${PRIV6}`, 's=-', `c=IN IP6 ${PRIV6}`, 't=0 0',
    'm=audio 6000 RTP/AVP 0', 'c=IN IP6 FD00:77::0050', 'a=rtcp:6005',
    'm=audio 6100 RTP/AVP 0', 'c=IN IP6 fe80::2',
    'm=video 6002 RTP/AVP 96', 'c=IN IP6 2001:db8:ffff::9', '']);
  const seen: string[] = [];
  const map = (ip: string, p: number) => { seen.push(`${ip} ${p}`); return p + 100; };
  const blocked = rewriteSdp(sdp, PRIV6, PUB6, map);
  assert.ok(blocked.ok);
  assert.equal(blocked.refusedThirdParty, 2);
  assert.equal(blocked.text, sdp.replace(`IN IP6 ${PRIV6}\r\ns=-\r\nc=IN IP6 ${PRIV6}`, `IN IP6 ${PUB6}\r\ns=-\r\nc=IN IP6 ${PUB6}`));
  assert.deepEqual(seen, []);
  const allowed = rewriteSdp(sdp, PRIV6, PUB6, map, 'allow');
  assert.ok(allowed.ok);
  assert.equal(allowed.refusedThirdParty, 0);
  assert.deepEqual(allowed.media.map((m) => [m.privateIp, m.privatePort, m.publicPort, m.rtcpPrivatePort, m.rtcpPublicPort]), [['fd00:77::50', 6000, 6100, 6005, 6105], ['fe80::2', 6100, 6200, 6101, 6201]]);
  assert.deepEqual(seen, ['fd00:77::50 6000', 'fd00:77::50 6005', 'fe80::2 6100'], 'the mapper sees the canonical third-party address');
  const s = sdpTransform.parse(allowed.text);
  assert.deepEqual(s.media.map((m) => [m.connection?.ip, m.port]), [[PUB6, 6100], [PUB6, 6200], ['2001:db8:ffff::9', 6002]]);
});

test('rewriteSdp (lines scanned in place, untouched text copied) answers as the line-by-line rebuild did, over 40000 mutated bodies', () => {
  const seeds = [
    SDP_OFFER,
    'v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtcp:4001 IN IP4 10.0.0.5\r\nm=video 4002/2 RTP/AVP 96\r\nc=IN IP4 10.0.0.9\r\na=rtcp:4010\r\nm=audio 0 RTP/AVP 0\r\n',
    'v=0\no=- 1 1 IN IP4 10.0.0.5\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 4000 RTP/AVP 0\na=sendonly\n\n',
    'v=0\r\no=- 2 2 IN IP6 fd00::5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP6 fd00::5\r\na=rtcp:5001 IN IP6 fd00::5\r\nm=audio 5002 RTP/AVP 0',
  ];
  const alphabet = ' \r\n=/:.0123456789amocIPN4\t\v\u00a0';
  for (const s of mutations(seeds, alphabet, 40000, 11)) {
    const map = (_ip: string, p: number) => (p === 4010 ? undefined : p + 7);
    for (const [from, to] of [[PRIV, PUB], ['10.0.0.5', '203.0.113.7'], ['fd00::5', '2001:db8::7']] as const) {
      for (const third of ['block', 'allow'] as const) {
        assert.deepEqual(rewriteSdp(s, from, to, map, third), rewriteSdpReference(s, from, to, map, third), JSON.stringify([s, from, third]));
      }
    }
  }
});
