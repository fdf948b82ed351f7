import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as sdpTransform from 'sdp-transform';
import { rewriteSdp } from '../../../src/sdp/rewrite';
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
