/**
 * Per-worker counters, flushed to the main thread as plain deltas (worker threads cannot share a
 * prom-client registry). Keys are `metric|label1|label2...`.
 */
export interface StatsFlush {
  counters: Record<string, number>;
  durations: number[]; // seconds, capped sample of this interval
  mediaLeases: number;
  dialogs: number;
  registrations: number;
  pinholes: number;
  /** when the worker flushed (ms since the epoch): a stalled worker stops flushing */
  at: number;
}

/**
 * Counters are slots of a typed array, each named once (its key, `metric|label1|label2...`): a
 * packet adds to a number, it does not look up or build a string. The per-packet counters are found
 * by their parts (`counter`), other code may still count by key (`inc`), which finds the slot once
 * per call.
 */
export class WorkerStats {
  private readonly ids = new Map<string, number>();
  private readonly names: string[] = [];
  private counts = new Float64Array(64);
  /** 1 for the slots counted since the last flush (a count of 0 still makes its series) */
  private touched = new Uint8Array(64);
  private durations: number[] = [];
  static readonly MAX_SAMPLES = 20000;

  /** The slot of the counter `key`, made on first use. */
  id(key: string): number {
    let i = this.ids.get(key);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(key);
      this.ids.set(key, i);
      if (i >= this.counts.length) {
        const counts = new Float64Array(this.counts.length * 2), touched = new Uint8Array(this.counts.length * 2);
        counts.set(this.counts);
        touched.set(this.touched);
        this.counts = counts;
        this.touched = touched;
      }
    }
    return i;
  }

  /** Adds to the counter in slot `id` (from `id` or `counter`). */
  add(id: number, by = 1): void {
    this.counts[id] = this.counts[id]! + by;
    this.touched[id] = 1;
  }

  inc(key: string, by = 1): void {
    this.add(this.id(key), by);
  }

  /**
   * The slot of the counter `a|b`, `a|b|c` or `a|b|c|d` (empty trailing parts are left out), found by
   * its parts (strings whose hashes V8 keeps) without building its key after the first time.
   */
  private readonly slots = new Map<string, Map<string, Map<string, Map<string, number>>>>();
  counter(a: string, b: string, c = '', d = ''): number {
    let m1 = this.slots.get(a);
    if (!m1) this.slots.set(a, (m1 = new Map()));
    let m2 = m1.get(b);
    if (!m2) m1.set(b, (m2 = new Map()));
    let m3 = m2.get(c);
    if (!m3) m2.set(c, (m3 = new Map()));
    let k = m3.get(d);
    if (k === undefined) m3.set(d, (k = this.id(c === '' ? `${a}|${b}` : d === '' ? `${a}|${b}|${c}` : `${a}|${b}|${c}|${d}`)));
    return k;
  }

  observe(seconds: number): void {
    if (this.durations.length < WorkerStats.MAX_SAMPLES) this.durations.push(seconds);
  }

  flush(mediaLeases: number, dialogs: number, registrations: number, pinholes: number): StatsFlush {
    const counters: Record<string, number> = {};
    for (let i = 0; i < this.names.length; i++) {
      if (!this.touched[i]) continue;
      counters[this.names[i]!] = this.counts[i]!;
      this.counts[i] = 0;
      this.touched[i] = 0;
    }
    const out: StatsFlush = { counters, durations: this.durations, mediaLeases, dialogs, registrations, pinholes, at: Date.now() };
    this.durations = [];
    return out;
  }
}
