import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * worker-gc: the flag applyWorkerGc sets at run time (before the first worker) reaches the workers'
 * heaps. A child process applies the mode, runs a worker that allocates and keeps objects for ~1.5 s
 * (scavenges and full collections), and reports the CPU of its other threads (V8's platform
 * threads, where concurrent marking and parallel scavenges run) once the worker has exited.
 */
function helperCpuTicks(mode: 'single-threaded' | 'concurrent'): number {
  const pool = join(__dirname, '../../../src/worker/pool.js');
  const script = `
    const fs = require('node:fs');
    const { Worker } = require('node:worker_threads');
    require(${JSON.stringify(pool)}).applyWorkerGc(${JSON.stringify(mode)});
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
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout.trim());
}

test("worker-gc 'single-threaded': a worker's heap is collected without V8's helper threads; 'concurrent' uses them", () => {
  const single = helperCpuTicks('single-threaded');
  const concurrent = helperCpuTicks('concurrent');
  // clock ticks (1/100 s) of every thread but the main one, the worker's own gone with it
  assert.ok(single <= 2, `single-threaded: helper threads ran ${single} ticks`);
  assert.ok(concurrent >= 10, `concurrent: helper threads ran only ${concurrent} ticks (is V8 still marking concurrently?)`);
});
