/**
 * What the NFQUEUE binding itself costs per packet (issue 6: "batching receive and verdicts in
 * native/ if the binding is the limit"). In a namespace of its own, the load generator sends real
 * SIP (REGISTERs) to a local port whose packets are queued; a worker thread with the project's
 * addon gives every packet its verdict: drop (the packet ends there, so this is the binding alone),
 * accept unchanged (NF_ACCEPT, no payload), or accept with a payload (the same bytes handed back,
 * as for a rewritten message); accepted packets go on to a socket on the port. The worker's event-loop utilisation
 * times the elapsed time over the packets it handled is the binding's cost per packet: receive
 * syscall, libnetfilter_queue parsing, the copy into the batch buffer, one call into JS per wake-up and the verdicts
 * syscall (which, for a locally sent packet, also carries it on to the socket).
 *
 *   sudo node dist/bench/queue.js            (after npm run build; prints a table)
 */
import { spawnSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { createSocket } from 'node:dgram';
import { NF_ACCEPT, NF_DROP } from '../src/native/binding';
import { NfQueue } from '../src/native/queue';

const NS = 'sipalg-qbench';
const QUEUE = 7;
const PORT = 9999;
const LOADGEN = '/tmp/sipalg-bench/loadgen';
const ROOT = join(__dirname, '../..');

/** drop: the binding alone (the verdict ends the packet); plain: accept unchanged; payload: accept with the payload handed back */
type Mode = 'drop' | 'plain' | 'payload';
const MODE_LABEL: Record<Mode, string> = { drop: 'drop (the binding alone)', plain: 'accept unchanged', payload: 'accept with payload' };

interface Result { mode: string; rate: number; sent: number; handled: number; usPerPacket: number; elu: number }

/** The consumer: accept-only or accept with payload, counting. */
function consumer(): void {
  const mode = (workerData as { mode: Mode }).mode;
  const verdict = mode === 'drop' ? NF_DROP : NF_ACCEPT;
  let handled = 0;
  // eslint-disable-next-line prefer-const
  let q: NfQueue;
  const onBatch = (count: number): void => {
    for (let i = 0; i < count; i++) {
      handled++;
      q.verdict(q.id(i), verdict, mode === 'payload' ? q.payload(i) : undefined);
    }
    q.flush();
  };
  q = new NfQueue(QUEUE, { failOpen: true, maxLen: 4096 }, onBatch);
  let elu0 = performance.eventLoopUtilization();
  let h0 = 0;
  parentPort!.on('message', (m: string) => {
    if (m === 'start') { elu0 = performance.eventLoopUtilization(); h0 = handled; parentPort!.postMessage({ ready: true }); return; }
    const e = performance.eventLoopUtilization(elu0);
    parentPort!.postMessage({ handled: handled - h0, activeMs: e.active, elu: e.utilization });
    if (m === 'close') { q.close(); parentPort!.close(); }
  });
  parentPort!.postMessage({ ready: true });
}

async function inner(rate: number, mode: Mode): Promise<void> {
  const w = new Worker(__filename, { workerData: { mode } });
  const next = () => new Promise<Record<string, number>>((r) => w.once('message', r));
  await next();
  w.postMessage('start');
  await next();
  const sink = createSocket('udp4').on('message', () => undefined);
  await new Promise<void>((r) => sink.bind(PORT, '127.0.0.1', r));
  const gen = spawn(LOADGEN, ['uac', '--ips', '127.0.0.1', '--dst', `127.0.0.1:${PORT}`, '--kind', 'register', '--rate', String(rate), '--duration', '3', '--run', '1', '--linger', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  gen.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => gen.once('close', r)); // 'close': its report may still be in the pipe at 'exit'
  await new Promise((r) => setTimeout(r, 300));
  sink.close();
  w.postMessage('close');
  const s = await next();
  const sent = Number(/"sent":\s*(\d+)/.exec(out)?.[1] ?? 0);
  const res: Result = { mode: MODE_LABEL[mode], rate, sent, handled: s.handled!, usPerPacket: (s.activeMs! * 1000) / Math.max(1, s.handled!), elu: s.elu! };
  process.stdout.write(`${JSON.stringify(res)}\n`);
  await w.terminate();
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/** Runs the measurements in a namespace of their own and prints the table. */
export function runQueueBench(rates = [20000, 50000, 100000]): string[] {
  const lines: string[] = [];
  spawnSync('ip', ['netns', 'del', NS]);
  sh('mkdir', ['-p', '/tmp/sipalg-bench']);
  sh('cc', ['-O2', '-pthread', '-o', LOADGEN, join(ROOT, 'bench/loadgen.c')]);
  sh('ip', ['netns', 'add', NS]);
  try {
    sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    sh('ip', ['netns', 'exec', NS, 'iptables', '-t', 'mangle', '-A', 'OUTPUT', '-p', 'udp', '--dport', String(PORT), '-j', 'NFQUEUE', '--queue-num', String(QUEUE)]);
    lines.push('| verdict | offered msg/s | sent | handled | binding cost µs/packet | worker busy |', '|---|---|---|---|---|---|');
    for (const mode of ['drop', 'plain', 'payload'] as const) {
      for (const rate of rates) {
        const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, __filename, '--inner', String(rate), mode], { encoding: 'utf8', timeout: 30000 });
        const line = r.stdout.trim().split('\n').pop() ?? '';
        try {
          const x = JSON.parse(line) as Result;
          lines.push(`| ${x.mode} | ${x.rate} | ${x.sent} | ${x.handled} | ${x.usPerPacket.toFixed(2)} | ${(x.elu * 100).toFixed(0)}% |`);
        } catch {
          lines.push(`| ${MODE_LABEL[mode]} | ${rate} | failed: ${(r.stderr || line).slice(-200).replace(/\n/g, ' ')} | | | |`);
        }
      }
    }
  } finally {
    spawnSync('ip', ['netns', 'del', NS]);
  }
  return lines;
}

if (!isMainThread) consumer();
else if (require.main === module) {
  const i = process.argv.indexOf('--inner');
  if (i >= 0) void inner(Number(process.argv[i + 1]), process.argv[i + 2] as Mode);
  else for (const l of runQueueBench()) console.log(l);
}
