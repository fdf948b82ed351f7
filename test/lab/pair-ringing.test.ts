/**
 * Issue 23: a router pair's active router fails while a call is still being set up (ringing, or
 * early media), with real keepalived and conntrackd; RTP counted at both ends. The same lab with the
 * kernel's own SIP helper on both routers is run for comparison (figures reported, not asserted).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { PCAP_RTP, setupFailover, type SetupCall } from '../../src/lab/pair-ringing';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));

const line = (c: SetupCall) => `${c.name} via ${c.via.toUpperCase()}${c.failoverSec ? ` (VRRP ${c.failoverSec.toFixed(1)} s)` : ''}: completed ${c.completed}; after the answer, far end -> phone ${c.farToPhone}/${c.farSent}, phone -> far end from its advertised port ${c.advertisedPort}: ${c.phoneToFar} (from another port ${c.phoneFromOther}); early media at the phone ${c.earlyAtPhone} (largest gap ${c.earlyGapMs} ms); left after the BYE: ${c.anchorsLeft} anchor(s)/record(s), ${c.pinholesLeft} pinhole(s)`;
const enough = Math.ceil(PCAP_RTP * 0.95);

test('issue 23: a call ringing at the failover, and one with early media across it, complete through the other router with >= 95% of the audio both ways after the answer, the phone\'s RTP from its advertised port, nothing left after the BYE; a new call after the failback too', { timeout: 300000 }, async (t) => {
  const r = await setupFailover('sprg', 'alg');
  for (const c of r.calls) t.diagnostic(`sip-alg: ${line(c)}`);
  t.diagnostic(`sip-alg: what conntrackd gave the standby of the ringing call's pinholes (before the failover): ${r.calls[0]!.syncedExpectations.join(' | ') || 'none'}`);
  for (const c of r.calls) {
    assert.ok(c.completed, `${c.name}: the call completed: ${c.sippOutput}`);
    assert.ok(c.advertisedPort > 0, `${c.name}: the phone's public RTP port on the WAN`);
    assert.ok(c.farSent >= PCAP_RTP, `${c.name}: the far end played its audio after the answer: ${c.farSent}`);
    assert.ok(c.farToPhone >= enough, `${c.name}: the far end's audio reached the phone: ${c.farToPhone}/${c.farSent}`);
    assert.ok(c.phoneToFar >= enough, `${c.name}: the phone's audio reached the far end from the advertised port ${c.advertisedPort}: ${c.phoneToFar}`);
    assert.equal(c.phoneFromOther, 0, `${c.name}: none of the phone's audio left from another port`);
    assert.deepEqual([c.anchorsLeft, c.pinholesLeft], [0, 0], `${c.name}: no anchor, mapping record or pinhole left on ${c.via.toUpperCase()} after the BYE`);
  }
  assert.deepEqual(r.calls.map((c) => c.via), ['b', 'a', 'a'], 'the calls went through B, then A (failback), then A');
  assert.ok(r.calls[1]!.earlyAtPhone >= PCAP_RTP * 0.5, `early media reached the phone across the failover: ${r.calls[1]!.earlyAtPhone}`);
  assert.deepEqual(r.wanProblems, [], 'every SIP message on the WAN rewritten');
});

test('issue 23, the kernel\'s own SIP helper in the same lab (for comparison: reported, not asserted)', { timeout: 300000 }, async (t) => {
  const r = await setupFailover('sprk', 'kernel');
  for (const c of r.calls) t.diagnostic(`kernel helper: ${line(c)}`);
  t.diagnostic(`kernel helper: what conntrackd gave the standby of the ringing call's expectations: ${r.calls[0]!.syncedExpectations.join(' | ') || 'none'}`);
  assert.equal(r.calls.length, 3, 'the three calls ran');
});
