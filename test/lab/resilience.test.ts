/**
 * Registrations outliving the kernel's UDP timeouts, and a daemon killed mid-call.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Lab, phoneIp, PROVIDER_IP, SRC_LAB } from '../../src/lab/lab';
import { anchors, count, expectations } from '../../src/lab/media';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sippArgs = ['-nostdin', '-nr', '-timeout', '30s', '-timeout_error'];

test('a registered phone still gets its inbound call after an idle time longer than the kernel\'s UDP timeouts', { timeout: 180000 }, async () => {
  const lab = new Lab('sar1', 1);
  try {
    lab.up();
    // kernel UDP timeouts shortened to 5 s / 8 s in the router (seed 004: "SIP ALG timeout")
    assert.equal(lab.run(lab.router, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_udp_timeout=5', 'net.netfilter.nf_conntrack_udp_timeout_stream=8']).code, 0);
    assert.equal(lab.rules('install', ['--wan', 'wan0']).code, 0);
    const daemon = await lab.startDaemon([]);
    await lab.startKamailio();
    const reg = await lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/register.xml'), '-i', phoneIp(1), '-p', '5060', '-m', '1', '-s', 'phone1', `${PROVIDER_IP}:5060`, ...sippArgs]);
    assert.equal(reg.code, 0, reg.stdout.slice(-1000));
    await sleep(14000); // no packet on the flow for longer than both timeouts
    const entry = lab.conntrack(['-L', '-p', 'udp', '-s', phoneIp(1), '--dport', '5060']).split('\n').find((l) => l.includes(`dst=${PROVIDER_IP}`));
    assert.ok(entry, 'the signaling flow (and its NAT binding) is still there');
    assert.ok(Number(entry.split(/\s+/)[2]) > 200, `its timeout was raised to the registration's lifetime: ${entry}`);
    const uas = lab.start(lab.phone(1), 'sipp', ['-sn', 'uas', '-i', phoneIp(1), '-p', '5060', '-m', '1', '-nostdin', '-nr']);
    const uasDone = new Promise<number>((r) => { uas.once('exit', (c) => r(c ?? -1)); setTimeout(() => r(-2), 20000); });
    await sleep(300);
    const call = await lab.runAsync(lab.provider, 'sipp', ['-sn', 'uac', '-i', PROVIDER_IP, '-p', '5091', '-m', '1', '-s', 'phone1', `${PROVIDER_IP}:5060`, ...sippArgs]);
    assert.equal(call.code, 0, `inbound call after the idle time: ${call.stdout.slice(-800)}\n${daemon.log().slice(-1500)}`);
    assert.equal(await uasDone, 0);
  } finally {
    await lab.close();
  }
});

test('kill -9 mid-call: the call and its audio go on (fail-open bypass); a restarted daemon removes the anchors the dead one left', { timeout: 180000 }, async () => {
  const lab = new Lab('sar2', 1);
  try {
    lab.up();
    assert.equal(lab.rules('install', ['--wan', 'wan0', '--queues', '0:1']).code, 0);
    const daemon = await lab.startDaemon(['--queues', '0:1']);
    const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp and not port 5060');
    const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-rtp.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
    const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 30000); });
    await sleep(300);
    const call = lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`, ...sippArgs]);
    await sleep(2500);
    daemon.kill('SIGKILL');
    const r = await call;
    await uasDone;
    assert.equal(r.code, 0, `the call survived the kill: ${r.stdout.slice(-800)}`);
    const rx = count(await phone.stop(), `ip.dst==${phoneIp(1)} && udp.dstport==6000 && udp.srcport==7000`);
    assert.ok(rx >= 230, `audio kept flowing in the kernel: ${rx}`);
    const left = anchors(lab);
    assert.ok(left >= 1, 'the killed daemon left its anchor (the case to clean up)');
    await lab.startDaemon(['--queues', '0:1']);
    assert.equal(anchors(lab), 0, 'the restarted daemon removed the orphaned anchors');
    assert.equal(expectations(lab), 0, 'and with them their pinholes');
  } finally {
    await lab.close();
  }
});
