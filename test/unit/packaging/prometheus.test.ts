/**
 * The shipped Prometheus files (issue 14): the example scrape config and the alerting rules pass
 * Debian's promtool (check config, check rules, and the rules' own unit tests), and every metric
 * the rules name is one the daemon exports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../../src/lab/lab';
import { Metrics } from '../../../src/metrics/registry';

const PKG = join(ROOT, 'packaging');
function promtool(args: string[]) {
  const r = spawnSync('promtool', args, { cwd: PKG, encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(r.error?.message.includes('ENOENT'), true, 'promtool is not installed: scripts/setup.sh installs Debian\'s prometheus');
  return r;
}

test('promtool: the example scrape config, the alerting rules, and the rules\' unit tests pass', () => {
  let r = promtool(['check', 'config', 'prometheus.yml']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /SUCCESS/);
  r = promtool(['check', 'rules', 'sip-alg.rules.yml']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /SUCCESS: \d+ rules found/);
  r = promtool(['test', 'rules', 'sip-alg.rules.test.yml']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /SUCCESS/);
});

test('the alerts cover worker down, queue drops, pinhole failures and fail-open, on metrics the daemon exports', async () => {
  const rules = readFileSync(join(PKG, 'sip-alg.rules.yml'), 'utf8');
  for (const a of ['SipAlgDown', 'SipAlgWorkerDown', 'SipAlgQueueDrops', 'SipAlgPinholeFailures', 'SipAlgFailOpenActive']) assert.match(rules, new RegExp(`alert: ${a}\\n`));
  const names = new Set((await new Metrics().registry.getMetricsAsJSON()).map((m) => m.name));
  const used = new Set([...rules.matchAll(/\b(sipalg_[a-z_]+)/g)].map((m) => m[1]!));
  assert.ok(used.size >= 6);
  for (const n of used) assert.ok(names.has(n), `${n} is exported by the daemon`);
});
