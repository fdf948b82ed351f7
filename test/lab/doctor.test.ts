/**
 * `sip-alg doctor` (issue 22) on lab routers, and the daemon's refusal to start beside the kernel's
 * own SIP helper: real namespaces, the project's rules and daemon, real iptables.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { prepare } from '../../src/lab/media';
import { ROOT, type Lab } from '../../src/lab/lab';
import type { Check } from '../../src/cli/doctor';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));

const doctor = (lab: Lab) => {
  const r = lab.run(lab.router, process.execPath, [join(ROOT, 'bin/sip-alg'), 'doctor', '--json', '--wan', 'wan0', '--queues', '0:1', '--control-socket', lab.controlSocket, '--state-dir', lab.dir]);
  return { code: r.code, checks: JSON.parse(r.stdout || '[]') as Check[], stderr: r.stderr };
};
const failed = (checks: Check[]) => checks.filter((c) => c.status !== 'ok').map((c) => c.name);

test('doctor on a healthy lab router: every check ok, exit 0', { timeout: 120000 }, async () => {
  const { lab } = await prepare('sdc1', 1, 'alg');
  try {
    const r = doctor(lab);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.checks.length >= 12, `${r.checks.length} checks`);
    assert.deepEqual(failed(r.checks), [], JSON.stringify(r.checks, null, 1));
  } finally {
    await lab.close();
  }
});

test('the kernel\'s CT --helper sip rule beside the project\'s: doctor fails that check naming the rule and how to remove it; the daemon refuses to start (exit 2), and starts with kernel-helper-policy warn', { timeout: 120000 }, async () => {
  const { lab } = await prepare('sdc2', 1, 'alg');
  try {
    assert.equal(lab.run(lab.router, 'iptables', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', '5060', '-j', 'CT', '--helper', 'sip']).code, 0);
    const r = doctor(lab);
    assert.equal(r.code, 1);
    assert.deepEqual(failed(r.checks), ['kernel-helper']);
    const c = r.checks.find((x) => x.name === 'kernel-helper')!;
    assert.match(c.detail, /-A PREROUTING -p udp -m udp --dport 5060 -j CT --helper sip/);
    assert.match(c.fix ?? '', /iptables -t raw -D PREROUTING -p udp -m udp --dport 5060 -j CT --helper sip/);
    const second = ['run', '--wan', 'wan0', '--queues', '5:5', '--control-socket', join(lab.dir, 'second.sock'), '--state-dir', join(lab.dir, 's2'), '--metrics-listen', '127.0.0.1:9479'];
    const refused = lab.run(lab.router, process.execPath, [join(ROOT, 'bin/sip-alg'), ...second], 20000);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /kernel-helper-policy: the kernel's own SIP helper is attached to the SIP ports: iptables -t raw -A PREROUTING .*--helper sip/);
    const warned = lab.start(lab.router, process.execPath, [join(ROOT, 'bin/sip-alg'), ...second, '--kernel-helper-policy', 'warn']);
    let log = '';
    warned.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const deadline = Date.now() + 15000;
    while (!/sip-alg running/.test(log) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    assert.match(log, /kernel-helper-policy warn/);
    assert.match(log, /sip-alg running/);
  } finally {
    await lab.close();
  }
});

test('doctor on a router with no NAT on the WAN and no daemon: those checks fail with their fix', { timeout: 120000 }, async () => {
  const { lab, daemon } = await prepare('sdc3', 1, 'alg');
  try {
    lab.run(lab.router, 'iptables', ['-t', 'nat', '-F', 'POSTROUTING']);
    daemon!.kill('SIGKILL');
    await new Promise((res) => setTimeout(res, 500));
    const r = doctor(lab);
    assert.equal(r.code, 1);
    assert.deepEqual(failed(r.checks).sort(), ['daemon', 'metrics', 'nat']);
    assert.match(r.checks.find((x) => x.name === 'nat')!.fix ?? '', /iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE/);
  } finally {
    await lab.close();
  }
});
