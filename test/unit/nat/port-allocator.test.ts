import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PortAllocator } from '../../../src/nat/port-allocator';

test('keeps the private port when free; the same endpoint keeps its port; clashes get another even port', () => {
  const shared = PortAllocator.createShared();
  const w1 = new PortAllocator(shared, 1, 10000, 10099, 60000);
  const w2 = new PortAllocator(shared, 2, 10000, 10099, 60000);
  assert.equal(w1.allocate('10.0.0.1', 10010, 0), 10010);
  assert.equal(w1.allocate('10.0.0.1', 10010, 1), 10010);
  const other = w2.allocate('10.0.0.2', 10010, 0)!; // another phone, same private port, other worker
  assert.notEqual(other, 10010);
  assert.equal(other % 2, 0);
  assert.equal(w1.allocate('10.0.0.3', 10011, 0)! % 2, 0, 'odd private port: an even public pair');
  assert.equal(w1.allocate('10.0.0.4', 80, 0)! >= 10000, true, 'ports outside the range are mapped into it');
});

test('exhaustion returns undefined; sweep and releaseAll return pairs', () => {
  const shared = PortAllocator.createShared();
  const a = new PortAllocator(shared, 1, 20000, 20009, 1000); // 5 pairs
  const got = [0, 1, 2, 3, 4].map((i) => a.allocate(`10.0.0.${i}`, 30000, 0));
  assert.equal(new Set(got).size, 5);
  assert.equal(a.allocate('10.0.0.9', 30000, 0), undefined);
  assert.equal(a.sweep(500), 0);
  assert.equal(a.sweep(2000), 5);
  assert.ok(a.allocate('10.0.0.9', 30000, 2000) !== undefined);
  a.releaseAll();
  assert.equal(a.active, 0);
});

test('an exhausted range is answered without a walk of its pairs; the count of claimed pairs follows claims, releases and adoptions across workers', () => {
  const shared = PortAllocator.createShared();
  const w1 = new PortAllocator(shared, 1, 10000, 59999, 60000); // 25000 pairs
  const w2 = new PortAllocator(shared, 2, 10000, 59999, 60000);
  for (let i = 0; i < 25000; i++) assert.notEqual((i & 1 ? w2 : w1).allocate(`10.0.${i >> 8}.${i & 255}`, 5000, 0), undefined);
  assert.equal(w1.claimedPairs, 25000);
  const cas = Atomics.compareExchange;
  let calls = 0;
  (Atomics as { compareExchange: typeof cas }).compareExchange = ((...a: Parameters<typeof cas>) => { calls++; return cas(...a); }) as typeof cas;
  try {
    assert.equal(w1.allocate('10.1.0.1', 5000, 0), undefined);
    assert.equal(w2.allocate('10.1.0.2', 20000, 0), undefined, 'its own port taken too');
  } finally {
    (Atomics as { compareExchange: typeof cas }).compareExchange = cas;
  }
  assert.ok(calls <= 2, `at most the own port is tried: ${calls} compare-exchanges (the old scan made 25000 per call)`);
  w2.release('10.0.0.1', 5000); // i = 1: w2's
  assert.equal(w1.claimedPairs, 24999);
  assert.notEqual(w1.allocate('10.1.0.1', 5000, 0), undefined, 'the pair another worker gave back is found');
  assert.equal(w2.claimedPairs, 25000);
  w1.releaseAll();
  w2.releaseAll();
  assert.equal(w1.claimedPairs, 0);
  const w3 = new PortAllocator(shared, 3, 10000, 59999, 60000);
  assert.equal(w3.adopt('10.0.0.1', 5000, 20000, 0), true);
  assert.equal(w3.adopt('10.0.0.2', 5000, 8000, 0), true, 'a pair outside the range (an older configuration) is adopted, not counted');
  assert.equal(w3.claimedPairs, 1);
  w3.releaseAll();
  assert.equal(w3.claimedPairs, 0);
});

test('a sweep with a budget looks at that many leases and goes on from there next time', () => {
  const a = new PortAllocator(PortAllocator.createShared(), 1, 10000, 10999, 1000);
  for (let i = 0; i < 10; i++) a.allocate('10.77.0.11', 20000 + 2 * i, 0);
  assert.equal(a.sweep(2000, 4), 4);
  assert.equal(a.active, 6);
  assert.equal(a.sweep(2000, 4), 4);
  assert.equal(a.sweep(2000, 4), 2, 'the rest; the round ends');
  assert.equal(a.active, 0);
});

test('holder: any worker reads which private endpoint (IPv4 or IPv6) a public pair maps to; none for a free pair', () => {
  const shared = PortAllocator.createShared();
  const w1 = new PortAllocator(shared, 1, 10000, 10099, 1000);
  const w2 = new PortAllocator(shared, 2, 10000, 10099, 1000);
  const pub = w1.allocate('192.168.1.20', 40000, 0)!;
  assert.deepEqual(w2.holder(pub), { ip: '192.168.1.20', port: 40000 }, 'another worker sees it');
  assert.deepEqual(w2.holder(pub + 1), { ip: '192.168.1.20', port: 40000 }, 'by its RTCP port too');
  const v6 = w2.allocate('fd00:0:0::20', 40000, 0)!;
  assert.deepEqual(w1.holder(v6), { ip: 'fd00::20', port: 40000 }, 'an IPv6 holder, in RFC 5952 text');
  const odd = w1.allocate('not-an-address', 40002, 0)!;
  assert.equal(typeof odd, 'number');
  assert.equal(w2.holder(odd), undefined, 'a holder that is no address is not named');
  w1.release('not-an-address', 40002);
  assert.equal(w1.holder(10098), undefined, 'a free pair');
  assert.equal(w1.holder(70000), undefined, 'outside the port space');
  w1.release('192.168.1.20', 40000);
  assert.equal(w2.holder(pub), undefined, 'released');
  const again = w2.allocate('10.0.0.255', 10010, 5)!;
  assert.equal(w1.sweep(5000), 0, 'one worker\'s sweep leaves the other\'s pair');
  assert.deepEqual(w1.holder(again), { ip: '10.0.0.255', port: 10010 });
  w2.sweep(5000);
  assert.equal(w1.holder(again), undefined, 'swept with its lease');
});

test('a budgeted sweep over live and unused leases frees every unused one and no live one (removal moves the last lease into the hole)', () => {
  const a = new PortAllocator(PortAllocator.createShared(), 1, 10000, 10999, 1000);
  // even private ports: used at 1500 (live at 2000); odd-numbered ones at 0 (unused for 2000 ms)
  const ports = Array.from({ length: 25 }, (_, i) => 20000 + 2 * i);
  const pubs = ports.map((p, i) => a.allocate('10.77.0.11', p, i % 2 ? 1500 : 0));
  let freed = 0;
  for (let round = 0; round < 20; round++) freed += a.sweep(2000, 3);
  assert.equal(freed, 13, 'the 13 unused ones');
  assert.equal(a.active, 12);
  ports.forEach((p, i) => {
    const pub = a.allocate('10.77.0.11', p, 2000);
    if (i % 2) assert.equal(pub, pubs[i], `live lease ${p} kept its pair`);
  });
  assert.equal(a.sweep(10000), 25, 'one whole sweep frees every one (each moved into a freed slot is looked at too)');
  assert.equal(a.active, 0);
  a.allocate('10.77.0.11', 20002, 0);
  a.release('10.77.0.11', 20002);
  a.releaseAll();
  assert.equal(a.active, 0);
  assert.equal(a.claimedPairs, 0);
});
