import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config/load';
import { ConfigError } from '../../../src/errors';

test('flags override defaults; booleans accept --flag and --no-flag', () => {
  const { config } = loadConfig(['--wan', 'eth1', '--queues', '2:5', '--ports', '5060,5070', '--fail-closed', '--public-ip', '198.51.100.1']);
  assert.equal(config.wan, 'eth1');
  assert.deepEqual(config.queues, { first: 2, last: 5 });
  assert.deepEqual(config.ports, [5060, 5070]);
  assert.equal(config.failClosed, true);
  assert.equal(loadConfig(['--no-fail-closed']).config.failClosed, false);
});

test('several WAN links: a comma-separated list (or an array in the file), kept in order', () => {
  assert.equal(loadConfig(['--wan', 'wan0,wan1']).config.wan, 'wan0,wan1');
  assert.equal(loadConfig(['--wan', 'ppp0, wan1']).config.wan, 'ppp0,wan1');
});

test('a bad value names the key, the value and what is allowed', () => {
  const bad: [string[], string, RegExp][] = [
    [['--queues', '5:2'], 'queues', /A:B/],
    [['--ports', '5060,99999'], 'ports', /1 to 65535/],
    [['--malformed-policy', 'maybe'], 'malformed-policy', /one of pass, drop/],
    [['--worker-scheduling', 'fifo'], 'worker-scheduling', /one of normal, batch/],
    [['--public-ip', '300.1.1.1'], 'public-ip', /IPv4/],
    [['--bogus', '1'], 'bogus', /unknown flag/],
    [['--wan', 'wan0,wan0'], 'wan', /comma-separated for several WAN links/],
    [['--wan', 'wan0,bad name'], 'wan', /interface name/],
    [['--media-port-min', '5000', '--media-port-max', '4000'], 'media-port-max', /above/],
  ];
  for (const [argv, key, allowed] of bad) {
    assert.throws(() => loadConfig(argv), (e: unknown) => e instanceof ConfigError && e.key === key && allowed.test(e.message), argv.join(' '));
  }
});

test('the CLI exits with status 2 and names the key for a bad flag or config file', () => {
  const bin = join(__dirname, '../../../../bin/sip-alg');
  const r = spawnSync(process.execPath, [bin, 'run', '--queues', 'x'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /config: queues: "x" is not allowed/);
  const f = spawnSync(process.execPath, [bin, 'run', '--config', '/nonexistent.json'], { encoding: 'utf8' });
  assert.equal(f.status, 2);
  assert.match(f.stderr, /config: config: cannot read/);
});

test('a WAN interface that does not exist (yet) at start is waited for, not a fatal error, and the log names it (PPPoE creates ppp0 late)', () => {
  const bin = join(__dirname, '../../../../bin/sip-alg');
  const w = spawnSync(process.execPath, [bin, 'run', '--wan', 'nosuchif0', '--control-socket', 'off', '--metrics-listen', 'off', '--state-dir', 'off'], { encoding: 'utf8', timeout: 3000, killSignal: 'SIGKILL' });
  assert.equal(w.signal, 'SIGKILL', 'still waiting after 3 s');
  assert.match(w.stderr, /waiting for the WAN link/);
  assert.match(w.stderr, /interface \\?"nosuchif0\\?" does not exist/);
});
