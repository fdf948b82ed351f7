/**
 * A router pair (issue 15): keepalived moves the LAN and WAN virtual addresses, conntrackd keeps the
 * standby's kernel table in step (NAT bindings, media flows, sip-alg's anchors and pinholes); a call
 * between real phones (baresip) with audio both ways survives the active router's failure.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { PairLab } from '../../src/lab/pair';
import { startBaresip } from '../../src/lab/baresip';
import { checkWan, readSip } from '../../src/lab/wire-check';
import { join } from 'node:path';
import { metricSum, ROOT, SRC_LAB } from '../../src/lab/lab';
import { DRIVER_UDP_LENGTH } from '../../src/lab/rtp-driver';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Receive times (s) of the G.711 RTP to `dst` in a pcap. */
function rtpTimes(pcap: string, dst: string): number[] {
  return spawnSync('tshark', ['-r', pcap, '-Y', `ip.dst==${dst} && udp.length==180`, '-T', 'fields', '-e', 'frame.time_epoch'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
}
const largestGap = (ts: number[]) => ts.slice(1).reduce((g, t, i) => Math.max(g, t - ts[i]!), 0);

test('router pair: a call with audio both ways and 50 more calls survive the active router\'s failure; the far end\'s re-INVITEs, BYEs, an inbound call to a phone registered through A and new calls go through the standby, also after A returns', { timeout: 180000 }, async (t) => {
  const pair = new PairLab('spr');
  try {
    await pair.start();
    assert.deepEqual(pair.states('b'), ['BACKUP'], 'B is the standby');
    const lab = pair.lab;
    const caps = await Promise.all([lab.capture(pair.ns('p1'), 'eth0', 'p1', 'udp'), lab.capture(pair.ns('w'), 'eth0', 'w', 'udp')]);
    // the phone registers with the provider's registrar through A
    await lab.startKamailio();
    const far = await startBaresip(lab, pair.ns('w'), { ip: '203.0.113.10', user: 'wan', registrar: '203.0.113.10', register: false, port: 5070 });
    const phone = await startBaresip(lab, pair.ns('p1'), { ip: '10.77.0.11', user: 'phone1', registrar: '203.0.113.10', register: true, regint: 3600 });
    // 50 more calls (SIPp, 20 s each, a media port each) from the phone's address, in progress at
    // the failover, with RTP both ways: the lab's driver sends it from each call's port, the far
    // end's SIPp echoes it back (-rtp_echo)
    lab.start(pair.ns('w'), 'sipp', ['-sn', 'uas', '-i', '203.0.113.10', '-p', '5080', '-mp', '7100', '-rtp_echo', '-nostdin']);
    await lab.waitListening(pair.ns('w'), [5080]);
    const trunk = lab.runAsync(pair.ns('p1'), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-trunk-media.xml'), '-i', '10.77.0.11', '-p', '5062', '-mp', '20000', '-mi', '127.0.0.1', '-m', '50', '-l', '50', '-r', '25', '-d', '20000', '-s', 'trunk', '203.0.113.10:5080', '-nostdin', '-timeout', '60s', '-timeout_error'], 90000);
    phone.command('dial', 'sip:wan@203.0.113.10:5070');
    await far.waitLog(/established/i, 10000);
    let trunkPorts: number[] = [];
    for (let i = 0; i < 50 && trunkPorts.length < 50; i++, await sleep(200)) {
      trunkPorts = [...new Set(readSip(join(lab.dir, 'p1.pcap')).filter((m) => /^INVITE /.test(m.text) && m.sport === 5062).map((m) => Number(/^m=audio (\d+)/m.exec(m.text)?.[1] ?? 0)))].filter((p) => p > 0);
    }
    assert.equal(trunkPorts.length, 50, `the 50 calls' media ports: ${trunkPorts.length}`);
    const driver = lab.runAsync(pair.ns('p1'), process.execPath, [join(ROOT, 'dist/src/lab/rtp-driver.js'), '10.77.0.11', '203.0.113.10', '7100', '15', trunkPorts.join(',')], 40000);
    await sleep(4000);
    const synced = pair.conntrack('b', ['-L', '-p', 'udp']);
    assert.match(synced, /src=127\.0\.1\.1 dst=127\.1\.0\.1 .*helper=sip/, `the call's anchor (A's: node-id 1, helper sip) is in B's table before the failover:\n${synced}`);
    // the standby's daemon crashes and restarts mid-call: its start-up clean-up removes anchors of
    // its own (node-id 2) that no saved call owns, never A's synced ones (and so not, through
    // conntrackd, A's own)
    const anchorsOfA = (r: 'a' | 'b') => pair.conntrack(r, ['-L']).split('\n').filter((l) => /src=127\.0\.1\.1 dst=127\.1\./.test(l)).length;
    const beforeRestart = [anchorsOfA('a'), anchorsOfA('b')];
    await pair.killDaemon('b');
    await pair.startDaemon('b');
    await sleep(500);
    t.diagnostic(`A's anchors before / after B's daemon restarted: on A ${beforeRestart[0]} / ${anchorsOfA('a')}, on B ${beforeRestart[1]} / ${anchorsOfA('b')}`);
    assert.ok(beforeRestart[0]! >= 51 && beforeRestart[1]! >= 51, `the 51 calls' anchors on both routers: ${beforeRestart}`);
    assert.deepEqual([anchorsOfA('a'), anchorsOfA('b')], beforeRestart, 'the standby\'s restart left every anchor of A in place, on A and on B');
    const regFlow = pair.conntrack('b', ['-L', '-p', 'udp', '-s', '10.77.0.11', '--dport', '5060']);
    t.diagnostic(`the phone's registration flow on B (A keeps it alive for the 3600 s registration): ${regFlow.trim().replace(/\s+/g, ' ').slice(0, 160)}`);
    // A fails: both its links go down (keepalived on B sees no more advertisements)
    const failedAt = Date.now() / 1000;
    lab.run(pair.ns('a'), 'ip', ['link', 'set', 'wan0', 'down']);
    lab.run(pair.ns('a'), 'ip', ['link', 'set', 'lan0', 'down']);
    await pair.waitMaster('b');
    const masterAt = Date.now() / 1000;
    await sleep(4000);
    // the phone's registration (made through A, which kept its flow alive) is B's to keep alive now
    const regsB = JSON.parse(lab.run(pair.ns('b'), process.execPath, [join(ROOT, 'bin/sip-alg'), 'registrations', '--json', '--socket', join(lab.dir, 'b', 'control.sock')]).stdout || '[]') as { phone: string; expiresInSec: number }[];
    t.diagnostic(`registrations B keeps alive after the takeover: ${JSON.stringify(regsB)}`);
    assert.ok(regsB.some((r) => r.phone === '10.77.0.11:5060' && r.expiresInSec > 3000), 'B took the phone\'s registration over from the synced flow timeout');
    // the far end re-INVITEs through B (hold, then resume): B adopts the call A set up and
    // translates the phone's answers; audio both ways after the resume
        far.command('hold');
    await sleep(1500);
    far.command('resume');
    const resumedAt = Date.now() / 1000 + 0.3;
    await sleep(4000);
    // the adopted call's pinholes hang off an anchor of B's own now (node-id 2); the 50 calls, silent
    // on SIP since the failover, still hang off A's (adopted at their BYEs, which release them)
    const anchorsOn = (src: string) => pair.conntrack('b', ['-L']).split('\n').filter((l) => l.includes(`src=${src} dst=127.1.`)).length;
    const ownB = anchorsOn('127.0.2.1'), leftA = anchorsOn('127.0.1.1');
    t.diagnostic(`anchors on B before the hangup: B's own ${ownB}, A's ${leftA}`);
    assert.deepEqual([ownB, leftA], [1, 50], 'the re-INVITEd call on an anchor of B, the 50 others still on A\'s');
    const hangupAt = Date.now() / 1000;
    phone.command('hangup');
    await sleep(1500);
    // the 50 calls: their BYEs went through B
    const drv = await driver;
    assert.equal(drv.code, 0, `the RTP driver ran: ${drv.stderr}`);
    const tr = await trunk;
    const okCalls = Number(/Successful call\s*\|\s*\d+\s*\|\s*(\d+)/.exec(tr.stdout)?.[1] ?? 0);
    t.diagnostic(`calls in progress at the failover that completed (BYE and its 200 through B): ${okCalls}/50`);
    assert.equal(tr.code, 0, `all 50 calls in progress at the failover completed: ${tr.stdout.slice(-600)}`);
    // an inbound call to the phone registered through A, through its (synced) NAT binding on B
    const inbound = await lab.runAsync(pair.ns('w'), 'sipp', ['-sn', 'uac', '-i', '203.0.113.10', '-p', '5091', '-m', '1', '-s', 'phone1', '203.0.113.10:5060', '-d', '1000', '-nostdin', '-timeout', '20s', '-timeout_error'], 40000);
    assert.equal(inbound.code, 0, `the phone registered through A gets an inbound call through B: ${inbound.stdout.slice(-600)}`);
    const regFlowTimeout = () => Number(/^udp\s+17\s+(\d+)/m.exec(pair.conntrack('b', ['-L', '-p', 'udp', '-s', '10.77.0.11', '--dport', '5060']))?.[1] ?? 0);
    t.diagnostic(`the registration flow's timeout on B right after the inbound call (its packets reset it to the kernel's): ${regFlowTimeout()} s`);
    // a new call through B: B's daemon makes its own anchor and pinholes beside the synced ones
    const from = far.log.length;
    const secondAt = Date.now() / 1000;
    phone.command('dial', 'sip:wan@203.0.113.10:5070');
    await far.waitLog(/established/i, 10000, from);
    await sleep(4000);
    phone.command('hangup');
    await sleep(1000);
    // A comes back: no preemption (nopreempt), it stays the standby and calls go on through B
    lab.run(pair.ns('a'), 'ip', ['link', 'set', 'wan0', 'up']);
    lab.run(pair.ns('a'), 'ip', ['link', 'set', 'lan0', 'up']);
    await sleep(4000);
    assert.equal(pair.states('a').at(-1), 'BACKUP', `A returned as the standby: ${pair.states('a').join(',')}`);
    assert.equal(pair.states('b').at(-1), 'MASTER');
    // A's daemon, which never saw the 51 calls end, left them to B when it became the standby
    // (sip-alg standby from the notify script) rather than time them out and delete B's entries
    const callsOnA = JSON.parse(lab.run(pair.ns('a'), process.execPath, [join(ROOT, 'bin/sip-alg'), 'calls', '--json', '--socket', join(lab.dir, 'a', 'control.sock')]).stdout || '[]') as unknown[];
    assert.equal(callsOnA.length, 0, 'A holds no call after it became the standby');
    const from3 = far.log.length;
    const thirdAt = Date.now() / 1000;
    phone.command('dial', 'sip:wan@203.0.113.10:5070');
    await far.waitLog(/established/i, 10000, from3);
    // the call lasts until entries in A's table, now the standby's, have gone (stale ones expiring,
    // conntrackd -t of the notify script purging): their destruction must not reach B's table
    const udpOnA = () => pair.conntrack('a', ['-L', '-p', 'udp']).split('\n').filter(Boolean).length;
    const aBefore = udpOnA();
    let aAfter = aBefore;
    for (let i = 0; i < 60 && aAfter >= aBefore; i++) { await sleep(2000); aAfter = udpOnA(); }
    await sleep(5000);
    const lastAt = Date.now() / 1000 - 5;
    const anchorsBLate = pair.conntrack('b', ['-L']).split('\n').filter((l) => /dst=127\.1\./.test(l)).length;
    t.diagnostic(`entries went from A's table ${Math.round(Date.now() / 1000 - 5 - thirdAt)} s into the third call (UDP entries on A ${aBefore} -> ${aAfter}); B's anchors then: ${anchorsBLate}`);
    assert.ok(aAfter < aBefore, 'entries of A went while the call went on through B');
    assert.equal(anchorsBLate, 1, 'the call\'s anchor on B is still there');
    phone.command('hangup');
    await sleep(1000);
    const [p1, w] = await Promise.all(caps.map((c) => c.stop()));
    const atPhone = rtpTimes(p1!, '10.77.0.11'), atFar = rtpTimes(w!, '203.0.113.10');
    const afterPhone = atPhone.filter((x) => x > masterAt && x < hangupAt).length, afterFar = atFar.filter((x) => x > masterAt && x < hangupAt).length;
    const secondPhone = atPhone.filter((x) => x > secondAt && x < thirdAt).length, secondFar = atFar.filter((x) => x > secondAt && x < thirdAt).length;
    const resumedPhone = atPhone.filter((x) => x > resumedAt && x < hangupAt).length, resumedFar = atFar.filter((x) => x > resumedAt && x < hangupAt).length;
    const thirdPhone = atPhone.filter((x) => x > thirdAt).length, thirdFar = atFar.filter((x) => x > thirdAt).length;
    const lastPhone = atPhone.filter((x) => x > lastAt).length, lastFar = atFar.filter((x) => x > lastAt).length;
    const during = (x: number) => x > failedAt - 1 && x < hangupAt;
    const gapPhone = largestGap(atPhone.filter(during)), gapFar = largestGap(atFar.filter(during));
    // the 50 calls' audio after the failover, per call, both ways (the driver stopped before their BYEs)
    const perCall = (pcap: string, filter: string, field: string) => {
      const n = new Map<number, number>();
      for (const l of spawnSync('tshark', ['-r', pcap, '-Y', `${filter} && udp.length==${DRIVER_UDP_LENGTH} && frame.time_epoch > ${masterAt + 0.5}`, '-T', 'fields', '-e', field], { encoding: 'utf8', maxBuffer: 256 << 20 }).stdout.split('\n').filter(Boolean)) n.set(Number(l), (n.get(Number(l)) ?? 0) + 1);
      return n;
    };
    const trunkOut = perCall(w!, 'ip.src==203.0.113.1 && udp.dstport==7100', 'udp.srcport'), trunkBack = perCall(p1!, 'ip.dst==10.77.0.11 && udp.srcport==7100', 'udp.dstport');
    const least = (n: Map<number, number>) => (n.size ? Math.min(...n.values()) : 0);
    t.diagnostic(`the 50 calls' RTP after the failover: ${trunkOut.size} calls reached the far end through B (fewest packets of a call ${least(trunkOut)}), ${trunkBack.size} got the echo back at the phone (fewest ${least(trunkBack)})`);
    assert.equal(trunkOut.size, 50, 'every one of the 50 calls\' audio reached the far end through B');
    assert.deepEqual([...trunkBack.keys()].sort(), [...trunkPorts].sort(), 'and came back to its own media port at the phone');
    assert.ok(least(trunkOut) >= 50 && least(trunkBack) >= 50, `at least a second of audio each way per call: ${least(trunkOut)} / ${least(trunkBack)}`);
    const msgs = readSip(w!);
    // the phone's public media port, in its offer through A and in its answers to the far end's
    // re-INVITEs through B: B read the call's media mapping back from the synced conntracks
    const offer = msgs.find((m) => /^INVITE /.test(m.text) && m.src === '203.0.113.1' && m.dport === 5070);
    const callId = /^Call-ID:\s*(\S+)/im.exec(offer?.text ?? '')?.[1];
    const mediaPorts = msgs.filter((m) => m.src === '203.0.113.1' && callId && m.text.includes(callId) && /^m=audio /m.test(m.text)).map((m) => ({ t: m.time, port: Number(/^m=audio (\d+)/m.exec(m.text)![1]) }));
    t.diagnostic(`the phone's public audio port: ${mediaPorts.map((x) => `${x.port}${x.t > masterAt ? ' (through B)' : ''}`).join(', ')}`);
    assert.ok(mediaPorts.some((x) => x.t > masterAt), 'the phone\'s answers to the re-INVITEs crossed B with SDP');
    assert.equal(new Set(mediaPorts.map((x) => x.port)).size, 1, 'the same public audio port before and after the failover');
    const bye = msgs.filter((m) => /^BYE /.test(m.text) && m.dst === '203.0.113.10');
    const reinvites = msgs.filter((m) => /^INVITE /.test(m.text) && m.src === '203.0.113.10' && m.dport === 5060 && m.time > masterAt && m.time < hangupAt).length;
    t.diagnostic(`VRRP failover ${(masterAt - failedAt).toFixed(1)} s; audio gap at the phone ${(gapPhone * 1000).toFixed(0)} ms (${Math.round(gapPhone / 0.02)} packets), at the far end ${(gapFar * 1000).toFixed(0)} ms; RTP after the failover: phone ${afterPhone}, far end ${afterFar}; BYE through B: ${bye.length}`);
    assert.ok(afterPhone >= 180 && afterFar >= 180, `audio both ways through B after the failover: ${afterPhone} / ${afterFar}`);
    t.diagnostic(`re-INVITEs from the far end through B: ${reinvites}; RTP after the resume: phone ${resumedPhone}, far end ${resumedFar}`);
    assert.ok(reinvites >= 2, `the far end's hold and resume re-INVITEs crossed B: ${reinvites}`);
    assert.ok(resumedPhone >= 120 && resumedFar >= 120, `audio both ways after the re-INVITEs through B: ${resumedPhone} / ${resumedFar}`);
    assert.ok(gapPhone < 6 && gapFar < 6, `the gap is the VRRP failover time: ${gapPhone.toFixed(2)} / ${gapFar.toFixed(2)} s`);
    assert.equal(bye.length, 53, 'the BYEs of the three baresip calls and of the 50 calls crossed the WAN');
    assert.ok(bye.every((m) => m.src === '203.0.113.1'), 'from the public (virtual) address');
    t.diagnostic(`a new call through B: RTP phone ${secondPhone}, far end ${secondFar}`);
    assert.ok(secondPhone >= 120 && secondFar >= 120, `a new call after the failover has audio both ways through B: ${secondPhone} / ${secondFar}`);
    t.diagnostic(`a call after A came back (standby, no preemption): RTP phone ${thirdPhone}, far end ${thirdFar}`);
    assert.ok(thirdPhone >= 100 && thirdFar >= 100, `calls keep working after A returns: ${thirdPhone} / ${thirdFar}`);
    t.diagnostic(`its audio in the last 5 s, after entries went from A: phone ${lastPhone}, far end ${lastFar}`);
    assert.ok(lastPhone >= 200 && lastFar >= 200, `audio both ways after entries went from A: ${lastPhone} / ${lastFar}`);
    assert.deepEqual(checkWan(msgs, { lanPrefix: '10.77.0.', publicIp: '203.0.113.1' }).slice(0, 5), [], 'every SIP message on the WAN rewritten, before and after the failover');
    // the inbound call's packets on the registration flow reset its timeout to the kernel's; B's
    // keep-alive raises it again to what is left of the registration (every 20 s)
    let regTimeout = 0;
    for (let i = 0; i < 26 && regTimeout < 1000; i++) {
      regTimeout = regFlowTimeout();
      if (regTimeout < 1000) await sleep(1000);
    }
    t.diagnostic(`the registration flow's timeout on B after the inbound call and B's keep-alive: ${regTimeout} s`);
    assert.ok(regTimeout > 3000, `B keeps the registration's NAT binding alive: ${regTimeout}`);
    // B owns what it took over: the first call's BYE adopted A's anchor (its mark names the dialog)
    // and, after the grace, released it with the call's media conntracks; the second call is B's own
    await sleep(3500);
    const metrics = lab.run(pair.ns('b'), process.execPath, ['-e', "fetch('http://127.0.0.1:9477/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"]).stdout;
    const anchorsB = pair.conntrack('b', ['-L']).split('\n').filter((l) => /dst=127\.1\./.test(l)).length;
    const pinholesB = pair.conntrack('b', ['-L', 'expect']).split('\n').filter((l) => /proto=17/.test(l)).length;
    const anchorsA = pair.conntrack('a', ['-L']).split('\n').filter((l) => /dst=127\.1\./.test(l)).length;
    t.diagnostic(`after both calls: B ${anchorsB} anchor(s), ${pinholesB} pinhole(s); A (failed, never saw the BYE) ${anchorsA} anchor(s); B took over ${metricSum(metrics, 'sipalg_dialogs_total', { event: 'taken_over' })} call(s)`);
    assert.equal(metricSum(metrics, 'sipalg_dialogs_total', { event: 'taken_over' }), 51, 'B adopted every call it took over (the baresip call and the 50)');
    assert.deepEqual([anchorsB, pinholesB], [0, 0], 'no anchor or pinhole left on B after the teardown');
  } finally {
    await pair.close();
  }
});
