import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Protection } from '../../../src/policy/protection';

const opts = { inviteRate: 10, registerRate: 2, failureThreshold: 3, failureWindowMs: 10000, blockMs: 30000 };

test('per-source token buckets: a burst of twice the rate, then the rate; other sources unaffected', () => {
  const p = new Protection(opts);
  let ok = 0;
  for (let i = 0; i < 100; i++) if (p.request('INVITE', '198.51.100.1', 0) === 'ok') ok++;
  assert.equal(ok, 20, 'burst = 2 x rate');
  assert.equal(p.request('INVITE', '198.51.100.2', 0), 'ok', 'another source has its own bucket');
  assert.equal(p.request('INVITE', '198.51.100.1', 100), 'ok', '0.1 s later one token is back');
  assert.equal(p.request('INVITE', '198.51.100.1', 100), 'rate_limited');
  assert.equal(p.request('OPTIONS', '198.51.100.1', 100), 'ok', 'other methods are not limited');
  const r = [0, 1, 2, 3, 4, 5].map(() => p.request('REGISTER', '10.0.0.1', 0));
  assert.deepEqual(r, ['ok', 'ok', 'ok', 'ok', 'ok', 'rate_limited'], 'REGISTER: burst 5 (minimum)');
});

test('INVITE failures other than 401/407/487/488 block the source for a while', () => {
  const p = new Protection({ ...opts, inviteRate: 0 });
  for (const s of [401, 407, 487, 488, 401, 407]) assert.equal(p.inviteFinal(s, '203.0.113.9', 0), false);
  assert.equal(p.request('INVITE', '203.0.113.9', 0), 'ok');
  assert.equal(p.inviteFinal(404, '203.0.113.9', 1), false);
  assert.equal(p.inviteFinal(503, '203.0.113.9', 2), false);
  assert.equal(p.inviteFinal(403, '203.0.113.9', 3), true);
  assert.equal(p.request('INVITE', '203.0.113.9', 10), 'blocked');
  assert.equal(p.request('REGISTER', '203.0.113.9', 10), 'ok', 'only INVITEs are blocked');
  assert.equal(p.request('INVITE', '203.0.113.9', 30004), 'ok', 'the block ends');
  assert.equal(p.inviteFinal(404, '203.0.113.8', 0) || p.inviteFinal(404, '203.0.113.8', 20000) || p.inviteFinal(404, '203.0.113.8', 40000), false, 'failures outside the window do not add up');
});
