import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { DAEMON_NODE_FLAGS } from '../../../src/lab/lab';
import { gcMode } from '../../../src/worker/pool';

/**
 * CPU ticks of a node process's threads other than its main thread (V8's platform threads: where
 * concurrent marking and parallel scavenges run) after a worker thread allocated and kept objects
 * for ~1.5 s (scavenges and full collections) and exited.
 */
function helperCpuTicks(nodeFlags: readonly string[]): number {
  const script = `
    const fs = require('node:fs');
    const { Worker } = require('node:worker_threads');
    const w = new Worker(\`
      const keep = []; let x;
      const end = Date.now() + 1500;
      while (Date.now() < end) {
        for (let i = 0; i < 1000; i++) { x = { a: i, b: [i, i + 1], s: 'k' + i }; if ((i & 7) === 0) keep.push(x); }
        if (keep.length > 200000) keep.splice(0, 100000);
      }\`, { eval: true });
    w.on('exit', () => {
      let ticks = 0;
      for (const t of fs.readdirSync('/proc/self/task')) {
        if (Number(t) === process.pid) continue;
        const st = fs.readFileSync('/proc/self/task/' + t + '/stat', 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        ticks += Number(f[11]) + Number(f[12]);
      }
      console.log(ticks);
    });`;
  const r = spawnSync(process.execPath, [...nodeFlags, '-e', script], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout.trim());
}

test("the daemon's node flags: a worker's heap is collected without V8's helper threads; without them V8 marks on helper threads", () => {
  const single = helperCpuTicks(DAEMON_NODE_FLAGS);
  const concurrent = helperCpuTicks([]);
  // clock ticks (1/100 s) of every thread but the main one (the worker's own left with it)
  assert.ok(single <= 2, `with ${DAEMON_NODE_FLAGS.join(' ')}: helper threads ran ${single} ticks`);
  assert.ok(concurrent >= 10, `without: helper threads ran only ${concurrent} ticks (does V8 still mark concurrently?)`);
});

test('gcMode reads node\'s flags: the last of --single-threaded-gc and --no-single-threaded-gc wins', () => {
  assert.equal(gcMode([]), 'concurrent');
  assert.equal(gcMode(DAEMON_NODE_FLAGS), 'single-threaded');
  assert.equal(gcMode(['--single-threaded-gc', '--perf-basic-prof', '--no-single-threaded-gc']), 'concurrent');
  assert.equal(gcMode(['--no-single-threaded-gc', '--single_threaded_gc']), 'single-threaded');
});
