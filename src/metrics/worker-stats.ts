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

export class WorkerStats {
  private counters = new Map<string, number>();
  private durations: number[] = [];
  static readonly MAX_SAMPLES = 20000;

  inc(key: string, by = 1): void {
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  /** The key `a|b|c` or `a|b|c|d` of the per-packet counters, built once: later calls find it by its parts (strings whose hashes V8 keeps) without concatenating. */
  private readonly keys = new Map<string, Map<string, Map<string, Map<string, string>>>>();
  key(a: string, b: string, c: string, d = ''): string {
    let m1 = this.keys.get(a);
    if (!m1) this.keys.set(a, (m1 = new Map()));
    let m2 = m1.get(b);
    if (!m2) m1.set(b, (m2 = new Map()));
    let m3 = m2.get(c);
    if (!m3) m2.set(c, (m3 = new Map()));
    let k = m3.get(d);
    if (k === undefined) m3.set(d, (k = d === '' ? `${a}|${b}|${c}` : `${a}|${b}|${c}|${d}`));
    return k;
  }

  observe(seconds: number): void {
    if (this.durations.length < WorkerStats.MAX_SAMPLES) this.durations.push(seconds);
  }

  flush(mediaLeases: number, dialogs: number, registrations: number, pinholes: number): StatsFlush {
    const out: StatsFlush = { counters: Object.fromEntries(this.counters), durations: this.durations, mediaLeases, dialogs, registrations, pinholes, at: Date.now() };
    this.counters = new Map();
    this.durations = [];
    return out;
  }
}
