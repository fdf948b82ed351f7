/**
 * The worker pool: one worker_thread per NFQUEUE number, a shared media-port table, metrics
 * aggregation, restart with back-off after a crash. close() is safe to call twice.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { PortAllocator } from '../nat/port-allocator';
import { log } from '../log';
import type { Metrics } from '../metrics/registry';
import type { Config } from '../config/schema';
import type { WorkerInit, WorkerMessage } from './worker';

export class WorkerPool {
  private readonly workers = new Map<number, Worker>();
  private readonly ports = PortAllocator.createShared();
  private readonly dialogCount = new SharedArrayBuffer(4);
  private closed = false;
  private readonly ready = new Set<number>();

  constructor(private readonly config: Config, private readonly publicIp: string, private readonly wanIfindex: number, private readonly metrics: Metrics) {}

  /** Starts every worker; resolves when all are bound, rejects with the first bind failure. */
  start(): Promise<void> {
    const all: Promise<void>[] = [];
    for (let q = this.config.queues.first, i = 0; q <= this.config.queues.last; q++, i++) all.push(this.spawn(q, i, 0));
    return Promise.all(all).then(() => undefined);
  }

  private spawn(queue: number, index: number, restarts: number): Promise<void> {
    const init: WorkerInit = { config: this.config, queue, index, publicIp: this.publicIp, wanIfindex: this.wanIfindex, ports: this.ports, dialogCount: this.dialogCount };
    const w = new Worker(join(__dirname, 'worker.js'), { workerData: init });
    this.workers.set(index, w);
    return new Promise((resolve, reject) => {
      let started = false;
      w.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') {
          started = true;
          this.ready.add(index);
          this.metrics.workersUp.set(this.ready.size);
          resolve();
        } else if (m.type === 'stats') this.metrics.absorb(index, m.stats);
        else if (m.type === 'fatal') reject(new Error(m.message));
      });
      w.on('error', (e) => {
        log('error', 'worker crashed', { worker: index, err: e, stack: e.stack });
        if (!started) reject(e);
      });
      w.on('exit', (code) => {
        this.ready.delete(index);
        this.metrics.workersUp.set(this.ready.size);
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
            w.postMessage({ type: 'close' });
          }),
      ),
    );
    this.workers.clear();
  }
}
