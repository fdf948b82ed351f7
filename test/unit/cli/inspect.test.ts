import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from '../../../src/cli/inspect';

const BIN = join(__dirname, '../../../../bin/sip-alg');

test('inspection flags: --json, --socket, per-command value flags; unknown flags name themselves', () => {
  const a = parseArgs('capture', ['--before', 'b.pcap', '--after=a.pcap', '--call-id', 'x@y', '--socket', '/tmp/s']);
  assert.equal(a.socket, '/tmp/s');
  assert.equal(a.opts.get('after'), 'a.pcap');
  assert.equal(a.opts.get('call-id'), 'x@y');
  assert.equal(parseArgs('calls', ['--json']).json, true);
  assert.throws(() => parseArgs('calls', ['--call-id', 'x']), /config: call-id: unknown flag for calls/);
  assert.throws(() => parseArgs('trace', ['--seconds', 'soon']), /config: seconds: allowed: an integer/);
});

test('without a daemon the commands fail with status 1 and say why; bad usage is status 2', () => {
  const r = spawnSync(process.execPath, [BIN, 'calls', '--socket', '/nonexistent/control.sock'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cannot talk to \/nonexistent\/control\.sock: .*is the daemon running/);
  const u = spawnSync(process.execPath, [BIN, 'pinholes', '--bogus', '1'], { encoding: 'utf8' });
  assert.equal(u.status, 2);
  assert.match(u.stderr, /bogus: unknown flag for pinholes/);
});
