import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamMap } from '../../../src/tcp/stream-map';

/** A seeded PRNG so a failure reproduces. */
function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
}

/** Random non-overlapping edits over a stream, the stream rewritten whole, and the map. */
function scenario(seed: number) {
  const r = rng(seed);
  const stream = Buffer.from(Array.from({ length: 3000 }, (_, i) => 65 + (i % 26)));
  const map = new StreamMap();
  const edits: { pos: number; oldLen: number; text: Buffer }[] = [];
  let pos = Math.floor(r() * 20);
  while (pos < stream.length - 40) {
    // a message and its rewrite: longer, shorter or as long
    const oldLen = Math.min(1 + Math.floor(r() * 200), stream.length - pos - 1);
    const text = Buffer.from('x'.repeat(Math.max(1, oldLen + Math.floor(r() * 21) - 10)));
    edits.push({ pos, oldLen, text });
    map.add(pos, oldLen, text);
    pos += oldLen + 1 + Math.floor(r() * 120);
  }
  const parts: Buffer[] = [];
  let o = 0;
  for (const e of edits) { parts.push(stream.subarray(o, e.pos), e.text); o = e.pos + e.oldLen; }
  parts.push(stream.subarray(o));
  return { r, stream, map, whole: Buffer.concat(parts), edits };
}

test('any segmentation of the stream, retransmissions included, rewrites to the same bytes at contiguous sequence numbers', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const { r, stream, map, whole } = scenario(seed);
    for (let trial = 0; trial < 3; trial++) {
      const out: Buffer[] = [];
      let s = 0;
      let expectNew = 0;
      while (s < stream.length) {
        const len = 1 + Math.floor(r() * 300);
        const seg = stream.subarray(s, Math.min(stream.length, s + len));
        assert.equal(map.newPos(s), expectNew, `seed ${seed}: segment at ${s} starts where the previous one ended`);
        const t = map.transform(seg, s);
        out.push(t);
        expectNew += t.length;
        s += seg.length;
      }
      assert.equal(map.newPos(stream.length), whole.length);
      assert.ok(Buffer.concat(out).equals(whole), `seed ${seed}: segments rewrite to the whole-stream rewrite`);
    }
  }
});

test('an ACK maps back to the original position, never beyond what the sender sent', () => {
  for (let seed = 1; seed <= 50; seed++) {
    const { map, stream, edits } = scenario(seed);
    // offsets inside a message map one for one while both texts have them
    const clamped = (x: number) => edits.some((e) => x > e.pos && x < e.pos + e.oldLen && x - e.pos >= e.text.length);
    for (let x = 0; x <= stream.length; x++) if (!clamped(x)) assert.equal(map.origPos(map.newPos(x)), x, `seed ${seed} x ${x}`);
    for (const e of edits) {
      // a shrunk message: all of its text may arrive before the sender has sent the original's end
      if (e.text.length < e.oldLen) assert.equal(map.origPos(map.newPos(e.pos + e.oldLen), e.pos + e.oldLen - 1), e.pos + e.oldLen - 1);
      // a grown one: the tail past the original length acks just before the end
      if (e.text.length > e.oldLen + 1) assert.equal(map.origPos(map.newPos(e.pos) + e.oldLen + 1), e.pos + e.oldLen - 1);
    }
  }
});

test('a message spread over segments grows only the segment holding its end', () => {
  const m = new StreamMap();
  m.add(100, 3000, Buffer.alloc(3020, 'y'));
  const seg = (s: number, n: number) => m.transform(Buffer.alloc(n, 'a'), s).length;
  assert.equal(seg(100, 1448), 1448);
  assert.equal(seg(1548, 1448), 1448);
  assert.equal(seg(2996, 200), 220, 'the last 104 bytes of the message become 124, then 96 bytes follow');
});

test('pruning acknowledged edits keeps the mapping beyond the prune point', () => {
  const { map, stream } = scenario(7);
  const before = Array.from({ length: 500 }, (_, i) => map.newPos(2000 + i));
  const n = map.size;
  map.prune(1500);
  assert.ok(map.size < n);
  assert.deepEqual(Array.from({ length: 500 }, (_, i) => map.newPos(2000 + i)), before);
  assert.equal(map.transform(stream.subarray(2000, 2600), 2000).length, map.newPos(2600) - map.newPos(2000));
});

test('overlapping edits are refused', () => {
  const m = new StreamMap();
  m.add(10, 5, Buffer.from('abc'));
  assert.throws(() => m.add(12, 1, Buffer.from('z')), RangeError);
});
