/**
 * A worker's dialogs and registrations on disk (state-dir/state-<instance>.json), so a daemon killed with
 * -9 or a crashed worker comes back with its calls: the kernel still holds the anchors, pinholes and
 * media flows, the file says which call owns them. Written atomically (temp file + rename) at most
 * every `intervalMs` when the tables changed; a clean stop releases everything and writes it empty.
 * /run is the right default: conntrack state does not survive a reboot either.
 * The file belongs to one instance: the network namespace (its conntrack table holds the anchors
 * the file names), the WAN interface and the queue. Daemons in other namespaces sharing the same
 * state-dir have other files, and a file whose recorded instance is not ours is refused.
 */
import { closeSync, mkdirSync, openSync, readFileSync, readlinkSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { PersistedDialog } from '../dialog/dialog-table';
import type { Registration } from '../registration/registration-table';

export interface WorkerState {
  version: 1;
  /** whose state this is (instanceKey); files written before it existed have none and are refused */
  instance?: string;
  savedAt: number;
  dialogs: PersistedDialog[];
  registrations: Registration[];
}

export class StateFile {
  readonly path: string;
  private lastSaved = 0;
  private lastKey = '';
  /** the save in slices now running (begin/step) */
  private slices: Generator<void, void, void> | undefined;
  private busyNs = 0n;
  /** at least this long between saves: 20 times the CPU time of the last save in slices */
  private minGapMs = 0;

  constructor(dir: string, readonly instance: string, private readonly intervalMs = 2000) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `state-${instance}.json`);
  }

  /** The saved state, or an empty one when there is none or it cannot be read (logged by the caller). */
  load(): { state: WorkerState; error?: string } {
    const empty: WorkerState = { version: 1, savedAt: 0, dialogs: [], registrations: [] };
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return { state: empty };
    }
    try {
      const s = JSON.parse(text) as WorkerState;
      if (s.version !== 1 || !Array.isArray(s.dialogs) || !Array.isArray(s.registrations)) return { state: empty, error: 'unknown format' };
      if (s.instance !== this.instance) return { state: empty, error: `it belongs to instance ${JSON.stringify(s.instance ?? 'unknown')}, not ${this.instance}` };
      return { state: s };
    } catch (e) {
      return { state: empty, error: (e as Error).message };
    }
  }

  /**
   * Saves at once, whole, when `key` (the tables' versions) moved and the interval passed, or when
   * forced (a clean stop); a save in slices still running is abandoned first.
   */
  maybeSave(key: string, now: number, build: () => WorkerState, force = false): boolean {
    if (!force && !this.due(key, now)) return false;
    this.abandon();
    const w = this.open(key, now, { ...build(), instance: this.instance });
    while (!w.next().done) { /* all slices now */ }
    return true;
  }

  /**
   * Starts a save in slices when one is due (same rule as maybeSave): the caller runs step() between
   * packets until it returns true. Each slice writes CHUNK records (~0.25 ms for 64 dialogs), so the
   * packet thread is never held for the whole table (a 20k-dialog table took ~50 ms in one piece,
   * which showed as p99 latency). Records are taken as they are when their slice is written; a
   * change during the save reaches the next one. To bound the cost of big tables, the next save
   * waits at least 20 times the CPU time the last one took.
   */
  begin(key: string, now: number, build: () => WorkerState): boolean {
    if (this.slices || !this.due(key, now)) return false;
    this.slices = this.open(key, now, { ...build(), instance: this.instance });
    this.busyNs = 0n;
    return true;
  }

  /** Writes the next slice of the running save; true when there is nothing left to write. */
  step(): boolean {
    if (!this.slices) return true;
    const t0 = process.hrtime.bigint();
    let done = false;
    try {
      done = this.slices.next().done === true;
    } catch (e) {
      this.abandon();
      throw e;
    } finally {
      this.busyNs += process.hrtime.bigint() - t0;
    }
    if (done) {
      this.slices = undefined;
      this.minGapMs = Number(this.busyNs / 1000000n) * 20;
    }
    return done;
  }

  private due(key: string, now: number): boolean {
    return key !== this.lastKey && now - this.lastSaved >= Math.max(this.intervalMs, this.minGapMs);
  }

  /** A save of `state` as a sequence of slices; the file is renamed into place after the last. */
  private *open(key: string, now: number, state: WorkerState): Generator<void, void, void> {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      yield* writeState(fd, state);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    this.lastSaved = now;
    this.lastKey = key;
  }

  private abandon(): void {
    if (!this.slices) return;
    const s = this.slices;
    this.slices = undefined;
    s.return(); // closes the file; the previous complete file stays in place
  }
}

/**
 * Records per slice (and per write): 50k dialogs never become one giant string, and a slice (~0.25 ms
 * for 64 dialogs) holds the packets behind it little (256 a slice, ~1 ms, showed in p99 latency).
 */
const CHUNK = 64;

/** JSON of `s`, written in chunks of records (the same text as JSON.stringify(s)), yielding after each. */
function* writeState(fd: number, s: WorkerState): Generator<void, void, void> {
  writeSync(fd, `{"version":${s.version},"instance":${JSON.stringify(s.instance ?? '')},"savedAt":${s.savedAt}`);
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
