/**
 * The worker pool: one worker_thread per NFQUEUE number, a shared media-port table, metrics
 * aggregation, restart with back-off after a crash. close() is safe to call twice.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { PortAllocator } from '../nat/port-allocator';
import { DialogTable } from '../dialog/dialog-table';
import { log } from '../log';
import type { Metrics } from '../metrics/registry';
import type { Config } from '../config/schema';
import type { ToWorker, WanLink, WorkerInit, WorkerMessage } from './worker';
import type { TapFilter, TapRecord } from '../capture/tap';

/**
 * A worker's young generation (V8's new space, semi-spaces of a third of it): 4 MB, a nursery that
 * stays in the cache. What a scavenge pauses the worker for is what survived since the last one (the
 * calls' dialogs, which live on): a small nursery collects often and briefly, a large one seldom and
 * long, holding the packets behind it. Measured with the worker collecting on its own thread
 * (--single-threaded-gc, stop 34), settled, 1k INVITE/s (bench/latency-probe.js, 4 runs each): p99
 * one-way latency 0.66-1.09 ms with 4 MB against 2.5-3.9 ms with 96 MB (the value of stops 31-34,
 * chosen then for CPU under concurrent marking); CPU per message in interleaved A/Bs (bench/ab.ts):
 * INVITE 147 against 151 µs, call mix 130 against 147, REGISTER 60.8 against 57.1 (BENCHMARKS.md,
 * stop 35). SIPALG_YOUNG_MB overrides it (the benches' A/Bs).
 */
const WORKER_YOUNG_GENERATION_MB = Number(process.env.SIPALG_YOUNG_MB) || 4;

/**
 * How V8 collects the workers' heaps, from node's own flags (the last of --single-threaded-gc and
 * --no-single-threaded-gc wins): bin/sip-alg and the systemd unit start node with the first.
 */
export function gcMode(execArgv: readonly string[]): 'single-threaded' | 'concurrent' {
  let single = false;
  for (const a of execArgv) {
    if (a === '--single-threaded-gc' || a === '--single_threaded_gc') single = true;
    else if (a === '--no-single-threaded-gc' || a === '--no-single_threaded_gc') single = false;
  }
  return single ? 'single-threaded' : 'concurrent';
}

interface Pending {
  waiting: Set<number>;
  rows: unknown[];
  done: (rows: unknown[]) => void;
}

export class WorkerPool {
  private readonly workers = new Map<number, Worker>();
  private readonly ports = PortAllocator.createShared();
  private readonly dialogCount = DialogTable.createShared();
  private closed = false;
  private readonly ready = new Set<number>();
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly taps = new Map<number, { filter: TapFilter; on: (r: TapRecord) => void }>();
  private config: Config;

  constructor(config: Config, private links: WanLink[], private readonly metrics: Metrics, private readonly publicIp6?: string) {
    this.config = config;
    for (let q = config.queues.first; q <= config.queues.last; q++) metrics.queues.push(q);
  }

  private send(w: Worker, m: ToWorker): void {
    w.postMessage(m);
  }

  /** Asks every bound worker; resolves with all their rows (a worker that does not answer in 2 s is left out). */
  query(what: 'calls' | 'registrations' | 'blocked' | 'counts' | 'takeover' | 'standby'): Promise<unknown[]> {
    const id = this.nextId++;
    const targets = [...this.ready];
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.pending.delete(id); resolve(p.rows); }, 2000);
      const p: Pending = { waiting: new Set(targets), rows: [], done: (rows) => { clearTimeout(timer); this.pending.delete(id); resolve(rows); } };
      if (!targets.length) return p.done([]);
      this.pending.set(id, p);
      for (const i of targets) this.send(this.workers.get(i)!, { type: 'query', id, what });
    });
  }

  private failPending(worker: number): void {
    for (const p of this.pending.values()) if (p.waiting.delete(worker) && !p.waiting.size) p.done(p.rows);
  }

  /** Every packet matching `filter`, before and after the ALG, until the returned stop() is called. */
  tap(filter: TapFilter, on: (r: TapRecord) => void): () => void {
    const id = this.nextId++;
    this.taps.set(id, { filter, on });
    for (const w of this.workers.values()) this.send(w, { type: 'tap', id, filter });
    return () => {
      this.taps.delete(id);
      for (const w of this.workers.values()) this.send(w, { type: 'untap', id });
    };
  }

  /**
   * A WAN link changed (a DHCP renewal or PPPoE reconnect gave it another address; PPPoE made the
   * interface again with another index; a missing link appeared): every worker follows, and a
   * restarted one starts with the links as they are.
   */
  wanChanged(links: WanLink[]): void {
    this.links = links;
    for (const w of this.workers.values()) this.send(w, { type: 'wan', links });
  }

  /** Applies a reloaded config to every worker (keys that need a restart were already kept). */
  reload(config: Config): void {
    this.config = config;
    for (const w of this.workers.values()) this.send(w, { type: 'config', config });
  }

  /** Starts every worker; resolves when all are bound, rejects with the first bind failure. */
  start(): Promise<void> {
    const all: Promise<void>[] = [];
    for (let q = this.config.queues.first, i = 0; q <= this.config.queues.last; q++, i++) all.push(this.spawn(q, i, 0));
    return Promise.all(all).then(() => undefined);
  }

  private spawn(queue: number, index: number, restarts: number): Promise<void> {
    const init: WorkerInit = { config: this.config, queue, index, links: this.links, publicIp6: this.publicIp6, ports: this.ports, dialogCount: this.dialogCount };
    const w = new Worker(join(__dirname, 'worker.js'), { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
    this.workers.set(index, w);
    return new Promise((resolve, reject) => {
      let started = false;
      w.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') {
          started = true;
          this.ready.add(index);
          this.metrics.workersUp.set(this.ready.size);
          this.metrics.workerUp.set({ worker: String(index), queue: String(queue) }, 1);
          resolve();
          // a restarted worker picks up the taps that are on
          for (const [id, t] of this.taps) this.send(w, { type: 'tap', id, filter: t.filter });
        } else if (m.type === 'stats') this.metrics.absorb(index, m.stats);
        else if (m.type === 'reply') {
          const p = this.pending.get(m.id);
          if (p && p.waiting.delete(index)) {
            p.rows.push(...(m.data as unknown[]).map((r) => ({ worker: index, ...(r as object) })));
            if (!p.waiting.size) p.done(p.rows);
          }
        } else if (m.type === 'tap') this.taps.get(m.id)?.on(m.record);
        else if (m.type === 'fatal') reject(new Error(m.message));
      });
      w.on('error', (e) => {
        log('error', 'worker crashed', { worker: index, err: e, stack: e.stack });
        if (!started) reject(e);
      });
      w.on('exit', (code) => {
        this.ready.delete(index);
        this.metrics.workersUp.set(this.ready.size);
        this.metrics.workerUp.set({ worker: String(index), queue: String(queue) }, 0);
        this.failPending(index);
        if (this.closed || !started) return;
        // while it is down, --queue-bypass (fail-open) lets SIP through unchanged
        const delay = Math.min(5000, 100 * 2 ** restarts);
        log('warn', 'worker exited, restarting', { worker: index, code, delayMs: delay });
        this.metrics.workerRestarts.inc();
        setTimeout(() => {
          if (!this.closed) this.spawn(queue, index, restarts + 1).catch((e: Error) => log('error', 'worker restart failed', { worker: index, err: e }));
        }, delay).unref();
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      [...this.workers.values()].map(
        (w) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => void w.terminate().then(() => resolve()), 2000);
            w.once('exit', () => { clearTimeout(t); resolve(); });
            this.send(w, { type: 'close' });
          }),
      ),
    );
    this.workers.clear();
  }
}
