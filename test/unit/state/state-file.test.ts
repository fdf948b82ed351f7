import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { instanceKey, StateFile } from '../../../src/state/state-file';

/** Runs `fn` with a fresh temporary directory, removed afterwards whatever happens. */
function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-state-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `n` registrations whose AORs start with `tag`. */
const regs = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ aor: `sip:${tag}${i}@x`, flow: { src: '10.0.0.1', dst: '5.6.7.8', sport: i, dport: 5060, proto: 17 }, publicIp: '9.9.9.9', publicPort: i, expiresAt: 10, refreshedAt: 0 }));

test('state file: saved only when the tables moved and the interval passed; read back; a corrupt file starts empty', () => withDir((dir) => {
  const f = new StateFile(join(dir, 'run'), 'net1-wan0-q3', 2000);
  assert.deepEqual(f.load().state.dialogs, []);
  let builds = 0;
  const build = () => { builds++; return { version: 1 as const, savedAt: 5, dialogs: [], registrations: [{ aor: 'a', flow: { src: '1.2.3.4', dst: '5.6.7.8', sport: 1, dport: 2, proto: 17 }, publicIp: '9.9.9.9', publicPort: 3, expiresAt: 10, refreshedAt: 0 }] }; };
  assert.ok(f.maybeSave('1|1', 10000, build));
  assert.ok(!f.maybeSave('1|1', 20000, build), 'unchanged');
  assert.ok(!f.maybeSave('2|1', 11000, build), 'within the interval');
  assert.ok(f.maybeSave('2|1', 11000, build, true), 'forced');
  assert.equal(builds, 2);
  assert.equal(f.load().state.registrations[0]!.aor, 'a');
  assert.equal(statSync(f.path).mode & 0o777, 0o600);
  writeFileSync(f.path, '{"version":1,"dial');
  const bad = f.load();
  assert.ok(bad.error);
  assert.deepEqual(bad.state.dialogs, []);
}));

test('state file: a large table is streamed in chunks and reads back as exactly JSON.stringify of the state', () => withDir((dir) => {
  const f = new StateFile(dir, 'i0', 0);
  const state = { version: 1 as const, savedAt: 7, dialogs: [], registrations: regs(1000, 'u') };
  assert.ok(f.maybeSave('1', 1, () => state, true));
  assert.equal(readFileSync(f.path, 'utf8'), JSON.stringify({ version: 1, instance: 'i0', savedAt: 7, dialogs: [], registrations: state.registrations }));
  assert.equal(f.load().state.registrations.length, 1000);
}));

test('state file: a save in slices writes 64 records a step, replaces the file only at its end, and a forced save overtakes it', () => withDir((dir) => {
  const f = new StateFile(dir, 'i0', 0);
  const first = { version: 1 as const, savedAt: 1, dialogs: [], registrations: regs(10, 'a') };
  assert.ok(f.maybeSave('1', 1, () => first));
  const big = { version: 1 as const, savedAt: 2, dialogs: [], registrations: regs(1000, 'b') };
  assert.ok(f.begin('2', 2, () => big));
  assert.ok(!f.begin('3', 3, () => big), 'one save at a time');
  let steps = 0;
  while (!f.step()) {
    steps++;
    assert.equal(f.load().state.registrations.length, 10, 'the previous file stays until the save ends');
  }
  assert.equal(steps, Math.ceil(1000 / 64), 'one slice per 64 records');
  assert.equal(readFileSync(f.path, 'utf8'), JSON.stringify({ version: 1, instance: 'i0', savedAt: 2, dialogs: [], registrations: big.registrations }));
  assert.ok(!f.begin('2', 10, () => big), 'unchanged tables are not saved again');
  // a clean stop during a save in slices: the forced save wins, the abandoned one leaves no trace
  assert.ok(f.begin('4', 1e6, () => ({ ...big, savedAt: 4 })));
  f.step();
  const last = { version: 1 as const, savedAt: 5, dialogs: [], registrations: regs(3, 'c') };
  assert.ok(f.maybeSave('5', 1e6, () => last, true));
  assert.ok(f.step(), 'nothing left of the abandoned save');
  assert.equal(readFileSync(f.path, 'utf8'), JSON.stringify({ version: 1, instance: 'i0', savedAt: 5, dialogs: [], registrations: last.registrations }));
}));

test('state file: one file per instance (namespace, WAN, queue); a file of another instance, or of none, is refused', () => withDir((dir) => {
  const key = instanceKey('wan0', 2);
  assert.match(key, /^net\d+-wan0-q2$/, 'the network namespace inode, the WAN and the queue');
  assert.equal(instanceKey('wan0', 2, join(dir, 'no-such-link')), 'netunknown-wan0-q2');
  const mine = new StateFile(dir, 'net1-wan0-q0', 0);
  const theirs = new StateFile(dir, 'net2-wan0-q0', 0);
  assert.notEqual(mine.path, theirs.path, 'daemons of two namespaces sharing a state-dir write two files');
  const state = { version: 1 as const, savedAt: 1, dialogs: [], registrations: regs(2, 'm') };
  assert.ok(mine.maybeSave('1', 1, () => state, true));
  assert.equal(theirs.load().state.registrations.length, 0, 'the other instance reads nothing of ours');
  // a file renamed or copied over ours (or written before instances existed) is not adopted
  writeFileSync(theirs.path, readFileSync(mine.path));
  const r = theirs.load();
  assert.match(r.error ?? '', /belongs to instance "net1-wan0-q0", not net2-wan0-q0/);
  assert.deepEqual(r.state.registrations, []);
  writeFileSync(theirs.path, JSON.stringify({ version: 1, savedAt: 1, dialogs: [], registrations: state.registrations }));
  assert.match(theirs.load().error ?? '', /belongs to instance "unknown"/);
  assert.equal(mine.load().state.registrations.length, 2, 'ours is read back');
}));
