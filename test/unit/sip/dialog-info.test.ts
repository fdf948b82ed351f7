/**
 * dialogInfo reads Call-ID, the From/To tags and CSeq from a message's bytes; the regular
 * expressions it replaced (kept here as the oracle) must find the same values in every message of
 * RFC 4475 (the torture corpus: folded lines, odd case and whitespace, escaped and odd tags) and in
 * variations of a message's From/To/CSeq built to differ only in those details.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dialogInfo, type DialogInfo } from '../../../src/sip/dialog-info';
import { findHeader, parseSip } from '../../../src/sip/message';
import { CORPUS } from '../../../src/lab/rfc4475';

/** the implementation before (stop 36), by regular expressions over the header values */
function oracle(b: Buffer, msg: Parameters<typeof findHeader>[1]): DialogInfo | undefined {
  const tag = (v: string | undefined) => {
    if (!v) return '';
    const gt = v.lastIndexOf('>');
    return /;\s*tag\s*=\s*([^;,\s]+)/i.exec(gt >= 0 ? v.slice(gt) : v)?.[1] ?? '';
  };
  const callId = findHeader(b, msg, 'call-id');
  const cseq = findHeader(b, msg, 'cseq');
  if (!callId || !cseq) return undefined;
  const m = /^(\d+)\s+([A-Za-z]+)/.exec(cseq);
  if (!m) return undefined;
  return { callId, fromTag: tag(findHeader(b, msg, 'from')), toTag: tag(findHeader(b, msg, 'to')), cseq: Number(m[1]), cseqMethod: m[2]!.toUpperCase() };
}

function check(b: Buffer, what: string): boolean {
  const p = parseSip(b, 0, b.length);
  if (!p.ok) return false;
  assert.deepEqual(dialogInfo(b, p.msg), oracle(b, p.msg), what);
  return true;
}

test('dialogInfo finds what the regular expressions found in every RFC 4475 message', () => {
  let parsed = 0;
  for (const f of readdirSync(CORPUS).filter((n) => n.endsWith('.dat'))) if (check(readFileSync(join(CORPUS, f)), f)) parsed++;
  assert.ok(parsed >= 30, `most of the corpus parses (${parsed})`);
});

test('dialogInfo: tags and CSeq in every form the grammar and the old reading allow', () => {
  const froms = ['<sip:a@x>;tag=abc', '<sip:a@x;tag=inuri>;tag=out', '"A;tag=no" <sip:a@x>', 'sip:a@x;tag=bare', '<sip:a@x> ; TAG = Spaced ;other', '<sip:a@x>;tag=;tag=second',
    '<sip:a@x>;tag=a,b', '<sip:a@x>;tag=\t', '<sip:a@x>;lr;tag=after-lr', '<sip:a@x>', '<sip:a@x>;tagx=1;tag=2', '<sip:a@x>;ta', '<sip:a@x>;tag', '<sip:a@x>;tag=\xa0nbsp', 'x>y;tag=z', ''];
  const cseqs = ['1 INVITE', '42 invite', '7\tRegister', '  3 BYE', '5 INVITE2', '5', 'x INVITE', '12345678901234567890 ACK', '9 FOO', '9 Ünvite', '0 message', '1  prack extra'];
  let n = 0;
  for (const from of froms) {
    for (const cseq of cseqs) {
      const text = `INVITE sip:b@y SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: ${from}\r\nTo: <sip:b@y>;tag=${n}\r\nCall-ID: c${n}@h\r\nCSeq: ${cseq}\r\nContent-Length: 0\r\n\r\n`;
      if (check(Buffer.from(text, 'latin1'), `From: ${JSON.stringify(from)} CSeq: ${JSON.stringify(cseq)}`)) n++;
    }
  }
  assert.equal(n, froms.length * cseqs.length);
  // no Call-ID, an empty one, no CSeq
  assert.equal(check(Buffer.from('BYE sip:b@y SIP/2.0\r\nCSeq: 1 BYE\r\n\r\n', 'latin1'), 'no Call-ID'), true);
  assert.equal(check(Buffer.from('BYE sip:b@y SIP/2.0\r\nCall-ID:\r\nCSeq: 1 BYE\r\n\r\n', 'latin1'), 'empty Call-ID'), true);
  assert.equal(check(Buffer.from('BYE sip:b@y SIP/2.0\r\nCall-ID: x\r\n\r\n', 'latin1'), 'no CSeq'), true);
  // folded From (RFC 3261 §7.3.1) and compact forms
  assert.equal(check(Buffer.from('BYE sip:b@y SIP/2.0\r\ni: x\r\nf: <sip:a@x>\r\n ;tag=folded\r\nt: <sip:b@y>\r\nCSeq: 1 BYE\r\n\r\n', 'latin1'), 'folded, compact'), true);
});
