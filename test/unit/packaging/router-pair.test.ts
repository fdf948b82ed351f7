/**
 * The shipped router-pair examples (issue 15) are the configs the router-pair lab test runs with
 * (same generator, router A's values), and the settings a sip-alg pair depends on are in them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../../../src/lab/lab';
import { examplePair } from '../../../src/lab/pair';
import { apply, defaults, loadFile } from '../../../src/config/load';

const DIR = join(ROOT, 'packaging/router-pair');

test('packaging/router-pair holds exactly what the lab runs, with router A\'s values', () => {
  for (const [f, text] of Object.entries(examplePair())) assert.equal(readFileSync(join(DIR, f), 'utf8'), text, `${f}: regenerate with examplePair()`);
  assert.ok(statSync(join(DIR, 'sip-alg-notify.sh')).mode & 0o100, 'the notify script is executable');
  const ctd = readFileSync(join(DIR, 'conntrackd.conf'), 'utf8');
  assert.match(ctd, /ExpectationSync On/, 'pinholes (expectations) are synced');
  assert.match(ctd, /DisableExternalCache On/, 'entries go straight into the standby\'s kernel table');
  assert.doesNotMatch(ctd, /IPv4_address 127\.0\.0\.1/, 'loopback is not ignored: the anchors are loopback conntracks');
  assert.match(ctd, /Protocol Accept \{\s*UDP/, 'UDP (SIP, RTP) is synced');
  assert.match(readFileSync(join(DIR, 'keepalived.conf'), 'utf8'), /vrrp_sync_group[\s\S]*group \{ LAN WAN \}/, 'the LAN and WAN addresses move together');
  const sh = spawnSync('sh', ['-n', join(DIR, 'sip-alg-notify.sh')], { encoding: 'utf8' });
  assert.equal(sh.status, 0, sh.stderr);
  const notify = readFileSync(join(DIR, 'sip-alg-notify.sh'), 'utf8');
  assert.match(notify, /MASTER\)[\s\S]*sip-alg takeover[\s\S]*BACKUP\|FAULT\)[\s\S]*sip-alg standby/, 'takeover on MASTER, standby on BACKUP/FAULT');
  // the daemon's config: the virtual WAN address as the public one, this router's node-id
  const c = apply(defaults(), loadFile(join(DIR, 'sip-alg.json')), 'sip-alg.json');
  assert.deepEqual([c.publicIp, c.nodeId], ['198.51.100.1', 1]);
});
