import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerStats } from '../../../src/metrics/worker-stats';

test('counters are slots named once: by parts (counter) or by key (inc), counted as if written out', () => {
  const s = new WorkerStats();
  const p = s.counter('p', 'out', 'accept', 'rewritten');
  assert.equal(s.counter('p', 'out', 'accept', 'rewritten'), p, 'the same parts find the same slot');
  assert.equal(s.id('p|out|accept|rewritten'), p, 'the slot is named by its key');
  assert.notEqual(s.counter('o', 'in', '2xx'), s.counter('o', 'in', '2xx', 'unchanged'), 'three parts and four parts do not meet');
  assert.equal(s.id('b|conntrack'), s.counter('b', 'conntrack'), 'two parts');
  for (let i = 0; i < 3; i++) s.add(p);
  s.inc('p|out|accept|rewritten');
  s.add(s.counter('r', 'out', 'via'), 2);
  s.inc('d|wan_readdressed', 0);
  assert.deepEqual(s.flush(0, 0, 0, 0).counters, { 'p|out|accept|rewritten': 4, 'r|out|via': 2, 'd|wan_readdressed': 0 }, 'a count of 0 still names its series; slots not counted are left out');
  assert.deepEqual(s.flush(0, 0, 0, 0).counters, {}, 'a flush starts the counts again');
  s.add(p);
  assert.deepEqual(s.flush(0, 0, 0, 0).counters, { 'p|out|accept|rewritten': 1 });
});

test('the slots grow past the first 64 counters without losing counts', () => {
  const s = new WorkerStats();
  for (let i = 0; i < 300; i++) s.inc(`d|event_${i}`, i);
  s.inc('d|event_7');
  const c = s.flush(0, 0, 0, 0).counters;
  assert.equal(Object.keys(c).length, 300);
  assert.equal(c['d|event_299'], 299);
  assert.equal(c['d|event_7'], 8);
});
