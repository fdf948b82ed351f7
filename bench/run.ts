/**
 * npm run bench: the per-packet cost of the hot path, beside the alternatives, in one run.
 *  - sip-alg processor on a real INVITE (+SDP) and on a 200 OK, binding from a warm cache
 *  - SDP: our line translator vs sdp-transform parse+write (the library alternative)
 * As root, then: the media scenarios beside the kernel helper (kernel-compare.ts) and the router-level
 * benchmark (router.ts: zero-loss rate, latency, calls/s, RTP, memory vs the kernel helper).
 * Flags: --no-scale (no thread-scaling run), --no-lab (no namespace lab), --no-media, --no-router, --quick, --only=rate,latency,cps,rtp,memory,cpu.
 */
import { performance } from 'node:perf_hooks';
import { cpus, release } from 'node:os';
import * as sdpTransform from 'sdp-transform';
import { Processor } from '../src/alg/processor';
import { PortAllocator } from '../src/nat/port-allocator';
import type { Binding, BindingResolver } from '../src/nat/binding-resolver';
import { rewriteSdp } from '../src/sdp/rewrite';
import { udpPacket } from '../test/helpers/packet';
import { INVITE, REGISTER_200_IN, SDP_OFFER } from '../test/helpers/fixtures';
import { JUNK_KINDS, junkDatagram, rng } from '../src/lab/junk';
import { carriesSourceAddress, mayLeak } from '../src/policy/leak-guard';

const binding: Binding = { privateIp: '10.77.0.12', privatePort: 5060, publicIp: '203.0.113.1', publicPort: 38699, source: 'conntrack' };
const resolver = { outbound: () => binding, inbound: () => binding } as unknown as BindingResolver;
const proc = new Processor(resolver, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 3600000), { maxMessageSize: 65507, malformedPolicy: 'pass', ports: [5060] });

function bench(name: string, n: number, fn: (i: number) => unknown): number {
  for (let i = 0; i < Math.min(n, 20000); i++) fn(i); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  const us = ((performance.now() - t0) * 1000) / n;
  console.log(`${name.padEnd(58)} ${us.toFixed(2).padStart(8)} µs/op ${(1e6 / us).toFixed(0).padStart(10)} ops/s`);
  return us;
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Linux ${release()}, node ${process.version}`);
const invite = udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, INVITE);
const ok200 = udpPacket('203.0.113.10', '10.77.0.12', 5060, 5060, REGISTER_200_IN);
const a = bench('processor: LAN→WAN INVITE with SDP (rewrite + rebuild)', 200000, () => proc.process(invite, 'out', 0));
const b = bench('processor: WAN→LAN 200 OK (rewrite + rebuild)', 200000, () => proc.process(ok200, 'in', 0));
const ours = bench('SDP: sip-alg line translator', 200000, () => rewriteSdp(SDP_OFFER, '10.77.0.12', '203.0.113.1', (_i, p) => p));
const lib = bench('SDP: sdp-transform parse + edit + write', 200000, () => {
  const s = sdpTransform.parse(SDP_OFFER);
  if (s.connection) s.connection.ip = '203.0.113.1';
  if (s.origin) s.origin.address = '203.0.113.1';
  return sdpTransform.write(s);
});
// issue 13: what a junk datagram costs the worker (the processor's verdict plus the leak guard)
console.log('\nJunk (issue 13): µs per datagram, the worker\'s judgement (processor + leak guard), by kind:');
const junkCost: number[] = [];
for (const kind of JUNK_KINDS) {
  const rand = rng(13);
  const pkts = Array.from({ length: 512 }, (_, i) => udpPacket('10.77.0.12', '203.0.113.20', 5060, 5060, junkDatagram(kind, '10.77.0.12', '203.0.113.20', i, rand)));
  junkCost.push(bench(`junk: ${kind} (${Math.round(pkts.reduce((a, p) => a + p.length, 0) / pkts.length)} B avg)`, kind === 'giant_header' ? 20000 : 100000, (i) => {
    const pkt = pkts[i & 511]!;
    const o = proc.process(pkt, 'out', 0);
    return o.accept && !o.packet && mayLeak(o.reason) && carriesSourceAddress(pkt);
  }));
}
const malformed = (junkCost[0]! + junkCost[1]! + junkCost[2]! + junkCost[4]!) / 4;
console.log(`junk that is not valid SIP (truncated, lying length, NUL, random): ${malformed.toFixed(2)} µs each on average = ${(a / malformed).toFixed(0)}x cheaper than a real INVITE; a flood of it at 20k/s costs ${(malformed * 20000 / 1e4).toFixed(1)}% of a worker`);

console.log(`\nSDP translator vs sdp-transform: ${(lib / ours).toFixed(1)}x faster; single-core ceiling of the JS path: ~${Math.round(1e6 / Math.max(a, b))} msgs/s per worker (excluding the kernel round trip and ctnetlink)`);

// issue 21: the JS heap per answered call (its own process: --expose-gc for a full GC before each reading)
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
  const heap = execFileSync(process.execPath, ['--expose-gc', `${__dirname}/dialog-memory.js`, '20000'], { encoding: 'utf8', timeout: 120000 }).trim();
  console.log(`\nJS heap per dialog (bench/dialog-memory.ts: parse, rewrite and the dialog table of 20k answered calls in one process, the kernel left out): ${heap}`);
} catch (e) {
  console.log(`\nJS heap per dialog: error: ${(e as Error).message}`);
}

async function lab(): Promise<void> {
  if (process.argv.includes('--no-lab')) return console.log('\n(--no-lab: namespace lab parts skipped)');
  if (process.getuid?.() !== 0) return console.log('\n(run as root for the lab comparison with the kernel SIP helper and the router benchmark)');
  if (!process.argv.includes('--no-queue')) {
    console.log('\nWhat the NFQUEUE binding itself costs per packet (bench/queue.ts; real SIP from the load generator, queued in a namespace of its own):');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    for (const l of (require('./queue') as typeof import('./queue')).runQueueBench()) console.log(l);
  }
  if (!process.argv.includes('--no-media')) {
    console.log('\nMedia through the router, measured in the namespace lab (sip-alg vs the kernel SIP helper vs plain NAT):');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    await (require('./kernel-compare') as typeof import('./kernel-compare')).kernelCompare((s) => console.log(s));
  }
  if (!process.argv.includes('--no-router')) {
    console.log('\nRouter benchmark (issue 6): plain NAT vs the kernel SIP helper vs sip-alg, in the namespace lab:');
    const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    await (require('./router') as typeof import('./router')).routerBench((s) => console.log(s), { quick: process.argv.includes('--quick'), only });
  }
}
async function scale(): Promise<void> {
  if (process.argv.includes('--no-scale')) return;
  console.log('\nScaling with cores (issue 12, bench/scale.ts): the JS path in 1..N worker threads at once, sharing the media-port allocator and the dialog counters as the workers do; "per thread vs 1 thread alone" below 1.00 would mean they serialise:');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  await (require('./scale') as typeof import('./scale')).scaleBench((s) => console.log(s));
}
scale().then(lab).catch((e: Error) => { console.error(e); process.exit(1); });
