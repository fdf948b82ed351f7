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
import { metricSum } from '../../src/lab/lab';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Receive times (s) of the G.711 RTP to `dst` in a pcap. */
function rtpTimes(pcap: string, dst: string): number[] {
  return spawnSync('tshark', ['-r', pcap, '-Y', `ip.dst==${dst} && udp.length==180`, '-T', 'fields', '-e', 'frame.time_epoch'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
}
const largestGap = (ts: number[]) => ts.slice(1).reduce((g, t, i) => Math.max(g, t - ts[i]!), 0);

test('router pair: a call with audio both ways survives the active router\'s failure; its BYE leaves through the standby, rewritten', { timeout: 120000 }, async (t) => {
  const pair = new PairLab('spr');
  try {
    pair.up();
    await pair.startRouter('a');
    await pair.waitMaster('a');
    await pair.startRouter('b');
    await sleep(1500);
    assert.deepEqual(pair.states('b'), ['BACKUP'], 'B is the standby');
    const lab = pair.lab;
    const caps = await Promise.all([lab.capture(pair.ns('p1'), 'eth0', 'p1', 'udp'), lab.capture(pair.ns('w'), 'eth0', 'w', 'udp')]);
    const far = await startBaresip(lab, pair.ns('w'), { ip: '203.0.113.10', user: 'wan', registrar: '203.0.113.10', register: false, port: 5070 });
    const phone = await startBaresip(lab, pair.ns('p1'), { ip: '10.77.0.11', user: 'phone1', registrar: '203.0.113.10', register: false });
    phone.command('dial', 'sip:wan@203.0.113.10:5070');
    await far.waitLog(/established/i, 10000);
    await sleep(4000);
    const synced = pair.conntrack('b', ['-L', '-p', 'udp']);
    assert.match(synced, /src=127\.0\.0\.1 dst=127\.1\.0\.1 .*helper=sip/, `the call's anchor (helper sip) is in B's table before the failover:\n${synced}`);
    // A fails: both its links go down (keepalived on B sees no more advertisements)
    const failedAt = Date.now() / 1000;
    lab.run(pair.ns('a'), 'ip', ['link', 'set', 'wan0', 'down']);
    lab.run(pair.ns('a'), 'ip', ['link', 'set', 'lan0', 'down']);
    await pair.waitMaster('b');
    const masterAt = Date.now() / 1000;
    await sleep(6000);
    phone.command('hangup');
    await sleep(1500);
    // a new call through B: B's daemon makes its own anchor and pinholes beside the synced ones
    const from = far.log.length;
    const secondAt = Date.now() / 1000;
    phone.command('dial', 'sip:wan@203.0.113.10:5070');
    await far.waitLog(/established/i, 10000, from);
    await sleep(4000);
    phone.command('hangup');
    await sleep(1000);
    const [p1, w] = await Promise.all(caps.map((c) => c.stop()));
    const atPhone = rtpTimes(p1!, '10.77.0.11'), atFar = rtpTimes(w!, '203.0.113.10');
    const afterPhone = atPhone.filter((x) => x > masterAt && x < secondAt).length, afterFar = atFar.filter((x) => x > masterAt && x < secondAt).length;
    const secondPhone = atPhone.filter((x) => x > secondAt).length, secondFar = atFar.filter((x) => x > secondAt).length;
    const during = (x: number) => x > failedAt - 1 && x < secondAt;
    const gapPhone = largestGap(atPhone.filter(during)), gapFar = largestGap(atFar.filter(during));
    const msgs = readSip(w!);
    const bye = msgs.filter((m) => /^BYE /.test(m.text));
    t.diagnostic(`VRRP failover ${(masterAt - failedAt).toFixed(1)} s; audio gap at the phone ${(gapPhone * 1000).toFixed(0)} ms (${Math.round(gapPhone / 0.02)} packets), at the far end ${(gapFar * 1000).toFixed(0)} ms; RTP after the failover: phone ${afterPhone}, far end ${afterFar}; BYE through B: ${bye.length}`);
    assert.ok(afterPhone >= 200 && afterFar >= 200, `audio both ways through B after the failover: ${afterPhone} / ${afterFar}`);
    assert.ok(gapPhone < 6 && gapFar < 6, `the gap is the VRRP failover time: ${gapPhone.toFixed(2)} / ${gapFar.toFixed(2)} s`);
    assert.equal(bye.length, 2, 'both BYEs crossed the WAN');
    assert.ok(bye.every((m) => m.src === '203.0.113.1'), 'from the public (virtual) address');
    t.diagnostic(`a new call through B: RTP phone ${secondPhone}, far end ${secondFar}`);
    assert.ok(secondPhone >= 120 && secondFar >= 120, `a new call after the failover has audio both ways through B: ${secondPhone} / ${secondFar}`);
    assert.deepEqual(checkWan(msgs, { lanPrefix: '10.77.0.', publicIp: '203.0.113.1' }), [], 'every SIP message on the WAN rewritten, before and after the failover');
    // B owns what it took over: the first call's BYE adopted A's anchor (its mark names the dialog)
    // and, after the grace, released it with the call's media conntracks; the second call is B's own
    await sleep(3500);
    const metrics = lab.run(pair.ns('b'), process.execPath, ['-e', "fetch('http://127.0.0.1:9477/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"]).stdout;
    const anchorsB = pair.conntrack('b', ['-L']).split('\n').filter((l) => /dst=127\.1\./.test(l)).length;
    const pinholesB = pair.conntrack('b', ['-L', 'expect']).split('\n').filter((l) => /proto=17/.test(l)).length;
    const anchorsA = pair.conntrack('a', ['-L']).split('\n').filter((l) => /dst=127\.1\./.test(l)).length;
    t.diagnostic(`after both calls: B ${anchorsB} anchor(s), ${pinholesB} pinhole(s); A (failed, never saw the BYE) ${anchorsA} anchor(s); B took over ${metricSum(metrics, 'sipalg_dialogs_total', { event: 'taken_over' })} call(s)`);
    assert.equal(metricSum(metrics, 'sipalg_dialogs_total', { event: 'taken_over' }), 1, 'B adopted the call it took over');
    assert.deepEqual([anchorsB, pinholesB], [0, 0], 'no anchor or pinhole left on B after the teardown');
  } finally {
    await pair.close();
  }
});
