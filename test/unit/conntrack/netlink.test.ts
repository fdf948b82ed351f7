/**
 * The netlink encoder writes into one reused buffer; these tests hold it byte for byte to the
 * encoding it replaced (a per-attribute Buffer.alloc + Buffer.concat, copied below as the
 * reference), for the ctnetlink messages sip-alg sends, and check how batch replies are filed
 * (netlink(7): struct nlmsghdr, struct nlmsgerr). No socket: the kernel side is the lab's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Attr, decodeAttrs, encodeAttrs, fileReplies, NLA_F_NESTED, type NlReply, NlWriter, u16be, u32be, u8 } from '../../../src/conntrack/netlink';
import { anchorMessage, expectationMessage, type PinholeSpec, type Tuple } from '../../../src/conntrack/ctnetlink';

// ---- the reference: the encoder as it was (src/conntrack/netlink.ts before the reusable buffer) ----
const align4 = (n: number) => (n + 3) & ~3;
function refEncodeAttrs(attrs: Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const [type, value] of attrs) {
    const nested = Array.isArray(value);
    const body = nested ? refEncodeAttrs(value) : value;
    const hdr = Buffer.alloc(4);
    hdr.writeUInt16LE(4 + body.length, 0);
    hdr.writeUInt16LE(nested ? type | NLA_F_NESTED : type, 2);
    parts.push(hdr, body, Buffer.alloc(align4(body.length) - body.length));
  }
  return Buffer.concat(parts);
}
const refU8 = (v: number) => Buffer.from([v]);
const refU16be = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };
const refU32be = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return b; };
/** NetlinkSocket.request's framing as it was: nlmsghdr + nfgenmsg + encoded attributes. */
function refMessage(type: number, flags: number, seq: number, family: number, attrs: Attr[]): Buffer {
  const body = refEncodeAttrs(attrs);
  const msg = Buffer.alloc(16 + 4 + body.length);
  msg.writeUInt32LE(msg.length, 0);
  msg.writeUInt16LE(type, 4);
  msg.writeUInt16LE(flags | 0x1, 6);
  msg.writeUInt32LE(seq, 8);
  msg.writeUInt32LE(0, 12);
  msg[16] = family;
  msg[17] = 0;
  msg.writeUInt16BE(0, 18);
  body.copy(msg, 20);
  return msg;
}
// ctnetlink's trees as Ctnetlink builds them (include/uapi/linux/netfilter/nfnetlink_conntrack.h)
const ip4 = (a: string) => { const p = a.split('.'); return Buffer.from([Number(p[0]), Number(p[1]), Number(p[2]), Number(p[3])]); };
const tupleAttrs = (t: Tuple): Attr[] => [
  [1, [[1, ip4(t.src)], [2, ip4(t.dst)]]],
  [2, [[1, refU8(t.proto)], [2, refU16be(t.sport)], [3, refU16be(t.dport)]]],
];
const CT_NEW = (1 << 8) | 0, EXP_NEW = (2 << 8) | 0, NEW_FLAGS = 0x4 | 0x400 | 0x200, AF_INET = 2;
function refAnchor(t: Tuple, timeoutSec: number, seq: number): Buffer {
  const reply: Tuple = { src: t.dst, dst: t.src, sport: t.dport, dport: t.sport, proto: t.proto };
  return refMessage(CT_NEW, NEW_FLAGS, seq, AF_INET, [[1, tupleAttrs(t)], [2, tupleAttrs(reply)], [7, refU32be(timeoutSec)], [5, [[1, Buffer.from('sip\0')]]]]);
}
function refExpectation(anchor: Tuple, e: PinholeSpec, seq: number): Buffer {
  const tuple: Tuple = { src: e.remoteIp ?? '0.0.0.0', dst: e.publicIp, sport: 0, dport: e.publicPort, proto: 17 };
  const mask: Tuple = { src: e.remoteIp ? '255.255.255.255' : '0.0.0.0', dst: '255.255.255.255', sport: 0, dport: 0xffff, proto: 17 };
  const nat: Tuple = { src: e.privateIp, dst: '0.0.0.0', sport: e.privatePort, dport: 0, proto: 17 };
  return refMessage(EXP_NEW, NEW_FLAGS, seq, AF_INET, [
    [1, tupleAttrs(anchor)], [2, tupleAttrs(tuple)], [3, tupleAttrs(mask)], [4, refU32be(e.timeoutSec)], [9, refU32be(e.cls)],
    [10, [[1, refU32be(1)], [2, tupleAttrs(nat)]]], [11, Buffer.from('sip\0')],
  ]);
}
function refSnat(t: Tuple, publicIp: string, timeoutSec: number, port: number | undefined, seq: number): Buffer {
  const nat: Attr[] = [[1, ip4(publicIp)], [2, ip4(publicIp)]];
  if (port !== undefined) nat.push([3, [[1, refU16be(port)], [2, refU16be(port)]]]);
  const reply: Tuple = { src: t.dst, dst: t.src, sport: t.dport, dport: t.sport, proto: t.proto };
  return refMessage(CT_NEW, NEW_FLAGS, seq, AF_INET, [[1, tupleAttrs(t)], [2, tupleAttrs(reply)], [7, refU32be(timeoutSec)], [6, nat]]);
}

const anchors: Tuple[] = [
  { src: '127.0.0.1', dst: '127.1.0.1', sport: 1024, dport: 1024, proto: 17 },
  { src: '127.0.0.1', dst: '127.1.255.1', sport: 65023, dport: 1025, proto: 17 },
];
const pinholes: PinholeSpec[] = [
  { remoteIp: undefined, publicIp: '203.0.113.1', publicPort: 10000, privateIp: '10.77.0.11', privatePort: 6000, cls: 1, timeoutSec: 180 },
  { remoteIp: '198.51.100.7', publicIp: '192.0.2.254', publicPort: 65535, privateIp: '172.16.100.200', privatePort: 1, cls: 0, timeoutSec: 0xffffffff },
];

test('leaf helpers give the bytes they gave before (network order, from the shared pool)', () => {
  for (const v of [0, 1, 17, 255]) assert.deepEqual(u8(v), refU8(v));
  for (const v of [0, 1, 5060, 0xffff]) assert.deepEqual(u16be(v), refU16be(v));
  for (const v of [0, 180, 3603, 0x7fffffff, 0xffffffff, -1]) assert.deepEqual(u32be(v), refU32be(v));
});

test('encodeAttrs is byte for byte the old encoding: odd lengths padded with zeros, nests covering their padded children', () => {
  const trees: Attr[][] = [
    [],
    [[1, Buffer.alloc(0)]],
    [[1, Buffer.from([0xaa])], [2, Buffer.from([1, 2])], [3, Buffer.from([1, 2, 3])], [4, Buffer.from([1, 2, 3, 4])], [5, Buffer.from('hello')]],
    [[7, []], [8, [[1, []]]]],
    [[1, [[2, [[3, [[4, Buffer.from([9])]]]]]]], [0x3fff, Buffer.alloc(300, 0x5a)]],
    tupleAttrs(anchors[0]!),
    [[1, tupleAttrs(anchors[1]!)], [2, tupleAttrs(anchors[0]!)], [7, u32be(3603)], [5, [[1, Buffer.from('sip\0')]]]],
  ];
  for (const t of trees) assert.deepEqual(encodeAttrs(t), refEncodeAttrs(t), JSON.stringify(t));
  const big: Attr[] = Array.from({ length: 400 }, (_x, i) => [i & 0xff, Buffer.alloc(i % 7, i)]);
  assert.deepEqual(encodeAttrs(big), refEncodeAttrs(big), 'a tree larger than the scratch buffer');
  const a = encodeAttrs(trees[2]!);
  encodeAttrs(trees[4]!);
  assert.deepEqual(a, refEncodeAttrs(trees[2]!), 'a result is a copy: the next encoding does not overwrite it');
  const m = decodeAttrs(encodeAttrs(trees[2]!));
  assert.deepEqual([...m.keys()], [1, 2, 3, 4, 5]);
  assert.equal(m.get(5)!.toString(), 'hello');
});

test('whole messages from an Attr tree: nlmsghdr + nfgenmsg framing as NetlinkSocket.request built it', () => {
  const w = new NlWriter(64);
  const t = { src: '10.77.0.12', dst: '198.51.100.7', sport: 5060, dport: 5080, proto: 17 };
  const cases: [number, number, number, Attr[]][] = [
    [(1 << 8) | 1, 0x4, 1, [[1, tupleAttrs(t)]]], // get
    [(1 << 8) | 1, 0x300, 0x7fffffff, []], // dump
    [(1 << 8) | 0, 0x4, 42, [[1, tupleAttrs(t)], [7, u32be(300)]]], // setTimeout
    [(1 << 8) | 2, 0x4, 0, [[1, tupleAttrs(t)]]], // delete
  ];
  for (const [type, flags, seq, attrs] of cases) {
    w.reset().message(type, flags, seq, AF_INET, attrs);
    assert.deepEqual(w.copy(), refMessage(type, flags, seq, AF_INET, attrs));
  }
  for (const port of [undefined, 40000]) {
    const seq = 7;
    w.reset().message(CT_NEW, NEW_FLAGS, seq, AF_INET, [[1, tupleAttrs(t)], [2, tupleAttrs({ src: t.dst, dst: t.src, sport: t.dport, dport: t.sport, proto: 17 })], [7, u32be(60)], [6, [[1, ip4('203.0.113.1')], [2, ip4('203.0.113.1')], ...(port === undefined ? [] : [[3, [[1, u16be(port)], [2, u16be(port)]]] as Attr])]]]);
    assert.deepEqual(w.copy(), refSnat(t, '203.0.113.1', 60, port, seq), `createSnat port ${port}`);
  }
});

test('anchorMessage / expectationMessage write createAnchor / createExpectation byte for byte, without a tree', () => {
  const w = new NlWriter(16);
  for (const a of anchors) {
    for (const timeout of [3603, 0, 90000]) {
      const m = anchorMessage(a, timeout);
      w.reset().message(m.type, m.flags, 1234, m.family, m.attrs);
      assert.deepEqual(w.copy(), refAnchor(a, timeout, 1234), `anchor ${JSON.stringify(a)} ${timeout}`);
    }
    for (const e of pinholes) {
      const m = expectationMessage(a, e);
      w.reset().message(m.type, m.flags, 99, m.family, m.attrs);
      assert.deepEqual(w.copy(), refExpectation(a, e, 99), `expectation ${JSON.stringify(e)}`);
    }
  }
});

test('a batch is the messages back to back, each with its own sequence number; a reused buffer leaves no stale bytes', () => {
  const w = new NlWriter(32);
  // dirty the buffer first: padding must still come out as zeros
  w.reset().message(0xffff, 0xffff, 0xffffffff, 0xff, [[0xff, Buffer.alloc(2000, 0xff)]]);
  const a = anchors[0]!;
  const msgs = [anchorMessage(a, 3603), expectationMessage(a, pinholes[0]!), expectationMessage(a, { ...pinholes[0]!, publicPort: 10001, privatePort: 6001 })];
  w.reset();
  msgs.forEach((m, i) => w.message(m.type, m.flags, 1000 + i, m.family, m.attrs));
  const want = Buffer.concat([refAnchor(a, 3603, 1000), refExpectation(a, pinholes[0]!, 1001), refExpectation(a, { ...pinholes[0]!, publicPort: 10001, privatePort: 6001 }, 1002)]);
  assert.deepEqual(w.copy(), want);
  assert.equal(w.len % 4, 0, 'every message is NLMSG_ALIGNed');
  assert.deepEqual(w.view(), want, 'view() is the same bytes, uncopied');
});

/** An nlmsgerr reply (netlink(7)): nlmsghdr, int error, then the request's nlmsghdr. */
function nlmsgerr(seq: number, error: number): Buffer {
  const b = Buffer.alloc(16 + 4 + 16);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(2, 4); // NLMSG_ERROR
  b.writeUInt16LE(error ? 0 : 0x100, 6); // NLM_F_CAPPED on a plain ACK
  b.writeUInt32LE(seq, 8);
  b.writeInt32LE(error, 16);
  b.writeUInt32LE(16, 20);
  b.writeUInt32LE(seq, 28);
  return b;
}
function data(seq: number, payload: number[]): Buffer {
  const b = Buffer.alloc(align4(16 + payload.length));
  b.writeUInt32LE(16 + payload.length, 0);
  b.writeUInt16LE((1 << 8) | 0, 4);
  b.writeUInt32LE(seq, 8);
  Buffer.from(payload).copy(b, 16);
  return b;
}
const replies = (n: number): NlReply[] => Array.from({ length: n }, () => ({ error: undefined, payloads: [], done: false }));

test('batch replies are filed by sequence number: ACKs, errors per message, data, foreign and repeated sequence numbers ignored', () => {
  const r = replies(3);
  assert.equal(fileReplies(nlmsgerr(100, 0), 100, r), 1);
  assert.equal(fileReplies(nlmsgerr(99, -17), 100, r), 0, 'an older request\'s late answer');
  assert.equal(fileReplies(nlmsgerr(103, -17), 100, r), 0, 'beyond the batch');
  assert.equal(fileReplies(Buffer.concat([data(101, [1, 2, 3, 4, 5]), nlmsgerr(101, 0), nlmsgerr(102, -16)]), 100, r), 2, 'several messages in one datagram');
  assert.equal(fileReplies(nlmsgerr(100, -2), 100, r), 0, 'a second answer to a finished message');
  assert.deepEqual(r.map((x) => [x.done, x.error?.errno]), [[true, undefined], [true, undefined], [true, 16]]);
  assert.deepEqual(r[1]!.payloads.map((p) => [...p]), [[1, 2, 3, 4, 5]]);
  const w = replies(3);
  assert.equal(fileReplies(Buffer.concat([nlmsgerr(0x7fffffff, -17), nlmsgerr(0, 0), nlmsgerr(1, -2)]), 0x7ffffffe, w), 2, 'sequence numbers wrap at 31 bits');
  assert.deepEqual(w.map((x) => [x.done, x.error?.errno]), [[false, undefined], [true, 17], [true, undefined]]);
  assert.equal(fileReplies(Buffer.from([1, 2, 3]), 0, replies(1)), 0, 'a runt is ignored');
  const bad = nlmsgerr(5, -17);
  bad.writeUInt32LE(9999, 0);
  assert.equal(fileReplies(bad, 5, replies(1)), 0, 'a length beyond the datagram stops the walk');
});

test('NlWriter.ip6: 16 network-order bytes in a 20-byte attribute (nla_len 20, no padding); bad text throws EINVAL and writes nothing', () => {
  const w = new NlWriter(8); // grows
  w.u8(1, 17);
  w.ip6(3, 'FD00:77::0011');
  w.ip6(4, '::ffff:192.0.2.1');
  assert.equal(w.copy().toString('hex'), [
    '05000100', '11000000', // u8 attribute, padded
    '14000300', 'fd000077000000000000000000000011', // CTA_IP_V6_SRC
    '14000400', '00000000000000000000ffffc0000201', // CTA_IP_V6_DST, dotted-quad tail
  ].join(''));
  const len = w.len;
  for (const bad of ['10.0.0.1', 'fd00::1::2', 'fe80::1%eth0', '']) {
    assert.throws(() => w.ip6(3, bad), (e: unknown) => e instanceof Error && 'errno' in e && e.errno === 22, bad);
    assert.equal(w.len, len, `${bad}: nothing written`);
  }
});
