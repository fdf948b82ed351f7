/**
 * Registrations outliving the kernel's UDP timeouts, and a daemon killed mid-call.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdirSync, rmSync } from 'node:fs';
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
      const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp and not port 5060');
      const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-rtp.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
      const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 30000); });
      await lab.waitListening(lab.provider, [5080]);
      const call = lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`, ...sippArgs]);
      await lab.waitConntrack(/dport=7000 /); // the call is answered: its media flow exists
      await sleep(2500); // the state file is written at most every 2 s
      return { phone, uasDone, call };
    };
    // 1. with the state file: the call comes back
    let c = await oneCall();
    daemon!.kill('SIGKILL');
    const restarted = await lab.startDaemon(['--queues', '0:1', '--teardown-grace-seconds', '2']);
    assert.equal(anchors(lab), 1, 'the anchor was adopted, not deleted');
    const calls = JSON.parse(lab.cli(['calls', '--json']).stdout) as { phone: string; state: string; pinholes: number }[];
    assert.deepEqual(calls.map((x) => [x.phone, x.state, x.pinholes]), [[phoneIp(1), 'confirmed', 2]], 'the restarted daemon lists the call');
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
    for (const f of readdirSync(lab.dir).filter((n) => /^worker-\d+\.json$/.test(n))) rmSync(join(lab.dir, f));
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


test('an INVITE flood from one LAN source is rate-limited while another phone\'s calls complete', { timeout: 180000 }, async (t) => {
  const { lab } = await prepare('sar3', 2, 'alg', ['--invite-rate-per-source', '100']);
  try {
    const wan = await lab.capture(lab.router, 'wan0', 'wan', 'udp port 5099');
    lab.start(lab.provider, 'sipp', ['-sn', 'uas', '-i', PROVIDER_IP, '-p', '5080', '-nostdin', '-nr']);
    await lab.waitListening(lab.provider, [5080]);
    // phone 1 floods 3000 INVITEs in ~1.5 s toward a provider port; phone 2 places 5 real calls meanwhile
    const flood = `const d=require('dgram').createSocket('udp4');d.bind(5060,'${phoneIp(1)}',async()=>{for(let i=0;i<3000;i++){const m='INVITE sip:x@${PROVIDER_IP}:5099 SIP/2.0\\r\\nVia: SIP/2.0/UDP ${phoneIp(1)}:5060;branch=z9hG4bKf'+i+'\\r\\nFrom: <sip:f@${phoneIp(1)}>;tag='+i+'\\r\\nTo: <sip:x@${PROVIDER_IP}>\\r\\nCall-ID: flood'+i+'\\r\\nCSeq: 1 INVITE\\r\\nContent-Length: 0\\r\\n\\r\\n';await new Promise(r=>d.send(m,5099,'${PROVIDER_IP}',r));if(i%20===0)await new Promise(r=>setTimeout(r,10));}console.log(Date.now()-t0);d.close();});const t0=Date.now();`;
    const [f, calls] = await Promise.all([
      lab.runAsync(lab.phone(1), process.execPath, ['-e', flood], 30000),
      lab.runAsync(lab.phone(2), 'sipp', ['-sn', 'uac', '-i', phoneIp(2), '-p', '5060', '-m', '5', '-r', '5', '-s', 'pbx', `${PROVIDER_IP}:5080`, ...sippArgs], 60000),
    ]);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(calls.code, 0, `legitimate calls during the flood: ${calls.stdout.slice(-800)}`);
    await sleep(1500);
    const m = lab.metrics();
    const passed = count(await wan.stop(), 'udp.dstport==5099');
    const limited = metricSum(m, 'sipalg_packets_total', { reason: 'rate_limited' });
    t.diagnostic(`flood: 3000 INVITEs sent, ${passed} crossed the WAN, ${limited} counted rate_limited; 5/5 legitimate calls completed`);
    const seconds = Number(f.stdout.trim()) / 1000;
    const bound = 200 + 100 * seconds + 50; // burst + rate over the flood's real duration (slower on a busy machine)
    assert.ok(passed >= 100 && passed <= bound, `flood INVITEs let through: ${passed} in ${seconds} s (burst 200 + 100/s: at most ${bound})`);
    assert.equal(passed + limited, 3000, `every flood INVITE was either passed or counted rate_limited (${limited})`);
  } finally {
    await lab.close();
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
