import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSip, findHeader, headerName, screenSip } from '../../../src/sip/message';
import { crlf, INVITE, SEED_REGISTER_BEFORE } from '../../helpers/fixtures';

const parse = (s: string) => {
  const b = Buffer.from(s, 'latin1');
  return { b, r: parseSip(b, 0, b.length) };
};

test('request line, headers with offsets, body by Content-Length', () => {
  const { b, r } = parse(INVITE);
  assert.ok(r.ok);
  assert.equal(r.msg.method, 'INVITE');
  assert.equal(b.toString('latin1', r.msg.uriStart, r.msg.uriEnd), 'sip:pbx@203.0.113.10:5080');
  assert.equal(findHeader(b, r.msg, 'call-id'), '1-3865@10.77.0.12');
  assert.equal(r.msg.bodyEnd - r.msg.bodyStart, r.msg.contentLength);
  assert.ok(b.toString('latin1', r.msg.bodyStart, r.msg.bodyEnd).startsWith('v=0'));
});

test('status line and compact forms (RFC 3261 §7.3.3)', () => {
  const { b, r } = parse(crlf(['SIP/2.0 180 Ringing', 'v: SIP/2.0/UDP a;branch=z9hG4bK1', 'f: <sip:a@b>;tag=1', 't: <sip:c@d>', 'i: x', 'm: <sip:e@f>', 'l: 0', 'c: text/plain', '', '']));
  assert.ok(r.ok);
  assert.equal(r.msg.status, 180);
  assert.deepEqual(r.msg.headers.map((h) => h.name), ['via', 'from', 'to', 'call-id', 'contact', 'content-length', 'content-type']);
  assert.equal(findHeader(b, r.msg, 'call-id'), 'x');
});

test('folded header lines belong to the header above (RFC 3261 §7.3.1)', () => {
  const { b, r } = parse(crlf(['OPTIONS sip:a@b SIP/2.0', 'Subject: one', '  two', 'Content-Length: 0', '', '']));
  assert.ok(r.ok);
  assert.equal(findHeader(b, r.msg, 'subject'), 'one\r\n  two');
});

test('seed REGISTER parses; no Content-Length over UDP means the rest of the datagram (RFC 3261 §18.3)', () => {
  assert.ok(parse(SEED_REGISTER_BEFORE).r.ok);
  const { r } = parse(crlf(['MESSAGE sip:a@b SIP/2.0', 'Content-Type: text/plain', '', 'hello']));
  assert.ok(r.ok);
  assert.equal(r.msg.bodyEnd - r.msg.bodyStart, 5);
});

test('malformed classes get their reason', () => {
  const cases: [string, string][] = [
    ['\r\n\r\n', 'keepalive'],
    ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'not_sip'],
    ['\x16\x03\x01\x02\x00binary', 'not_sip'],
    ['INVITE sip:a@b SIP/2.0\r\nVia: x\r\nTo: y', 'truncated_headers'],
    ['INVITE sip:a@b SIP/2.0\r\nContent-Length: 99\r\n\r\nshort', 'bad_content_length'],
    ['INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n', 'bad_content_length'],
    ['INVITE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab', 'bad_content_length'],
    ['INVITE sip:a@b SIP/2.0\r\nNo colon here\r\n\r\n', 'bad_header'],
    ['SIP/2.0 99 Odd\r\n\r\n', 'bad_start_line'],
    ['INVITE sip:a@b SIP/3.0\r\n\r\n', 'bad_start_line'],
    ['INVITE sip:a@b SIP/2.0\r\n\0\0\0: x\r\n\r\n', 'bad_header'],
  ];
  for (const [text, reason] of cases) {
    const { r } = parse(text);
    assert.ok(!r.ok, JSON.stringify(text));
    assert.equal(r.reason, reason, JSON.stringify(text));
  }
});

test('a giant header is framed without trouble; too many headers are refused', () => {
  const big = crlf(['NOTIFY sip:a@b SIP/2.0', `X-Big: ${'a'.repeat(60000)}`, 'Content-Length: 0', '', '']);
  assert.ok(parse(big).r.ok);
  const many = crlf(['NOTIFY sip:a@b SIP/2.0', ...Array.from({ length: 300 }, (_, i) => `X-H${i}: v`), '', '']);
  const r = parse(many).r;
  assert.ok(!r.ok && r.reason === 'bad_header');
});

test('the screen judges junk from its first bytes, before any header is parsed', () => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  const screen = (s: string) => screenSip(b(s), 0, b(s).length);
  assert.equal(screen('\x16\x03\x01\x00\x05hello'), 'not_sip', 'a TLS record');
  // RFC 3261 §25.1: a method is any token, however long (RFC 4475 §3.1.1.2 sends one of 33 characters)
  assert.equal(screen('INVITEINVITEINVITEINVITE sip:a SIP/2.0\r\n\r\n'), undefined, 'a long method is a token');
  assert.equal(screen(`${'X'.repeat(70)} sip:a SIP/2.0\r\n\r\n`), 'not_sip', 'no token and SP in the first 64 octets');
  assert.equal(screen('OPTIONS sip:a SIP/2.0\r\nTo: "a\\\x00b" <sip:b@c>\r\n\r\n'), undefined, 'a NUL escaped in a quoted-pair');
  assert.equal(screen('OPTIONS sip:a SIP/2.0\r\nTo: a\x00b <sip:b@c>\r\n\r\n'), 'bad_header', 'a bare NUL');
  assert.equal(screen(' INVITE sip:a SIP/2.0\r\n\r\n'), 'not_sip');
  assert.equal(screen('INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nTo: <sip'), 'truncated_headers', 'no end of the header block');
  assert.equal(screen('OPTIONS sip:a SIP/2.0\r\nX: a\0b\r\n\r\n'), 'bad_header', 'NUL in a header (RFC 3261 §25.1)');
  assert.equal(screen('OPTIONS sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\na\0b'), undefined, 'NUL in a body is fine');
  assert.equal(screen('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'), undefined);
  assert.equal(screen('OPTIONS sip:a SIP/2.0\nContent-Length: 0\n\n'), undefined, 'bare LF line ends are tolerated');
  assert.equal(parseSip(b('INVITE sip:a@b SIP/2.0\r\nVia: x\r\nTo: <sip'), 0, 40).ok, false);
});

test('header names: known ones found from their bytes in any case, compact forms expanded, others lower-cased', () => {
  const at = (s: string) => { const b = Buffer.from(`xx${s}yy`, 'latin1'); return headerName(b, 2, 2 + s.length); };
  assert.deepEqual(['Via', 'VIA', 'v', 'V', 'Call-ID', 'call-id', 'i', 'Content-Length', 'l', 'Record-Route', 'CSeq', 'm', 'Max-Forwards'].map(at),
    ['via', 'via', 'via', 'via', 'call-id', 'call-id', 'call-id', 'content-length', 'content-length', 'record-route', 'cseq', 'contact', 'max-forwards']);
  assert.deepEqual(['X-Custom', 'Viz', 'Vi_', 'ViA', 'Contacts', 'To-'].map(at), ['x-custom', 'viz', 'vi_', 'via', 'contacts', 'to-']);
});
