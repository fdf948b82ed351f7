/**
 * BindingResolver: a flow's NAT binding from the kernel's entry, kept 1 s, and never served from
 * that cache for a packet the rules marked fresh (its conntrack entry is not in the table: a new
 * flow, or one whose entry a `conntrack -F` removed). The kernel's table is a small stand-in here
 * (what ctnetlink get and create answer); test/lab/conntrack-flush.test.ts runs the real one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BindingResolver } from '../../../src/nat/binding-resolver';
import { IPPROTO_UDP, type Conntrack, type Ctnetlink, type Tuple } from '../../../src/conntrack/ctnetlink';
import { EEXIST, NetlinkError } from '../../../src/errors';

const PUBLIC = '203.0.113.1';
const key = (t: Tuple) => `${t.src}:${t.sport}>${t.dst}:${t.dport}`;

/** The kernel's table of SNAT entries: create picks the source port when free (MASQUERADE's rule), else `next`. */
class Table {
  entries = new Map<string, Conntrack>();
  gets = 0;
  creates = 0;
  next = 14289;
  get(t: Tuple): Conntrack | undefined {
    this.gets++;
    return this.entries.get(key(t));
  }
  createSnat(t: Tuple, publicIp: string): void {
    this.creates++;
    if (this.entries.has(key(t))) throw new NetlinkError(EEXIST, 'create');
    const taken = [...this.entries.values()].some((c) => c.reply.dport === t.sport && c.reply.src === t.dst && c.reply.sport === t.dport);
    const port = taken ? this.next++ : t.sport;
    this.entries.set(key(t), { orig: t, reply: { src: t.dst, sport: t.dport, dst: publicIp, dport: port, proto: IPPROTO_UDP }, status: 0, timeout: 30, id: 1, packets: 0, mark: 0 });
  }
  flush(): void {
    this.entries.clear();
  }
}

function resolver(): { r: BindingResolver; k: Table } {
  const k = new Table();
  return { r: new BindingResolver(k as unknown as Ctnetlink, { publicIp: PUBLIC, firstPacket: 'precreate' }), k };
}

test('a flow\'s binding is read from the kernel once, then kept for a second', () => {
  const { r, k } = resolver();
  const a = r.outbound('10.77.0.11', 5060, '198.51.100.10', 5080, 1000);
  assert.deepEqual([a?.publicIp, a?.publicPort, a?.source], [PUBLIC, 5060, 'created']);
  const gets = k.gets;
  assert.equal(r.outbound('10.77.0.11', 5060, '198.51.100.10', 5080, 1500)?.publicPort, 5060);
  assert.equal(k.gets, gets, 'served from the cache');
  r.outbound('10.77.0.11', 5060, '198.51.100.10', 5080, 2001);
  assert.equal(k.gets, gets + 1, 'read again after a second');
});

test('after a conntrack flush, a fresh packet gets the binding the kernel makes now, not the cached one', () => {
  const { r, k } = resolver();
  // two phones from port 5060 to one registrar: the first keeps 5060, the second is given another port
  assert.equal(r.outbound('10.77.0.11', 5060, '198.51.100.10', 5080, 1000)?.publicPort, 5060);
  assert.equal(r.outbound('10.77.0.12', 5060, '198.51.100.10', 5080, 1000)?.publicPort, 14289);
  k.flush();
  // the second phone sends first after the flush: the kernel now keeps its source port
  assert.equal(r.outbound('10.77.0.12', 5060, '198.51.100.10', 5080, 1200)?.publicPort, 14289, 'unmarked: the cache\'s (stale) binding, the limit fresh-flow-mark closes');
  r.fresh = true;
  const b = r.outbound('10.77.0.12', 5060, '198.51.100.10', 5080, 1300);
  assert.deepEqual([b?.publicPort, b?.source], [5060, 'created'], 'marked fresh: made again in the kernel and read back');
  r.fresh = false;
  assert.equal(r.outbound('10.77.0.12', 5060, '198.51.100.10', 5080, 1400)?.publicPort, 5060, 'the cache holds the new binding');
});

test('a fresh packet of a flow whose entry exists reads that entry (no second entry is made)', () => {
  const { r, k } = resolver();
  r.outbound('10.77.0.11', 5060, '198.51.100.10', 5080, 1000);
  const creates = k.creates;
  r.fresh = true;
  assert.equal(r.outbound('10.77.0.11', 5060, '198.51.100.10', 5080, 1100)?.publicPort, 5060);
  assert.equal(k.creates, creates);
  // inbound: the same entry, read from the kernel too
  const gets = k.gets;
  assert.equal(r.inbound('198.51.100.10', 5080, '10.77.0.11', 5060, 1100)?.publicPort, 5060);
  assert.equal(k.gets, gets + 1);
});
