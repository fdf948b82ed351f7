/**
 * Standalone fuzz run: `npm run fuzz -- [COUNT] [SEED]` (default 1,000,000). Mutated real
 * messages through the whole per-packet path (parse, rewrite, SDP, rebuild); fails on a throw, an
 * invalid output packet, or memory that keeps growing. Prints throughput and heap.
 */
import { Processor } from '../src/alg/processor';
import { PortAllocator } from '../src/nat/port-allocator';
import type { Binding, BindingResolver } from '../src/nat/binding-resolver';
import { parseIpUdp } from '../src/packet/ip';
import { udpPacket, verifyChecksums } from '../test/helpers/packet';
import { mutate, rng } from '../test/helpers/mutate';
import { INVITE, REGISTER_200_IN, SEED_REGISTER_BEFORE } from '../test/helpers/fixtures';

const count = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? 0x5eed);
const binding: Binding = { privateIp: '10.77.0.12', privatePort: 5060, publicIp: '203.0.113.1', publicPort: 38699, source: 'conntrack' };
const resolver = { outbound: () => binding, inbound: () => binding } as unknown as BindingResolver;
const ports = new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1000);
const proc = new Processor(resolver, ports, { maxMessageSize: 65507, malformedPolicy: 'pass', ports: [5060] });
const seeds = [INVITE, REGISTER_200_IN, SEED_REGISTER_BEFORE].map((s) => Buffer.from(s, 'latin1'));
const r = rng(seed);
const t0 = Date.now();
const reasons = new Map<string, number>();
let heapAt10 = 0;
for (let i = 0; i < count; i++) {
  const pkt = udpPacket('10.77.0.12', '203.0.113.10', 5060, 5080, mutate(seeds[i % seeds.length]!, r));
  let o;
  try {
    o = proc.process(pkt, i % 2 ? 'in' : 'out', i);
  } catch (e) {
    console.error(`iteration ${i} (seed ${seed}) threw: ${(e as Error).stack}`);
    process.exit(1);
  }
  reasons.set(o.reason, (reasons.get(o.reason) ?? 0) + 1);
  if (o.packet && (!verifyChecksums(o.packet) || !parseIpUdp(o.packet).ok)) {
    console.error(`iteration ${i} (seed ${seed}): invalid output packet`);
    process.exit(1);
  }
  if (i % 100000 === 0) ports.sweep(i + 1000000);
  if (i === Math.floor(count / 10)) heapAt10 = process.memoryUsage().heapUsed;
}
const secs = (Date.now() - t0) / 1000;
const heap = process.memoryUsage().heapUsed;
console.log(`${count} inputs in ${secs.toFixed(1)} s (${Math.round(count / secs)}/s), 0 crashes, 0 invalid packets; heap ${(heapAt10 / 1e6).toFixed(1)} MB at 10% -> ${(heap / 1e6).toFixed(1)} MB at the end`);
console.log('outcomes:', JSON.stringify(Object.fromEntries([...reasons].sort((a, b) => b[1] - a[1]))));
if (heap > heapAt10 * 3 + 50e6) {
  console.error('memory kept growing');
  process.exit(1);
}
