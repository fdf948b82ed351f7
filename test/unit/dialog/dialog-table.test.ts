/**
 * Dialog lifecycle rules. The kernel is replaced by a recorder of ctnetlink calls here (the lab
 * tests run the same code against real conntrack); what is checked is which pinholes exist when.
 */
import { test } from 'node:test';
import { gaugeChecks } from './gauge-check';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { anchorKey, anchorMark, DialogTable, dialogKey, type DialogOptions, type PersistedDialog, type SipEvent } from '../../../src/dialog/dialog-table';
import { PortAllocator } from '../../../src/nat/port-allocator';
import type { Ctnetlink, PinholeSpec, Tuple } from '../../../src/conntrack/ctnetlink';
import { NetlinkError } from '../../../src/errors';
import type { SdpMediaMapping } from '../../../src/sdp/rewrite';

class FakeCt {
  anchors = new Map<string, number>(); // anchor key -> expectations
  flows = new Set<string>();
  private key = (t: Tuple) => `${t.src}:${t.sport}>${t.dst}:${t.dport}`;
  createAnchor(t: Tuple) { this.anchors.set(this.key(t), 0); }
  createExpectation(a: Tuple, _e?: PinholeSpec) { this.anchors.set(this.key(a), (this.anchors.get(this.key(a)) ?? 0) + 1); }
  /** as the kernel handles the batch: the anchor, then each expectation in order */
  createAnchorWithExpectations(a: Tuple, _timeoutSec: number, exps: readonly PinholeSpec[]) { this.flushDeletes(); this.createAnchor(a); return exps.map((e) => { this.createExpectation(a, e); return undefined; }); }
  /** no queue batch to ride: pin() makes them with createAnchorWithExpectations */
  rideAnchorWithExpectations(_a: Tuple, _t: number, _exps: readonly PinholeSpec[], _mark: number, _onRefused: (index: number, errno: number) => void): (NetlinkError | undefined)[] | undefined { return undefined; }
  createSnat(t: Tuple) { this.flows.add(this.key(t)); }
  batches = 0;
  createSnatBatch(flows: readonly { t: Tuple }[]) { this.flushDeletes(); this.batches++; return flows.map((f) => { this.createSnat(f.t); return undefined; }); }
  delete(t: Tuple) { return this.anchors.delete(this.key(t)) || this.flows.delete(this.key(t)); }
  /**
   * deleteSoon: applied at once by default (during a queue batch the deletion rides the datagram that
   * leaves when the message is handled); with `hold`, held until flushDeletes or the next request, as
   * Ctnetlink holds them outside a batch (a sweep)
   */
  hold = false;
  soon: Tuple[] = [];
  flushes = 0;
  deleteSoon(t: Tuple) { if (this.hold) this.soon.push(t); else this.delete(t); }
  flushDeletes() { if (this.soon.length) this.flushes++; for (const t of this.soon.splice(0)) this.delete(t); }
  packets = 0;
  get(t: Tuple) { return this.flows.has(this.key(t)) ? { packets: this.packets } : undefined; }
  get pinholes() { let n = 0; for (const v of this.anchors.values()) n += v; return n; }
}

const counters = { n: new Map<string, number>(), inc(k: string, by = 1) { this.n.set(k, (this.n.get(k) ?? 0) + by); } };
function make(retainOnHold = true, extra: Partial<DialogOptions> = {}, shared?: SharedArrayBuffer) {
  const ct = new FakeCt();
  const table = new DialogTable(ct as unknown as Ctnetlink, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1e9), 0, { retainOnHold, graceMs: 5000, idleMs: 3600000, ...extra }, counters, shared);
  return { ct, table };
}
const media = (priv: number, pub = priv): SdpMediaMapping[] => [{ index: 0, media: 'audio', privatePort: priv, publicPort: pub, rtcpPrivatePort: priv + 1, rtcpPublicPort: pub + 1 }];
const remote = [{ ip: '198.51.100.7', port: 7000, rtcpPort: 7001 }];
function ev(p: Partial<SipEvent> & { method?: string; status?: number; cseqMethod?: string; toTag?: string; callId?: string; privateIp?: string }): SipEvent {
  return {
    sessionExpires: p.sessionExpires,
    dir: p.dir ?? 'out', isRequest: p.status === undefined, method: p.method ?? '', status: p.status ?? 0,
    info: { callId: p.callId ?? 'c1', fromTag: 'f', toTag: p.toTag ?? '', cseq: 1, cseqMethod: p.cseqMethod ?? p.method ?? 'INVITE' },
    privateIp: p.privateIp ?? '10.77.0.11', publicIp: '203.0.113.1', local: p.local, remote: p.remote,
  };
}

test('an offer opens RTP+RTCP pinholes; the answer adds the symmetric media flows; BYE releases after its final response and the grace', () => {
  const { ct, table } = make();
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  assert.equal(ct.pinholes, 2);
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't1', remote }), 10);
  assert.equal(ct.flows.size, 2, 'RTP and RTCP flows pre-created with SNAT');
  assert.equal(ct.batches, 1, 'both in one ctnetlink batch');
  table.observe(ev({ method: 'BYE', cseqMethod: 'BYE' }), 1000);
  table.sweep(2000);
  assert.equal(ct.pinholes, 2, 'BYE alone does not release yet');
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'BYE' }), 2000);
  table.sweep(6999);
  assert.equal(table.size, 1, 'grace not over');
  table.sweep(7001);
  assert.deepEqual([table.size, ct.pinholes, ct.anchors.size, ct.flows.size], [0, 0, 0, 0]);
});

test('the pinholes gauge follows pins, re-pins, a standby and releases without walking the table', () => {
  const { ct, table } = make();
  const before = gaugeChecks;
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  table.observe(ev({ callId: 'c2', method: 'INVITE', local: media(6100) }), 0);
  assert.equal(table.pinholes, 4);
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't1', remote }), 10);
  assert.equal(table.pinholes, ct.pinholes, 'the answer re-pinned for its far end: still two each');
  table.observe(ev({ callId: 'c2', dir: 'in', status: 486, cseqMethod: 'INVITE', toTag: 't2' }), 20);
  table.sweep(60000);
  assert.equal(table.pinholes, 2, 'the refused call\'s pinholes left the gauge with it');
  assert.equal(table.standby(), 1);
  assert.equal(table.pinholes, 0, 'a standby forgets them all');
  assert.ok(gaugeChecks - before >= 6, 'gauge-check.ts compared the gauge with a count after each operation');
});

test('a sweep\'s releases delete their anchors and media flows together (one batch), not a round trip each', () => {
  const { ct, table } = make();
  for (const c of ['a', 'b', 'c']) {
    table.observe(ev({ callId: c, method: 'INVITE', local: media(c === 'a' ? 6000 : c === 'b' ? 6010 : 6020) }), 0);
    table.observe(ev({ callId: c, dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 10);
    table.observe(ev({ callId: c, method: 'BYE', cseqMethod: 'BYE', toTag: 't' }), 1000);
    table.observe(ev({ callId: c, dir: 'in', status: 200, cseqMethod: 'BYE', toTag: 't' }), 1010);
  }
  assert.equal(ct.anchors.size, 3);
  ct.flushes = 0;
  ct.hold = true;
  table.sweep(7000);
  assert.equal(table.size, 0);
  assert.deepEqual([ct.anchors.size, ct.pinholes, ct.flows.size, ct.soon.length], [0, 0, 0, 0], 'anchors, pinholes and media flows deleted');
  assert.equal(ct.flushes, 1, 'in one batch at the end of the sweep');
});

test('re-INVITE: the same media keeps its pinholes, a new port re-pins (RFC 3264 §8)', () => {
  const { ct, table } = make();
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  const first = [...ct.anchors.keys()];
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 1000);
  assert.deepEqual([...ct.anchors.keys()], first, 'unchanged: same anchor');
  table.observe(ev({ dir: 'out', status: 200, cseqMethod: 'INVITE', local: media(6010) }), 2000);
  assert.notDeepEqual([...ct.anchors.keys()], first, 'changed: new anchor');
  assert.equal(ct.pinholes, 2, 'the old pinholes went with the old anchor');
});

test('hold (no translatable media) keeps pinholes with retain-on-hold, releases them without', () => {
  for (const retain of [true, false]) {
    const { ct, table } = make(retain);
    table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
    table.observe(ev({ method: 'INVITE', local: [] }), 1000); // c=0.0.0.0
    assert.equal(ct.pinholes, retain ? 2 : 0, `retain-on-hold=${retain}`);
    table.observe(ev({ method: 'INVITE', local: media(6000) }), 2000); // resume
    assert.equal(ct.pinholes, 2);
  }
});

test('CANCEL and failure final responses release the early dialog; a failure to a re-INVITE does not', () => {
  const { ct, table } = make();
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  table.observe(ev({ method: 'CANCEL' }), 100);
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'CANCEL' }), 110);
  table.observe(ev({ dir: 'in', status: 487, cseqMethod: 'INVITE' }), 120);
  table.sweep(5200);
  assert.equal(ct.pinholes, 0);
  const b = make();
  b.table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  b.table.observe(ev({ dir: 'in', status: 486, cseqMethod: 'INVITE' }), 10);
  b.table.sweep(5100);
  assert.equal(b.ct.pinholes, 0, '486 ends it');
  const c = make();
  c.table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  c.table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 10);
  c.table.observe(ev({ method: 'INVITE', local: media(6000) }), 1000);
  c.table.observe(ev({ dir: 'in', status: 488, cseqMethod: 'INVITE', toTag: 't' }), 1010);
  c.table.sweep(10000);
  assert.equal(c.ct.pinholes, 2, 'a confirmed dialog survives a failed re-INVITE');
});

test('early media from a 183 sets up the media flows; forking: the first 2xx wins, another branch does not move media', () => {
  const { ct, table } = make();
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  table.observe(ev({ dir: 'in', status: 183, cseqMethod: 'INVITE', toTag: 'a', remote }), 10);
  assert.equal(ct.flows.size, 2, 'early media');
  table.observe(ev({ dir: 'in', status: 183, cseqMethod: 'INVITE', toTag: 'c', remote: [{ ip: '198.51.100.50', port: 5000, rtcpPort: 5001 }] }), 15);
  assert.equal(ct.flows.size, 4, 'early media of a second fork');
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 'a', remote }), 20);
  assert.equal([...ct.flows].some((f) => f.includes('198.51.100.50')), false, 'the 2xx removes the other fork\'s media flows');
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 'b', remote: [{ ip: '198.51.100.99', port: 9000, rtcpPort: 9001 }] }), 30);
  assert.equal([...ct.flows].some((f) => f.includes('198.51.100.99')), false, 'the losing fork does not get media flows');
});

test('an idle dialog loses its pinholes but not its established media', () => {
  const { ct, table } = make();
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 10);
  table.sweep(3600011);
  assert.deepEqual([table.size, ct.pinholes, ct.flows.size], [0, 0, 2]);
});

test('direct-media=block drops a WAN re-INVITE that moves media to another address; allow follows it', () => {
  for (const policy of ['block', 'allow'] as const) {
    const ct = new FakeCt();
    const table = new DialogTable(ct as unknown as Ctnetlink, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1e9), 0, { retainOnHold: true, directMedia: policy, graceMs: 5000, idleMs: 3600000 }, counters);
    table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
    table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 10);
    const moved = [{ ip: '198.51.100.200', port: 8000, rtcpPort: 8001 }];
    const same = [{ ip: '198.51.100.7', port: 7002, rtcpPort: 7003 }];
    assert.equal(table.observe(ev({ dir: 'in', method: 'INVITE', toTag: 'f', remote: same }), 20), true, 'same address, new port: allowed');
    assert.equal(table.observe(ev({ dir: 'in', method: 'INVITE', toTag: 'f', remote: moved }), 30), policy === 'allow');
  }
});

test('timers: provisional expiry, maximum duration, RFC 4028 session expiry, media inactivity', () => {
  const a = make(true, { provisionalMs: 210000 });
  a.table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  a.table.sweep(200000);
  assert.equal(a.table.size, 1);
  a.table.sweep(210001);
  assert.deepEqual([a.table.size, a.ct.pinholes], [0, 0], 'unanswered INVITE expired');

  const b = make(true, { maxCallMs: 60000 });
  b.table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  b.table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 10);
  b.table.sweep(59000);
  assert.equal(b.table.size, 1);
  b.table.sweep(60011);
  assert.deepEqual([b.table.size, b.ct.flows.size], [0, 0], 'maximum duration cuts media too');

  const c = make();
  c.table.observe(ev({ method: 'INVITE', local: media(6000), sessionExpires: 90 }), 0);
  c.table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote, sessionExpires: 90 }), 10);
  c.table.observe(ev({ method: 'UPDATE', cseqMethod: 'UPDATE' }), 45000);
  c.table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'UPDATE', toTag: 't' }), 45010);
  c.table.sweep(130000);
  assert.equal(c.table.size, 1, 'refreshed at 45 s: alive at 130 s');
  c.table.sweep(45010 + 90000 + 32001);
  assert.equal(c.table.size, 0, 'no refresh within the interval (+32 s): expired');

  const d = make(true, { mediaInactivityMs: 20000 });
  d.table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  d.table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 10);
  d.ct.packets = 50;
  d.table.sweep(10010);
  d.ct.packets = 100;
  d.table.sweep(20010);
  d.table.sweep(30010);
  assert.equal(d.table.size, 1, 'media moved at 20 s');
  d.table.sweep(40010);
  assert.equal(d.table.size, 0, 'no packet for 20 s: torn down');
});

test('limits: global and per-source dialogs refuse new INVITEs; max-idle-dialogs evicts the longest idle; low media ports get no pinhole', () => {
  const shared = DialogTable.createShared();
  const w1 = make(true, { maxDialogs: 2, maxDialogsPerSource: 1 }, shared);
  const w2 = make(true, { maxDialogs: 2, maxDialogsPerSource: 1 }, shared);
  assert.equal(w1.table.observe(ev({ callId: 'a', method: 'INVITE', local: media(6000) }), 0), true);
  assert.equal(w1.table.observe(ev({ callId: 'b', method: 'INVITE', local: media(6002) }), 0), false, 'second dialog of the same source');
  assert.equal(w2.table.observe(ev({ callId: 'c', method: 'INVITE', local: media(6000), privateIp: '10.77.0.12' }), 0), true);
  assert.equal(w2.table.observe(ev({ callId: 'd', method: 'INVITE', local: media(6000), privateIp: '10.77.0.13' }), 0), false, 'global limit across workers');
  const e = make(true, { maxIdleDialogs: 2 });
  for (const [i, id] of ['x', 'y', 'z'].entries()) e.table.observe(ev({ callId: id, method: 'INVITE', local: media(6000 + 2 * i) }), i * 1000);
  e.table.sweep(5000);
  assert.deepEqual([...e.table.dialogs.values()].map((d) => d.callId).sort(), ['y', 'z']);
  const f = make();
  f.table.observe(ev({ method: 'INVITE', local: media(500) }), 0);
  assert.equal(f.ct.pinholes, 0, 'no pinhole to port 500/501');
});

test('per-source limits hold across workers (shared counts)', () => {
  const shared = DialogTable.createShared();
  const w1 = make(true, { maxDialogsPerSource: 1 }, shared);
  const w2 = make(true, { maxDialogsPerSource: 1 }, shared);
  assert.equal(w1.table.observe(ev({ callId: 'a', method: 'INVITE', local: media(6000) }), 0), true);
  assert.equal(w2.table.observe(ev({ callId: 'b', method: 'INVITE', local: media(6002) }), 0), false, 'the same phone through another worker');
  w1.table.observe(ev({ callId: 'a', dir: 'in', status: 486, cseqMethod: 'INVITE', toTag: 't' }), 10);
  w1.table.sweep(10000);
  assert.equal(w2.table.observe(ev({ callId: 'b', method: 'INVITE', local: media(6002) }), 10000), true, 'counted down when the first ended');
});

test('restart: a new table adopts the persisted dialogs whose anchors live, re-pins the others, and keeps their ports and timers', () => {
  const shared = PortAllocator.createShared();
  const ct = new FakeCt();
  const old = new DialogTable(ct as unknown as Ctnetlink, new PortAllocator(shared, 1, 10000, 60999, 1e9), 0, { retainOnHold: true, graceMs: 5000, idleMs: 3600000, provisionalMs: 60000 }, counters);
  old.observe(ev({ callId: 'a', method: 'INVITE', local: media(6000, 10000) }), 0);
  old.observe(ev({ callId: 'a', dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 10);
  old.observe(ev({ callId: 'b', method: 'INVITE', local: media(6002, 10002) }), 20);
  const saved = JSON.parse(JSON.stringify(old.export())) as ReturnType<DialogTable['export']>;
  const anchorA = saved.find((d) => d.callId === 'a')!.anchor!;
  const live = new Set([`${anchorA.src}:${anchorA.sport}>${anchorA.dst}:${anchorA.dport}`]); // b's anchor is gone
  // the process died: a fresh allocator over a fresh shared buffer, a fresh table
  const ports = new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1e9);
  const fresh = new DialogTable(ct as unknown as Ctnetlink, ports, 0, { retainOnHold: true, graceMs: 5000, idleMs: 3600000, provisionalMs: 60000 }, counters);
  const adopted = fresh.adopt(saved, live, 1000);
  assert.equal(adopted.size, 1);
  assert.equal(fresh.size, 2);
  assert.equal(ports.active, 2, 'both media ports are leased again');
  assert.equal(ports.allocate('10.77.0.11', 6000, 1000), 10000, 'the same public port');
  const snap = fresh.snapshot(1000);
  assert.equal(snap.find((d) => d.callId === 'a')!.state, 'confirmed');
  assert.equal(snap.find((d) => d.callId === 'b')!.pinholes, 0, 'b lost its anchor; it re-pins at its next SDP');
  // a new dialog gets a fresh anchor, not a's
  fresh.observe(ev({ callId: 'c', method: 'INVITE', local: media(6004) }), 1100);
  assert.notEqual(fresh.snapshot(1100).find((d) => d.callId === 'c')!.anchor, snap.find((d) => d.callId === 'a')!.anchor);
  // timers survived: b was never answered and expires on the old clock
  assert.ok(fresh.dialogs.has(dialogKey('b', '10.77.0.11')));
  fresh.sweep(60021);
  assert.ok(!fresh.dialogs.has(dialogKey('b', '10.77.0.11')), 'provisional expiry counted from the original INVITE');
  // a's BYE releases it and its adopted anchor
  fresh.observe(ev({ callId: 'a', method: 'BYE', cseqMethod: 'BYE' }), 61000);
  fresh.observe(ev({ callId: 'a', dir: 'in', status: 200, cseqMethod: 'BYE' }), 61001);
  assert.ok(fresh.dialogs.has(dialogKey('a', '10.77.0.11')));
  fresh.sweep(70000);
  assert.ok(!fresh.dialogs.has(dialogKey('a', '10.77.0.11')));
  assert.ok(!ct.anchors.has([...live][0]!), 'the adopted anchor is deleted at the end of the call');
});

test('third-party media (allowed): pinholes and media flows point at the media host, not the signaling phone', () => {
  const ct = new FakeCt();
  const made: { privateIp: string; privatePort: number }[] = [];
  (ct as unknown as { createExpectation: (a: Tuple, e: { privateIp: string; privatePort: number }) => void }).createExpectation = (_a, e) => { made.push({ privateIp: e.privateIp, privatePort: e.privatePort }); };
  const table = new DialogTable(ct as unknown as Ctnetlink, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1e9), 0, { retainOnHold: true, graceMs: 5000, idleMs: 3600000 }, counters);
  table.observe(ev({ method: 'INVITE', local: [{ ...media(6000)[0]!, privateIp: '10.77.0.50' }] }), 0);
  assert.deepEqual(made, [{ privateIp: '10.77.0.50', privatePort: 6000 }, { privateIp: '10.77.0.50', privatePort: 6001 }]);
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 10);
  assert.ok([...ct.flows].every((f) => f.startsWith('10.77.0.50:')), [...ct.flows].join(','));
});

test('a confirmed call keeps its signaling flow alive past the kernel UDP timeout; an early or ending one does not', () => {
  const { ct, table } = make();
  const raised: string[] = [];
  (ct as unknown as { setTimeouts: (ts: Tuple[], s: number) => boolean[] }).setTimeouts = (ts, s) => ts.map((t) => { raised.push(`${t.src}:${t.sport}>${t.dst}:${t.dport}/${s}`); return true; });
  const flow = { src: '10.77.0.11', sport: 5060, dst: '198.51.100.7', dport: 5060, proto: 17 };
  table.observe({ ...ev({ method: 'INVITE', local: media(6000) }), flow }, 0);
  table.sweep(30000);
  assert.deepEqual(raised, [], 'not while early');
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 31000);
  table.sweep(32000);
  table.sweep(40000);
  table.sweep(52000);
  assert.deepEqual(raised, ['10.77.0.11:5060>198.51.100.7:5060/300', '10.77.0.11:5060>198.51.100.7:5060/300'], 'at once, then every 20 s');
  table.observe(ev({ method: 'BYE', cseqMethod: 'BYE' }), 53000);
  table.sweep(80000);
  assert.equal(raised.length, 2, 'not once the call is ending');
});

test('the calls of one phone share its signaling flow: it is raised once a refresh interval, in one batch with the others due', () => {
  const { ct, table } = make();
  const batches: string[][] = [];
  (ct as unknown as { setTimeouts: (ts: Tuple[], s: number) => boolean[] }).setTimeouts = (ts) => { batches.push(ts.map((t) => `${t.src}:${t.sport}`)); return ts.map(() => true); };
  const flow = (ip: string) => ({ src: ip, sport: 5060, dst: '198.51.100.7', dport: 5060, proto: 17 });
  for (const [callId, ip, port] of [['a', '10.77.0.11', 6000], ['b', '10.77.0.11', 6010], ['c', '10.77.0.12', 6020]] as const) {
    table.observe({ ...ev({ callId, method: 'INVITE', local: media(port) }), privateIp: ip, flow: flow(ip) }, 30000);
    table.observe({ ...ev({ callId, dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), privateIp: ip }, 30010);
  }
  table.sweep(31000);
  assert.deepEqual(batches, [['10.77.0.11:5060', '10.77.0.12:5060']], 'one request per flow, one batch');
  table.sweep(45000);
  assert.equal(batches.length, 1, 'not again within the interval');
  table.sweep(52000);
  assert.deepEqual(batches[1], ['10.77.0.11:5060', '10.77.0.12:5060'], 'again after it');
});

test('restart: a state file of the earlier format (media flows as [key, tuple] pairs) is adopted; the flows are cut at the end of the call', () => {
  const ct = new FakeCt();
  const deleted: Tuple[] = [];
  const del = ct.delete.bind(ct);
  (ct as unknown as { delete: (t: Tuple) => boolean }).delete = (t: Tuple) => { deleted.push(t); return del(t); };
  const old = new DialogTable(ct as unknown as Ctnetlink, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1e9), 0, { retainOnHold: true, graceMs: 5000, idleMs: 3600000 }, counters);
  old.observe(ev({ callId: 'a', method: 'INVITE', local: media(6000, 10000) }), 0);
  old.observe(ev({ callId: 'a', dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 10);
  const saved = JSON.parse(JSON.stringify(old.export())) as ReturnType<DialogTable['export']>;
  const flows = saved[0]!.mediaCts as Tuple[];
  assert.equal(flows.length, 2, 'RTP and RTCP flows');
  const legacy = saved.map((d) => ({ ...d, mediaCts: flows.map((t) => [`${t.src}:${t.sport}>${t.dst}:${t.dport}`, t] as [string, Tuple]) }));
  const fresh = new DialogTable(ct as unknown as Ctnetlink, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1e9), 0, { retainOnHold: true, graceMs: 5000, idleMs: 3600000 }, counters);
  fresh.adopt(legacy, new Set(), 1000);
  assert.equal(fresh.snapshot(1000)[0]!.mediaFlows, 2);
  fresh.observe(ev({ callId: 'a', method: 'BYE', cseqMethod: 'BYE' }), 2000);
  fresh.observe(ev({ callId: 'a', dir: 'in', status: 200, cseqMethod: 'BYE' }), 2001);
  fresh.sweep(10000);
  assert.equal(fresh.size, 0);
  for (const t of flows) assert.ok(deleted.some((d) => d.src === t.src && d.sport === t.sport && d.dst === t.dst && d.dport === t.dport), `flow ${t.sport}->${t.dport} deleted`);
});

test('hairpin: when the far end\'s SDP names our own public address (another phone behind this router), no outbound media flow is pre-created, so the other phone\'s pinhole takes the media', () => {
  const { ct, table } = make();
  table.observe(ev({ method: 'INVITE', local: media(35506) }), 0);
  // the 200 from phone 2, through the provider: c=IN IP4 203.0.113.1, m=audio 41676 (baresip, lab)
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't1', remote: [{ ip: '203.0.113.1', port: 41676, rtcpPort: 41677 }] }), 10);
  assert.equal(ct.flows.size, 0, 'no flow to the router\'s own address');
  assert.equal(ct.pinholes, 2, 'this phone\'s own pinholes stay');
  // a far end on the WAN still gets its symmetric-RTP flows
  table.observe(ev({ callId: 'c2', method: 'INVITE', local: media(6000) }), 20);
  table.observe(ev({ callId: 'c2', dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't2', remote }), 30);
  assert.equal(ct.flows.size, 2);
});

test('hairpin: the two legs of one call (same Call-ID, RFC 3261 §8.1.1.4) between two phones behind this router are two dialogs, each with its own pinholes', () => {
  const { ct, table } = make();
  // phone 1's INVITE out, then the provider brings it in to phone 2, whose 200 goes out with its own SDP
  table.observe(ev({ callId: 'h', method: 'INVITE', local: media(7608), privateIp: '10.77.0.11' }), 0);
  table.observe(ev({ callId: 'h', dir: 'in', method: 'INVITE', remote: [{ ip: '203.0.113.1', port: 7608, rtcpPort: 7609 }], privateIp: '10.77.0.12' }), 5);
  table.observe(ev({ callId: 'h', status: 200, cseqMethod: 'INVITE', toTag: 't', local: media(9280, 41676), privateIp: '10.77.0.12' }), 10);
  table.observe(ev({ callId: 'h', dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote: [{ ip: '203.0.113.1', port: 41676, rtcpPort: 41677 }], privateIp: '10.77.0.11' }), 20);
  assert.equal(table.size, 2, 'one dialog per phone');
  assert.equal(ct.pinholes, 4, 'phone 1\'s and phone 2\'s RTP and RTCP pinholes, all at once');
  assert.equal(ct.anchors.size, 2);
  assert.equal(ct.flows.size, 0, 'no flow to our own public address (the other phone\'s pinhole takes the media)');
});

test('an anchor tuple already taken (the router pair\'s peer numbers its anchors alike, conntrackd synced them) is skipped, not a failed call', () => {
  const { ct, table } = make();
  // the peer's first two anchors are in this router's table
  for (const sport of [1024, 1025]) ct.createAnchor({ src: '127.0.0.1', dst: '127.1.0.1', sport, dport: 1024, proto: 17 });
  const real = ct.createAnchorWithExpectations.bind(ct);
  ct.createAnchorWithExpectations = (a: Tuple, timeoutSec: number, exps: readonly PinholeSpec[]) => {
    if (ct.anchors.has(`${a.src}:${a.sport}>${a.dst}:${a.dport}`)) throw new NetlinkError(17, 'netlink request failed');
    return real(a, timeoutSec, exps);
  };
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  assert.equal(ct.pinholes, 2, 'the call got its pinholes on the next free anchor');
  assert.equal(ct.anchors.size, 3);
  assert.equal(table.snapshot(0)[0]!.anchor, '127.0.0.1:1026>127.1.0.1:1024');
});

test('router pair takeover: the peer\'s anchors (marked with their dialog) are adopted at the dialog\'s next SIP message; its BYE then releases the anchor and the media conntracks', () => {
  const { ct, table } = make();
  const key = dialogKey('peer-call', '10.77.0.11');
  const anchor: Tuple = { src: '127.0.0.1', dst: '127.1.0.1', sport: 1024, dport: 1024, proto: 17 };
  const flow: Tuple = { src: '10.77.0.11', sport: 3014, dst: '198.51.100.7', dport: 7000, proto: 17 };
  ct.createAnchor(anchor);
  ct.createSnat(flow);
  const ctEntry = (orig: Tuple, mark: number) => ({ orig, reply: orig, status: 0, timeout: 100, id: 1, packets: 0, mark });
  // what conntrackd synced: the anchor and a media conntrack with the dialog's mark, plus unrelated entries
  const n = table.takeover([ctEntry(anchor, anchorMark(key)), ctEntry(flow, anchorMark(key)), ctEntry({ ...anchor, sport: 1025 }, 0), ctEntry({ ...anchor, dst: '127.1.5.1' }, 7)]);
  assert.equal(n, 1, 'one marked anchor of this worker\'s addresses');
  assert.equal(table.size, 0, 'nothing adopted before its dialog speaks');
  table.observe(ev({ callId: 'other', method: 'BYE', cseqMethod: 'BYE' }), 10);
  assert.equal(table.size, 0, 'another dialog\'s BYE adopts nothing');
  table.observe(ev({ callId: 'peer-call', method: 'BYE', cseqMethod: 'BYE', toTag: 't' }), 20);
  assert.equal(table.size, 1, 'the BYE of the peer\'s call adopted it');
  assert.equal(table.snapshot(20)[0]!.anchor, anchorKey(anchor));
  table.observe(ev({ callId: 'peer-call', dir: 'in', status: 200, cseqMethod: 'BYE', toTag: 't' }), 30);
  table.sweep(6000);
  assert.deepEqual([table.size, ct.anchors.size, ct.flows.size], [0, 0, 0], 'anchor and media conntrack released after the grace');
  assert.equal(counters.n.get('d|taken_over'), 1);
});

test('a dialog\'s anchor carries its mark (FNV-1a of Call-ID and phone, never 0)', () => {
  const marks: number[] = [];
  const { table } = make();
  (table as unknown as { ct: { createAnchorWithExpectations: (...a: unknown[]) => unknown[] } }).ct.createAnchorWithExpectations = (_a: unknown, _t: unknown, exps: unknown, mark: unknown) => { marks.push(mark as number); return (exps as unknown[]).map(() => undefined); };
  table.observe(ev({ callId: 'm1', method: 'INVITE', local: media(6000) }), 0);
  assert.deepEqual(marks, [anchorMark(dialogKey('m1', '10.77.0.11'))]);
  assert.notEqual(anchorMark(dialogKey('m1', '10.77.0.11')), anchorMark(dialogKey('m1', '10.77.0.12')));
  assert.ok(anchorMark('') > 0);
});

test('router pair: each router\'s anchors have its own source address (node-id), so one never takes the other\'s for its own', async () => {
  const { anchorAddresses, isAnchorSource } = await import('../../../src/dialog/dialog-table');
  assert.deepEqual(anchorAddresses(3, 4), ['127.0.0.1', '127.1.3.1'], 'a router alone: as before');
  assert.deepEqual(anchorAddresses(3, 4, 2), ['127.0.2.1', '127.1.3.1']);
  assert.deepEqual(anchorAddresses(3, 6, 0), ['::1', '::1:3']);
  assert.deepEqual(anchorAddresses(3, 6, 2), ['::2:2', '::1:3']);
  for (const ip of ['127.0.0.1', '127.0.2.1', '::1', '::2:2']) assert.ok(isAnchorSource(ip), ip);
  for (const ip of ['127.0.0.2', '10.0.0.1', '::2', '::3:1']) assert.ok(!isAnchorSource(ip), ip);
  const { ct, table } = make(true, { node: 2 });
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  assert.match([...ct.anchors.keys()][0]!, /^127\.0\.2\.1:\d+>127\.1\.0\.1:/);
});

test('router pair takeover: the call\'s media mapping is read back from the peer\'s marked media conntracks and pending pinholes; its public ports are leased at once; at adoption its pinholes move to this router\'s own anchor on the same ports', () => {
  const ports = new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1e9);
  const ct = new FakeCt();
  const exps: PinholeSpec[] = [];
  ct.createAnchorWithExpectations = (a: Tuple, _t: number, e: readonly PinholeSpec[]) => { ct.createAnchor(a); exps.push(...e); return e.map(() => undefined); };
  const table = new DialogTable(ct as unknown as Ctnetlink, ports, 0, { retainOnHold: true, graceMs: 5000, idleMs: 3600000, node: 2 }, counters);
  const key = dialogKey('peer-call', '10.77.0.11');
  const mark = anchorMark(key);
  const peerAnchor: Tuple = { src: '127.0.1.1', dst: '127.1.0.1', sport: 1024, dport: 1024, proto: 17 };
  ct.createAnchor(peerAnchor);
  const rtpOut: Tuple = { src: '10.77.0.11', sport: 4000, dst: '198.51.100.7', dport: 7000, proto: 17 };
  const rtpIn: Tuple = { src: '198.51.100.7', sport: 7000, dst: '203.0.113.1', dport: 20000, proto: 17 };
  const entry = (orig: Tuple, reply: Tuple, m: number) => ({ orig, reply, status: 0, timeout: 100, id: 1, packets: 0, mark: m });
  const swap = (t: Tuple): Tuple => ({ src: t.dst, dst: t.src, sport: t.dport, dport: t.sport, proto: t.proto });
  const n = table.takeover([
    entry(peerAnchor, swap(peerAnchor), mark),
    // the pre-created outbound RTP flow: SNAT to the public port 20000
    entry(rtpOut, { src: '198.51.100.7', sport: 7000, dst: '203.0.113.1', dport: 20000, proto: 17 }, mark),
    // an inbound flow a pinhole created: DNAT to the phone (the same RTP endpoint, seen the other way)
    entry(rtpIn, { src: '10.77.0.11', sport: 4000, dst: '198.51.100.7', dport: 7000, proto: 17 }, mark),
    // an unmarked flow of some other host: not the call's
    entry({ ...rtpOut, src: '10.77.0.99' }, { ...swap(rtpOut), dst: '203.0.113.1', dport: 30000 }, 0),
  ], [
    // the RTCP pinhole still pending
    { master: peerAnchor, tuple: { src: '0.0.0.0', sport: 0, dst: '203.0.113.1', dport: 20001, proto: 17 }, timeout: 100, nat: { src: '10.77.0.11', sport: 4001, dst: '0.0.0.0', dport: 0, proto: 17 }, cls: 1 },
  ]);
  assert.equal(n, 1);
  // the peer's public port is leased here before the call speaks: a new call gets another one
  assert.notEqual(ports.allocate('10.77.0.12', 20000, 0), 20000, 'a new phone asking for 20000 does not get the peer call\'s port');
  assert.equal(ports.allocate('10.77.0.11', 4000, 0), 20000, 'the call\'s own endpoint keeps it (its SDP stays the same)');
  table.observe(ev({ callId: 'peer-call', dir: 'in', method: 'INVITE', toTag: 't', remote }), 10);
  const snap = table.snapshot(10)[0]!;
  assert.match(snap.anchor, /^127\.0\.2\.1:/, 'the call now hangs off this router\'s anchor');
  assert.ok(!ct.anchors.has(anchorKey(peerAnchor)), 'the peer\'s anchor (and its pending pinholes) is gone');
  assert.deepEqual(snap.media.map((m) => [m.rtp, m.rtcp]), [['10.77.0.11:4000<-203.0.113.1:20000', '10.77.0.11:4001<-203.0.113.1:20001']]);
  assert.deepEqual(exps.map((e) => [e.publicPort, e.privateIp, e.privatePort]), [[20000, '10.77.0.11', 4000], [20001, '10.77.0.11', 4001]], 'the same pinholes, now this router\'s');
  // the phone's answer (same media) does not re-pin
  table.observe(ev({ callId: 'peer-call', status: 200, cseqMethod: 'INVITE', toTag: 't', local: media(4000, 20000) }), 20);
  assert.equal(exps.length, 2, 'unchanged media: no new pinholes');
  assert.equal(table.snapshot(20)[0]!.mediaFlows, 3, 'the peer\'s two media conntracks are the call\'s (released with it), and the RTCP flow the far end\'s SDP added');
});

test('router pair standby: the calls are forgotten without touching the kernel table (conntrackd keeps it in step with the peer\'s)', () => {
  const { ct, table } = make();
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't1', remote }), 10);
  const before = [ct.anchors.size, ct.pinholes, ct.flows.size];
  assert.equal(table.standby(), 1);
  assert.equal(table.size, 0);
  table.sweep(1e9);
  assert.deepEqual([ct.anchors.size, ct.pinholes, ct.flows.size], before, 'anchor, pinholes and media flows are left to the peer');
});

test('restart of a router pair\'s daemon: a saved dialog whose anchor is gone while another carries its mark moved to the peer, and is not restored', () => {
  const { table } = make();
  const key = dialogKey('moved', '10.77.0.11');
  const saved = { callId: 'moved', privateIp: '10.77.0.11', publicIp: '203.0.113.1', anchor: { src: '127.0.1.1', dst: '127.1.0.1', sport: 1024, dport: 1024, proto: 17 }, pinnedAt: 0, local: media(6000), remote, mediaCts: [], confirmed: true, winnerTag: 't', created: 0, lastSeen: 0, endAt: 0, sessionMs: 0, refreshedAt: 0, mediaPackets: 0, mediaSeenAt: 0, mediaCheckedAt: 0, flow: undefined, flowKeptAt: 0 };
  const other = { ...saved, callId: 'mine' };
  table.adopt([saved, other], new Set(), 0, new Set([anchorMark(key)]));
  assert.deepEqual(table.snapshot(0).map((s) => s.callId), ['mine'], 'only the dialog no other anchor claims');
});

test('dialogs share one hidden class whether made by a phone\'s offer or read back from the state file (JSON leaves undefined fields out): the packet path\'s loads on them stay monomorphic', () => {
  v8.setFlagsFromString('--allow-natives-syntax');
  const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
  const { table } = make();
  table.observe(ev({ callId: 'new', method: 'INVITE', local: media(6000) }), 0);
  const saved = JSON.parse(JSON.stringify(table.export())) as PersistedDialog[];
  saved[0]!.callId = 'restored';
  saved[0]!.privateIp = '10.77.0.12';
  const { table: other } = make();
  other.adopt(saved, new Set(), 0);
  const made = table.dialogs.get(dialogKey('new', '10.77.0.11'))!, restored = other.dialogs.get(dialogKey('restored', '10.77.0.12'))!;
  assert.ok(sameMap(made, restored), 'one map for a new and a restored dialog');
  assert.deepEqual(Object.keys(restored), Object.keys(made), 'the same fields, in the same order');
  assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(made)) as object), Object.keys(made).filter((k) => k !== 'clock' && (made as unknown as Record<string, unknown>)[k] !== undefined), 'its JSON (toJSON, field by field) has every field but the clock');
});

test('state journal: each dialog changed since the last take is given once, as it is now; a released one by its key alone; a Call-ID used again is its successor', () => {
  const { table } = make(true, { graceMs: 0 });
  assert.deepEqual(table.takeChanges(), []);
  table.observe(ev({ method: 'INVITE', local: media(6000) }), 0);
  table.observe(ev({ dir: 'in', status: 180, cseqMethod: 'INVITE', toTag: 't1' }), 5);
  table.observe(ev({ method: 'INVITE', local: media(6100), callId: 'c2' }), 10);
  assert.equal(table.pendingChanges, 2);
  const first = table.takeChanges();
  assert.deepEqual(first.map(([k, d]) => [k, d?.callId]), [[dialogKey('c1', '10.77.0.11'), 'c1'], [dialogKey('c2', '10.77.0.11'), 'c2']]);
  assert.equal(table.pendingChanges, 0, 'taken: forgotten');
  table.sweep(20);
  assert.deepEqual(table.takeChanges(), [], 'a sweep that changes nothing writes nothing');
  // c1 ends: CANCEL's path (a failure final response) releases the early dialog
  table.observe(ev({ dir: 'in', status: 486, cseqMethod: 'INVITE', toTag: 't1' }), 30);
  table.sweep(40);
  assert.equal(table.size, 1);
  // the same Call-ID again (a new call from the same phone) before the journal took the end of the first
  table.observe(ev({ method: 'INVITE', local: media(6200) }), 50);
  const second = table.takeChanges();
  assert.equal(second.length, 1, 'the ended dialog and its successor share a key: one line, the live one');
  assert.equal(second[0]![1]!.local[0]!.privatePort, 6200);
  table.closeAll();
  assert.deepEqual(table.takeChanges().map(([k, d]) => [k, d]).sort(), [[dialogKey('c1', '10.77.0.11'), undefined], [dialogKey('c2', '10.77.0.11'), undefined]]);
});

test('after a conntrack flush, live calls get their pinholes and media flows again, a few per slice; ended ones do not', () => {
  const { ct, table } = make();
  for (const c of ['a', 'b', 'c']) {
    table.observe(ev({ callId: c, method: 'INVITE', local: media(c === 'a' ? 6000 : c === 'b' ? 6010 : 6020) }), 0);
    table.observe(ev({ callId: c, dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), 10);
  }
  // c hangs up: its BYE is answered, it is in its grace when the flush comes
  table.observe(ev({ callId: 'c', method: 'BYE', cseqMethod: 'BYE', toTag: 't' }), 20);
  table.observe(ev({ callId: 'c', dir: 'in', status: 200, cseqMethod: 'BYE', toTag: 't' }), 20);
  const flowsBefore = ct.flows.size;
  // the kernel's table is flushed
  ct.anchors.clear();
  ct.flows.clear();
  assert.equal(table.afterFlush(), 2, 'the two live calls are queued, the ending one not');
  assert.equal(table.repairsPending, 2);
  assert.equal(table.repairSlice(30, 1), true, 'one per slice here: one more waits');
  assert.equal(table.repairSlice(31, 1), false);
  assert.equal(ct.anchors.size, 2, 'an anchor each again');
  assert.equal(ct.pinholes, 4, 'RTP and RTCP pinholes each');
  assert.equal(ct.flows.size, flowsBefore - 2, 'both live calls\' media flows made again (the ending call\'s not)');
  assert.equal(table.snapshot(40).find((s) => s.callId === 'a')?.pinholes, 2);
});

test('a budgeted sweep walks the table by index: every ended dialog goes, none still live, however removals reorder it', () => {
  const { table } = make();
  for (let i = 0; i < 30; i++) table.observe(ev({ method: 'INVITE', callId: `c${i}`, local: media(6000 + 2 * i) }), 0);
  // every third call ends (BYE and its 200: released after the 5 s grace)
  for (let i = 0; i < 30; i += 3) {
    table.observe(ev({ method: 'BYE', cseqMethod: 'BYE', callId: `c${i}` }), 100);
    table.observe(ev({ dir: 'in', status: 200, cseqMethod: 'BYE', callId: `c${i}` }), 100);
  }
  for (let k = 0; k < 3; k++) table.sweep(6000, 4);
  assert.ok(table.size < 30 && table.size > 20, `a part of the round: ${table.size}`);
  for (let k = 0; k < 20; k++) table.sweep(6000, 4);
  assert.equal(table.size, 20, 'the 10 ended ones, and only them');
  const left = table.export().map((d) => d.callId).sort();
  assert.deepEqual(left, Array.from({ length: 30 }, (_, i) => `c${i}`).filter((_, i) => i % 3).sort());
  // all the rest idle past idle-ms: one whole sweep takes every one (each moved into a freed slot too)
  table.sweep(3600000 + 200);
  assert.equal(table.size, 0);
});

test('a dialog\'s times are small integers on the table\'s clock (no heap number each), wall-clock times in its JSON; timers and ages stay right across the clock\'s rebase (every ~6 days)', () => {
  v8.setFlagsFromString('--allow-natives-syntax');
  const isSmi = new Function('x', 'return %IsSmi(x)') as (x: unknown) => boolean;
  const DAY = 86400_000, T = Date.now();
  const { ct, table } = make(true, { idleMs: 7 * DAY, graceMs: 5000 });
  table.observe(ev({ callId: 'long', method: 'INVITE', local: media(6000) }), T);
  table.observe(ev({ callId: 'long', dir: 'in', status: 200, cseqMethod: 'INVITE', toTag: 't', remote }), T + 10);
  const d = table.dialogs.get(dialogKey('long', '10.77.0.11'))!;
  for (const f of ['created', 'lastSeen', 'refreshedAt', 'mediaSeenAt', 'mediaCheckedAt', 'pinCheckedAt', 'pinnedAt'] as const) assert.ok(isSmi(d[f]), `${f} is a small integer`);
  const saved = (JSON.parse(JSON.stringify(table.export())) as PersistedDialog[])[0]!;
  assert.equal(saved.created, T, 'the JSON carries wall-clock times');
  assert.equal(saved.lastSeen, T + 10);
  assert.equal(saved.endAt, 0, '0 (never) stays 0');
  assert.equal((saved as unknown as Record<string, unknown>).clock, undefined, 'and no clock');
  // 13 days: the clock is rebased twice; the confirmed call's in-dialog messages keep it from idling
  // out, a second call made on day 3 and silent since idles out exactly 7 days later
  table.observe(ev({ callId: 'quiet', method: 'INVITE', local: media(6100) }), T + 3 * DAY);
  for (let h = 1; h <= 13 * 24; h++) {
    const now = T + h * 3600_000;
    if (h % 24 === 0) table.observe(ev({ callId: 'long', method: 'ACK', toTag: 't' }), now);
    table.sweep(now);
    assert.equal(table.dialogs.has(dialogKey('quiet', '10.77.0.11')), h <= 10 * 24, `hour ${h}: the silent call lives 7 days from day 3`);
  }
  const now = T + 13 * DAY;
  const [snap] = table.snapshot(now);
  assert.equal(snap!.callId, 'long');
  assert.equal(snap!.ageSec, 13 * 86400, 'its age across two rebases');
  assert.equal(snap!.idleSec, 0);
  for (const f of ['created', 'lastSeen', 'refreshedAt', 'pinCheckedAt'] as const) assert.ok(isSmi(d[f]), `${f} still a small integer after the rebases`);
  const again = (JSON.parse(JSON.stringify(table.export())) as PersistedDialog[])[0]!;
  assert.equal(again.created, T, 'its creation, in wall-clock time, unchanged by the rebases');
  assert.equal(again.lastSeen, now);
  // read back by a new table (a restart): the same ages and timers
  const { table: fresh } = make(true, { idleMs: 7 * DAY, graceMs: 5000 });
  fresh.adopt([again], new Set(), now + 1000);
  assert.equal(fresh.snapshot(now + 1000)[0]!.ageSec, 13 * 86400 + 1);
  // the wall clock set back by a month (before the clock's base): the times keep their wall-clock
  // values, and the call's timers count from them as they did with wall-clock fields
  const { table: back } = make(true, { idleMs: 7 * DAY, graceMs: 5000 });
  back.adopt([again], new Set(), now);
  assert.equal(back.snapshot(now - 30 * DAY)[0]!.ageSec, (13 - 30) * 86400, 'an age read before the call began, as wall-clock times give it');
  assert.equal((JSON.parse(JSON.stringify(back.export())) as PersistedDialog[])[0]!.created, T, 'its creation unchanged');
  back.sweep(now + 7 * DAY);
  assert.equal(back.size, 1, 'idle 7 days to the ms: not yet');
  back.sweep(now + 7 * DAY + 1);
  assert.equal(back.size, 0, 'idle past 7 days: released');
  // BYE and its 200: released after the grace, to the ms, on the rebased clock
  table.observe(ev({ callId: 'long', method: 'BYE', cseqMethod: 'BYE', toTag: 't' }), now);
  table.observe(ev({ callId: 'long', dir: 'in', status: 200, cseqMethod: 'BYE', toTag: 't' }), now + 10);
  table.sweep(now + 5009);
  assert.equal(table.size, 1, 'in its grace');
  table.sweep(now + 5010);
  assert.equal(table.size, 0, 'released when the grace ends');
  assert.equal(ct.pinholes, 0);
});

test('a pin that rides the verdicts\' datagram: counted when sent; a refusal read in the next wake-up undoes its share, and the sweep retries it; a taken anchor is replaced at once', () => {
  /** a queue batch to ride: the kernel makes what rides at once; the test answers the refusals later, as settle() would */
  class RidingCt extends FakeCt {
    rides: { a: Tuple; exps: readonly PinholeSpec[]; onRefused: (index: number, errno: number) => void }[] = [];
    riding = true;
    deleted: number[] = [];
    override rideAnchorWithExpectations(a: Tuple, _t: number, exps: readonly PinholeSpec[], _mark: number, onRefused: (index: number, errno: number) => void): (NetlinkError | undefined)[] | undefined {
      if (!this.riding) return undefined;
      this.createAnchor(a);
      for (const e of exps) this.createExpectation(a, e);
      this.rides.push({ a, exps, onRefused });
      return exps.map(() => undefined);
    }
    deleteExpectationSoon(a: Tuple, e: PinholeSpec) {
      this.deleted.push(e.publicPort);
      const k = anchorKey(a);
      this.anchors.set(k, (this.anchors.get(k) ?? 1) - 1);
    }
  }
  const ct = new RidingCt();
  const n = new Map<string, number>();
  const count = { inc(k: string, by = 1) { n.set(k, (n.get(k) ?? 0) + by); } };
  const table = new DialogTable(ct as unknown as Ctnetlink, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 1e9), 0, { retainOnHold: true, graceMs: 5000, idleMs: 3600000 }, count);
  const c = (k: string) => n.get(k) ?? 0;
  const info = (id: string) => table.snapshot(0).find((s) => s.callId === id)!;

  table.observe(ev({ callId: 'r1', method: 'INVITE', local: media(6000) }), 0);
  assert.equal(ct.rides.length, 1, 'the anchor and both pinholes rode');
  assert.deepEqual([c('h|created'), table.pinholes, info('r1').pinholes], [2, 2, 2], 'counted as made when sent');
  // the kernel refused the RTCP pinhole (EBUSY): read in the next wake-up
  ct.rides[0]!.onRefused(2, 16);
  assert.deepEqual([c('h|failed'), table.pinholes, info('r1').pinholes, info('r1').pinholesFailed], [1, 1, 1, 1]);
  assert.equal(table.pinholes, table.countPinholes(), 'the gauge follows the refusal');
  // a sweep is outside a queue batch: its retry makes the pin with a round trip of its own
  ct.riding = false;
  table.sweep(1000);
  assert.equal(c('h|retried'), 0, 'not before the retry interval');
  table.sweep(2100);
  assert.deepEqual([c('h|retried'), info('r1').pinholes, info('r1').pinholesFailed, table.pinholes], [1, 2, 0, 2], 'retried and made');
  ct.riding = true;

  // an anchor whose tuple was taken (EEXIST: one left behind by an earlier run): its pinholes, hung
  // on that entry, are deleted again, and the call is pinned at once under the next anchor
  table.observe(ev({ callId: 'r2', method: 'INVITE', local: media(6100) }), 3000);
  const taken = ct.rides[1]!;
  const failedBefore = c('h|failed');
  taken.onRefused(0, 17);
  assert.deepEqual(ct.deleted, [6100, 6101], 'the pinholes that hung on the taken tuple deleted by their tuples');
  assert.notEqual(info('r2').anchor, anchorKey(taken.a), 'another anchor');
  assert.equal(info('r2').pinholes, 2, 'pinned under it at once');
  assert.equal(c('h|failed'), failedBefore, 'nothing failed');
  // the pinholes' own answers after their anchor's, and any late answer of a pin since replaced: ignored
  taken.onRefused(1, 2);
  ct.rides[0]!.onRefused(1, 16);
  assert.deepEqual([info('r2').pinholes, info('r1').pinholes, c('h|failed')], [2, 2, failedBefore]);

  // an anchor refused for another reason: the call has no pinholes; counted, and retried by the sweep
  table.observe(ev({ callId: 'r3', method: 'INVITE', local: media(6200) }), 4000);
  ct.rides.at(-1)!.onRefused(0, 12);
  assert.deepEqual([info('r3').anchor, info('r3').pinholes, info('r3').pinholesFailed, c('h|failed')], ['', 0, 2, failedBefore + 2]);
  assert.equal(table.pinholes, table.countPinholes());
  ct.riding = false;
  table.sweep(6100);
  assert.equal(info('r3').pinholes, 2, 'made again by the sweep');
  // a retry that rides and is refused again keeps its count of retries: at most PIN_RETRIES (5)
  ct.riding = true;
  table.observe(ev({ callId: 'r4', method: 'INVITE', local: media(6300) }), 7000);
  let t = 7000, answered = 0;
  const retried = c('h|retried');
  for (let k = 0; k < 10; k++) {
    // the kernel answers each request once: the newest pin's RTP pinhole refused (EBUSY)
    if (ct.rides.length > answered) {
      answered = ct.rides.length;
      ct.rides.at(-1)!.onRefused(1, 16);
    }
    // the sweep's retry rides here too (a batch to ride), so only a refusal tells it
    t += 2100;
    table.sweep(t);
  }
  assert.equal(info('r4').pinholesFailed, 1, 'still one refused');
  assert.equal(c('h|retried') - retried, 5, 'retried PIN_RETRIES times, then left to the next SDP');
});
