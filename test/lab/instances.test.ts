/**
 * Issue 20 part 3: two daemons on one host, each in its own network namespace (a router each), with
 * the default control socket (`control-socket auto`: one per network namespace). `ip netns exec R
 * sip-alg calls` reaches R's daemon and no other; neither daemon took the other's socket.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Lab, PROVIDER_IP, ROOT, phoneIp } from '../../src/lab/lab';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('two daemons in two namespaces on one host: each one\'s CLI (default socket, run inside its namespace) answers for its own calls', { timeout: 120000 }, async (t) => {
  const labs = [new Lab('sia', 1), new Lab('sib', 1)];
  try {
    for (const lab of labs) {
      lab.up();
      const r = lab.rules('install', ['--wan', 'wan0', '--queues', '0:0', '--ports', '5060,5080']);
      assert.equal(r.code, 0, r.stderr);
      // the default control socket: no --control-socket (the lab's helper names one; 'auto' is the default)
      await lab.startDaemon(['--queues', '0:0', '--ports', '5060,5080', '--control-socket', 'auto', '--state-dir', 'off']);
    }
    const calls = (lab: Lab) => {
      const r = lab.run(lab.router, process.execPath, [join(ROOT, 'bin/sip-alg'), 'calls', '--json']);
      assert.equal(r.code, 0, `sip-alg calls in ${lab.router}: ${r.stderr}`);
      return JSON.parse(r.stdout || '[]') as { phone: string }[];
    };
    // a 6 s call through the first router only
    const [a, b] = labs as [Lab, Lab];
    a.start(a.provider, 'sipp', ['-sn', 'uas', '-i', PROVIDER_IP, '-p', '5080', '-nostdin']);
    await a.waitListening(a.provider, [5080]);
    const call = a.runAsync(a.phone(1), 'sipp', ['-sn', 'uac', '-i', phoneIp(1), '-p', '5060', '-m', '1', '-d', '6000', '-s', 'far', `${PROVIDER_IP}:5080`, '-nostdin', '-timeout', '30s', '-timeout_error'], 40000);
    await sleep(2000);
    const [inA, inB] = [calls(a), calls(b)];
    t.diagnostic(`sip-alg calls, run in ${a.router}: ${inA.length} call(s); in ${b.router}: ${inB.length}`);
    assert.equal(inA.length, 1, 'the first router\'s CLI shows its call');
    assert.equal(inA[0]!.phone, phoneIp(1));
    assert.equal(inB.length, 0, 'the second router\'s CLI reaches its own daemon, which has no call');
    assert.equal((await call).code, 0, 'the call completed');
    const stats = labs.map((l) => l.run(l.router, process.execPath, [join(ROOT, 'bin/sip-alg'), 'stats', '--json']));
    assert.ok(stats.every((s) => s.code === 0), `both daemons still answer: ${stats.map((s) => s.stderr).join(' | ')}`);
  } finally {
    for (const lab of labs) await lab.close();
  }
});
