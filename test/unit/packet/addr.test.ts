import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv4 } from 'node:net';
import { canonicalIp, canonicalIpv6, endpointKey, formatIpv6, ipFamily, ipv4Value, isIpv4Text, parseIpv6, sameAddress, unbracket, writeIpv4, writeIpv6 } from '../../../src/packet/addr';

test('RFC 5952 §2.1: every way of writing 2001:db8::1:0:0:1 has the one canonical text', () => {
  const forms = [
    '2001:db8:0:0:1:0:0:1', '2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', '2001:db8::0:1:0:0:1',
    '2001:0db8::1:0:0:1', '2001:db8:0:0:1::1', '2001:db8:0000:0:1::1', '2001:DB8:0:0:1::1',
  ];
  for (const f of forms) assert.equal(canonicalIpv6(f), '2001:db8::1:0:0:1', f);
});

test('RFC 5952 §4: leading zeros, longest run, no single-group "::", first of equal runs, lower case', () => {
  const cases: [string, string][] = [
    ['2001:0db8::0001', '2001:db8::1'], // §4.1
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'], // §4.2.1
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // §4.2.3 longest
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.2.3 first of equals
    ['2001:DB8::ABCD:EF', '2001:db8::abcd:ef'], // §4.3
    ['FD00:77::0011', 'fd00:77::11'],
    ['0:0:0:0:0:0:0:0', '::'], ['::1', '::1'], ['1::', '1::'], ['1:0:0:0:0:0:0:0', '1::'],
    ['ffff:FFFF:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'], ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    // RFC 4291 §2.2 form 3: the low 32 bits as a dotted quad; written back in hex (see addr.ts)
    ['::ffff:192.0.2.1', '::ffff:c000:201'], ['::192.0.2.1', '::c000:201'], ['2001:db8:1:2:3:4:192.0.2.33', '2001:db8:1:2:3:4:c000:221'],
  ];
  for (const [t, want] of cases) assert.equal(canonicalIpv6(t), want, t);
});

test('invalid text, zone identifiers and IPv4 are not IPv6 addresses; nothing is written then', () => {
  for (const bad of ['', ':', ':::1', '1::2::3', '1:2:3:4:5:6:7:8:9', '00001::1', 'fd00::g', '[fd00::1]', 'fe80::1%eth0', '10.0.0.1', '::ffff:256.0.0.1', 'example.com']) {
    assert.equal(canonicalIpv6(bad), undefined, bad);
    const out = Buffer.alloc(20, 0xaa);
    assert.equal(writeIpv6(bad, out, 2), false, bad);
    assert.deepEqual(out, Buffer.alloc(20, 0xaa), `${bad}: untouched`);
  }
  assert.equal(canonicalIp('10.0.0.1'), '10.0.0.1');
  assert.equal(canonicalIp('FD00::1'), 'fd00::1');
  assert.equal(canonicalIp('010.0.0.1'), undefined, 'node:net has no leading-zero IPv4 forms');
});

test('writeIpv6 writes 16 network-order bytes at an offset; parseIpv6 / formatIpv6 round-trip', () => {
  const out = Buffer.alloc(20, 0xee);
  assert.ok(writeIpv6('2001:db8::ff00:42:8329', out, 3));
  assert.equal(out.toString('hex'), 'eeeeee' + '20010db8000000000000ff0000428329' + 'ee');
  assert.equal(parseIpv6('::')!.toString('hex'), '0'.repeat(32));
  assert.equal(parseIpv6('fe80::1:2')!.toString('hex'), 'fe800000000000000000000000010002');
  assert.equal(formatIpv6(out, 3), '2001:db8::ff00:42:8329');
});

test('random addresses: the canonical text is the WHATWG URL serialisation, and parses back to the same bytes', () => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) >>> 16;
  for (let n = 0; n < 2000; n++) {
    const b = Buffer.alloc(16);
    // many zero groups, so that runs of every length and position occur
    for (let g = 0; g < 8; g++) if (rnd() % 3 !== 0) b.writeUInt16BE(rnd() % 4 === 0 ? rnd() % 16 : rnd() & 0xffff, g * 2);
    const text = formatIpv6(b);
    assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname, `URL agrees on ${b.toString('hex')}`);
    assert.deepEqual(parseIpv6(text), b);
    // an uncompressed upper-case form with leading zeros has the same canonical text
    const long = Array.from({ length: 8 }, (_x, g) => b.readUInt16BE(g * 2).toString(16).padStart(4, '0').toUpperCase()).join(':');
    assert.equal(canonicalIpv6(long), text, long);
  }
});

test('sameAddress compares by value: bracketed, upper case, leading zeros, other compression', () => {
  assert.ok(sameAddress('[FD00:77::0011]', 'fd00:77::11'));
  assert.ok(sameAddress('fd00:77:0:0:0:0:0:11', '[fd00:77::11]'));
  assert.ok(sameAddress('::ffff:192.0.2.1', '::ffff:c000:201'));
  assert.ok(!sameAddress('fd00:77::11', 'fd00:77::12'));
  assert.ok(!sameAddress('fd00:77::11', 'fd00:77::11:0'));
  assert.ok(sameAddress('10.77.0.12', '10.77.0.12'));
  assert.ok(!sameAddress('10.77.0.12', '10.77.0.13'));
  assert.ok(!sameAddress('192.0.2.1', '::ffff:192.0.2.1'), 'IPv4 and its IPv4-mapped form are different families');
  assert.ok(!sameAddress('[10.77.0.12]', '10.77.0.12'), 'brackets hold IPv6 only (RFC 3261 §25.1)');
  assert.ok(sameAddress('pbx.example', 'pbx.example'), 'equal text');
  assert.ok(!sameAddress('fe80::1%eth0', 'fe80::1'), 'a zone is compared as text only');
  assert.ok(!sameAddress('[fd00::1', 'fd00::1'));
});

test('unbracket and ipFamily', () => {
  assert.equal(unbracket('[2001:db8::1]'), '2001:db8::1');
  assert.equal(unbracket('2001:db8::1'), '2001:db8::1');
  assert.equal(unbracket('[]'), '');
  assert.equal(unbracket('['), '[');
  assert.equal(ipFamily('10.0.0.1'), 4);
  assert.equal(ipFamily('[2001:db8::1]'), 6);
  assert.equal(ipFamily('2001:DB8::1'), 6);
  assert.equal(ipFamily('pbx.example'), undefined);
});

test('isIpv4Text is node:net isIPv4 without the regular expression; writeIpv4 writes the 4 bytes of what it admits', () => {
  const fixed = ['0.0.0.0', '255.255.255.255', '10.77.0.11', '256.1.1.1', '01.2.3.4', '1.2.3', '1.2.3.4.', '.1.2.3.4', '1..2.3', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.04', '1.2.3.4.5', '１.2.3.4', '1.2.3.255', '1.2.3.0255', '', '::1', '00.1.1.1', '0.0.0.00', '199.199.199.199', '249.250.251.252'];
  for (const t of fixed) assert.equal(isIpv4Text(t), isIPv4(t), JSON.stringify(t));
  // a million random strings from the characters that matter, lengths around a dotted quad's
  const alphabet = '0123456789.....2555a :';
  let seed = 1;
  const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
  let valid = 0;
  for (let k = 0; k < 1_000_000; k++) {
    let t = '';
    for (let i = 0, n = 5 + rnd(13); i < n; i++) t += alphabet[rnd(alphabet.length)];
    const want = isIPv4(t);
    if (isIpv4Text(t) !== want) assert.fail(`isIpv4Text(${JSON.stringify(t)}) !== ${want}`);
    if (want) {
      valid++;
      const b = new Uint8Array(6);
      assert.ok(writeIpv4(t, b, 1));
      assert.deepEqual([...b.subarray(1, 5)], t.split('.').map(Number));
      if (ipv4Value(t) !== new DataView(b.buffer).getUint32(1)) assert.fail(`ipv4Value(${JSON.stringify(t)})`);
    } else if (ipv4Value(t) !== -1) assert.fail(`ipv4Value(${JSON.stringify(t)}) !== -1`);
  }
  assert.ok(valid > 1000, `the random strings hold valid addresses too (${valid})`);
  const b = new Uint8Array(4);
  assert.equal(writeIpv4('1.2.3.256', b), false);
  assert.deepEqual([...b], [0, 0, 0, 0], 'nothing written');
});

test('endpointKey: an IPv4 endpoint is one number (address and port), distinct for every address and port; other endpoints are their text', () => {
  assert.equal(endpointKey('10.77.0.12', 10000), (((10 * 256 + 77) * 256 + 0) * 256 + 12) * 65536 + 10000);
  assert.equal(endpointKey('255.255.255.255', 65535), 2 ** 48 - 1, 'within a double\'s exact integers');
  assert.equal(endpointKey('0.0.0.0', 0), 0);
  const keys = new Set<string | number>();
  for (const ip of ['10.77.0.12', '10.77.0.13', '10.77.1.12', '11.77.0.12', '2001:db8::1']) for (const port of [0, 1, 10000, 10001, 65535]) keys.add(endpointKey(ip, port));
  assert.equal(keys.size, 25);
  assert.equal(endpointKey('2001:db8::1', 6000), '2001:db8::1:6000');
  assert.equal(endpointKey('010.1.1.1', 6000), '010.1.1.1:6000', 'not a dotted quad as isIpv4Text reads it: text');
  assert.equal(endpointKey('10.77.0.12', 6000), endpointKey('10.77.0.12', 6000), 'the same key twice: a map finds it');
});
