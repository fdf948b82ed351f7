import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyEdits, normalizeEdits, type Edit } from '../../../src/sip/edits';

test('normalizeEdits: sorted by start, stable, and of two overlapping edits the earlier one wins', () => {
  const edits: Edit[] = [
    { start: 30, end: 34, text: 'c' },
    { start: 0, end: 4, text: 'a' },
    { start: 10, end: 14, text: 'b1' },
    { start: 10, end: 12, text: 'b2' }, // same start as b1, pushed after it: b1 wins
    { start: 12, end: 16, text: 'x' }, // overlaps b1
    { start: 50, end: 50, text: 'd' },
  ];
  assert.deepEqual(normalizeEdits(edits).map((e) => e.text), ['a', 'b1', 'c', 'd']);
});

test('normalizeEdits: a list in reverse order comes out in order', () => {
  const edits: Edit[] = Array.from({ length: 20 }, (_, i) => ({ start: (19 - i) * 3, end: (19 - i) * 3 + 1, text: String(19 - i) }));
  assert.deepEqual(normalizeEdits(edits).map((e) => e.start), Array.from({ length: 20 }, (_, i) => i * 3));
});

test('applyEdits: edits in any order give the same bytes, everything else as it was', () => {
  const src = Buffer.from('Via: SIP/2.0/UDP 10.0.0.2:5060\r\nContact: <sip:a@10.0.0.2:5060>\r\n');
  const at = (s: string) => src.indexOf(s);
  const e1: Edit = { start: at('10.0.0.2:5060'), end: at('10.0.0.2:5060') + 13, text: '203.0.113.1:40000' };
  const e2: Edit = { start: at('10.0.0.2:5060>'), end: at('10.0.0.2:5060>') + 13, text: '203.0.113.1:40000' };
  const want = 'Via: SIP/2.0/UDP 203.0.113.1:40000\r\nContact: <sip:a@203.0.113.1:40000>\r\n';
  assert.equal(applyEdits(src, 0, src.length, [e1, e2]).toString('latin1'), want);
  assert.equal(applyEdits(src, 0, src.length, [e2, e1]).toString('latin1'), want);
  // headroom: the bytes land after it
  const framed = applyEdits(src, 0, src.length, [e2, e1], 28);
  assert.equal(framed.subarray(28).toString('latin1'), want);
});
