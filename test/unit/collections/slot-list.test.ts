import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlotList } from '../../../src/collections/slot-list';

test('SlotList: a walk in slices visits every entry once a round, also the ones moved into a removed entry\'s slot', () => {
  const l = new SlotList<{ slot: number; n: number }>();
  const xs = Array.from({ length: 10 }, (_, n) => ({ slot: -1, n }));
  for (const x of xs) l.add(x);
  const seen: number[] = [];
  // remove every even one as it is visited, 3 a slice
  let ended = false;
  for (let k = 0; k < 10 && !ended; k++) ended = l.walk(3, (x) => { seen.push(x.n); if (x.n % 2 === 0) l.remove(x); });
  assert.ok(ended);
  assert.deepEqual(seen.slice().sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(l.values().map((x) => x.n).sort((a, b) => a - b), [1, 3, 5, 7, 9]);
  assert.ok(l.values().every((x, i) => x.slot === i));
  assert.deepEqual(xs.filter((x) => x.n % 2 === 0).map((x) => x.slot), [-1, -1, -1, -1, -1]);
  l.remove(xs[0]!); // not in the list: nothing
  assert.equal(l.length, 5);
  l.clear();
  assert.equal(l.length, 0);
  assert.ok(xs.every((x) => x.slot === -1));
});
