/**
 * `sip-alg doctor`'s checks that are pure functions of what the kernel reports (the others run
 * against real namespaces in test/lab/doctor.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectHashCheck, freshMarkCheck } from '../../../src/cli/doctor';

test('expect-hash: the kernel defaults (expect_max 4 times the buckets) are ok; an expect_max raised alone is a warning with the boot parameter that fits it', () => {
  assert.equal(expectHashCheck(1024, 4096, 100).status, 'ok');
  const raised = expectHashCheck(1024, 262144, 100);
  assert.equal(raised.status, 'warn');
  assert.match(raised.detail, /expectation hash of 1024 buckets: 256 pinholes a bucket when nf_conntrack_expect_max \(262144\) is reached/);
  assert.match(raised.fix ?? '', /nf_conntrack\.expect_hashsize=65536 .*options nf_conntrack expect_hashsize=65536/);
  assert.equal(expectHashCheck(65536, 262144, 100).status, 'ok', 'a hash sized for the table');
});

test('expect-hash: many pending pinholes a bucket now warn even under a default expect_max; an unreadable size is no finding', () => {
  const busy = expectHashCheck(256, 1024, 4000);
  assert.equal(busy.status, 'warn');
  assert.match(busy.detail, /15\.6 now \(4000 pending\)/);
  assert.equal(expectHashCheck(NaN, 262144, 0).status, 'ok');
  assert.equal(expectHashCheck(NaN, 262144, 0).fix, undefined);
});

test('fresh-mark: the rules\' MARK rule and the daemon\'s fresh-flow-mark agree, or doctor says what is wrong', () => {
  assert.equal(freshMarkCheck([0x10000000], 0x10000000).status, 'ok');
  assert.equal(freshMarkCheck([], 0).status, 'ok', 'off on both sides is a choice');
  const missing = freshMarkCheck([], 0x10000000);
  assert.equal(missing.status, 'warn');
  assert.match(missing.fix ?? '', /--fresh-mark 0x10000000/);
  const other = freshMarkCheck([0x800000], 0x10000000);
  assert.equal(other.status, 'fail');
  assert.match(other.detail, /the rules mark fresh flows 0x800000, the daemon's fresh-flow-mark is 0x10000000/);
  assert.equal(freshMarkCheck([NaN], 0x10000000).status, 'fail', 'a rule whose mark cannot be read');
});
