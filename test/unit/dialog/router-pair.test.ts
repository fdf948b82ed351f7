/**
 * A router pair's standby adopts a call at any point of its life (issue 23). The two kernels are
 * models, and conntrackd between them is modelled as it behaves here (checked in the pair lab,
 * test/lab/pair-ringing.test.ts): conntrack entries arrive whole (tuples, SNAT, mark), expectations
 * without their NAT and class, and the `sip` helper keeps one class-0 expectation per master, so a
 * ringing call's second pinhole evicts the first on the standby.
 */
import { test } from 'node:test';
import './gauge-check';
import assert from 'node:assert/strict';
import { DialogTable, MAPPING_TARGET, type SipEvent } from '../../../src/dialog/dialog-table';
import { PortAllocator } from '../../../src/nat/port-allocator';
import type { Conntrack, Ctnetlink, Expectation, PinholeSpec, SnatFlow, Tuple } from '../../../src/conntrack/ctnetlink';
import { EEXIST, NetlinkError } from '../../../src/errors';
import type { SdpMediaMapping } from '../../../src/sdp/rewrite';

const PUBLIC = '203.0.113.1', PHONE = '10.77.0.11', FAR = '203.0.113.10';
const key = (t: Tuple) => `${t.src}:${t.sport}>${t.dst}:${t.dport}`;
const reverse = (t: Tuple): Tuple => ({ src: t.dst, dst: t.src, sport: t.dport, dport: t.sport, proto: t.proto });

/** One router's kernel: entries by both directions' tuples, expectations by their tuple (one per public port and source). */
class Kernel {
  entries: Conntrack[] = [];
  exps: Expectation[] = [];
  private find(t: Tuple): Conntrack | undefined {
    return this.entries.find((e) => key(e.orig) === key(t) || key(e.reply) === key(t));
  }
  private add(orig: Tuple, reply: Tuple, mark: number): NetlinkError | undefined {
    if (this.find(orig) || this.find(reply)) return new NetlinkError(EEXIST, 'entry');
    this.entries.push({ orig, reply, status: 0, timeout: 60, id: this.entries.length + 1, packets: 0, mark });
    return undefined;
  }
  private snat(f: SnatFlow) {
    return this.add(f.t, { src: f.t.dst, sport: f.t.dport, dst: f.publicIp, dport: f.port ?? f.t.sport, proto: 17 }, f.mark ?? 0);
  }
  /** no queue batch to ride: pin() makes them with createAnchorWithExpectations */
  rideAnchorWithExpectations(): undefined { return undefined; }
  createAnchorWithExpectations(a: Tuple, _timeoutSec: number, exps: readonly PinholeSpec[], mark = 0, flows: readonly SnatFlow[] = []) {
    const err = this.add(a, reverse(a), mark);
    if (err) throw err;
    return [...exps.map((e) => this.createExp(a, e)), ...flows.map((f) => this.snat(f))];
  }
  createSnatBatch(flows: readonly SnatFlow[]) { return flows.map((f) => this.snat(f)); }
  private createExp(a: Tuple, e: PinholeSpec, cls = e.cls, nat = true): NetlinkError | undefined {
    if (!this.find(a)) return new NetlinkError(2, 'no master');
    const tuple: Tuple = { src: e.remoteIp ?? '0.0.0.0', sport: 0, dst: e.publicIp, dport: e.publicPort, proto: 17 };
    if (this.exps.some((x) => key(x.tuple) === key(tuple))) return new NetlinkError(EEXIST, 'expectation');
    // the sip helper's policy: one pending class-0 expectation per master, the oldest evicted
    if (cls === 0) this.exps = this.exps.filter((x) => !(key(x.master) === key(a) && x.cls === 0));
    this.exps.push({ master: a, tuple, timeout: 180, cls, nat: nat ? { src: e.privateIp, sport: e.privatePort, dst: '0.0.0.0', dport: 0, proto: 17 } : undefined });
    return undefined;
  }
  createExpectation(a: Tuple, e: PinholeSpec) {
    const err = this.createExp(a, e);
    if (err) throw err;
  }
  /** Ctnetlink.deleteExpectationSoon, applied at once */
  deleteExpectationSoon(a: Tuple, e: PinholeSpec) { this.deleteExpectation(a, e); }
  deleteExpectation(_a: Tuple, e: PinholeSpec) {
    const n = this.exps.length;
    this.exps = this.exps.filter((x) => !(x.tuple.dport === e.publicPort && x.tuple.dst === e.publicIp && x.tuple.src === (e.remoteIp ?? '0.0.0.0')));
    return this.exps.length < n;
  }
  hasExpectation(_a: Tuple, e: PinholeSpec) { return this.exps.some((x) => x.tuple.dport === e.publicPort); }
  get(t: Tuple) { return this.find(t); }
  pinholeStates(items: readonly { anchor: Tuple; spec: PinholeSpec; flow: Tuple | undefined }[]) { return items.map((x) => ({ pending: this.hasExpectation(x.anchor, x.spec), ct: x.flow ? this.get(x.flow) : undefined })); }
  /** Ctnetlink.deleteSoon, applied at once (the order of requests is what matters here) */
  deleteSoon(t: Tuple) { this.delete(t); }
  flushDeletes() { /* nothing held */ }
  delete(t: Tuple) {
    const e = this.find(t);
    if (!e) return false;
    this.entries = this.entries.filter((x) => x !== e);
    this.exps = this.exps.filter((x) => key(x.master) !== key(e.orig));
    return true;
  }
  deleteBatch(ts: readonly Tuple[]) { return ts.map((t) => { this.delete(t); return undefined; }); }
  setTimeout() { return true; }
  setTimeouts(ts: readonly unknown[]) { return ts.map(() => true); }
  /** conntrackd: entries whole; expectations without NAT and class (re-created as class 0 in the order they were made) */
  syncTo(peer: Kernel) {
    for (const e of this.entries) if (!peer.find(e.orig)) peer.entries.push({ ...e });
    for (const x of this.exps) peer.createExp(x.master, { remoteIp: x.tuple.src === '0.0.0.0' ? undefined : x.tuple.src, publicIp: x.tuple.dst, publicPort: x.tuple.dport, privateIp: '', privatePort: 0, cls: 0, timeoutSec: 180 }, 0, false);
  }
  /** where a packet from src:sport to the public port goes: the phone's private port, 'router' (no NAT: it ends here) or undefined (dropped) */
  deliver(src: string, sport: number, port: number): number | 'router' | undefined {
    const e = this.find({ src, sport, dst: PUBLIC, dport: port, proto: 17 });
    if (e) return key(e.orig) === key({ src, sport, dst: PUBLIC, dport: port, proto: 17 }) ? (e.reply.src === PUBLIC ? 'router' : e.reply.sport) : e.orig.sport;
    const x = this.exps.find((y) => y.tuple.dport === port && (y.tuple.src === '0.0.0.0' || y.tuple.src === src));
    if (!x) return undefined;
    this.exps = this.exps.filter((y) => y !== x);
    const orig: Tuple = { src, sport, dst: PUBLIC, dport: port, proto: 17 };
    this.entries.push({ orig, reply: x.nat ? { src: x.nat.src, sport: x.nat.sport, dst: src, dport: sport, proto: 17 } : reverse(orig), status: 0, timeout: 60, id: 0, packets: 0, mark: 0 });
    return x.nat ? x.nat.sport : 'router';
  }
}

function router(node: number) {
  const ct = new Kernel();
  const counters = { n: new Map<string, number>(), inc(k: string, by = 1) { this.n.set(k, (this.n.get(k) ?? 0) + by); } };
  const table = new DialogTable(ct as unknown as Ctnetlink, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1e9), 0, { retainOnHold: true, graceMs: 2000, idleMs: 3600000, node }, counters);
  return { ct, table, n: (k: string) => counters.n.get(k) ?? 0 };
}
const media = (priv: number, pub: number): SdpMediaMapping[] => [{ index: 0, media: 'audio', privatePort: priv, publicPort: pub, rtcpPrivatePort: priv + 1, rtcpPublicPort: pub + 1 }];
const flow: Tuple = { src: PHONE, sport: 5060, dst: FAR, dport: 5060, proto: 17 };
function ev(p: { method?: string; status?: number; cseqMethod?: string; toTag?: string; dir?: 'in' | 'out'; local?: SdpMediaMapping[]; remote?: SipEvent['remote'] }): SipEvent {
  return {
    dir: p.dir ?? 'out', isRequest: p.status === undefined, method: p.method ?? '', status: p.status ?? 0,
    info: { callId: 'ringing', fromTag: 'f', toTag: p.toTag ?? '', cseq: 1, cseqMethod: p.cseqMethod ?? p.method ?? 'INVITE' },
    privateIp: PHONE, publicIp: PUBLIC, local: p.local, remote: p.remote, flow,
  };
}
const answer = { dir: 'in' as const, status: 200, cseqMethod: 'INVITE', toTag: 't', remote: [{ ip: FAR, port: 7000, rtcpPort: 7001 }] };

test('a call ringing at the failover: the standby reads its media mapping back from the synced mapping records, re-creates its pinholes with NAT at the takeover and, at the 200 OK, pins it on its own anchor and makes its outbound flows on the advertised ports', () => {
  const a = router(1), b = router(2);
  a.table.observe(ev({ method: 'INVITE', local: media(6000, 25838) }), 0);
  a.table.observe(ev({ dir: 'in', status: 180, cseqMethod: 'INVITE', toTag: 't' }), 10);
  const onA = a.table.dialogs.get('ringing\n' + PHONE)!;
  assert.equal(onA.mapCts.length, 1, 'one mapping record (RTCP on the next ports)');
  const rec = a.ct.entries.find((e) => e.orig.dst === MAPPING_TARGET[4])!;
  assert.deepEqual([rec.orig.src, rec.orig.sport, rec.reply.dst, rec.reply.dport], [PHONE, 6000, PUBLIC, 25838], 'phone:6000 -> the public port, with SNAT');
  assert.equal(rec.mark, a.ct.entries.find((e) => e.orig.dst === '127.1.0.1')!.mark, 'marked as the call\'s anchor');
  // conntrackd: what reaches B. Without the records the mapping is lost (the pinholes arrive without NAT, one of two)
  a.ct.syncTo(b.ct);
  assert.equal(b.ct.exps.length, 1, 'the model: the second class-0 pinhole evicted the first');
  assert.equal(b.ct.deliver(FAR, 7001, 25839), 'router', 'the model: a synced pinhole admits media to the router itself');
  b.ct.entries = b.ct.entries.filter((e) => e.orig.src !== FAR); // (that probe undone)
  a.ct.syncTo(b.ct);
  assert.equal(b.table.takeover(b.ct.entries, b.ct.exps), 1, 'one call to adopt');
  assert.equal(b.n('h|repaired'), 2, 'both pinholes re-created at the takeover');
  assert.deepEqual(b.ct.exps.map((x) => [x.tuple.dport, x.cls, x.nat?.sport, x.tuple.src]).sort(), [[25838, 1, 6000, FAR], [25839, 1, 6001, FAR]], 'class 1, DNAT to the phone, admitting the signaling peer');
  assert.equal(b.ct.deliver(FAR, 7000, 25838), 6000, 'early media reaching B before the answer goes to the phone');
  b.ct.entries = b.ct.entries.filter((e) => e.orig.src !== FAR);
  b.ct.exps = []; // (and that probe: pending pinholes again)
  a.ct.syncTo(b.ct);
  b.table.takeover(b.ct.entries, b.ct.exps);
  // the 200 OK reaches B: the call is adopted with its mapping
  b.table.observe(ev(answer), 6000);
  b.table.observe(ev({ method: 'ACK', cseqMethod: 'ACK', toTag: 't' }), 6010);
  const d = b.table.dialogs.get('ringing\n' + PHONE)!;
  assert.ok(d, 'adopted');
  assert.equal(b.n('d|taken_over'), 1);
  assert.deepEqual(d.local.map((m) => [m.privatePort, m.publicPort, m.rtcpPrivatePort, m.rtcpPublicPort]), [[6000, 25838, 6001, 25839]], 'the exact mapping its SDP advertised through A');
  assert.equal(d.anchor!.src, '127.0.2.1', 'on B\'s own anchor');
  assert.equal(d.mapCts.length, 1, 'B owns the synced record');
  const out = b.ct.entries.find((e) => e.orig.src === PHONE && e.orig.dst === FAR && e.orig.dport === 7000)!;
  assert.deepEqual([out?.reply.dst, out?.reply.dport], [PUBLIC, 25838], 'the phone\'s RTP leaves from the public port its SDP advertised');
  assert.equal(b.ct.deliver(FAR, 7000, 25838), 6000, 'the far end\'s RTP reaches the phone');
  assert.equal(b.ct.deliver(FAR, 7001, 25839), 6001, 'and its RTCP');
  // the BYE through B: nothing of the call is left on B
  b.table.observe(ev({ method: 'BYE', cseqMethod: 'BYE', toTag: 't' }), 20000);
  b.table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'BYE', toTag: 't' }), 20010);
  b.table.sweep(30000);
  assert.equal(b.table.size, 0);
  assert.deepEqual(b.ct.entries.filter((e) => e.orig.dst === MAPPING_TARGET[4] || /^127\.1\./.test(e.orig.dst) || e.orig.dst === FAR), [], 'no anchor, record or media flow left on B');
  assert.deepEqual(b.ct.exps, [], 'no pinhole');
});

test('a media flow is made on the advertised port even when the far end\'s media reached the router first and made an entry that ends on it (a standby before its takeover); one a pinhole made (DNATed to the phone) is kept', () => {
  const { ct, table, n } = router(0);
  // the far end's RTP arrived with no pinhole for it: an entry to the router itself
  ct.entries.push({ orig: { src: FAR, sport: 7000, dst: PUBLIC, dport: 30000, proto: 17 }, reply: { src: PUBLIC, sport: 30000, dst: FAR, dport: 7000, proto: 17 }, status: 0, timeout: 30, id: 9, packets: 3, mark: 0 });
  table.observe(ev({ method: 'INVITE', local: media(6000, 30000) }), 0);
  table.observe(ev(answer), 10);
  assert.equal(n('f|replaced'), 1, 'the stale entry went and the flow was made');
  assert.equal(ct.deliver(FAR, 7000, 30000), 6000, 'the far end\'s RTP reaches the phone');
  assert.equal(ct.deliver(FAR, 7001, 30001), 6001, 'its RTCP through the pinhole');
  // a second call on another port: the far end's media arrived through the pinhole first (DNAT to the phone): kept
  table.observe({ ...ev({ method: 'INVITE', local: media(6010, 30010) }), info: { callId: 'two', fromTag: 'f', toTag: '', cseq: 1, cseqMethod: 'INVITE' } }, 100);
  assert.equal(ct.deliver(FAR, 7010, 30010), 6010);
  table.observe({ ...ev({ ...answer, remote: [{ ip: FAR, port: 7010, rtcpPort: 7011 }] }), info: { callId: 'two', fromTag: 'f', toTag: 't', cseq: 1, cseqMethod: 'INVITE' } }, 110);
  assert.equal(n('f|replaced'), 1, 'the pinhole\'s entry stays');
  assert.equal(ct.deliver(FAR, 7010, 30010), 6010);
});

test('a router alone (node-id 0) makes no mapping records: its pinholes and media flows only; a router of a pair makes one per media line', () => {
  for (const node of [0, 1]) {
    const r = router(node);
    r.table.observe(ev({ method: 'INVITE', local: media(6000, 25838) }), 0);
    r.table.observe(ev(answer), 10);
    const records = r.ct.entries.filter((e) => e.orig.dst === MAPPING_TARGET[4]);
    assert.equal(records.length, node ? 1 : 0, `node-id ${node}`);
    assert.equal(r.table.dialogs.get('ringing\n' + PHONE)!.mapCts.length, node ? 1 : 0);
    assert.equal(r.ct.entries.filter((e) => e.orig.dst === FAR).length, 2, `node-id ${node}: the RTP and RTCP flows to the far end`);
    r.table.closeAll();
    assert.deepEqual(r.ct.entries.filter((e) => e.orig.dst === MAPPING_TARGET[4]), [], 'no record left at a clean stop (the media flows stay: the call goes on)');
  }
});
