/**
 * Integration: the NFQUEUE binding itself (native/sipalg.c behind src/native/queue.ts) on a real
 * queue in a namespace of its own: packets arrive in batches (one call into JS per wake-up), each
 * batch's verdicts leave together and each reaches its packet (accepted with a new payload, or
 * dropped), and the class's errors carry the project's codes.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../../src/lab/lab';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));

const NS = 'sipalg-qprobe';
const run = (args: string[]) => spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 30000 });

test('a burst arrives in batches; every verdict of a batch reaches its packet; close twice is safe; use after close and a second bind fail with their codes', { timeout: 60000 }, () => {
  run(['ip', 'netns', 'del', NS]);
  try {
    assert.equal(run(['ip', 'netns', 'add', NS]).status, 0);
    run(['ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
    const rule = run(['ip', 'netns', 'exec', NS, 'iptables', '-A', 'OUTPUT', '-p', 'udp', '-d', '127.0.0.1', '--dport', '9999', '-j', 'NFQUEUE', '--queue-num', '9']);
    assert.equal(rule.status, 0, rule.stderr);
    // a conntrack match: the namespace tracks connections only once a rule needs it (the riding requests update the burst's entry)
    const ctRule = run(['ip', 'netns', 'exec', NS, 'iptables', '-A', 'INPUT', '-m', 'conntrack', '--ctstate', 'NEW,ESTABLISHED', '-j', 'ACCEPT']);
    assert.equal(ctRule.status, 0, ctRule.stderr);
    const r = run(['ip', 'netns', 'exec', NS, process.execPath, join(ROOT, 'dist/src/lab/queue-probe.js'), '9', '9999', '300']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { batches: number[]; handled: number; received: string[]; second: string; closeTwice: string; afterClose: string; riding: { flow: { rode: boolean; errno: number }; nowhere: { rode: boolean; errno: number }; failedReadBack: number }; flowTimeout: number; outsideBatch: boolean };
    assert.equal(out.handled, 300, 'every packet reached JS once');
    assert.equal(out.batches.reduce((a, b) => a + b, 0), 300);
    assert.ok(Math.max(...out.batches) > 1, `one call into JS carried several packets (batches: ${out.batches.join(',')})`);
    assert.ok(out.batches.length < 300, 'fewer calls than packets');
    const expected = Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 10 !== 9).map((i) => `MSG-${i}`);
    assert.deepEqual([...out.received].sort(), [...expected].sort(), 'the accepted ones arrived with their new payloads, the dropped ones did not');
    assert.equal(out.second, 'SIPALG_ERR_QUEUE_OPEN', 'a second bind of a bound queue');
    assert.equal(out.closeTwice, 'ok');
    assert.equal(out.afterClose, 'SIPALG_ERR_QUEUE_CLOSED');
    // ctnetlink requests in the verdicts' datagram: applied by the kernel, a failure read back and given to its request
    assert.ok(out.riding.flow.rode && out.riding.nowhere.rode, 'both requests joined the batch');
    assert.ok(out.flowTimeout > 3000, `the burst's flow got the timeout that rode the datagram: ${out.flowTimeout}`);
    assert.equal(out.riding.flow.errno, 0, 'no failure for the existing flow');
    assert.equal(out.riding.nowhere.errno, 2, 'ENOENT for the flow that does not exist, back on the queue socket');
    assert.equal(out.riding.failedReadBack, 1, 'one failure read back');
    assert.equal(out.outsideBatch, false, 'outside a batch nothing rides (the caller sends it itself)');
  } finally {
    run(['ip', 'netns', 'del', NS]);
  }
});
