/**
 * Registrations outliving the kernel's UDP timeouts, and a daemon killed mid-call.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { metricSum, phoneIp, PROVIDER_IP, SRC_LAB } from '../../src/lab/lab';
import { anchors, count, expectations, prepare } from '../../src/lab/media';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sippArgs = ['-nostdin', '-nr', '-timeout', '30s', '-timeout_error'];

test('a registered phone still gets its inbound call after an idle time longer than the kernel\'s UDP timeouts', { timeout: 180000 }, async () => {
  const { lab, log } = await prepare('sar1', 1, 'alg');
  try {
    // kernel UDP timeouts shortened to 5 s / 8 s in the router (seed 004: "SIP ALG timeout")
    assert.equal(lab.run(lab.router, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_udp_timeout=5', 'net.netfilter.nf_conntrack_udp_timeout_stream=8']).code, 0);
    await lab.startKamailio();
    const reg = await lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/register.xml'), '-i', phoneIp(1), '-p', '5060', '-m', '1', '-s', 'phone1', `${PROVIDER_IP}:5060`, ...sippArgs]);
    assert.equal(reg.code, 0, reg.stdout.slice(-1000));
    await sleep(14000); // no packet on the flow for longer than both timeouts
    const entry = lab.conntrack(['-L', '-p', 'udp', '-s', phoneIp(1), '--dport', '5060']).split('\n').find((l) => l.includes(`dst=${PROVIDER_IP}`));
    assert.ok(entry, 'the signaling flow (and its NAT binding) is still there');
    assert.ok(Number(entry.split(/\s+/)[2]) > 200, `its timeout was raised to the registration's lifetime: ${entry}`);
    const uas = lab.start(lab.phone(1), 'sipp', ['-sn', 'uas', '-i', phoneIp(1), '-p', '5060', '-m', '1', '-nostdin', '-nr']);
    const uasDone = new Promise<number>((r) => { uas.once('exit', (c) => r(c ?? -1)); setTimeout(() => r(-2), 20000); });
    await lab.waitListening(lab.phone(1), [5060]);
    const call = await lab.runAsync(lab.provider, 'sipp', ['-sn', 'uac', '-i', PROVIDER_IP, '-p', '5091', '-m', '1', '-s', 'phone1', `${PROVIDER_IP}:5060`, ...sippArgs]);
    assert.equal(call.code, 0, `inbound call after the idle time: ${call.stdout.slice(-800)}\n${log().slice(-1500)}`);
    assert.equal(await uasDone, 0);
  } finally {
    await lab.close();
  }
});

test('kill -9 mid-call: the call and its audio go on (fail-open); the restarted daemon takes the call back from its state file, and without one removes the orphans', { timeout: 180000 }, async () => {
  const { lab, daemon } = await prepare('sar2', 1, 'alg');
  try {
    const oneCall = async () => {
      const known = lab.savedCallIds(); // the restarted daemon's journal still holds the first call
      const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp and not port 5060');
      const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-rtp.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
      const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 30000); });
      await lab.waitListening(lab.provider, [5080]);
      const call = lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`, ...sippArgs]);
      await lab.waitConntrack(/dport=7000 /); // the call is answered: its media flow exists
      await lab.waitStateSaved(undefined, undefined, known); // the state file is written at most every 2 s
      // the kill lands mid-call, after the phone's ACK (it follows the 200 by a few ms): a kill before
      // it loses the ACK with the daemon's queue, and the UAS, still waiting for it, drops the call at the BYE
      await sleep(300);
      return { phone, uasDone, call };
    };
    // 1. with the state file: the call comes back
    let c = await oneCall();
    daemon!.kill('SIGKILL');
    const restarted = await lab.startDaemon(['--queues', '0:1', '--teardown-grace-seconds', '2']);
    assert.equal(anchors(lab), 1, 'the anchor was adopted, not deleted');
    const listed = () => JSON.parse(lab.cli(['calls', '--json']).stdout) as { phone: string; state: string; pinholes: number }[];
    let calls = listed();
    assert.deepEqual(calls.map((x) => [x.phone, x.state]), [[phoneIp(1), 'confirmed']], 'the restarted daemon lists the call');
    // its pending pinholes as the kernel holds them: RTCP's, and RTP's unless the sweep retired it
    // (the far end's RTP flows through the pre-created flow from the answer on); a retirement after
    // the last state save is found again by the new daemon's own check within a second or so
    let held = expectations(lab);
    for (let i = 0; i < 20 && calls[0]?.pinholes !== held; i++, await sleep(200)) [calls, held] = [listed(), expectations(lab)];
    assert.ok(held >= 1 && calls[0]!.pinholes === held, `the restored call's pinholes (${calls[0]!.pinholes}) are the kernel's (${held})`);
    let r = await c.call;
    await c.uasDone;
    assert.equal(r.code, 0, `the call survived the kill: ${r.stdout.slice(-800)}`);
    let rx = count(await c.phone.stop(), `ip.dst==${phoneIp(1)} && udp.dstport==6000 && udp.srcport==7000`);
    assert.ok(rx >= 230, `audio kept flowing in the kernel: ${rx}`);
    await sleep(3500); // teardown grace + sweep
    assert.equal(anchors(lab), 0, 'the BYE seen by the new daemon released the adopted anchor');
    assert.equal(expectations(lab), 0, 'and its pinholes');
    assert.ok(metricSum(lab.metrics(), 'sipalg_dialogs_total', { event: 'restored' }) >= 1);
    // 2. without it (state-dir lost): the dead daemon's anchor is an orphan and goes
    c = await oneCall();
    restarted.kill('SIGKILL');
    await sleep(300);
    for (const f of readdirSync(lab.dir).filter((n) => /^state-.*\.json$/.test(n))) rmSync(join(lab.dir, f));
    assert.ok(anchors(lab) >= 1, 'the killed daemon left its anchor');
    await lab.startDaemon(['--queues', '0:1']);
    assert.equal(anchors(lab), 0, 'the restarted daemon removed the orphaned anchors');
    assert.equal(expectations(lab), 0, 'and with them their pinholes');
    r = await c.call;
    await c.uasDone;
    assert.equal(r.code, 0, `the second call survived its kill: ${r.stdout.slice(-1500)}${r.stderr.slice(-500)}`);
    rx = count(await c.phone.stop(), `ip.dst==${phoneIp(1)} && udp.dstport==6000 && udp.srcport==7000`);
    assert.ok(rx >= 230, `established audio needs no pinhole: ${rx}`);
  } finally {
    await lab.close();
  }
});


test('two daemons in two namespaces share one state-dir: each writes its own file and, killed with -9 and restarted, adopts only its own calls', { timeout: 180000 }, async () => {
  const shared = mkdtempSync(join(tmpdir(), 'sipalg-shared-state-'));
  const a = await prepare('sas1', 1, 'alg', ['--state-dir', shared]);
  const b = await prepare('sas2', 1, 'alg', ['--state-dir', shared]);
  try {
    // a call through router A only
    const { lab } = a;
    lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-rtp.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
    await lab.waitListening(lab.provider, [5080]);
    const call = lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`, ...sippArgs]);
    await lab.waitConntrack(/dport=7000 /);
    // both daemons have saved (A: one call; B: nothing)
    await lab.waitStateSaved(shared);
    const json = () => readdirSync(shared).filter((n) => n.endsWith('.json')).sort();
    for (const deadline = Date.now() + 10000; json().length < 4 && Date.now() < deadline;) await sleep(200);
    const files = json();
    assert.equal(files.length, 4, `one file per daemon and queue: ${files.join(', ')}`);
    assert.equal(new Set(files.map((f) => f.replace(/-q\d+\.json$/, ''))).size, 2, 'two instances (network namespaces)');
    a.daemon!.kill('SIGKILL');
    b.daemon!.kill('SIGKILL');
    await sleep(300);
    // B first: before, it would have read A's file and restored A's call
    const b2 = await b.lab.startDaemon(['--queues', '0:1', '--state-dir', shared]);
    assert.deepEqual(JSON.parse(b.lab.cli(['calls', '--json']).stdout), [], 'B adopts nothing of A\'s');
    assert.doesNotMatch(b2.log(), /state restored/);
    const a2 = await lab.startDaemon(['--queues', '0:1', '--state-dir', shared, '--teardown-grace-seconds', '2']);
    const calls = JSON.parse(lab.cli(['calls', '--json']).stdout) as { phone: string; state: string }[];
    assert.deepEqual(calls.map((c) => [c.phone, c.state]), [[phoneIp(1), 'confirmed']], `A takes its own call back\n${a2.log().slice(-800)}`);
    assert.equal(anchors(lab), 1, 'its anchor adopted, not deleted');
    const r = await call;
    assert.equal(r.code, 0, `the call survived: ${r.stdout.slice(-600)}`);
  } finally {
    await Promise.all([a.lab.close(), b.lab.close()]);
    rmSync(shared, { recursive: true, force: true });
  }
});

test('provisional INVITE expiry and media inactivity tear down pinholes while the signaling lingers', { timeout: 180000 }, async () => {
  const { lab } = await prepare('sar4', 2, 'alg', ['--provisional-invite-expiry-seconds', '10', '--call-keepalive-seconds', '4']);
  try {
    lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-ring.xml'), '-i', PROVIDER_IP, '-p', '5080', '-nostdin', '-nr']);
    lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-quiet.xml'), '-i', PROVIDER_IP, '-p', '5081', '-nostdin', '-nr']);
    await lab.waitListening(lab.provider, [5080, 5081]);
    // phone 1: a call that rings and is never answered; phone 2: an answered call with no media at all
    lab.start(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', phoneIp(1), '-p', '5060', '-m', '1', '-s', 'ring', `${PROVIDER_IP}:5080`, '-nostdin', '-nr']);
    lab.start(lab.phone(2), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-trunk.xml'), '-i', phoneIp(2), '-p', '5060', '-mp', '30000', '-m', '1', '-s', 'quiet', `${PROVIDER_IP}:5081`, '-nostdin', '-nr']);
    await sleep(2500);
    assert.equal(anchors(lab), 2, 'both calls have pinholes at first');
    await sleep(6000); // ~8.5 s: the silent call is past its 4 s keepalive
    let m = lab.metrics();
    assert.equal(metricSum(m, 'sipalg_dialogs_total', { event: 'media_inactive' }), 1, 'the silent answered call was torn down');
    assert.equal(anchors(lab), 1, 'only the ringing call keeps pinholes');
    await sleep(5000); // ~13.5 s: the ringing call is past its 10 s provisional expiry
    m = lab.metrics();
    assert.equal(metricSum(m, 'sipalg_dialogs_total', { event: 'provisional_expired' }), 1, 'the unanswered INVITE expired');
    assert.equal(anchors(lab), 0);
    assert.equal(expectations(lab), 0);
  } finally {
    await lab.close();
  }
});

test('RFC 4028 session timers: a refreshed call stays, an unrefreshed one is released after its interval + 32 s', { timeout: 240000 }, async () => {
  const { lab, log } = await prepare('sar5', 2, 'alg');
  try {
    const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-session-timer.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '2', '-nostdin', '-nr']);
    const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 170000); });
    await lab.waitListening(lab.provider, [5080]);
    const args = (i: number, sf: string) => ['-sf', join(SRC_LAB, 'scenarios', sf), '-i', phoneIp(i), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`, '-nostdin', '-nr', '-timeout', '160s', '-timeout_error'];
    const refreshed = lab.runAsync(lab.phone(1), 'sipp', args(1, 'uac-refresher.xml'), 170000);
    const silent = lab.runAsync(lab.phone(2), 'sipp', args(2, 'uac-no-refresh.xml'), 170000);
    await sleep(5000);
    const early = JSON.parse(lab.cli(['calls', '--json']).stdout) as { phone: string; sessionExpiresSec: number }[];
    assert.deepEqual(early.map((c) => [c.phone, c.sessionExpiresSec]).sort(), [[phoneIp(1), 90], [phoneIp(2), 90]], 'both calls carry the 90 s session interval of their 2xx');
    await sleep(121000); // 126 s after the INVITEs: past 90 + 32 s for the silent call; the other refreshed at 40 and 80 s
    const late = JSON.parse(lab.cli(['calls', '--json']).stdout) as { phone: string }[];
    assert.deepEqual(late.map((c) => c.phone), [phoneIp(1)], `only the refreshed call is left\n${log().slice(-1500)}`);
    const m = lab.metrics();
    assert.equal(metricSum(m, 'sipalg_dialogs_total', { event: 'session_expired' }), 1);
    assert.ok(metricSum(m, 'sipalg_dialogs_total', { event: 'signaling_kept_alive' }) >= 4, 'the calls\' signaling flows were kept past the kernel\'s 120 s UDP timeout');
    const [a, b] = await Promise.all([refreshed, silent]);
    await uasDone;
    assert.equal(a.code, 0, a.stdout.slice(-600));
    assert.equal(b.code, 0, `the BYE after 135 silent seconds still found its NAT binding: ${b.stdout.slice(-600)}`);
  } finally {
    await lab.close();
  }
});
