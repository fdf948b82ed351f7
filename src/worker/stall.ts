/**
 * Latency and allocation diagnosis (heapSample, below), off by default: with SIPALG_STALL_MS=N the worker logs every timer, slice or
 * batch that held its thread N ms or longer (timed), and the pipeline every datagram whose steps took
 * that long, with the time its thread waited for a CPU (waitedMs): a latency tail can then be matched
 * to what held the thread, or to the scheduler (bench/latency-probe.ts).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { log } from '../log';

export const STALL_MS = Number(process.env.SIPALG_STALL_MS ?? 0);

/** `f`, timed and logged when it runs STALL_MS or longer; `f` itself when the diagnosis is off */
export function timed<A extends unknown[]>(what: string, f: (...a: A) => void): (...a: A) => void {
  if (!STALL_MS) return f;
  return (...a: A) => {
    const t0 = performance.now();
    f(...a);
    const ms = performance.now() - t0;
    if (ms >= STALL_MS) log('warn', 'worker stall', { what, ms: Number(ms.toFixed(2)), args: a.length ? String(a[0]) : undefined });
  };
}

/** this thread's time waiting for a CPU while runnable, ms (/proc/thread-self/schedstat, second field, ns): preemption */
export function waitedMs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[1]) / 1e6;
  } catch {
    return NaN;
  }
}

/**
 * Allocation diagnosis, off by default: with SIPALG_HEAP_SAMPLE=FILE the worker runs V8's sampling
 * heap profiler (one sample per 1 KiB allocated, objects collected since kept in the profile) from
 * SIPALG_HEAP_SAMPLE_AFTER_S seconds after its start for SIPALG_HEAP_SAMPLE_S seconds, and writes
 * the profile to FILE.<worker> (Chrome DevTools' .heapprofile format): what the packet path
 * allocates per message, which sets how often the young generation is scavenged.
 */
export function heapSample(worker: number): void {
  const file = process.env.SIPALG_HEAP_SAMPLE;
  if (!file) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Session } = require('node:inspector') as typeof import('node:inspector');
  const s = new Session();
  s.connect();
  const after = Number(process.env.SIPALG_HEAP_SAMPLE_AFTER_S ?? 8) * 1000, span = Number(process.env.SIPALG_HEAP_SAMPLE_S ?? 4) * 1000;
  setTimeout(() => {
    s.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }, () => {
      setTimeout(() => {
        s.post('HeapProfiler.stopSampling', (err, r) => {
          if (err) log('warn', 'heap sample failed', { err });
          else writeFileSync(`${file}.${worker}`, JSON.stringify((r as { profile: unknown }).profile));
          s.disconnect();
        });
      }, span).unref();
    });
  }, after).unref();
}
