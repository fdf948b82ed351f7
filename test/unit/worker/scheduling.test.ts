/**
 * config worker-scheduling: the native threadSched sets the calling thread's policy alone
 * (sched_setscheduler(0, ...) on Linux), which is what lets a worker run as SCHED_BATCH while the
 * main thread (control socket, metrics) keeps SCHED_OTHER. Read back from /proc/thread-self/stat.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { native } from '../../../src/native/binding';

/** the calling thread's scheduling policy: field 41 of /proc/thread-self/stat (proc(5)), counted after the ')' that ends comm */
export function threadPolicy(stat = readFileSync('/proc/thread-self/stat', 'utf8')): number {
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3]);
}

test('threadSched sets SCHED_BATCH on the calling thread only, and refuses an unknown policy with its errno', async () => {
  assert.equal(threadPolicy(), 0, 'the test runner starts as SCHED_OTHER');
  const bindingPath = require.resolve('../../../src/native/binding');
  const code = `
    const { parentPort } = require('node:worker_threads');
    const { readFileSync } = require('node:fs');
    const policy = () => { const s = readFileSync('/proc/thread-self/stat', 'utf8'); return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[38]); };
    const nb = require(${JSON.stringify(bindingPath)}).native();
    const before = policy();
    const set = nb.threadSched(3, 0);
    const bad = nb.threadSched(99, 0);
    parentPort.postMessage({ before, set, after: policy(), bad });`;
  const w = new Worker(code, { eval: true });
  const got = await new Promise<{ before: number; set: number; after: number; bad: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
  await w.terminate();
  assert.deepEqual(got, { before: 0, set: 0, after: 3, bad: 22 }, 'SCHED_BATCH (3) in the worker; policy 99: EINVAL');
  assert.equal(threadPolicy(), 0, 'the main thread is left as it was');
  assert.equal(native().threadSched(0, 5), 22, 'SCHED_OTHER takes priority 0 only: EINVAL, nothing changed');
  assert.equal(threadPolicy(), 0);
});
