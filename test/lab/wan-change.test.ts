/**
 * The WAN address changes while the daemon runs (issue 20): DHCP renewal and PPPoE reconnect, with
 * real Kamailio and SIPp, every SIP message the router sent on the WAN read back, the router's
 * conntrack table and expectations read for the old addresses. The kernel helper runs the same
 * scenario for comparison. Scenario: src/lab/wan-change.ts.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { wanChange } from '../../src/lab/wan-change';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));

test('the WAN address changes (DHCP renewal, then a PPPoE-like re-creation of the interface): registrations and calls complete after each change, every SIP message leaves from and names only the new address, nothing of the old one is left in conntrack', { timeout: 300000 }, async (t) => {
  const { lab, log, run } = await wanChange('swc1', 'alg');
  try {
    const rounds = await run();
    t.diagnostic(`sip-alg: ${JSON.stringify(rounds)}`);
    for (const r of rounds) {
      assert.deepEqual(r.registered, [true, true], `both phones registered on ${r.address}\n${log().slice(-3000)}`);
      assert.ok(r.outbound, `outbound call on ${r.address}\n${log().slice(-3000)}`);
      assert.ok(r.inbound, `inbound call through the registration on ${r.address}\n${log().slice(-3000)}`);
      assert.ok(r.sent >= 8, `SIP messages on the WAN on ${r.address}: ${r.sent}`);
      assert.deepEqual(r.wrong, [], `messages on ${r.address} that left from or named another address`);
      assert.deepEqual(r.staleConntracks, [], `conntrack entries of an earlier address after the change to ${r.address}`);
      assert.deepEqual(r.staleExpectations, [], `expectations of an earlier address after the change to ${r.address}`);
    }
    assert.match(log(), /the WAN link changed/);
  } finally {
    await lab.close();
  }
});

test('the same address changes through the kernel\'s SIP helper (reported beside sip-alg\'s figures)', { timeout: 300000 }, async (t) => {
  const { lab, run } = await wanChange('swc2', 'kernel');
  try {
    const rounds = await run();
    t.diagnostic(`kernel helper: ${JSON.stringify(rounds.map((r) => ({ ...r, wrong: r.wrong.length, staleConntracks: r.staleConntracks.length, staleExpectations: r.staleExpectations.length })))}`);
    assert.equal(rounds.length, 3);
  } finally {
    await lab.close();
  }
});
