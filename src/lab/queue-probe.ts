/**
 * The NFQUEUE binding on its own, for test/lab/queue.test.ts: run inside a network namespace whose
 * OUTPUT chain queues UDP to 127.0.0.1:<port> to queue <num>. It binds the queue (NfQueue), sends
 * <count> datagrams to that port from the same process, and gives each its verdict: "drop-..."
 * payloads NF_DROP, the others NF_ACCEPT with the payload upper-cased (a rewritten packet, checksums
 * recomputed). The first batch holds the event loop for 100 ms, so the rest of the burst waits in
 * the queue and arrives in batches. Prints one JSON line: the batch sizes, what the receiving socket
 * got, and how the queue behaved when opened twice and used after close. In its second batch two
 * ctnetlink timeout updates ride the verdicts' datagram (Ctnetlink.setTimeoutRiding): one for the
 * burst's own flow (confirmed by then), one for a flow that does not exist; it reports the flow's
 * timeout afterwards and the failures the queue read back.
 *
 *   node dist/src/lab/queue-probe.js <queue-num> <port> <count>
 */
import { createSocket } from 'node:dgram';
import { NfQueue } from '../native/queue';
import { NF_ACCEPT, NF_DROP } from '../native/binding';
import { parseIpUdp, rebuildUdp } from '../packet/ip';
import { QueueError } from '../errors';
import { Ctnetlink, type Tuple } from '../conntrack/ctnetlink';

const [num, port, count] = process.argv.slice(2).map(Number) as [number, number, number];
const batches: number[] = [];
const received: string[] = [];
let handled = 0;
const ct = new Ctnetlink();
const flow: Tuple = { src: '127.0.0.1', sport: port + 1, dst: '127.0.0.1', dport: port, proto: 17 };
const nowhere: Tuple = { src: '127.0.0.1', sport: 1, dst: '127.0.0.1', dport: 2, proto: 17 };
/** per riding request: taken by the queue, and the errno the kernel answered (0: none) */
const riding = { flow: { rode: false, errno: 0 }, nowhere: { rode: false, errno: 0 }, failedReadBack: 0 };

const codeOf = (f: () => unknown): string => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return e instanceof QueueError ? e.code : `other: ${(e as Error).message}`;
  }
};

// eslint-disable-next-line prefer-const
let q: NfQueue;
const onBatch = (n: number): void => {
  batches.push(n);
  riding.failedReadBack += q.failedRequests;
  for (let k = 0; k < q.failedRequests; k++) ct.settle(q.failedSeq(k), q.failedErrno(k));
  if (batches.length === 2) {
    riding.flow.rode = ct.setTimeoutRiding(flow, 3333, (e) => { riding.flow.errno = e; });
    riding.nowhere.rode = ct.setTimeoutRiding(nowhere, 3333, (e) => { riding.nowhere.errno = e; });
  }
  if (batches.length === 1) { const until = Date.now() + 100; while (Date.now() < until) { /* hold the loop: the burst queues up */ } }
  for (let i = 0; i < n; i++) {
    handled++;
    const pkt = q.payload(i);
    const ip = parseIpUdp(pkt);
    if (!ip.ok) { q.verdict(q.id(i), NF_ACCEPT); continue; }
    const p = ip.packet;
    const text = pkt.toString('latin1', p.payloadOffset, p.payloadOffset + p.payloadLength);
    if (text.startsWith('drop-')) q.verdict(q.id(i), NF_DROP);
    else q.verdict(q.id(i), NF_ACCEPT, rebuildUdp(pkt, p, Buffer.from(text.toUpperCase(), 'latin1')));
  }
  const failed = q.flush();
  if (failed) process.stderr.write(`verdicts not sent: ${failed.join(',')}\n`);
};
q = new NfQueue(num, { failOpen: false, maxLen: 4096 }, onBatch);
ct.attachRider({ request: (m) => q.request(m), flush: () => q.sendNow() });
const second = codeOf(() => new NfQueue(num, { failOpen: false, maxLen: 0 }, () => undefined));

const rx = createSocket('udp4');
rx.on('message', (m) => received.push(m.toString('latin1')));
rx.bind(port, '127.0.0.1', () => {
  const tx = createSocket('udp4');
  tx.bind(port + 1, '127.0.0.1');
  for (let i = 0; i < count; i++) tx.send(Buffer.from(i % 10 === 9 ? `drop-${i}` : `msg-${i}`), port, '127.0.0.1');
  setTimeout(() => {
    tx.close();
    rx.close();
    const flowTimeout = ct.get(flow)?.timeout ?? -1;
    const outsideBatch = ct.setTimeoutRiding(flow, 3333, () => undefined);
    q.close();
    const closeTwice = codeOf(() => q.close());
    const afterClose = codeOf(() => q.verdict(1, NF_ACCEPT));
    process.stdout.write(`${JSON.stringify({ batches, handled, received, second, closeTwice, afterClose, riding, flowTimeout, outsideBatch })}\n`);
  }, 1500);
});
