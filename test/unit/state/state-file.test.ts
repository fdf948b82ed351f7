import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Change, instanceKey, StateFile, type StateSource } from '../../../src/state/state-file';
import type { PersistedDialog } from '../../../src/dialog/dialog-table';
import { registrationKey, type Registration } from '../../../src/registration/registration-table';

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

/** A table of registrations standing in for the worker's: records by key, the keys changed since the last take. */
class Tables implements StateSource {
  readonly dialogs = new Map<string, PersistedDialog>();
  readonly regs = new Map<string, Registration>();
  private changed = new Set<string>();
  setReg(r: Registration): void {
    this.regs.set(registrationKey(r), r);
    this.changed.add(registrationKey(r));
  }
  dropReg(key: string): void {
    this.regs.delete(key);
    this.changed.add(key);
  }
  snapshot() {
    return { dialogs: [...this.dialogs.values()], registrations: [...this.regs.values()] };
  }
  pending(): number {
    return this.changed.size;
  }
  size(): number {
    return this.dialogs.size + this.regs.size;
  }
  takeChanges(): Change[] {
    const out: Change[] = [...this.changed].map((key) => ({ kind: 'r', key, value: this.regs.get(key) }));
    this.changed.clear();
    return out;
  }
}

const drain = (f: StateFile) => { let steps = 0; while (!f.step()) steps++; return steps; };
const journals = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.journal')).sort();

test('state file: the first save is a snapshot; changes are appended to its journal, each once, at most every interval; read back as the tables are', () => withDir((dir) => {
  const f = new StateFile(join(dir, 'run'), 'net1-wan0-q3', 2000);
  assert.deepEqual(f.load().state.dialogs, []);
  const t = new Tables();
  for (const r of regs(3, 'a')) t.setReg(r);
  assert.ok(f.begin(10000, t), 'the first save of a process, whatever changed');
  drain(f);
  assert.equal(JSON.parse(readFileSync(f.path, 'utf8')).registrations.length, 3);
  assert.equal(statSync(f.path).mode & 0o777, 0o600);
  assert.ok(!f.begin(20000, t), 'nothing changed since: no save');
  t.setReg({ ...regs(1, 'a')[0]!, publicPort: 4444 });
  t.dropReg(registrationKey(regs(2, 'a')[1]!));
  t.setReg(regs(1, 'z')[0]!);
  assert.ok(!f.begin(11000, t), 'within the interval');
  assert.ok(f.begin(12000, t));
  drain(f);
  const [j] = journals(join(dir, 'run'));
  assert.ok(j, 'a journal');
  const lines = readFileSync(join(dir, 'run', j), 'utf8').trim().split('\n');
  assert.equal(lines.length, 3, 'one line per changed record');
  assert.match(lines[1]!, /^\{"r":"10\.0\.0\.1:1\|sip:a1@x"\}$/, 'a record gone: its key alone');
  assert.equal(JSON.parse(readFileSync(f.path, 'utf8')).registrations.length, 3, 'the snapshot is not rewritten');
  const back = f.load().state.registrations;
  assert.deepEqual(back.map((r) => `${r.aor} ${r.publicPort}`).sort(), ['sip:a0@x 4444', 'sip:a2@x 2', 'sip:z0@x 0']);
  // a corrupt snapshot starts empty
  writeFileSync(f.path, '{"version":1,"dial');
  const bad = f.load();
  assert.ok(bad.error);
  assert.deepEqual(bad.state.dialogs, []);
}));

test('state file: a torn last line of the journal (a crash mid-append) is skipped; a bad line in the middle is reported and skipped', () => withDir((dir) => {
  const f = new StateFile(dir, 'i0', 0);
  const t = new Tables();
  for (const r of regs(2, 'a')) t.setReg(r);
  f.begin(1, t);
  drain(f);
  t.setReg(regs(1, 'b')[0]!);
  f.begin(2, t);
  drain(f);
  const j = join(dir, journals(dir)[0]!);
  appendFileSync(j, '{"r":"10.0.0.1:5|sip:c5@x","v":{"aor":"sip:c5');
  assert.equal(f.load().state.registrations.length, 3, 'the torn line is not read');
  assert.equal(f.load().error, undefined, 'and is no error: it is what a crash leaves');
  writeFileSync(j, 'garbage\n' + readFileSync(j, 'utf8'));
  const r = f.load();
  assert.match(r.error ?? '', /1 journal line/);
  assert.equal(r.state.registrations.length, 3);
}));

test('state file: the journal outgrowing the table makes a new snapshot generation; the old journal goes, and a new process starts past every generation on disk', () => withDir((dir) => {
  const f = new StateFile(dir, 'i0', 0);
  const t = new Tables();
  t.setReg(regs(1, 'a')[0]!);
  f.begin(1, t);
  drain(f);
  const gen0 = JSON.parse(readFileSync(f.path, 'utf8')).journal as number;
  // refresh one registration 4096 times, one append each: the journal outgrows the table (1 record)
  for (let i = 0; i < 4096; i++) {
    t.setReg({ ...regs(1, 'a')[0]!, publicPort: i });
    assert.ok(f.begin(2 + i, t));
    drain(f);
  }
  assert.deepEqual(journals(dir), [`state-i0.json.${gen0}.journal`]);
  assert.equal(f.load().state.registrations[0]!.publicPort, 4095);
  t.setReg({ ...regs(1, 'a')[0]!, publicPort: 7 });
  assert.ok(f.begin(9000, t));
  drain(f);
  const s = JSON.parse(readFileSync(f.path, 'utf8'));
  assert.equal(s.journal, gen0 + 1, 'a snapshot of the next generation');
  assert.equal(s.registrations[0].publicPort, 7);
  assert.deepEqual(journals(dir), [], 'the superseded journal is removed');
  // a new process (a restart) reads it back and writes its first snapshot past it
  const g = new StateFile(dir, 'i0', 0);
  assert.equal(g.load().state.registrations[0]!.publicPort, 7);
  writeFileSync(join(dir, `state-i0.json.${gen0 + 5}.journal`), ''); // a crash's leftover
  assert.ok(g.begin(10000, new Tables()));
  drain(g);
  assert.equal(JSON.parse(readFileSync(f.path, 'utf8')).journal, gen0 + 6);
  assert.deepEqual(journals(dir), []);
}));

test('state file: a snapshot is streamed in chunks of 16 records, replaces the file only at its end, and reads back as JSON.stringify of the state; a forced save overtakes it', () => withDir((dir) => {
  const f = new StateFile(dir, 'i0', 0);
  const t = new Tables();
  for (const r of regs(10, 'a')) t.setReg(r);
  f.saveAll(1, t);
  const big = new Tables();
  for (const r of regs(1000, 'b')) big.setReg(r);
  const f2 = new StateFile(dir, 'i0', 0); // a new process: its first save is a snapshot
  assert.ok(f2.begin(2, big));
  assert.ok(!f2.begin(3, big), 'one save at a time');
  let steps = 0;
  while (!f2.step()) {
    steps++;
    assert.equal(f2.load().state.registrations.length, 10, 'the previous file stays until the save ends');
  }
  assert.equal(steps, Math.ceil(1000 / 16), 'one slice per 16 records');
  const gen = JSON.parse(readFileSync(f2.path, 'utf8')).journal as number;
  assert.equal(readFileSync(f2.path, 'utf8'), JSON.stringify({ version: 1, instance: 'i0', savedAt: 2, journal: gen, dialogs: [], registrations: [...big.regs.values()] }));
  // a clean stop during a save in slices: the forced save wins, the abandoned one leaves no trace
  for (const r of regs(1000, 'c')) big.setReg(r);
  assert.ok(f2.begin(1e6, big));
  f2.step();
  const last = new Tables();
  for (const r of regs(3, 'd')) last.setReg(r);
  f2.saveAll(1e6 + 1, last);
  assert.ok(f2.step(), 'nothing left of the abandoned save');
  assert.deepEqual(f2.load().state.registrations.map((r) => r.aor), ['sip:d0@x', 'sip:d1@x', 'sip:d2@x']);
  assert.deepEqual(journals(dir), []);
  f2.close();
}));

test('state file: one file per instance (namespace, WAN, queue); a file of another instance, or of none, is refused', () => withDir((dir) => {
  const key = instanceKey('wan0', 2);
  assert.match(key, /^net\d+-wan0-q2$/, 'the network namespace inode, the WAN and the queue');
  assert.equal(instanceKey('wan0', 2, join(dir, 'no-such-link')), 'netunknown-wan0-q2');
  const mine = new StateFile(dir, 'net1-wan0-q0', 0);
  const theirs = new StateFile(dir, 'net2-wan0-q0', 0);
  assert.notEqual(mine.path, theirs.path, 'daemons of two namespaces sharing a state-dir write two files');
  const state = { version: 1 as const, savedAt: 1, dialogs: [], registrations: regs(2, 'm') };
  const t = new Tables();
  for (const r of state.registrations) t.setReg(r);
  mine.saveAll(1, t);
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

test('state file: a journal that cannot be opened or written loses nothing: the error reaches the caller and the next save is a whole snapshot', () => withDir((dir) => {
  const f = new StateFile(dir, 'i0', 0);
  const t = new Tables();
  t.setReg(regs(1, 'a')[0]!);
  f.begin(1, t);
  drain(f);
  const gen = JSON.parse(readFileSync(f.path, 'utf8')).journal as number;
  mkdirSync(join(dir, `state-i0.json.${gen}.journal`)); // the journal's path taken by a directory
  t.setReg(regs(2, 'b')[1]!);
  assert.ok(f.begin(2, t));
  assert.throws(() => drain(f), /EISDIR/);
  assert.ok(f.begin(3, t), 'nothing changed since, yet a save is due: the changes taken were not written');
  drain(f);
  const s = JSON.parse(readFileSync(f.path, 'utf8'));
  assert.equal(s.journal, gen + 1, 'a snapshot of a new generation');
  assert.deepEqual(s.registrations.map((r: Registration) => r.aor).sort(), ['sip:a0@x', 'sip:b1@x']);
}));

test('state file: journal records are written as UTF-8 bytes, however long a slice (the reused buffer grows), and read back as they were', () => withDir((dir) => {
  const f = new StateFile(join(dir, 'run'), 'net1-wan0-q3', 2000);
  const t = new Tables();
  t.setReg(regs(1, 'first')[0]!);
  assert.ok(f.begin(10000, t));
  drain(f);
  // 100 changed records of ~3 KB each (a slice of 64 is ~190 KB) with non-ASCII text in key and value
  const long = `é€😀${'x'.repeat(3000)}`;
  const many = regs(100, `${long}-`);
  for (const r of many) t.setReg(r);
  assert.ok(f.begin(13000, t));
  drain(f);
  const lines = readFileSync(join(dir, 'run', journals(join(dir, 'run'))[0]!), 'utf8').trim().split('\n');
  assert.equal(lines.length, 100);
  for (const l of lines) JSON.parse(l);
  const back = f.load().state.registrations;
  assert.equal(back.length, 101);
  assert.deepEqual(back.filter((r) => r.aor.includes(long)).map((r) => r.aor).sort(), many.map((r) => r.aor).sort());
}));
