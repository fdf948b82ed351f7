/**
 * Issue 20 part 2: one daemon and one rule set for two WAN links; each message carries the address
 * of the link it leaves by; a failover of one provider's route to the other link moves its new
 * messages with it. Real SIPp at both ends, every SIP message on both links read back with tshark.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { multiWan, LINK0, LINK1, X, Y } from '../../src/lab/multi-wan';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));

test('two WAN links: phones call a provider on each at once from the same local port, every message names its own link\'s address; after wan1 fails, phone 2\'s calls to Y leave by wan0 with wan0\'s address', { timeout: 180000 }, async (t) => {
  const r = await multiWan('smw');
  const before = (m: { time: number }) => m.time < r.failedAt, after = (m: { time: number }) => m.time > r.failedAt;
  const onWan0ToX = r.wan0.filter((m) => before(m) && m.dst === X).length, onWan1ToY = r.wan1.filter((m) => before(m) && m.dst === Y).length;
  const yOnWan0After = r.wan0.filter((m) => after(m) && (m.dst === Y || m.src === Y));
  t.diagnostic(`before the failover: ${onWan0ToX} messages to X on wan0 (${LINK0}), ${onWan1ToY} to Y on wan1 (${LINK1}); after wan1 failed: ${yOnWan0After.length} messages to and from Y on wan0; problems: ${r.problems.length}`);
  assert.deepEqual(r.codes, { x: 0, y: 0, yAfter: 0 }, `every call completed: ${r.sippTail}`);
  assert.ok(onWan0ToX >= 4 * 3 && onWan1ToY >= 4 * 3, 'each provider\'s calls went over its own link (INVITE, ACK, BYE a call)');
  assert.equal(r.wan0.filter((m) => before(m) && (m.dst === Y || m.src === Y)).length, 0, 'none of Y\'s on wan0 before the failover');
  assert.equal(r.wan1.filter((m) => before(m) && (m.dst === X || m.src === X)).length, 0, 'none of X\'s on wan1');
  assert.ok(yOnWan0After.filter((m) => /^INVITE /.test(m.text)).length >= 3, 'phone 2\'s new calls to Y left by wan0 after wan1 failed');
  assert.ok(yOnWan0After.filter((m) => m.dst === Y).every((m) => m.src === LINK0 && /^Via: SIP\/2\.0\/UDP 198\.51\.107\.1[:;]/m.test(m.text)), 'from wan0\'s address, and naming it');
  assert.deepEqual(r.problems.slice(0, 5), [], 'no private address, no other link\'s address, right Content-Length, on either link');
});
