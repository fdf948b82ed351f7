/**
 * A worker's dialogs and registrations on disk (state-dir/worker-N.json), so a daemon killed with
 * -9 or a crashed worker comes back with its calls: the kernel still holds the anchors, pinholes and
 * media flows, the file says which call owns them. Written atomically (temp file + rename) at most
 * every `intervalMs` when the tables changed; a clean stop releases everything and writes it empty.
 * /run is the right default: conntrack state does not survive a reboot either.
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { PersistedDialog } from '../dialog/dialog-table';
import type { Registration } from '../registration/registration-table';

export interface WorkerState {
  version: 1;
  savedAt: number;
  dialogs: PersistedDialog[];
  registrations: Registration[];
}

export class StateFile {
  readonly path: string;
  private lastSaved = 0;
  private lastKey = '';

  constructor(dir: string, worker: number, private readonly intervalMs = 2000) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `worker-${worker}.json`);
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
      return { state: s };
    } catch (e) {
      return { state: empty, error: (e as Error).message };
    }
  }

  /** Saves when `key` (the tables' versions) moved and the interval passed, or when forced. */
  maybeSave(key: string, now: number, build: () => WorkerState, force = false): boolean {
    if (!force && (key === this.lastKey || now - this.lastSaved < this.intervalMs)) return false;
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeState(fd, build());
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    this.lastSaved = now;
    this.lastKey = key;
    return true;
  }
}

/** Records per write: the document is streamed so 50k dialogs never become one giant string. */
const CHUNK = 256;

/** JSON of `s`, written in chunks of records (the same text as JSON.stringify(s)). */
function writeState(fd: number, s: WorkerState): void {
  writeSync(fd, `{"version":${s.version},"savedAt":${s.savedAt}`);
  for (const key of ['dialogs', 'registrations'] as const) {
    const rows: readonly unknown[] = s[key];
    writeSync(fd, `,"${key}":[`);
    for (let i = 0; i < rows.length; i += CHUNK) {
      const part = JSON.stringify(rows.slice(i, i + CHUNK));
      writeSync(fd, (i ? ',' : '') + part.slice(1, -1));
    }
    writeSync(fd, ']');
  }
  writeSync(fd, '}');
}
