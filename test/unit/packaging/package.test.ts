/**
 * Packaging: what `npm pack` puts in the tarball, the systemd unit and its rules wrapper, and a
 * packed-and-extracted copy whose `sip-alg` bin runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { FRESH_FLOW_MARK, SCHEMA } from '../../../src/config/schema';
import { apply, defaults, loadConfig, loadFile } from '../../../src/config/load';
import { configTable } from '../../../src/config/reference';
import { DAEMON_NODE_FLAGS, ROOT } from '../../../src/lab/lab';

const UNIT = join(ROOT, 'packaging', 'sip-alg.service');
/** node's own directory first: npm and the bin's `#!/usr/bin/env node` find this node */
const ENV = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };

interface PackFile { path: string; mode: number }
interface PackResult { filename: string; files: PackFile[] }

function npmPack(args: string[]): PackResult {
  const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', ...args], { cwd: ROOT, env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  const parsed = JSON.parse(out) as PackResult[];
  assert.equal(parsed.length, 1);
  return parsed[0]!;
}

/** `Key=value` lines of the unit's [Service] section (a key may repeat). */
function serviceSection(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) { section = s[1]!; continue; }
    if (section !== 'Service') continue;
    const i = line.indexOf('=');
    const k = line.slice(0, i), v = line.slice(i + 1);
    out.set(k, [...(out.get(k) ?? []), v]);
  }
  return out;
}
const one = (m: Map<string, string[]>, k: string): string => {
  const v = m.get(k);
  assert.equal(v?.length, 1, `exactly one ${k}=`);
  return v![0]!;
};

/** The unit's Environment= defaults, so ${VAR} in its command lines can be expanded. */
function unitEnv(svc: Map<string, string[]>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of svc.get('Environment') ?? []) {
    const i = e.indexOf('=');
    env[e.slice(0, i)] = e.slice(i + 1);
  }
  return env;
}
/** systemd's expansion: ${VAR} in a word, $VAR alone splits into words (none when empty). */
function expand(cmd: string, env: Record<string, string>): string[] {
  return cmd.split(/\s+/).flatMap((w) => {
    const alone = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
    if (alone) return (env[alone[1]!] ?? '').split(/\s+/).filter(Boolean);
    return [w.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, v: string) => env[v] ?? '')];
  });
}

test('npm pack ships the bin, the built JS, the native sources, rules, unit, dashboard and README', () => {
  const r = npmPack(['--dry-run']);
  const paths = new Set(r.files.map((f) => f.path));
  for (const p of [
    'package.json', 'README.md', 'bin/sip-alg', 'dist/src/cli/main.js', 'dist/src/worker/worker.js',
    'native/sipalg.c', 'binding.gyp', 'iptables/sip-alg-rules.sh',
    'packaging/sip-alg.service', 'packaging/sip-alg-rules', 'packaging/sip-alg.default', 'packaging/sip-alg.json',
    'grafana/sip-alg-dashboard.json',
    // `sip-alg demo` runs the namespace lab from these
    'src/lab/lab.sh', 'src/lab/kamailio.cfg', 'src/lab/scenarios/uac-rtp.xml',
  ]) assert.ok(paths.has(p), `the tarball has ${p}`);
  for (const native of readdirSync(join(ROOT, 'native'))) assert.ok(paths.has(`native/${native}`), `the tarball has native/${native}`);
  for (const p of paths) {
    assert.ok(!/^(dist\/test|dist\/bench|test|bench|build|node_modules)\//.test(p), `${p} does not belong in the tarball`);
  }
  const bin = r.files.find((f) => f.path === 'bin/sip-alg')!;
  assert.ok(bin.mode & 0o111, 'bin/sip-alg is executable');
  assert.equal(readFileSync(join(ROOT, 'bin/sip-alg'), 'utf8').split('\n')[0], `#!/usr/bin/env -S node ${DAEMON_NODE_FLAGS.join(' ')}`, "the bin starts node with the daemon's flags");

  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; gypfile?: boolean };
  assert.deepEqual(pkg.bin, { 'sip-alg': 'bin/sip-alg' });
  assert.equal(pkg.gypfile, true, 'npm install builds the addon (node-gyp rebuild)');
});

test('package.json main is a built file and loads without root or the native addon', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main: string };
  assert.ok(existsSync(join(ROOT, pkg.main)), `${pkg.main} exists after the build`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lib = require(join(ROOT, pkg.main)) as Record<string, unknown>;
  for (const name of ['parseSip', 'rewriteSip', 'rewriteSdp', 'parseIpUdp', 'loadConfig', 'SCHEMA', 'Reason']) assert.ok(lib[name], `exports ${name}`);
});

test('the systemd unit installs the rules before start, removes them after stop, reloads on HUP', () => {
  const svc = serviceSection(readFileSync(UNIT, 'utf8'));
  assert.equal(one(svc, 'Type'), 'simple');
  const pre = one(svc, 'ExecStartPre'), post = one(svc, 'ExecStopPost');
  assert.match(pre, /packaging\/sip-alg-rules install\b/);
  assert.match(post, /packaging\/sip-alg-rules remove\b/);
  assert.match(one(svc, 'ExecReload'), /^\/bin\/kill -HUP \$MAINPID$/);
  assert.equal(one(svc, 'Restart'), 'on-failure');
  assert.equal(one(svc, 'RuntimeDirectory'), 'sip-alg');
  assert.equal(one(svc, 'RuntimeDirectoryMode'), '0700');
  assert.match(one(svc, 'CapabilityBoundingSet'), /\bCAP_NET_ADMIN\b/);
  assert.match(one(svc, 'AmbientCapabilities'), /\bCAP_NET_ADMIN\b/);
  assert.equal(one(svc, 'NoNewPrivileges'), 'yes');
  assert.equal(one(svc, 'ProtectSystem'), 'strict');
  const rw = one(svc, 'ReadWritePaths').split(/\s+/);
  assert.ok(rw.includes('/proc/sys/net/netfilter') && rw.includes('/run/sip-alg'), 'ReadWritePaths');
  assert.ok(Number(one(svc, 'LimitNOFILE')) >= 4096);
  assert.match(one(svc, 'EnvironmentFile'), /^-?\/etc\/default\/sip-alg$/);

  // every variable the command lines use has a default in the unit (it runs without the file)
  const env = unitEnv(svc);
  for (const cmd of [pre, post, one(svc, 'ExecStart')]) {
    for (const m of cmd.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g)) assert.ok(m[1]! in env, `${m[1]} has an Environment= default`);
  }
  // the daemon's flags are real config keys, and with the defaults they parse
  const argv = expand(one(svc, 'ExecStart'), env);
  // node's flags first: each worker's heap collected on its own thread, as bin/sip-alg's shebang and the lab start it (DAEMON_NODE_FLAGS)
  assert.deepEqual(argv.slice(0, 3), ['/usr/bin/env', 'node', ...DAEMON_NODE_FLAGS]);
  assert.equal(argv[3], `${env.SIPALG_HOME}/bin/sip-alg`);
  assert.equal(argv[4], 'run');
  const keys = new Set(['config', ...SCHEMA.map((s) => s.key)]);
  for (const a of argv.slice(5)) if (a.startsWith('--')) assert.ok(keys.has(a.slice(2)), `${a} is a daemon flag`);
  const flags = argv.slice(5).filter((_, i, all) => all[i] !== '--config' && all[i - 1] !== '--config');
  const { config } = loadConfig(flags);
  assert.equal(config.wan, env.SIPALG_WAN);
  assert.equal(config.failClosed, env.SIPALG_FAIL_CLOSED === 'true');
  // the rules and the daemon agree on the fresh-flow mark, the schema's default
  assert.equal(config.freshFlowMark, Number(env.SIPALG_FRESH_MARK));
  assert.equal(config.freshFlowMark, FRESH_FLOW_MARK);
  assert.equal(argv[argv.indexOf('--config') + 1], '/etc/sip-alg/sip-alg.json');

  // the EnvironmentFile sets the same variables
  const defaultsFile = readFileSync(join(ROOT, 'packaging', 'sip-alg.default'), 'utf8');
  for (const v of ['SIPALG_WAN', 'SIPALG_QUEUES', 'SIPALG_PORTS', 'SIPALG_FAIL_CLOSED', 'SIPALG_SOURCE_RATE', 'SIPALG_SOURCE_BURST', 'SIPALG_FRESH_MARK']) assert.match(defaultsFile, new RegExp(`^${v}=${env[v]}$`, 'm'));
});

test('the example config holds valid keys at their defaults', () => {
  const raw = loadFile(join(ROOT, 'packaging', 'sip-alg.json'));
  assert.ok(Object.keys(raw).length >= 5);
  assert.deepEqual(apply(defaults(), raw, 'sip-alg.json'), defaults());
});

test('systemd-analyze verify accepts the unit', (t) => {
  if (spawnSync('systemd-analyze', ['--version']).status !== 0) {
    t.skip('systemd-analyze is not installed here');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-unit-'));
  try {
    writeFileSync(join(dir, 'sip-alg.service'), readFileSync(UNIT));
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'sip-alg.service')], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, `systemd-analyze verify: ${r.stdout}${r.stderr}`);
    assert.doesNotMatch(r.stdout + r.stderr, /sip-alg\.service:\d+/, 'no warning about a line of the unit');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a packed and extracted copy runs: the sip-alg bin and the rules wrapper', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-pack-'));
  try {
    const r = npmPack(['--pack-destination', dir]);
    const tgz = join(dir, r.filename);
    assert.ok(existsSync(tgz), `${tgz} written`);
    execFileSync('tar', ['-xzf', tgz, '-C', dir]);
    const pkg = join(dir, 'package');
    // the dependencies an `npm install` would bring
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'), 'dir');

    // the bin through its shebang, as npm links it
    const out = execFileSync(join(pkg, 'bin', 'sip-alg'), ['config'], { env: ENV, encoding: 'utf8', timeout: 20_000 });
    assert.equal(out.trim(), configTable().trim());

    // the wrapper finds the rules script next to it and passes the EnvironmentFile's values
    const log = join(dir, 'iptables.log');
    const fake = join(dir, 'fake-iptables');
    writeFileSync(fake, `#!/bin/sh\necho "$*" >> '${log}'\ncase "$*" in *" -S "*) exit 1;; esac\nexit 0\n`);
    chmodSync(fake, 0o755);
    const wrapperEnv = { ...ENV, IPTABLES: fake, SIPALG_DEFAULTS: join(pkg, 'packaging', 'sip-alg.default'), SIPALG_WAN: '' };
    const run = (extra: Record<string, string>, ...args: string[]) =>
      spawnSync('bash', [join(pkg, 'packaging', 'sip-alg-rules'), ...args], { env: { ...wrapperEnv, ...extra }, encoding: 'utf8', timeout: 20_000 });

    let w = run({}, 'install');
    assert.equal(w.status, 0, w.stderr);
    let calls = readFileSync(log, 'utf8');
    assert.match(calls, /-I POSTROUTING -o wan0 -p udp -m multiport --ports 5060 .*-j SIPALG/);
    assert.match(calls, /-A SIPALG -p udp .*-j NFQUEUE --queue-num 0 --queue-bypass/);
    assert.match(calls, /-I POSTROUTING -o wan0 .*-j SIPALG/);
    assert.match(calls, /-I FORWARD -i wan0 .*-j SIPALG/);
    // fairness before the queue: UDP meets the per-source limit first, at the file's rate and burst
    assert.match(calls, /-A SIPALG -p udp .*-j SIPALG_LIMIT\n(.*\n)*.*-A SIPALG -p udp .*-j NFQUEUE/);
    assert.match(calls, /-A SIPALG_LIMIT -o wan0 -m hashlimit --hashlimit-mode srcip --hashlimit-above 1000\/sec --hashlimit-burst 2000 .*--hashlimit-name sipalg_out4 .*-j DROP/);
    // a packet whose conntrack entry is not in the table yet gets the fresh-flow mark before the queue
    assert.match(calls, /-A SIPALG -p udp -m conntrack ! --ctstatus CONFIRMED .*-j MARK --set-xmark 0x10000000\/0x10000000\n(.*\n)*.*-A SIPALG -p udp .*-j NFQUEUE/);
    // WAN→LAN: what did not leave by a WAN link (-o wan0 returned before it)
    assert.match(calls, /-A SIPALG_LIMIT -o wan0 .*-j RETURN\n.*-A SIPALG_LIMIT -m hashlimit .*--hashlimit-name sipalg_in4 .*-j DROP/);

    rmSync(log);
    w = run({ SIPALG_WAN: 'eth1', SIPALG_QUEUES: '2:3', SIPALG_PORTS: '5060,5080', SIPALG_FAIL_CLOSED: 'true' }, 'install');
    assert.equal(w.status, 0, w.stderr);
    calls = readFileSync(log, 'utf8');
    assert.match(calls, /-p udp -m multiport --ports 5060,5080 .*-j SIPALG/);
    assert.match(calls, /-A SIPALG -p udp .*-j NFQUEUE --queue-balance 2:3\n/, 'fail-closed: no --queue-bypass');
    assert.match(calls, /-A SIPALG -p tcp .*-j NFQUEUE --queue-num 2\n/, 'TCP on the first queue, fail-closed');
    assert.match(calls, /-I POSTROUTING -o eth1 /);

    w = run({ SIPALG_WAN: 'eth1', SIPALG_FAIL_CLOSED: 'maybe' }, 'install');
    assert.equal(w.status, 2, 'a bad SIPALG_FAIL_CLOSED is refused');
    w = run({ SIPALG_WAN: 'eth1', SIPALG_SOURCE_RATE: 'fast' }, 'install');
    assert.equal(w.status, 2, 'a bad SIPALG_SOURCE_RATE is refused');
    assert.match(w.stderr, /--source-rate: 'fast' must be packets per second from 0 \(off\) to 100000/);
    rmSync(log);
    w = run({ SIPALG_WAN: 'eth1', SIPALG_SOURCE_RATE: '0' }, 'install');
    assert.equal(w.status, 0, w.stderr);
    assert.doesNotMatch(readFileSync(log, 'utf8'), /hashlimit/, 'rate 0: no limit');
    rmSync(log);
    w = run({ SIPALG_WAN: 'eth1', SIPALG_FRESH_MARK: '0' }, 'install');
    assert.equal(w.status, 0, w.stderr);
    assert.doesNotMatch(readFileSync(log, 'utf8'), /MARK/, 'fresh mark 0: no mark rule');
    w = run({ SIPALG_WAN: 'eth1', SIPALG_FRESH_MARK: 'high' }, 'install');
    assert.equal(w.status, 2, 'a bad SIPALG_FRESH_MARK is refused');
    assert.match(w.stderr, /--fresh-mark: 'high' must be 0 \(off\) or a mark mask/);

    w = run({}, 'remove');
    assert.equal(w.status, 0, w.stderr);
    assert.match(w.stdout, /sip-alg rules removed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
