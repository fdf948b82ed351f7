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
