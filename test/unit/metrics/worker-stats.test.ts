import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerStats } from '../../../src/metrics/worker-stats';

test('per-packet counter keys: built from their parts once, the same string after, counted as if written out', () => {
  const s = new WorkerStats();
  assert.equal(s.key('p', 'out', 'accept', 'rewritten'), 'p|out|accept|rewritten');
  assert.equal(s.key('r', 'out', 'via'), 'r|out|via');
  assert.equal(s.key('o', 'in', '2xx', 'unchanged'), 'o|in|2xx|unchanged');
  assert.equal(s.key('o', 'in', '2xx'), 'o|in|2xx', 'three parts and four parts do not meet');
  for (let i = 0; i < 3; i++) s.inc(s.key('p', 'out', 'accept', 'rewritten'));
  s.inc('p|out|accept|rewritten');
  s.inc(s.key('r', 'out', 'via'), 2);
  assert.deepEqual(s.flush(0, 0, 0, 0).counters, { 'p|out|accept|rewritten': 4, 'r|out|via': 2 });
});
