import { test } from 'node:test';
import assert from 'node:assert/strict';
import { remoteMedia, remoteMediaReference } from '../../../src/sdp/remote-media';
import { mutate, rng } from '../../helpers/mutate';
import { crlf } from '../../helpers/fixtures';

// the far end's answer with one media section per case (RFC 4566 §5.7 c=, §5.14 m=; RFC 3605 a=rtcp)
const ANSWER = crlf([
  'v=0', 'o=- 1 1 IN IP6 2001:db8::10', 's=-', 'c=IN IP6 2001:DB8:0:0::0010', 't=0 0',
  'm=audio 30000 RTP/AVP 0', // session c=, IPv6
  'm=audio 30002 RTP/AVP 0', 'a=rtcp:30009',
  'm=audio 30004 RTP/AVP 0', 'c=IN IP4 198.51.100.7', // media-level IPv4 overrides the session's IPv6
  'm=audio 0 RTP/AVP 0', // rejected
  'm=audio 30006 RTP/AVP 0', 'c=IN IP6 FF15::101/3', // IP6 multicast with a number of addresses
  '',
]);

test('family 6 reads IN IP6 media (RFC 5952 text); other-family and rejected streams are undefined', () => {
  assert.deepEqual(remoteMedia(ANSWER, 6), [
    { ip: '2001:db8::10', port: 30000, rtcpPort: 30001 },
    { ip: '2001:db8::10', port: 30002, rtcpPort: 30009 },
    undefined,
    undefined,
    { ip: 'ff15::101', port: 30006, rtcpPort: 30007 },
  ]);
});

test('family 4 (the default, as before) reads only IN IP4 media', () => {
  assert.deepEqual(remoteMedia(ANSWER), [undefined, undefined, { ip: '198.51.100.7', port: 30004, rtcpPort: 30005 }, undefined, undefined]);
  assert.deepEqual(remoteMedia(ANSWER, 4), remoteMedia(ANSWER));
  const v4 = crlf(['v=0', 'o=- 1 1 IN IP4 198.51.100.7', 's=-', 'c=IN IP4 198.51.100.7', 't=0 0', 'm=audio 4000 RTP/AVP 0', '']);
  assert.deepEqual(remoteMedia(v4), [{ ip: '198.51.100.7', port: 4000, rtcpPort: 4001 }]);
  assert.deepEqual(remoteMedia(v4, 6), [undefined]);
});

test('an IN IP6 line whose address is not one is not media', () => {
  const bad = crlf(['v=0', 'o=- 1 1 IN IP6 ::1', 's=-', 'c=IN IP6 fd00::zz', 't=0 0', 'm=audio 4000 RTP/AVP 0', '']);
  assert.deepEqual(remoteMedia(bad, 6), [undefined]);
});

test('the packet path\'s reading equals sdp-transform\'s (the reference) on real answers and 20000 mutations of them, both families', () => {
  const bases = [
    ANSWER,
    crlf(['v=0', 'o=- 1 1 IN IP4 203.0.113.10', 's=-', 'c=IN IP4 203.0.113.10', 't=0 0', 'm=audio 7000 RTP/AVP 8 101', 'a=rtpmap:8 PCMA/8000', 'a=rtcp:7001 IN IP4 203.0.113.10', 'm=video 7002 RTP/AVP 96', 'c=IN IP4 203.0.113.11/127', 'a=sendonly', '']),
    'v=0\nc=IN IP4 192.0.2.1\nm=audio 49170/2 RTP/AVP 0\nm=audio 0049 RTP/AVP 0\nm=audio 5000 RTP/AVP 0\na=rtcp:0\na=rtcp:5009\n',
    'v=0\rc=IN IP4 0.0.0.0\rm=audio 6000 RTP/AVP 0\r',
  ];
  const r = rng(4475);
  let compared = 0;
  for (const base of bases) {
    for (let i = 0; i < 5000; i++) {
      const text = i === 0 ? base : mutate(Buffer.from(base, 'latin1'), r).toString('latin1');
      for (const fam of [4, 6] as const) {
        assert.deepEqual(remoteMedia(text, fam), remoteMediaReference(text, fam), `family ${fam}: ${JSON.stringify(text)}`);
        compared++;
      }
    }
  }
  assert.equal(compared, 40000);
});
