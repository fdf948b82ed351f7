/**
 * Register pinholes (issue 24), in the lab: real Kamailio as the registrar, real SIPp as the phone
 * and as the provider's callers, the project's rules and daemon on NFQUEUE; what reached the phone
 * is read off its capture, every SIP message the router sent on the WAN is checked for a private
 * address, `conntrack -L expect` during and after the registration. Scenario: src/lab/register-pinhole.ts.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { OUTSIDER_IP, PROVIDER_RANGE, registerPinhole } from '../../src/lab/register-pinhole';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));

test('inbound-signaling-from a provider range: INVITEs from the registrar and from another proxy in the range reach the phone and complete with audio; one from outside does not; the pinhole names the range and goes with the registration', { timeout: 240000 }, async (t) => {
  const { lab, log, run } = await registerPinhole('srp1', 'alg', ['--inbound-signaling-from', PROVIDER_RANGE]);
  try {
    const r = await run();
    t.diagnostic(`sip-alg, ${PROVIDER_RANGE}: ${JSON.stringify(r)}`);
    assert.ok(r.registered, log().slice(-2000));
    for (const who of ['registrar', 'other proxy'] as const) {
      const c = r.calls[who];
      assert.ok(c.ok, `the call from the ${who} completed: ${JSON.stringify(c)}; the phone's media port sent ${r.phoneMediaSent.join(', ')}; its SIPp's stderr: ${r.phoneUasErrors.slice(-3000)}\n${log().slice(-2000)}`);
      assert.equal(c.invitesAtPhone, 1, `the ${who}'s INVITE reached the phone`);
      assert.ok(c.rtpAtPhone >= 230 && c.rtpFromPhone >= 230, `audio both ways with the ${who}: ${c.rtpAtPhone} / ${c.rtpFromPhone}; the phone's media port sent ${r.phoneMediaSent.join(', ')}; its SIPp's stderr: ${r.phoneUasErrors.slice(-1000)}\n${log().slice(-3000)}`);
    }
    assert.equal(r.calls.outsider.invitesAtPhone, 0, `an INVITE from ${OUTSIDER_IP}, outside the range, must not reach the phone`);
    assert.equal(r.calls.outsider.ok, false);
    assert.equal(r.pinholesRegistered.length, 1, `one register pinhole: ${r.pinholesRegistered.join(' | ')}`);
    assert.match(r.pinholesRegistered[0]!, /src=203\.0\.113\.8 .*mask-src=255\.255\.255\.248 .*class=0/, 'from the provider range, signalling class');
    assert.match(r.registrationsCli, /from 203\.0\.113\.8\/29/, '`sip-alg registrations` shows the pinhole and its sources');
    assert.deepEqual(r.pinholesAfter, [], 'Expires: 0 closed the pinhole');
    assert.equal(r.privateOnWan, 0, 'no private address in any SIP message the router sent on the WAN');
  } finally {
    await lab.close();
  }
});

test('inbound-signaling-from registrar (the default): only the registrar\'s flow reaches the phone, as the kernel helper\'s default; no pinhole', { timeout: 240000 }, async (t) => {
  const { lab, log, run } = await registerPinhole('srp2', 'alg');
  try {
    const r = await run();
    t.diagnostic(`sip-alg, default: ${JSON.stringify(r)}`);
    assert.ok(r.registered, log().slice(-2000));
    assert.ok(r.calls.registrar.ok && r.calls.registrar.invitesAtPhone === 1, `the registrar's call: ${JSON.stringify(r.calls.registrar)}`);
    assert.equal(r.calls['other proxy'].invitesAtPhone, 0, 'the other proxy\'s INVITE does not reach the phone');
    assert.equal(r.calls.outsider.invitesAtPhone, 0);
    assert.deepEqual(r.pinholesRegistered, []);
  } finally {
    await lab.close();
  }
});

test('the same through the kernel\'s SIP helper with sip_direct_signalling=0 (reported beside sip-alg\'s figures)', { timeout: 240000 }, async (t) => {
  const { lab, run } = await registerPinhole('srp3', 'kernel', [], 0);
  try {
    const r = await run();
    t.diagnostic(`kernel helper, sip_direct_signalling=0: ${JSON.stringify(r)}`);
    assert.ok(r.registered);
  } finally {
    await lab.close();
  }
});
