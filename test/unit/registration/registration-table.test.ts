/**
 * Registrations whose NAT binding the ALG keeps alive. The kernel is a recorder of the ctnetlink
 * timeout updates here; test/lab/registration*.test.ts and pair.test.ts run it against real conntrack.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistrationTable } from '../../../src/registration/registration-table';
import type { Conntrack, Ctnetlink, Tuple } from '../../../src/conntrack/ctnetlink';

class FakeCt {
  timeouts: [string, number][] = [];
  setTimeout(t: Tuple, sec: number) { this.timeouts.push([`${t.src}:${t.sport}`, sec]); return true; }
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
  assert.deepEqual(snap, [{ aor: '(taken over)', phone: '10.77.0.11:5060', public: '203.0.113.1:5060', expiresInSec: 3594, keptAliveSecAgo: 0 }]);
  table.sweep(21000);
  assert.deepEqual(ct.timeouts, [['10.77.0.11:5060', 3634]], 'kept alive at the sweep to the same end');
  assert.equal(table.takeover([entry(flow('10.77.0.11', 5060), 3654)], '203.0.113.1', [5060], 300, 22000), 0, 'a second takeover adds nothing twice');
  table.confirmed('sip:phone1@x', flow('10.77.0.11', 5060), '203.0.113.1', 5060, 1800, 30000);
  assert.deepEqual(table.snapshot(30000).map((r) => [r.aor, r.expiresInSec]), [['sip:phone1@x', 1800]], 'the REGISTER replaced it');
  assert.equal(table.standby(), 1);
  assert.equal(table.size, 0);
});
