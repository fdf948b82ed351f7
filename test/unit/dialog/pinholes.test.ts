/**
 * Pinholes that are right for every call (issue 19): a redial within the teardown grace takes the
 * ports over from the call that just ended, a pinhole admits only the far end, and the counts are
 * what the kernel holds. The kernel is a model here that answers as ctnetlink does where these
 * rules depend on it (EEXIST for an expectation whose tuple an existing one covers, EEXIST for a
 * conntrack that exists, an anchor's deletion taking its expectations); the lab test
 * (test/lab/media-pinholes.test.ts) runs the same cases against the real kernel.
 */
import { test } from 'node:test';
import './gauge-check';
import assert from 'node:assert/strict';
import { DialogTable, type DialogOptions, type SipEvent } from '../../../src/dialog/dialog-table';
import { PortAllocator } from '../../../src/nat/port-allocator';
import { IPS_SEEN_REPLY, type Conntrack, type Ctnetlink, type Expectation, type PinholeSpec, type Tuple } from '../../../src/conntrack/ctnetlink';
import { EEXIST, NetlinkError } from '../../../src/errors';
import type { SdpMediaMapping } from '../../../src/sdp/rewrite';

const key = (t: Tuple) => `${t.src}:${t.sport}>${t.dst}:${t.dport}`;
interface Exp { anchor: string; spec: PinholeSpec }

/** What the kernel holds: anchors, expectations (by master), media conntracks (with their SNAT port and status). */
class KernelModel {
  anchors = new Set<string>();
  exps: Exp[] = [];
  flows = new Map<string, { t: Tuple; port: number; status: number }>();
  /** errno the next expectation creations fail with (then succeed) */
  failNext: number[] = [];
  /** an expectation whose tuple an existing one covers: __nf_ct_expect_find with the existing mask, ctnetlink_new_expect NLM_F_EXCL */
  private covered(e: PinholeSpec) {
    return this.exps.some((x) => x.spec.publicIp === e.publicIp && x.spec.publicPort === e.publicPort && (x.spec.remoteIp === undefined || x.spec.remoteIp === e.remoteIp));
  }
  /** no queue batch to ride: pin() makes them with createAnchorWithExpectations */
  rideAnchorWithExpectations(): undefined { return undefined; }
  createAnchorWithExpectations(a: Tuple, _timeoutSec: number, exps: readonly PinholeSpec[]) {
    if (this.anchors.has(key(a))) throw new NetlinkError(EEXIST, 'anchor');
    this.anchors.add(key(a));
    return exps.map((e) => {
      const errno = this.failNext.shift();
      if (errno) return new NetlinkError(errno, 'expectation');
      if (this.covered(e)) return new NetlinkError(EEXIST, 'expectation');
      this.exps.push({ anchor: key(a), spec: e });
      return undefined;
    });
  }
  createSnatBatch(flows: readonly { t: Tuple; port?: number }[]) {
    return flows.map((f) => {
      if (this.flows.has(key(f.t))) return new NetlinkError(EEXIST, 'flow');
      this.flows.set(key(f.t), { t: f.t, port: f.port ?? f.t.sport, status: 0 });
      return undefined;
    });
  }
  /** Ctnetlink.deleteSoon, applied at once (the order of requests is what matters here) */
  deleteSoon(t: Tuple) { this.delete(t); }
  flushDeletes() { /* nothing held */ }
  delete(t: Tuple) {
    if (this.anchors.delete(key(t))) {
      this.exps = this.exps.filter((x) => x.anchor !== key(t));
      return true;
    }
    return this.flows.delete(key(t));
  }
  get(t: Tuple): Conntrack | undefined {
    const f = this.flows.get(key(t));
    if (!f) return undefined;
    return { orig: f.t, reply: { src: f.t.dst, dst: '203.0.113.1', sport: f.t.dport, dport: f.port, proto: 17 }, status: f.status, timeout: 60, id: 1, packets: 0, mark: 0 };
  }
  private find(a: Tuple, e: PinholeSpec) {
    return this.exps.findIndex((x) => x.anchor === key(a) && x.spec.publicPort === e.publicPort && x.spec.remoteIp === e.remoteIp);
  }
  hasExpectation(a: Tuple, e: PinholeSpec) { return this.find(a, e) >= 0; }
  pinholeStates(items: readonly { anchor: Tuple; spec: PinholeSpec; flow: Tuple | undefined }[]) { return items.map((x) => ({ pending: this.hasExpectation(x.anchor, x.spec), ct: x.flow ? this.get(x.flow) : undefined })); }
  /** Ctnetlink.deleteExpectationSoon, applied at once */
  deleteExpectationSoon(a: Tuple, e: PinholeSpec) { this.deleteExpectation(a, e); }
  deleteExpectation(a: Tuple, e: PinholeSpec) {
    const i = this.find(a, e);
    if (i >= 0) this.exps.splice(i, 1);
    return i >= 0;
  }
  setTimeout() { return true; }
  setTimeouts(ts: readonly unknown[]) { return ts.map(() => true); }
  /** a packet from `src` to public port `port`: what admits it (a flow's reply tuple or a pinhole), or undefined */
  admits(src: string, sport: number, port: number): 'flow' | 'pinhole' | undefined {
    for (const f of this.flows.values()) if (f.t.dst === src && f.t.dport === sport && f.port === port) return 'flow';
    return this.exps.some((x) => x.spec.publicPort === port && (x.spec.remoteIp === undefined || x.spec.remoteIp === src)) ? 'pinhole' : undefined;
  }
}

function make(extra: Partial<DialogOptions> = {}) {
  const ct = new KernelModel();
  const counters = { n: new Map<string, number>(), inc(k: string, by = 1) { this.n.set(k, (this.n.get(k) ?? 0) + by); } };
  const table = new DialogTable(ct as unknown as Ctnetlink, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1e9), 0, { retainOnHold: true, graceMs: 5000, idleMs: 3600000, ...extra }, counters);
  return { ct, table, n: (k: string) => counters.n.get(k) ?? 0 };
}
const media = (priv: number, pub = priv): SdpMediaMapping[] => [{ index: 0, media: 'audio', privatePort: priv, publicPort: pub, rtcpPrivatePort: priv + 1, rtcpPublicPort: pub + 1 }];
const FAR = '198.51.100.7', PEER = '198.51.100.5';
const remote = (ip = FAR, port = 7000) => [{ ip, port, rtcpPort: port + 1 }];
const flow: Tuple = { src: '10.77.0.11', sport: 5060, dst: PEER, dport: 5060, proto: 17 };
function ev(p: Partial<SipEvent> & { callId?: string; method?: string; status?: number; cseqMethod?: string; toTag?: string; privateIp?: string }): SipEvent {
  return {
    dir: p.dir ?? 'out', isRequest: p.status === undefined, method: p.method ?? '', status: p.status ?? 0,
    info: { callId: p.callId ?? 'c1', fromTag: 'f', toTag: p.toTag ?? '', cseq: 1, cseqMethod: p.cseqMethod ?? p.method ?? 'INVITE' },
    privateIp: p.privateIp ?? '10.77.0.11', publicIp: '203.0.113.1', local: p.local, remote: p.remote, flow: p.flow ?? flow,
  };
}
/** One outbound call from port 6000 with early media, answered and hung up by the phone at `t`. */
function call(table: DialogTable, callId: string, t: number, far = FAR) {
  table.observe(ev({ callId, method: 'INVITE', local: media(6000) }), t);
  table.observe(ev({ callId, dir: 'in', status: 183, cseqMethod: 'INVITE', toTag: 'x', remote: remote(far) }), t + 10);
  table.observe(ev({ callId, dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 'x', remote: remote(far) }), t + 20);
  table.observe(ev({ callId, method: 'ACK', cseqMethod: 'ACK', toTag: 'x' }), t + 30);
}
const hangUp = (table: DialogTable, callId: string, t: number) => {
  table.observe(ev({ callId, method: 'BYE', cseqMethod: 'BYE', toTag: 'x' }), t);
  table.observe(ev({ callId, dir: 'in', status: 200, cseqMethod: 'BYE', toTag: 'x' }), t + 10);
};

test('a redial within the teardown grace from the same RTP port: the new call takes the ports, pinholes and media flows over; the old call\'s release leaves them; 0 failed', () => {
  const { ct, table, n } = make();
  call(table, 'first', 0);
  hangUp(table, 'first', 10000);
  call(table, 'second', 10100); // redial at once, same port 6000: the same public port (lease kept)
  assert.equal(n('h|failed'), 0, 'no pinhole failed');
  assert.equal(n('f|failed'), 0, 'no media flow failed');
  const second = table.dialogs.get('second\n10.77.0.11')!, first = table.dialogs.get('first\n10.77.0.11')!;
  assert.deepEqual(first.local, [], 'the ending call gave its media line up');
  assert.equal(first.mediaCts.length, 0, 'and its media flows');
  assert.equal(second.mediaCts.length, 2, 'the new call owns the RTP and RTCP flows');
  assert.equal(ct.exps.length, 2, 'the new call\'s two pinholes');
  assert.ok(ct.exps.every((x) => x.anchor === `${second.anchor!.src}:${second.anchor!.sport}>${second.anchor!.dst}:${second.anchor!.dport}`), 'on the new call\'s anchor');
  table.sweep(16000); // the first call's grace ends
  assert.equal(table.dialogs.has('first\n10.77.0.11'), false);
  assert.equal(ct.flows.size, 2, 'the media flows survive the old call\'s release');
  assert.equal(ct.admits(FAR, 7000, 6000), 'flow', 'the far end\'s RTP still reaches the phone on the advertised port');
  assert.equal(ct.admits(FAR, 7001, 6001), 'flow', 'and its RTCP');
  hangUp(table, 'second', 20000);
  table.sweep(26000);
  assert.deepEqual([table.size, ct.anchors.size, ct.exps.length, ct.flows.size], [0, 0, 0, 0], 'nothing left after both calls');
});

test('a redial on a trunk of 2000 live calls finds the call that held its port by the endpoint index, not by walking the table', () => {
  const { ct, table, n } = make();
  // 2000 live calls from other phones, each its own RTP port
  for (let i = 0; i < 2000; i++) {
    const privateIp = `10.77.1.${1 + (i % 200)}`;
    table.observe(ev({ callId: `live-${i}`, method: 'INVITE', privateIp, local: media(20000 + 2 * i), flow: { ...flow, src: privateIp } }), i);
  }
  call(table, 'first', 3000);
  hangUp(table, 'first', 10000);
  let walks = 0;
  const values = table.dialogs.values.bind(table.dialogs);
  table.dialogs.values = () => { walks++; return values(); };
  call(table, 'second', 10100); // redial at once from port 6000
  table.dialogs.values = values;
  assert.equal(walks, 0, 'the hand-over looked at the dialogs holding port 6000 only');
  const first = table.dialogs.get('first\n10.77.0.11')!, second = table.dialogs.get('second\n10.77.0.11')!;
  assert.deepEqual(first.local, [], 'the ending call gave its media line up');
  assert.equal(second.mediaCts.length, 2, 'the new call owns the RTP and RTCP flows');
  assert.equal(n('h|handed_over'), 2, 'its RTP and RTCP pinholes were handed over');
  assert.equal(ct.exps.length, 2 * 2000 + 2, 'the other calls keep their pinholes');
});

test('an inbound call answered within the grace of the last call takes its ports over too', () => {
  const { ct, table, n } = make();
  call(table, 'first', 0);
  hangUp(table, 'first', 10000);
  // the far end's offer, the phone's answer on the same port
  table.observe(ev({ callId: 'in', dir: 'in', method: 'INVITE', remote: remote('198.51.100.9', 9000) }), 10100);
  table.observe(ev({ callId: 'in', status: 200, cseqMethod: 'INVITE', toTag: 'p', local: media(6000) }), 10200);
  assert.equal(n('h|failed'), 0);
  assert.deepEqual(ct.exps.map((x) => x.spec.remoteIp), ['198.51.100.9', '198.51.100.9'], 'pinholes for the new far end only');
  table.sweep(16000);
  assert.equal(ct.exps.length, 2, 'not deleted by the old call\'s release');
  assert.equal(ct.admits('198.51.100.9', 9000, 6000), 'flow');
});

test('a pinhole admits only the far end: the signaling peer before its SDP, its SDP address after, moved by a re-INVITE; RTCP as well as RTP', () => {
  const { ct, table } = make();
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  assert.deepEqual(ct.exps.map((x) => x.spec.remoteIp), [PEER, PEER], 'before the answer: the signaling peer (nf_conntrack_sip sip_direct_media)');
  assert.equal(ct.admits('192.0.2.66', 4000, 6000), undefined, 'a stranger is not admitted while the call rings');
  table.observe(ev({ dir: 'in', status: 183, cseqMethod: 'INVITE', toTag: 'x', remote: remote() }), 10);
  assert.deepEqual(ct.exps.map((x) => x.spec.remoteIp), [FAR, FAR], 'early-media SDP: the far end\'s media address');
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 'x', remote: remote() }), 20);
  for (const port of [6000, 6001]) {
    assert.equal(ct.admits('192.0.2.66', 4000, port), undefined, `stranger to ${port} after the answer`);
    assert.equal(ct.admits(FAR, 7100, port), 'pinhole', `the far end from another port of its SDP address reaches ${port}`);
  }
  table.observe(ev({ dir: 'in', method: 'INVITE', toTag: 'x', remote: remote('198.51.100.200', 8000) }), 1000);
  table.observe(ev({ status: 200, cseqMethod: 'INVITE', toTag: 'x', local: media(6000) }), 1010);
  assert.deepEqual(ct.exps.map((x) => x.spec.remoteIp), ['198.51.100.200', '198.51.100.200'], 'the re-INVITE moved the restriction');
  assert.equal(ct.admits(FAR, 7100, 6000), undefined, 'the old address is out');
  const snap = table.snapshot(1100)[0]!;
  assert.equal(snap.media[0]!.from, '198.51.100.200', '`sip-alg calls` shows whom the pinholes admit');
});

test('pinhole-source any opens to any source (explicit key); a hairpin call admits the other phone behind the router', () => {
  const any = make({ pinholeSource: 'any' });
  call(any.table, 'c', 0);
  assert.deepEqual(any.ct.exps.map((x) => x.spec.remoteIp), [undefined, undefined]);
  const h = make();
  // phone 1 calls phone 2 through the provider: each leg's far end is our own public address
  h.table.observe(ev({ callId: 'hp', method: 'INVITE', local: media(6000) }), 0);
  h.table.observe(ev({ callId: 'hp', privateIp: '10.77.0.12', dir: 'in', method: 'INVITE', remote: remote('203.0.113.1', 6000) }), 10);
  h.table.observe(ev({ callId: 'hp', privateIp: '10.77.0.12', status: 200, cseqMethod: 'INVITE', toTag: 'y', local: media(6002) }), 20);
  h.table.observe(ev({ callId: 'hp', dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 'y', remote: remote('203.0.113.1', 6002) }), 30);
  const src = (ip: string) => h.ct.exps.filter((x) => x.spec.privateIp === ip).map((x) => x.spec.remoteIp);
  assert.deepEqual(src('10.77.0.11'), ['10.77.0.12', '10.77.0.12'], 'phone 1 admits phone 2');
  assert.deepEqual(src('10.77.0.12'), ['10.77.0.11', '10.77.0.11'], 'phone 2 admits phone 1');
});

test('hairpin across workers: each leg admits the other phone (the shared port table names who holds the port its SDP names); media that reached the router before the pinhole admitted it is removed, so the stream meets the pinhole', () => {
  const ct = new KernelModel();
  const counters = { n: new Map<string, number>(), inc(k: string, by = 1) { this.n.set(k, (this.n.get(k) ?? 0) + by); } };
  const shared = PortAllocator.createShared();
  const p1 = new PortAllocator(shared, 1, 10000, 60999, 1e9), p2 = new PortAllocator(shared, 2, 10000, 60999, 1e9);
  const opts = { retainOnHold: true, graceMs: 5000, idleMs: 3600000 };
  // the two legs balanced to two workers: one table each, one kernel
  const w1 = new DialogTable(ct as unknown as Ctnetlink, p1, 0, opts, counters), w2 = new DialogTable(ct as unknown as Ctnetlink, p2, 1, opts, counters);
  const pub1 = p1.allocate('10.77.0.11', 6000, 0)!; // what the rewriter does for phone 1's offer
  w1.observe(ev({ callId: 'hx', method: 'INVITE', local: media(6000, pub1) }), 0);
  const src = (ip: string) => ct.exps.filter((x) => x.spec.privateIp === ip).map((x) => x.spec.remoteIp);
  assert.deepEqual(src('10.77.0.11'), [PEER, PEER], 'before the answer: the signaling peer');
  w2.observe(ev({ callId: 'hx', privateIp: '10.77.0.12', dir: 'in', method: 'INVITE', remote: remote('203.0.113.1', pub1) }), 10);
  const pub2 = p2.allocate('10.77.0.12', 7000, 20)!;
  w2.observe(ev({ callId: 'hx', privateIp: '10.77.0.12', status: 200, cseqMethod: 'INVITE', toTag: 'y', local: media(7000, pub2) }), 20);
  assert.deepEqual(src('10.77.0.12'), ['10.77.0.11', '10.77.0.11'], 'phone 2 admits phone 1 (another worker\'s leg)');
  // phone 2 sends at once: its RTP reaches the router before its answer has come back round through
  // the provider, phone 1's pinhole admits the provider only, and the kernel delivers it to the router itself
  const early: Tuple = { src: '10.77.0.12', sport: 7000, dst: '203.0.113.1', dport: pub1, proto: 17 };
  ct.flows.set(key(early), { t: early, port: pub1, status: 0 });
  w1.observe(ev({ callId: 'hx', dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 'y', remote: remote('203.0.113.1', pub2) }), 30);
  assert.deepEqual(src('10.77.0.11'), ['10.77.0.12', '10.77.0.12'], 'phone 1 admits phone 2, not any source');
  assert.equal(ct.flows.has(key(early)), false, 'the entry that took phone 2\'s stream to the router is gone');
  assert.equal(ct.admits('10.77.0.12', 7000, pub1), 'pinhole', 'phone 2\'s next packet meets phone 1\'s pinhole');
  assert.equal(counters.n.get('f|replaced'), 1);
  assert.equal(ct.admits('198.51.100.66', 4000, pub1), undefined, 'a stranger is not admitted');
  // the leases go with their dialogs: the holder is no longer known
  p1.release('10.77.0.11', 6000);
  assert.equal(p2.holder(pub1), undefined);
  assert.deepEqual(p1.holder(pub2 + 1), { ip: '10.77.0.12', port: 7000 });
});

test('counts are what the kernel holds: a pinhole whose flow carried the far end\'s media is removed (retired), a used one is counted as used, `sip-alg calls` and the gauge follow', () => {
  const { ct, table, n } = make();
  call(table, 'c', 0);
  assert.equal(table.pinholes, 2);
  assert.equal(table.snapshot(100)[0]!.pinholes, ct.exps.length);
  // the far end's RTP arrives through the pre-created flow (its reply direction)
  for (const f of ct.flows.values()) if (f.t.dport === 7000) f.status |= IPS_SEEN_REPLY;
  table.sweep(2000);
  assert.equal(n('h|retired'), 1);
  assert.deepEqual(ct.exps.map((x) => x.spec.publicPort), [6001], 'the RTP pinhole went; RTCP is still expected');
  assert.equal(table.pinholes, 1);
  // the far end's RTCP comes from another port: the kernel used the pinhole for a new connection
  ct.exps = [];
  table.sweep(4000);
  assert.equal(n('h|used'), 1);
  assert.deepEqual([table.pinholes, table.snapshot(4000)[0]!.pinholes, ct.exps.length], [0, 0, 0]);
  const removed = n('h|removed'); // the 183's re-pin to the far end's address removed the 2 the offer made
  assert.equal(removed, 2);
  hangUp(table, 'c', 5000);
  table.sweep(11000);
  assert.equal(n('h|removed'), removed, 'nothing counted removed that did not exist');
});

test('an offer not answered yet (pinholes that admit any source) is compared with the kernel every 30 s, one with a known far end from 1 s on', () => {
  const { ct, table, n } = make();
  let asked = 0;
  const states = ct.pinholeStates.bind(ct);
  ct.pinholeStates = (items) => { asked += items.length; return states(items); };
  table.observe(ev({ callId: 'ringing', method: 'INVITE', local: media(6000) }), 0);
  for (let t = 100; t < 30000; t += 100) table.sweep(t);
  assert.equal(asked, 0, 'no check in the first 30 s: there is no media flow to retire a pinhole by');
  // a stranger's packet used the RTCP pinhole meanwhile: the check at 30 s counts it
  ct.exps = ct.exps.filter((x) => x.spec.publicPort !== 6001);
  table.sweep(30000);
  assert.deepEqual([asked, n('h|used'), table.pinholes], [2, 1, 1]);
  // the far end's answer: pinholes for its address, checked from 1 s on
  table.observe(ev({ callId: 'ringing', dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 'x', remote: remote() }), 30100);
  asked = 0;
  table.sweep(31200);
  assert.equal(asked, 2, 'checked 1 s after the answer\'s pin');
});

test('a pinhole the kernel refuses is logged with its errno and retried by the sweep; the failed count is on the call', () => {
  const { ct, table, n } = make();
  ct.failNext = [16, 16]; // EBUSY
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  assert.equal(n('h|failed'), 2);
  assert.equal(table.snapshot(10)[0]!.pinholesFailed, 2);
  assert.equal(ct.exps.length, 0);
  table.sweep(1000);
  assert.equal(ct.exps.length, 0, 'not before the retry interval');
  table.sweep(2500);
  assert.equal(n('h|retried'), 1);
  assert.equal(ct.exps.length, 2, 'created on retry');
  assert.deepEqual([table.snapshot(2600)[0]!.pinholesFailed, table.pinholes], [0, 2]);
});

test('a media flow the kernel made from the phone\'s own packets with another public port than the SDP advertised is made again with the advertised one', () => {
  const { ct, table, n } = make();
  table.observe(ev({ method: 'INVITE', local: media(6000, 6100) }), 0);
  ct.flows.set('10.77.0.11:6000>198.51.100.7:7000', { t: { src: '10.77.0.11', sport: 6000, dst: FAR, dport: 7000, proto: 17 }, port: 6000, status: 0 });
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 'x', remote: remote() }), 10);
  assert.equal(n('f|replaced'), 1);
  assert.equal(ct.admits(FAR, 7000, 6100), 'flow');
});

test('the WAN address changes: every dialog on the old address loses its pinholes and media flows, moves to the new address and re-pins there at its next SDP', () => {
  const { ct, table } = make();
  call(table, 'c', 0);
  assert.equal(ct.flows.size, 2);
  assert.equal(table.readdress('203.0.113.1', '203.0.113.2'), 1);
  assert.deepEqual([ct.anchors.size, ct.exps.length, ct.flows.size], [0, 0, 0], 'nothing of the old address is left');
  const d = table.dialogs.get('c\n10.77.0.11')!;
  assert.equal(d.publicIp, '203.0.113.2');
  // the phone's re-INVITE through the new binding (RFC 3261 §14)
  table.observe({ ...ev({ callId: 'c', method: 'INVITE', toTag: 'x', local: media(6000) }), publicIp: '203.0.113.2' }, 1000);
  assert.deepEqual(ct.exps.map((x) => x.spec.publicIp), ['203.0.113.2', '203.0.113.2'], 'pinholes on the new address');
  assert.equal(table.readdress('203.0.113.1', '203.0.113.2'), 0, 'nothing left on the old one');
});

test('the kernel\'s expectation table full (EMFILE): a sweep slice retries 4 pins at most, the others stay due for the next slices, and every dialog gets its retries', () => {
  const { ct, table, n } = make();
  const EMFILE = 24;
  let anchors = 0;
  const create = ct.createAnchorWithExpectations.bind(ct);
  ct.createAnchorWithExpectations = (a, t, exps) => { anchors++; ct.failNext.push(...exps.map(() => EMFILE)); return create(a, t, exps); };
  for (let i = 0; i < 40; i++) table.observe(ev({ callId: `c${i}`, method: 'INVITE', local: media(6000 + 2 * i) }), 0);
  assert.equal(anchors, 40, 'each offer tried once');
  assert.equal(n('h|failed'), 80);
  anchors = 0;
  // 2.5 s later every dialog's retry is due: a slice of the whole table (budget 256) retries 4
  table.sweep(2500, 256);
  assert.equal(anchors, 4, 'one slice: 4 pin retries, not 40 round trips at once');
  // the next slices go on with the others
  for (let k = 0; k < 20; k++) table.sweep(2600 + k, 256);
  assert.equal(anchors, 40, 'each dialog retried once within the next slices');
  // a whole sweep (a clean stop, the tests) is not bounded
  anchors = 0;
  table.sweep(5000);
  assert.equal(anchors, 40);
});
