/**
 * Scaling with cores (issue 12): the per-packet JS path of one worker (Processor: parse, rewrite,
 * the shared media-port allocator; the dialog table's shared per-source counters) run in 1..N
 * worker threads at once, each on its own packets but sharing what the real workers share (the
 * SharedArrayBuffers of PortAllocator and DialogTable). If anything serialised the workers, a
 * thread's rate would fall as threads are added; the figure is each thread's rate against the rate
 * of one thread alone ("contention": 1.00 = none).
 * The kernel side (NFQUEUE, ctnetlink) is per-queue and per-socket in the kernel and is not in it.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { cpus } from 'node:os';
import { Processor } from '../src/alg/processor';
import { PortAllocator } from '../src/nat/port-allocator';
import { DialogTable } from '../src/dialog/dialog-table';
import type { Binding, BindingResolver } from '../src/nat/binding-resolver';
import { udpPacket } from '../test/helpers/packet';
import { INVITE } from '../test/helpers/fixtures';

interface Job { index: number; ports: SharedArrayBuffer; counts: SharedArrayBuffer; ms: number }

function runThread(job: Job): number {
  const binding: Binding = { privateIp: `10.77.${job.index}.12`, privatePort: 5060, publicIp: '203.0.113.1', publicPort: 38699, source: 'conntrack' };
  const resolver = { outbound: () => binding, inbound: () => binding } as unknown as BindingResolver;
  const ports = new PortAllocator(job.ports, job.index + 1, 1024, 65535, 3600_000);
  const proc = new Processor(resolver, ports, { maxMessageSize: 65507, malformedPolicy: 'pass', ports: [5060] });
  const shared = new Int32Array(job.counts);
  // each thread its own calls (Call-ID, media port): a new lease per INVITE, released again, as calls come and go
  const pkts = Array.from({ length: 4096 }, (_, i) => udpPacket(`10.77.${job.index}.12`, '203.0.113.10', 5060, 5080,
    INVITE.replace('m=audio 6000', `m=audio ${10000 + 2 * i}`).replace(/Call-ID: [^\r]*/, `Call-ID: ${job.index}-${i}@x`)));
  let n = 0;
  const end = Date.now() + job.ms;
  while (Date.now() < end) {
    for (let k = 0; k < 256; k++, n++) {
      proc.process(pkts[n & 4095]!, 'out', 0);
      Atomics.add(shared, 0, 1); // the shared dialog count, as DialogTable.count does
      Atomics.add(shared, 1 + (n & 1023), 1);
      if ((n & 4095) === 4095) ports.releaseAll();
    }
  }
  return n / (job.ms / 1000);
}

export async function scaleBench(out: (s: string) => void, ms = 3000): Promise<void> {
  const max = Math.max(2, cpus().length);
  const ports = PortAllocator.createShared();
  const counts = DialogTable.createShared();
  out(`| threads | INVITE/s per thread | INVITE/s all threads | per thread vs 1 thread alone |`);
  out('|---|---|---|---|');
  let one = 0;
  for (let t = 1; t <= max; t++) {
    const rates = await Promise.all(Array.from({ length: t }, (_, i) => new Promise<number>((resolve, reject) => {
      const w = new Worker(__filename, { workerData: { index: i, ports, counts, ms } satisfies Job });
      w.once('message', (r: number) => resolve(r));
      w.once('error', reject);
    })));
    const per = rates.reduce((a, b) => a + b, 0) / t;
    if (t === 1) one = per;
    out(`| ${t} | ${Math.round(per)} | ${Math.round(per * t)} | ${(per / one).toFixed(2)} |`);
  }
}

if (!isMainThread) parentPort!.postMessage(runThread(workerData as Job));
else if (require.main === module) scaleBench((s) => console.log(s)).catch((e) => { console.error(e); process.exit(1); });
