/** The log's rate limit for lines that can come with every message. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logLimited } from '../../src/log';

test('logLimited: one line per interval and key, the next one saying how many were left out; other keys apart', () => {
  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((s: string) => { lines.push(s); return true; }) as typeof process.stderr.write;
  try {
    for (let t = 0; t < 1000; t += 10) logLimited('t-a', 1000, 'warn', 'pinholes refused', { n: t }, 5000 + t); // 100 in one interval
    logLimited('t-b', 1000, 'warn', 'other', {}, 5500);
    logLimited('t-a', 1000, 'warn', 'pinholes refused', { n: 1000 }, 6000);
    logLimited('t-a', 1000, 'warn', 'pinholes refused', { n: 2000 }, 7000);
    logLimited('t-a', 1000, 'debug', 'below the level', {}, 9000);
  } finally {
    process.stderr.write = write;
  }
  assert.equal(lines.length, 4);
  assert.match(lines[0]!, /msg="pinholes refused" n=0\n$/);
  assert.match(lines[1]!, /msg=other\n$/);
  assert.match(lines[2]!, /n=1000 suppressed=99\n$/, 'the 99 left out are counted');
  assert.match(lines[3]!, /n=2000\n$/, 'none left out since');
});
