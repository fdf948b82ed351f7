/**
 * scripts/setup.sh on a box without Node.js (issue 22): it stops with one line naming what it
 * found, the version it needs and where to get it. Run with PATH stripped of node and npm (and the
 * check-only switch, so that a machine whose archive has a new enough nodejs installs nothing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '../../../..');

test('setup.sh without node on the PATH: exits 1 with one line naming Node.js 20, what it found and where to get it', { skip: process.getuid?.() !== 0 ? 'setup.sh runs as root' : false }, () => {
  const bin = mkdtempSync(join(tmpdir(), 'sipalg-nonode-'));
  try {
    for (const c of ['bash', 'id', 'dirname', 'cat', 'grep', 'sed', 'awk', 'apt-cache', 'head', 'cut', 'sort', 'tr', 'env']) {
      const path = execFileSync('bash', ['-c', `command -v ${c}`], { encoding: 'utf8' }).trim();
      if (path) symlinkSync(path, join(bin, c));
    }
    const r = spawnSync(join(bin, 'bash'), [join(ROOT, 'scripts/setup.sh')], { encoding: 'utf8', env: { PATH: bin, SIPALG_SETUP_CHECK_ONLY: '1' } });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    const line = r.stderr.trim();
    assert.equal(line.split('\n').length, 1, 'one line');
    assert.match(line, /no Node\.js, no npm/);
    assert.match(line, /Node\.js 20|nodejs .* would be installed/);
    const withNode = spawnSync('bash', [join(ROOT, 'scripts/setup.sh')], { encoding: 'utf8', env: { ...process.env, SIPALG_SETUP_CHECK_ONLY: '1' } });
    assert.equal(withNode.status, 0, withNode.stderr);
    assert.match(withNode.stdout, /Node\.js v\d+/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
