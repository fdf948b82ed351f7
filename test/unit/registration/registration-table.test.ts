/**
 * Registrations whose NAT binding the ALG keeps alive. The kernel is a recorder of the ctnetlink
 * timeout updates here; test/lab/registration*.test.ts and pair.test.ts run it against real conntrack.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Registration, RegistrationTable, registrationKey } from '../../../src/registration/registration-table';
import type { Conntrack, Ctnetlink, PinholeSpec, Tuple } from '../../../src/conntrack/ctnetlink';

class FakeCt {
  timeouts: [string, number][] = [];
  batches = 0;
  setTimeout(t: Tuple, sec: number) { this.timeouts.push([`${t.src}:${t.sport}`, sec]); return true; }
  setTimeouts(ts: Tuple[], secs: number[]) { this.batches++; return ts.map((t, i) => this.setTimeout(t, secs[i]!)); }
  /** no rider by default (outside a queue batch); riding: requests taken, their failure callbacks kept */
  riding: [string, number, (errno: number) => void][] | undefined;
  setTimeoutRiding(t: Tuple, sec: number, onFailed: (errno: number) => void) {
    if (!this.riding) return false;
    this.riding.push([`${t.src}:${t.sport}`, sec, onFailed]);
    return true;
  }
}
const counters = { n: new Map<string, number>(), inc(k: string, by = 1) { this.n.set(k, (this.n.get(k) ?? 0) + by); } };
const make = () => {
  const ct = new FakeCt();
  return { ct, table: new RegistrationTable(ct as unknown as Ctnetlink, { marginSec: 60, refreshMs: 20000 }, counters) };
};
const flow = (src: string, sport: number, dport = 5060): Tuple => ({ src, sport, dst: '203.0.113.10', dport, proto: 17 });
const entry = (orig: Tuple, timeout: number, publicIp = '203.0.113.1', publicPort = orig.sport): Conntrack =>
  ({ orig, reply: { src: orig.dst, sport: orig.dport, dst: publicIp, dport: publicPort, proto: 17 }, status: 0, timeout, id: 1, packets: 0, mark: 0 });

test('a confirmed registration raises its flow\'s timeout to the remaining lifetime plus the margin, again at the sweep; expires=0 removes it', () => {
  const { ct, table } = make();
  table.confirmed('sip:a@x', flow('10.77.0.11', 5060), '203.0.113.1', 5060, 3600, 0);
  assert.deepEqual(ct.timeouts, [['10.77.0.11:5060', 3660]]);
  table.sweep(20000);
  assert.deepEqual(ct.timeouts[1], ['10.77.0.11:5060', 3640]);
  table.confirmed('sip:a@x', flow('10.77.0.11', 5060), '203.0.113.1', 5060, 0, 21000);
  assert.equal(table.size, 0);
});

test('during a queue batch the flow timeout rides the verdicts\' datagram: no round trip of its own; the kernel\'s refusal, read later, is counted', () => {
  const { ct, table } = make();
  ct.riding = [];
  counters.n.clear();
  table.confirmed('sip:a@x', flow('10.77.0.11', 5060), '203.0.113.1', 5060, 3600, 0);
  table.confirmed('sip:b@x', flow('10.77.0.12', 5060), '203.0.113.1', 5062, 600, 0);
  assert.deepEqual(ct.timeouts, [], 'no synchronous request');
  assert.deepEqual(ct.riding.map(([k, s]) => [k, s]), [['10.77.0.11:5060', 3660], ['10.77.0.12:5060', 660]]);
  assert.equal(counters.n.get('g|kept_alive'), 2);
  ct.riding[1]![2](2); // ENOENT: the kernel had no entry for b's flow
  ct.riding[0]![2](105); // ENOBUFS
  assert.equal(counters.n.get('g|flow_gone'), 1);
  assert.equal(counters.n.get('g|keepalive_failed'), 1);
  ct.riding = undefined; // outside a batch (a timer): the synchronous request
  table.confirmed('sip:a@x', flow('10.77.0.11', 5060), '203.0.113.1', 5060, 3600, 1000);
  assert.deepEqual(ct.timeouts, [['10.77.0.11:5060', 3660]]);
});

test('the sweep keeps each due flow alive once, for the longest of its registrations, all flows in one batch', () => {
  const { ct, table } = make();
  // a PBX registering two lines over one flow, and a phone
  table.confirmed('sip:l1@x', flow('10.77.0.20', 5060), '203.0.113.1', 5060, 600, 0);
  table.confirmed('sip:l2@x', flow('10.77.0.20', 5060), '203.0.113.1', 5060, 3600, 0);
  table.confirmed('sip:p@x', flow('10.77.0.21', 5060), '203.0.113.1', 5061, 1800, 0);
  ct.timeouts = [];
  table.sweep(20000);
  assert.equal(ct.batches, 1);
  assert.deepEqual(ct.timeouts, [['10.77.0.20:5060', 3640], ['10.77.0.21:5060', 1840]]);
  table.sweep(30000);
  assert.equal(ct.batches, 1, 'not again before the refresh interval');
});

test('router pair takeover: flows the peer raised beyond a call\'s signaling timeout are registrations kept alive here for what is left of them; the phone\'s next REGISTER replaces the inferred entry', () => {
  const { ct, table } = make();
  const n = table.takeover([
    entry(flow('10.77.0.11', 5060), 3654), // a registration the peer kept alive (3600 s + margin)
    entry(flow('10.77.0.12', 5060), 280), // a call's signaling flow (300 s), not a registration
    entry(flow('10.77.0.13', 5060, 80), 3654), // not SIP
    entry(flow('10.77.0.14', 5060), 3654, '198.51.100.99'), // not masqueraded to our public address
  ], '203.0.113.1', [5060], 300, 1000);
  assert.equal(n, 1);
  const snap = table.snapshot(1000);
  assert.deepEqual(snap, [{ aor: '(taken over)', phone: '10.77.0.11:5060', public: '203.0.113.1:5060', expiresInSec: 3594, keptAliveSecAgo: 0, pinhole: '' }]);
  table.sweep(21000);
  assert.deepEqual(ct.timeouts, [['10.77.0.11:5060', 3634]], 'kept alive at the sweep to the same end');
  assert.equal(table.takeover([entry(flow('10.77.0.11', 5060), 3654)], '203.0.113.1', [5060], 300, 22000), 0, 'a second takeover adds nothing twice');
  table.confirmed('sip:phone1@x', flow('10.77.0.11', 5060), '203.0.113.1', 5060, 1800, 30000);
  assert.deepEqual(table.snapshot(30000).map((r) => [r.aor, r.expiresInSec]), [['sip:phone1@x', 1800]], 'the REGISTER replaced it');
  assert.equal(table.standby(), 1);
  assert.equal(table.size, 0);
});

/** The kernel as register pinholes need it: anchors with their expectations, refreshed or gone. */
class PinholeCt extends FakeCt {
  anchors = new Map<string, PinholeSpec[]>();
  key = (t: Tuple) => `${t.src}:${t.sport}>${t.dst}:${t.dport}`;
  createAnchorWithExpectations(a: Tuple, _timeout: number, exps: readonly PinholeSpec[]) {
    this.anchors.set(this.key(a), [...exps]);
    return exps.map(() => undefined);
  }
  refreshed = 0;
  refreshExpectation(a: Tuple) { this.refreshed++; return this.anchors.has(this.key(a)); }
  delete(t: Tuple) { return this.anchors.delete(this.key(t)); }
  get specs() { return [...this.anchors.values()].flat(); }
}

test('register pinholes (inbound-signaling-from): one signaling expectation per allowed prefix to the registered binding, DNATed to the phone, for as long as the registration lives; refreshed; gone at Expires: 0 and at expiry', () => {
  const ct = new PinholeCt();
  const table = new RegistrationTable(ct as unknown as Ctnetlink, { marginSec: 60, refreshMs: 20000, inboundFrom: [{ ip: '198.51.115.0', bits: 24 }, { ip: '192.0.2.7', bits: 32 }], worker: 1, node: 2 }, counters);
  table.confirmed('sip:a@x', flow('10.77.0.11', 5060), '203.0.113.1', 38699, 120, 0);
  assert.deepEqual(ct.specs.map((s) => [s.remoteIp, s.remoteBits, s.publicIp, s.publicPort, s.privateIp, s.privatePort, s.cls]), [
    ['198.51.115.0', 24, '203.0.113.1', 38699, '10.77.0.11', 5060, 0],
    ['192.0.2.7', 32, '203.0.113.1', 38699, '10.77.0.11', 5060, 0],
  ]);
  assert.ok([...ct.anchors.keys()].every((k) => k.startsWith('127.0.2.1:') && k.endsWith('>127.1.1.1:65535')), 'anchors of this router and worker, apart from the dialogs\'');
  assert.deepEqual(table.bindingOf('10.77.0.11', 5060), { publicIp: '203.0.113.1', publicPort: 38699 }, 'the binding of a new inbound flow through the pinhole');
  assert.equal(table.snapshot(0)[0]!.pinhole, 'from 198.51.115.0/24,192.0.2.7/32');
  table.confirmed('sip:b@x', flow('10.77.0.11', 5060), '203.0.113.1', 38699, 120, 10);
  assert.equal(ct.anchors.size, 2, 'a second AoR on the same binding shares its pinhole');
  table.sweep(61000);
  assert.equal(ct.refreshed, 2, 're-armed after a minute (the helper\'s 180 s expectation timeout)');
  ct.anchors.clear(); // flushed (conntrack -F, a restart's clean-up)
  table.sweep(122000);
  assert.equal(ct.anchors.size, 0, 'both registrations expired at 120 s: nothing made again');
  const t2 = new RegistrationTable(ct as unknown as Ctnetlink, { marginSec: 60, refreshMs: 20000, inboundFrom: [{ ip: '0.0.0.0', bits: 0 }] }, counters);
  t2.confirmed('sip:a@x', flow('10.77.0.12', 5060), '203.0.113.1', 5060, 3600, 0);
  assert.deepEqual(ct.specs.map((s) => s.remoteIp), [undefined], "'any': no source address");
  ct.anchors.clear();
  t2.sweep(61000);
  assert.equal(ct.anchors.size, 1, 'a pinhole whose anchor went is made again at its refresh');
  t2.confirmed('sip:a@x', flow('10.77.0.12', 5060), '203.0.113.1', 5060, 0, 62000);
  assert.equal(ct.anchors.size, 0, 'Expires: 0 closes it');
  const t3 = new RegistrationTable(ct as unknown as Ctnetlink, { marginSec: 60, refreshMs: 20000 }, counters);
  t3.confirmed('sip:a@x', flow('10.77.0.13', 5060), '203.0.113.1', 5060, 3600, 0);
  assert.equal(ct.anchors.size, 0, "'registrar' (default): no pinhole, as the kernel helper's default");
});

test('router pair takeover with register pinholes: the peer\'s register anchors (synced) are deleted and this router opens its own for the registrations it takes over', () => {
  const ct = new PinholeCt();
  const table = new RegistrationTable(ct as unknown as Ctnetlink, { marginSec: 60, refreshMs: 20000, inboundFrom: [{ ip: '198.51.115.0', bits: 24 }], worker: 0, node: 2 }, counters);
  const peerAnchor: Tuple = { src: '127.0.1.1', sport: 1024, dst: '127.1.0.1', dport: 65535, proto: 17 };
  ct.anchors.set(ct.key(peerAnchor), []);
  const peerAnchorEntry: Conntrack = { orig: peerAnchor, reply: { src: peerAnchor.dst, dst: peerAnchor.src, sport: 65535, dport: 1024, proto: 17 }, status: 0, timeout: 3000, id: 2, packets: 0, mark: 0 };
  table.takeover([entry(flow('10.77.0.11', 5060), 3650, '203.0.113.1', 38699), peerAnchorEntry], '203.0.113.1', [5060], 300, 0);
  assert.equal(ct.anchors.has(ct.key(peerAnchor)), false, 'the peer\'s register anchor went');
  assert.deepEqual(ct.specs.map((s) => [s.remoteIp, s.publicPort, s.privateIp, s.privatePort]), [['198.51.115.0', 38699, '10.77.0.11', 5060]], 'this router\'s own pinhole to the binding it took over');
  assert.ok([...ct.anchors.keys()].every((k) => k.startsWith('127.0.2.1:')));
});

test('the WAN address changes: registrations of the old address and their register pinholes go; the phone\'s next REGISTER makes a new one', () => {
  const ct = new PinholeCt();
  const table = new RegistrationTable(ct as unknown as Ctnetlink, { marginSec: 60, refreshMs: 20000, inboundFrom: [{ ip: '198.51.115.0', bits: 24 }] }, counters);
  table.confirmed('sip:a@x', flow('10.77.0.11', 5060), '203.0.113.1', 5060, 3600, 0);
  table.confirmed('sip:b@x', flow('10.77.0.12', 5060), '198.51.107.1', 5060, 3600, 0);
  assert.equal(table.readdress('203.0.113.1'), 1);
  assert.deepEqual(table.snapshot(0).map((r) => r.public), ['198.51.107.1:5060']);
  assert.deepEqual(ct.specs.map((s) => s.publicIp), ['198.51.107.1'], 'the old address\'s pinhole went');
});

test('state journal: the registrations changed since the last take, each once, by the key the table uses; one taken over keeps its flow-only key through a restart, so the phone\'s next REGISTER still replaces it', () => {
  const { table } = make();
  table.confirmed('sip:a@x', flow('10.77.0.11', 5060), '203.0.113.1', 5060, 3600, 0);
  table.confirmed('sip:a@x', flow('10.77.0.11', 5060), '203.0.113.1', 5060, 3600, 10);
  table.takeover([entry(flow('10.77.0.12', 5060), 3654)], '203.0.113.1', [5060], 300, 20);
  const got = table.takeChanges();
  assert.deepEqual(got.map(([k, r]) => [k, r?.aor]), [['10.77.0.11:5060|sip:a@x', 'sip:a@x'], ['10.77.0.12:5060|', '(taken over)']]);
  assert.deepEqual(got.map(([k, r]) => registrationKey(r!) === k), [true, true], 'registrationKey gives the table\'s key');
  assert.deepEqual(table.takeChanges(), []);
  // restart: the saved registrations read back; the taken-over one is replaced by the phone's REGISTER
  const { table: next } = make();
  next.adopt(got.map(([, r]) => JSON.parse(JSON.stringify(r)) as Registration), 30);
  next.confirmed('sip:b@x', flow('10.77.0.12', 5060), '203.0.113.1', 5060, 1800, 40);
  assert.deepEqual(next.snapshot(40).map((r) => r.aor).sort(), ['sip:a@x', 'sip:b@x']);
  assert.deepEqual(next.takeChanges().map(([k, r]) => [k, r?.aor]), [['10.77.0.12:5060|sip:b@x', 'sip:b@x'], ['10.77.0.12:5060|', undefined]]);
  next.sweep(4e6);
  assert.deepEqual(next.takeChanges().map(([k, r]) => [k, r]), [['10.77.0.11:5060|sip:a@x', undefined], ['10.77.0.12:5060|sip:b@x', undefined]], 'expired: gone');
});
