/**
 * A worker's dialogs and registrations on disk, so a daemon killed with -9 or a crashed worker comes
 * back with its calls: the kernel still holds the anchors, pinholes and media flows, the file says
 * which call owns them. /run is the right default: conntrack state does not survive a reboot either.
 *
 * Two parts (issue 21: nothing that grows with the table runs per change):
 * - a snapshot, state-<instance>.json: every record, written in slices to a temporary file renamed
 *   into place; it names the journal generation that follows it;
 * - a journal, state-<instance>.json.<generation>.journal: one JSON line per record that changed
 *   since (`{"d":key,"v":dialog}`, `{"d":key}` when it went; `r` for registrations), appended at
 *   most every `intervalMs`. A change costs one record written, not the whole table.
 * A process's first save is a snapshot of a new generation (the journals of earlier runs are
 * replayed by `load` once, then superseded); a snapshot is written again when the journal holds
 * more lines than twice the table (at least COMPACT_MIN), so a change costs at most ~1.5 records
 * written in all. Reading: the snapshot, then every journal line of its generation or later, in
 * order; a torn last line (a crash mid-append) is skipped. A clean stop releases everything and
 * writes an empty snapshot.
 * The file belongs to one instance: the network namespace (its conntrack table holds the anchors
 * the file names), the WAN interface and the queue. Daemons in other namespaces sharing the same
 * state-dir have other files, and a file whose recorded instance is not ours is refused.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { dialogKey, type PersistedDialog } from '../dialog/dialog-table';
import { registrationKey, type Registration } from '../registration/registration-table';

export interface WorkerState {
  version: 1;
  /** whose state this is (instanceKey); files written before it existed have none and are refused */
  instance?: string;
  savedAt: number;
  /** the journal generation that follows this snapshot (files written before journals: none) */
  journal?: number;
  dialogs: PersistedDialog[];
  registrations: Registration[];
}

/** A record that changed: its key, and the record as it is now (undefined: it went). */
export type Change = { kind: 'd'; key: string; value: PersistedDialog | undefined } | { kind: 'r'; key: string; value: Registration | undefined };

/** What the worker's tables give the state file. */
export interface StateSource {
  /** every record now, for a snapshot */
  snapshot(): { dialogs: PersistedDialog[]; registrations: Registration[] };
  /** how many records changed since the last takeChanges */
  pending(): number;
  /** the records changed since the last call, each once; the tables forget them */
  takeChanges(): Change[];
  /** records in the tables now */
  size(): number;
}

/** a snapshot is written again once the journal holds more lines than this, or twice the table */
const COMPACT_MIN = 4096;

export class StateFile {
  readonly path: string;
  private lastSaved = 0;
  /** the save in slices now running (begin/step) */
  private slices: Generator<void, void, void> | undefined;
  /** this process wrote a snapshot: changes go to its journal; until then, the first save is a snapshot */
  private snapshotted = false;
  private generation = 0;
  /** lines in the current generation's journal, and its descriptor (opened at the first append) */
  private journalLines = 0;
  private journalFd: number | undefined;

  constructor(dir: string, readonly instance: string, private readonly intervalMs = 2000) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `state-${instance}.json`);
  }

  /** The saved state (snapshot and journals), or an empty one when there is none or it cannot be read (logged by the caller). */
  load(): { state: WorkerState; error?: string } {
    const empty: WorkerState = { version: 1, savedAt: 0, dialogs: [], registrations: [] };
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return { state: empty };
    }
    let s: WorkerState;
    try {
      s = JSON.parse(text) as WorkerState;
    } catch (e) {
      return { state: empty, error: (e as Error).message };
    }
    if (s.version !== 1 || !Array.isArray(s.dialogs) || !Array.isArray(s.registrations)) return { state: empty, error: 'unknown format' };
    if (s.instance !== this.instance) return { state: empty, error: `it belongs to instance ${JSON.stringify(s.instance ?? 'unknown')}, not ${this.instance}` };
    const journals = this.journals().filter((g) => g >= (s.journal ?? Infinity));
    if (!journals.length) return { state: s };
    const dialogs = new Map(s.dialogs.map((d) => [dialogKey(d.callId, d.privateIp), d]));
    const registrations = new Map(s.registrations.map((r) => [registrationKey(r), r]));
    let bad = 0;
    for (const g of journals) {
      let lines: string[];
      try {
        lines = readFileSync(this.journalPath(g), 'utf8').split('\n');
      } catch {
        continue;
      }
      // the text after the last newline is a torn append (or nothing)
      for (let i = 0; i < lines.length - 1; i++) {
        try {
          const c = JSON.parse(lines[i]!) as { d?: string; r?: string; v?: unknown };
          if (typeof c.d === 'string') {
            if (c.v) dialogs.set(c.d, c.v as PersistedDialog);
            else dialogs.delete(c.d);
          } else if (typeof c.r === 'string') {
            if (c.v) registrations.set(c.r, c.v as Registration);
            else registrations.delete(c.r);
          } else bad++;
        } catch {
          bad++;
        }
      }
    }
    const state = { ...s, dialogs: [...dialogs.values()], registrations: [...registrations.values()] };
    return bad ? { state, error: `${bad} journal line(s) unreadable, skipped` } : { state };
  }

  /** Writes a whole snapshot at once (a clean stop, a standby); a save in slices still running is abandoned first. */
  saveAll(now: number, source: StateSource): void {
    this.abandon();
    source.takeChanges();
    const w = this.snapshot(now, source);
    while (!w.next().done) { /* all slices now */ }
  }

  /**
   * Starts a save in slices when one is due: the first of this process, or changes and the interval
   * passed. It is a snapshot when this process has none yet or the journal outgrew the table, else
   * an append of the changes. The caller runs step() between packets until it returns true. Each
   * slice writes CHUNK records (~0.1 ms for 16 dialogs), so the packet thread is never held long.
   * Records are serialised as they are when their slice is written; a change during the save is
   * written by the next one.
   */
  begin(now: number, source: StateSource): boolean {
    if (this.slices) return false;
    if (this.snapshotted && !(source.pending() && now - this.lastSaved >= this.intervalMs)) return false;
    if (!this.snapshotted || this.journalLines >= Math.max(COMPACT_MIN, 2 * source.size())) {
      source.takeChanges(); // the snapshot reads every record as it is when written
      this.slices = this.snapshot(now, source);
    } else this.slices = this.append(now, source.takeChanges());
    return true;
  }

  /** Writes the next slice of the running save; true when there is nothing left to write. */
  step(): boolean {
    if (!this.slices) return true;
    let done = false;
    try {
      done = this.slices.next().done === true;
    } catch (e) {
      this.abandon();
      throw e;
    }
    if (done) this.slices = undefined;
    return done;
  }

  /** The generations of the journals in the directory, ascending. */
  private journals(): number[] {
    const prefix = `${basename(this.path)}.`;
    const gens: number[] = [];
    for (const n of readdirSync(dirname(this.path))) {
      if (!n.startsWith(prefix) || !n.endsWith('.journal')) continue;
      const g = Number(n.slice(prefix.length, -'.journal'.length));
      if (Number.isSafeInteger(g) && g >= 0) gens.push(g);
    }
    return gens.sort((a, b) => a - b);
  }

  private journalPath(g: number): string {
    return `${this.path}.${g}.journal`;
  }

  /** A snapshot of a new generation, as a sequence of slices; renamed into place after the last, then the older journals go. */
  private *snapshot(now: number, source: StateSource): Generator<void, void, void> {
    let g = this.generation + 1;
    let old: number[] = [];
    try {
      old = this.journals();
    } catch { /* the directory is unreadable: the write below says so */ }
    if (!this.snapshotted) {
      // a new process: past every generation on disk (an earlier run's, or a crash's leftovers)
      let prev = -1;
      try {
        prev = (JSON.parse(readFileSync(this.path, 'utf8')) as WorkerState).journal ?? -1;
      } catch { /* none, or unreadable */ }
      g = Math.max(g, prev + 1, (old.at(-1) ?? -1) + 1);
    }
    this.closeJournal();
    // from here on, appends wait for this snapshot (one save at a time): a crash before the rename
    // leaves the previous snapshot and its journal, complete
    const { dialogs, registrations } = source.snapshot();
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      yield* writeState(fd, { version: 1, instance: this.instance, savedAt: now, journal: g, dialogs, registrations });
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    this.generation = g;
    this.snapshotted = true;
    this.journalLines = 0;
    this.lastSaved = now;
    // superseded: best effort (load reads only the snapshot's generation and later)
    for (const o of old) {
      if (o < g) try { rmSync(this.journalPath(o), { force: true }); } catch { /* left: never read again */ }
    }
  }

  /** The changes appended to the journal, CHUNK records a slice. */
  private *append(now: number, changes: Change[]): Generator<void, void, void> {
    this.lastSaved = now;
    if (this.journalFd === undefined) {
      try {
        this.journalFd = openSync(this.journalPath(this.generation), 'a', 0o600);
      } catch (e) {
        this.snapshotted = false; // the changes taken are not lost: the next save writes every record
        throw e;
      }
    }
    for (let i = 0; i < changes.length; i += CHUNK) {
      let len = 0;
      for (let j = i; j < Math.min(changes.length, i + CHUNK); j++) {
        const c = changes[j]!;
        len = journalRecord(len, c.kind, JSON.stringify(c.key), c.value ? JSON.stringify(c.value) : undefined);
      }
      try {
        writeAll(this.journalFd, journalBuf, len);
      } catch (e) {
        // a short or failed write may have left half a line, and the rest of the changes taken are
        // not written: the next save is a whole snapshot
        this.snapshotted = false;
        this.closeJournal();
        throw e;
      }
      this.journalLines += Math.min(CHUNK, changes.length - i);
      yield;
    }
  }

  private closeJournal(): void {
    if (this.journalFd === undefined) return;
    try { closeSync(this.journalFd); } catch { /* closed */ }
    this.journalFd = undefined;
  }

  private abandon(): void {
    if (!this.slices) return;
    const s = this.slices;
    this.slices = undefined;
    s.return(); // closes the file; the previous complete snapshot (and its journal) stay in place
  }

  /** Closes the journal (a clean stop). */
  close(): void {
    this.abandon();
    this.closeJournal();
  }
}

/**
 * The bytes of one journal slice, reused: each record is written into it as its JSON is made, not
 * concatenated into a string that writeSync then copies again (~2 KB of garbage per new call at 1k
 * INVITE/s, what sets how often the worker's young generation is scavenged).
 */
let journalBuf = Buffer.allocUnsafeSlow(64 * 1024);

/** `{"<kind>":<key>[,"v":<value>]}\n` written at `at` in journalBuf (grown when short); the new length */
function journalRecord(at: number, kind: string, key: string, value: string | undefined): number {
  // UTF-8: at most 3 bytes per UTF-16 unit
  const need = at + 3 * (key.length + (value?.length ?? 0)) + 16;
  if (need > journalBuf.length) {
    const next = Buffer.allocUnsafeSlow(Math.max(need, journalBuf.length * 2));
    journalBuf.copy(next, 0, 0, at);
    journalBuf = next;
  }
  const b = journalBuf;
  b[at++] = 0x7b; // {
  b[at++] = 0x22; // "
  at += b.write(kind, at, 'latin1');
  b[at++] = 0x22;
  b[at++] = 0x3a; // :
  at += b.write(key, at, 'utf8');
  if (value !== undefined) {
    at += b.write(',"v":', at, 'latin1');
    at += b.write(value, at, 'utf8');
  }
  b[at++] = 0x7d; // }
  b[at++] = 0x0a;
  return at;
}

/** b[0, len) to fd, however many writes it takes (a regular file takes it in one) */
function writeAll(fd: number, b: Buffer, len: number): void {
  for (let o = 0; o < len;) {
    const n = writeSync(fd, b, o, len - o);
    if (n <= 0) throw new Error(`journal write made no progress (${o} of ${len} bytes)`);
    o += n;
  }
}

/**
 * Records per slice (and per write): 50k dialogs never become one giant string, and a slice holds
 * the packets behind it little: 256 a slice (~1 ms) showed in p99 latency, and so did 64 on a slower
 * machine (0.5 ms on average, up to 3.5 ms, a few times a second at 1k calls/s: stop 37); 16 is
 * ~0.1 ms for one more write(2) every 16 records.
 */
const CHUNK = 16;

/** JSON of `s`, written in chunks of records (the same text as JSON.stringify(s)), yielding after each. */
function* writeState(fd: number, s: WorkerState): Generator<void, void, void> {
  writeSync(fd, `{"version":${s.version},"instance":${JSON.stringify(s.instance ?? '')},"savedAt":${s.savedAt},"journal":${s.journal ?? 0}`);
  for (const key of ['dialogs', 'registrations'] as const) {
    const rows: readonly unknown[] = s[key];
    writeSync(fd, `,"${key}":[`);
    for (let i = 0; i < rows.length; i += CHUNK) {
      const part = JSON.stringify(rows.slice(i, i + CHUNK));
      writeSync(fd, (i ? ',' : '') + part.slice(1, -1));
      yield;
    }
    writeSync(fd, ']');
  }
  writeSync(fd, '}');
}

/**
 * The identity of one worker's state: network namespace (inode of /proc/self/ns/net), WAN interface
 * and queue number, e.g. "net4026532281-wan0-q0". Safe in a file name.
 */
export function instanceKey(wan: string, queue: number, nsLink = '/proc/self/ns/net'): string {
  let ns = 'unknown';
  try {
    ns = /\[(\d+)\]/.exec(readlinkSync(nsLink))?.[1] ?? ns;
  } catch { /* no procfs: one namespace */ }
  return `net${ns}-${wan.replace(/[^A-Za-z0-9_.-]/g, '_')}-q${queue}`;
}
