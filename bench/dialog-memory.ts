/**
 * JS heap per dialog, in one process (issue 21: memory ≤ 2 KB per dialog). The worker's own code
 * (Processor: parse, rewrite, SDP; DialogTable: the dialog, its pinholes and indexes) sets up
 * answered calls (INVITE with SDP out, 180 in, 200 with SDP in) through a ctnetlink that answers
 * every request and keeps nothing (the kernel's side of a call is the kernel's memory, not the
 * daemon's). The figure is the heap after a full GC, per live dialog; `--snapshot` also groups the
 * heap's growth by node type and constructor (heap snapshots of 0 and N dialogs).
 * The router lab's `npm run bench -- --only=memory` measures the daemon's RSS with real calls.
 *
 *   node --expose-gc dist/bench/dialog-memory.js [dialogs=20000] [--snapshot]
 */
import v8 from 'node:v8';
import { Processor } from '../src/alg/processor';
import { PortAllocator } from '../src/nat/port-allocator';
import { DialogTable } from '../src/dialog/dialog-table';
import type { Ctnetlink, PinholeSpec, Tuple } from '../src/conntrack/ctnetlink';
import type { Binding, BindingResolver } from '../src/nat/binding-resolver';
import { udpPacket } from '../test/helpers/packet';
import { crlf } from '../test/helpers/fixtures';

/** A ctnetlink whose every request succeeds and which keeps nothing. */
class NullCt {
  /** no queue batch to ride: pin() makes them with createAnchorWithExpectations */
  rideAnchorWithExpectations(): undefined { return undefined; }
  createAnchorWithExpectations(_a: Tuple, _t: number, exps: readonly PinholeSpec[]) { return exps.map(() => undefined); }
  createExpectation() { return undefined; }
  createSnatBatch(flows: readonly unknown[]) { return flows.map(() => undefined); }
  delete() { return true; }
  deleteBatch() { return undefined; }
  deleteSoon() { return undefined; }
  deleteExpectation() { return true; }
  deleteExpectationSoon() { return undefined; }
  flushDeletes() { return undefined; }
  get() { return { packets: 0 }; }
  pinholeStates() { return []; }
  setTimeouts() { return undefined; }
}

const T0 = Date.now();
const PHONE = '10.77.0.12', FAR = '203.0.113.10', PUB = '203.0.113.1';

function invite(i: number): string {
  const sdp = crlf(['v=0', `o=user1 53655765 2353687637 IN IP4 ${PHONE}`, 's=-', `c=IN IP4 ${PHONE}`, 't=0 0', `m=audio ${10000 + 2 * (i % 20000)} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', '']);
  return crlf([
    'INVITE sip:pbx@203.0.113.10:5080 SIP/2.0',
    `Via: SIP/2.0/UDP ${PHONE}:5060;branch=z9hG4bK-${i}-1-0;rport`,
    `From: sipp <sip:sipp@${PHONE}:5060>;tag=${i}SIPpTag001`,
    'To: <sip:pbx@203.0.113.10:5080>',
    `Call-ID: ${i}-3865@${PHONE}`,
    'CSeq: 1 INVITE',
    `Contact: sip:sipp@${PHONE}:5060`,
    'Max-Forwards: 70',
    'Content-Type: application/sdp',
    `Content-Length: ${Buffer.byteLength(sdp)}`,
    '',
    sdp,
  ]);
}

function answer(i: number, status: string, port: number | undefined): string {
  const sdp = port === undefined ? '' : crlf(['v=0', 'o=pbx 1 1 IN IP4 203.0.113.10', 's=-', 'c=IN IP4 203.0.113.10', 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', '']);
  return crlf([
    `SIP/2.0 ${status}`,
    `Via: SIP/2.0/UDP ${PUB}:38699;branch=z9hG4bK-${i}-1-0;rport=38699;received=${PUB}`,
    `From: sipp <sip:sipp@${PUB}:38699>;tag=${i}SIPpTag001`,
    `To: <sip:pbx@203.0.113.10:5080>;tag=${i}UAS`,
    `Call-ID: ${i}-3865@${PHONE}`,
    'CSeq: 1 INVITE',
    'Contact: <sip:pbx@203.0.113.10:5080>',
    ...(sdp ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(sdp)}`,
    '',
    sdp,
  ]);
}

function main(): void {
  const n = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 20000);
  const snapshot = process.argv.includes('--snapshot');
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const binding: Binding = { privateIp: PHONE, privatePort: 5060, publicIp: PUB, publicPort: 38699, source: 'conntrack' };
  const resolver = { outbound: () => binding, inbound: () => binding, stats: { moved: 0 } } as unknown as BindingResolver;
  const ports = new PortAllocator(PortAllocator.createShared(), 1, 1024, 65535, 3600_000);
  const proc = new Processor(resolver, ports, { maxMessageSize: 65507, malformedPolicy: 'pass', ports: [5060, 5080] });
  const counters = { inc() {} };
  const table = new DialogTable(new NullCt() as unknown as Ctnetlink, ports, 0, { retainOnHold: true, graceMs: 5000, idleMs: 3600_000, provisionalMs: 3600_000 }, counters);
  const run = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const now = T0 + i; // wall-clock milliseconds, as the worker's packet path passes them
      for (const [pkt, dir] of [
        [udpPacket(PHONE, FAR, 5060, 5080, invite(i)), 'out'],
        [udpPacket(FAR, PUB, 5080, 38699, answer(i, '180 Ringing', undefined)), 'in'],
        [udpPacket(FAR, PUB, 5080, 38699, answer(i, '200 OK', 20000 + 2 * (i % 20000))), 'in'],
      ] as const) {
        const o = proc.process(pkt, dir, now);
        if (o.event) table.observe(o.event, now);
      }
      if ((i & 255) === 255) table.takeChanges(); // the state file's journal takes them
    }
    table.takeChanges();
  };
  // warm-up (the code's own allocations: compiled code, caches), then released
  run(0, 1000);
  const heap = () => { gc(); gc(); return process.memoryUsage().heapUsed; };
  const summary = (file: string) => {
    // node type + constructor name -> [count, self size]
    const s = JSON.parse(require('node:fs').readFileSync(file, 'utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
    const f = s.snapshot.meta.node_fields, nf = f.length;
    const ti = f.indexOf('type'), ni = f.indexOf('name'), si = f.indexOf('self_size');
    const types = s.snapshot.meta.node_types[0];
    const m = new Map<string, [number, number]>();
    for (let i = 0; i < s.nodes.length; i += nf) {
      const type = types[s.nodes[i + ti]!]!;
      const name = type === 'object' || type === 'closure' || type === 'hidden' || type === 'code' ? s.strings[s.nodes[i + ni]!]! : '';
      const k = `${type} ${name}`.trim();
      const e = m.get(k) ?? [0, 0];
      e[0]++;
      e[1] += s.nodes[i + si]!;
      m.set(k, e);
    }
    return m;
  };
  const h0 = heap();
  const s0 = snapshot ? summary(v8.writeHeapSnapshot('/tmp/dialog-memory-0.heapsnapshot')) : undefined;
  run(1000, 1000 + n);
  const h1 = heap();
  console.log(`dialogs ${table.size}, heap +${((h1 - h0) / 1048576).toFixed(1)} MB, ${Math.round((h1 - h0) / n)} B per dialog`);
  if (s0) {
    const s1 = summary(v8.writeHeapSnapshot('/tmp/dialog-memory-1.heapsnapshot'));
    const rows = [...s1].map(([k, [c, b]]) => { const o = s0.get(k) ?? [0, 0]; return [k, (c - o[0]) / n, (b - o[1]) / n] as const; })
      .filter((r) => Math.abs(r[2]) >= 4).sort((a, b) => b[2] - a[2]);
    for (const [k, c, b] of rows) console.log(`${b.toFixed(0).padStart(6)} B ${c.toFixed(2).padStart(6)} per dialog  ${k}`);
  }
}

main();
