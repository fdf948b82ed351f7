/**
 * ctnetlink with IPv6 tuples, byte for byte (include/uapi/linux/netfilter/nfnetlink_conntrack.h:
 * enum ctattr_ip CTA_IP_V6_SRC = 3 / CTA_IP_V6_DST = 4, 16 bytes each; enum ctattr_nat
 * CTA_NAT_V6_MINIP = 4 / CTA_NAT_V6_MAXIP = 5; nfgenmsg family AF_INET6 = 10, with which
 * nf_conntrack_netlink.c parses every tuple of the message). The expected bytes are written here
 * from the netlink layout (netlink(7): nlmsghdr in host order, nfgenmsg, nlattr {len, type} padded
 * to 4, NLA_F_NESTED on nests), addresses by the test helper's own parser. No socket: a recording
 * one stands in for the kernel (the deleteSoon test builds a Ctnetlink, whose real socket sends nothing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetlinkError } from '../../../src/errors';
import { type Attr, type AttrWriter, type NetlinkSocket, type NlMessage, NlWriter } from '../../../src/conntrack/netlink';
import {
  conntrackStatus, AF_INET, AF_INET6, AF_UNSPEC, addressFamily, anchorMessage, Ctnetlink, deleteMessage, dumpMessage, expectationDeleteMessage, expectationMessage, getMessage,
  parseConntrack, parseExpectation, prefixMask, type PinholeSpec, setTimeoutMessage, snatMessage, tcpLiberalMessage, type Tuple, tupleFamily,
} from '../../../src/conntrack/ctnetlink';
import { ip6 } from '../../helpers/packet6';

// ---- the layout, over plain byte arrays ----
const pad4 = (b: number[]) => [...b, ...Array<number>((4 - (b.length % 4)) % 4).fill(0)];
/** struct nlattr {u16 nla_len, u16 nla_type} (host order, little-endian here) + payload, padded */
const nla = (type: number, payload: number[]) => pad4([(4 + payload.length) & 0xff, (4 + payload.length) >> 8, type & 0xff, type >> 8, ...payload]);
/** a nested attribute: nla_type | NLA_F_NESTED (0x8000), nla_len covering the (padded) children */
const nest = (type: number, ...children: number[][]) => {
  const body = children.flat();
  const t = type | 0x8000;
  return [(4 + body.length) & 0xff, (4 + body.length) >> 8, t & 0xff, t >> 8, ...body];
};
const be16 = (v: number) => [v >> 8, v & 0xff];
const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const v6 = (a: string) => [...ip6(a)];
const v4 = (a: string) => a.split('.').map(Number);
/** nlmsghdr {u32 len, u16 type, u16 flags (| NLM_F_REQUEST), u32 seq, u32 pid 0} + nfgenmsg {family, NFNETLINK_V0, be16 res_id 0} + attributes */
function nlmsg(type: number, flags: number, seq: number, family: number, attrs: number[][]): Buffer {
  const body = attrs.flat();
  const len = 20 + body.length;
  const h = Buffer.alloc(20);
  h.writeUInt32LE(len, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags | 1, 6);
  h.writeUInt32LE(seq, 8);
  h[16] = family;
  return Buffer.concat([h, Buffer.from(body)]);
}
/** CTA_TUPLE_IP (CTA_IP_V6_SRC, CTA_IP_V6_DST) + CTA_TUPLE_PROTO (CTA_PROTO_NUM u8, CTA_PROTO_SRC_PORT be16, CTA_PROTO_DST_PORT be16) */
const tuple6 = (src: string, dst: string, sport: number, dport: number, proto = 17) => [
  nest(1, nla(3, v6(src)), nla(4, v6(dst))),
  nest(2, nla(1, [proto]), nla(2, be16(sport)), nla(3, be16(dport))),
];
const tuple4 = (src: string, dst: string, sport: number, dport: number, proto = 17) => [
  nest(1, nla(1, v4(src)), nla(2, v4(dst))),
  nest(2, nla(1, [proto]), nla(2, be16(sport)), nla(3, be16(dport))),
];
const CT_NEW = 0x100, CT_GET = 0x101, CT_DELETE = 0x102, EXP_NEW = 0x200, EXP_GET = 0x201, EXP_DELETE = 0x202;
const ACK = 0x4, NEW_FLAGS = 0x4 | 0x400 | 0x200, DUMP = 0x300;
const ALL6 = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';

const w = new NlWriter(64);
/** the bytes NetlinkSocket would send for `m` with sequence number `seq` */
function encode(m: NlMessage, seq: number): Buffer {
  w.reset().message(m.type, m.flags, seq, m.family, m.attrs);
  return w.copy();
}

const flow: Tuple = { src: 'fd00:77::11', dst: '2001:db8::10', sport: 5060, dport: 5070, proto: 17 };

test('IPCTNL_MSG_CT_GET of an IPv6 tuple, every byte written out', () => {
  const want = Buffer.from([
    '60000000', '0101', '0500', '2a000000', '00000000', // nlmsghdr: len 96, CT_GET, REQUEST|ACK, seq 42, pid 0
    '0a000000', // nfgenmsg: AF_INET6, NFNETLINK_V0, res_id 0
    '4c000180', // CTA_TUPLE_ORIG | NLA_F_NESTED, 76
    '2c000180', //   CTA_TUPLE_IP | NLA_F_NESTED, 44
    '14000300', 'fd000077000000000000000000000011', // CTA_IP_V6_SRC, 20: fd00:77::11
    '14000400', '20010db8000000000000000000000010', // CTA_IP_V6_DST, 20: 2001:db8::10
    '1c000280', //   CTA_TUPLE_PROTO | NLA_F_NESTED, 28
    '05000100', '11000000', // CTA_PROTO_NUM 17, padded
    '06000200', '13c40000', // CTA_PROTO_SRC_PORT 5060, padded
    '06000300', '13ce0000', // CTA_PROTO_DST_PORT 5070, padded
  ].join(''), 'hex');
  assert.deepEqual(encode(getMessage(flow), 42), want);
  // any textual form of the same addresses gives the same bytes
  assert.deepEqual(encode(getMessage({ ...flow, src: 'FD00:0077:0:0:0:0:0:0011', dst: '2001:DB8:0::10' }), 42), want);
});

test('IPv6 get / setTimeout / delete / TCP liberal: AF_INET6 and CTA_IP_V6_* tuples', () => {
  const t = tuple6(flow.src, flow.dst, 5060, 5070);
  assert.deepEqual(encode(getMessage(flow), 1), nlmsg(CT_GET, ACK, 1, 10, [nest(1, ...t)]));
  assert.deepEqual(encode(setTimeoutMessage(flow, 300), 2), nlmsg(CT_NEW, ACK, 2, 10, [nest(1, ...t), nla(7, be32(300))]));
  assert.deepEqual(encode(deleteMessage(flow), 3), nlmsg(CT_DELETE, ACK, 3, 10, [nest(1, ...t)]));
  const tcp = { ...flow, proto: 6 };
  const flags = [0x08, 0x08]; // struct nf_ct_tcp_flags {IP_CT_TCP_FLAG_BE_LIBERAL, mask}
  assert.deepEqual(encode(tcpLiberalMessage(tcp), 4), nlmsg(CT_NEW, ACK, 4, 10, [nest(1, ...tuple6(flow.src, flow.dst, 5060, 5070, 6)), nest(4, nest(1, nla(4, flags), nla(5, flags)))]));
});

test('IPv4 get / setTimeout / delete / createSnat are the bytes they were (AF_INET, CTA_IP_V4_*, CTA_NAT_V4_*)', () => {
  const t4: Tuple = { src: '10.77.0.12', dst: '198.51.100.7', sport: 5060, dport: 5080, proto: 17 };
  const t = tuple4(t4.src, t4.dst, 5060, 5080);
  assert.deepEqual(encode(getMessage(t4), 1), nlmsg(CT_GET, ACK, 1, 2, [nest(1, ...t)]));
  assert.deepEqual(encode(setTimeoutMessage(t4, 60), 1), nlmsg(CT_NEW, ACK, 1, 2, [nest(1, ...t), nla(7, be32(60))]));
  assert.deepEqual(encode(deleteMessage(t4), 1), nlmsg(CT_DELETE, ACK, 1, 2, [nest(1, ...t)]));
  assert.deepEqual(encode(snatMessage(t4, '203.0.113.1', 60, 40000), 1), nlmsg(CT_NEW, NEW_FLAGS, 1, 2, [
    nest(1, ...t), nest(2, ...tuple4(t4.dst, t4.src, 5080, 5060)), nla(7, be32(60)),
    nest(6, nla(1, v4('203.0.113.1')), nla(2, v4('203.0.113.1')), nest(3, nla(1, be16(40000)), nla(2, be16(40000)))),
  ]));
  // a dialog's media flow with its anchor's mark (CTA_MARK = 8, after the NAT), no port: the kernel picks
  assert.deepEqual(encode(snatMessage(t4, '203.0.113.1', 60, undefined, 0x1234), 1), nlmsg(CT_NEW, NEW_FLAGS, 1, 2, [
    nest(1, ...t), nest(2, ...tuple4(t4.dst, t4.src, 5080, 5060)), nla(7, be32(60)),
    nest(6, nla(1, v4('203.0.113.1')), nla(2, v4('203.0.113.1'))), nla(8, be32(0x1234)),
  ]));
});

test('createSnat of an IPv6 flow: CTA_NAT_V6_MINIP/MAXIP (16 bytes), the port range as for IPv4', () => {
  for (const port of [undefined, 40000]) {
    const nat = [nla(4, v6('2001:db8::1')), nla(5, v6('2001:db8::1')), ...(port === undefined ? [] : [nest(3, nla(1, be16(port)), nla(2, be16(port)))])];
    assert.deepEqual(encode(snatMessage(flow, '2001:DB8:0::1', 120, port), 9), nlmsg(CT_NEW, NEW_FLAGS, 9, 10, [
      nest(1, ...tuple6(flow.src, flow.dst, 5060, 5070)), nest(2, ...tuple6(flow.dst, flow.src, 5070, 5060)), nla(7, be32(120)), nest(6, ...nat),
    ]), `port ${port}`);
  }
  assert.throws(() => snatMessage(flow, '203.0.113.1', 60), (e: unknown) => e instanceof NetlinkError && e.errno === 22, 'IPv4 NAT address for an IPv6 flow');
  assert.throws(() => snatMessage({ ...flow, src: '10.0.0.1', dst: '10.0.0.2' }, '2001:db8::1', 60), (e: unknown) => e instanceof NetlinkError && e.errno === 22, 'and the other way round');
});

const anchor6: Tuple = { src: '::1', dst: 'fd00:ffff::1', sport: 1024, dport: 1025, proto: 17 };
const pinholes6: PinholeSpec[] = [
  { remoteIp: undefined, publicIp: '2001:db8::1', publicPort: 10000, privateIp: 'fd00:77::11', privatePort: 6000, cls: 1, timeoutSec: 180 },
  { remoteIp: '2001:DB8:FFFF::7', publicIp: '2001:db8::1', publicPort: 65535, privateIp: 'fd00:77::0050', privatePort: 1, cls: 0, timeoutSec: 0xffffffff },
];

test('IPv6 anchor (NlWriter path): AF_INET6, both tuples with CTA_IP_V6_*, timeout, helper "sip"', () => {
  for (const timeout of [3603, 0]) {
    assert.deepEqual(encode(anchorMessage(anchor6, timeout), 77), nlmsg(CT_NEW, NEW_FLAGS, 77, 10, [
      nest(1, ...tuple6('::1', 'fd00:ffff::1', 1024, 1025)),
      nest(2, ...tuple6('fd00:ffff::1', '::1', 1025, 1024)),
      nla(7, be32(timeout)),
      nest(5, nla(1, [0x73, 0x69, 0x70, 0])), // CTA_HELP { CTA_HELP_NAME "sip\0" }
    ]));
  }
});

test('IPv6 expectation: tuple from remote (any = ::), mask ffff:...:ffff or ::, NAT tuple to the private address, expectfn "sip"', () => {
  for (const e of pinholes6) {
    const want = nlmsg(EXP_NEW, NEW_FLAGS, 5, 10, [
      nest(1, ...tuple6('::1', 'fd00:ffff::1', 1024, 1025)), // CTA_EXPECT_MASTER
      nest(2, ...tuple6(e.remoteIp ?? '::', '2001:db8::1', 0, e.publicPort)), // CTA_EXPECT_TUPLE
      nest(3, ...tuple6(e.remoteIp ? ALL6 : '::', ALL6, 0, 0xffff)), // CTA_EXPECT_MASK
      nla(4, be32(e.timeoutSec)), // CTA_EXPECT_TIMEOUT
      nla(9, be32(e.cls)), // CTA_EXPECT_CLASS
      nest(10, nla(1, be32(1)), nest(2, ...tuple6(e.privateIp, '::', e.privatePort, 0))), // CTA_EXPECT_NAT {DIR reply, TUPLE}
      nla(11, [0x73, 0x69, 0x70, 0]), // CTA_EXPECT_FN "sip"
    ]);
    assert.deepEqual(encode(expectationMessage(anchor6, e), 5), want, JSON.stringify(e));
  }
  // the all-ones mask really is 16 bytes of ff, "any" 16 zero bytes
  const bytes = encode(expectationMessage(anchor6, pinholes6[1]!), 5).toString('hex');
  assert.ok(bytes.includes('14000300' + 'ff'.repeat(16) + '14000400' + 'ff'.repeat(16)));
  assert.ok(encode(expectationMessage(anchor6, pinholes6[0]!), 5).toString('hex').includes('14000300' + '00'.repeat(16) + '14000400' + 'ff'.repeat(16)));
});

test('IPv6 expectation delete by CTA_EXPECT_TUPLE only', () => {
  for (const e of pinholes6) {
    assert.deepEqual(encode(expectationDeleteMessage(anchor6, e), 8), nlmsg(EXP_DELETE, ACK, 8, 10, [nest(2, ...tuple6(e.remoteIp ?? '::', e.publicIp, 0, e.publicPort))]));
  }
  const a4: Tuple = { src: '127.0.0.1', dst: '127.1.0.1', sport: 1024, dport: 1024, proto: 17 };
  const e4: PinholeSpec = { remoteIp: undefined, publicIp: '203.0.113.1', publicPort: 10000, privateIp: '10.77.0.11', privatePort: 6000, cls: 1, timeoutSec: 180 };
  assert.deepEqual(encode(expectationDeleteMessage(a4, e4), 8), nlmsg(EXP_DELETE, ACK, 8, 2, [nest(2, ...tuple4('0.0.0.0', '203.0.113.1', 0, 10000))]), 'IPv4 as before');
});

test('one family per message: mixed tuples and pinholes are refused with EINVAL before anything is written', () => {
  const einval = (e: unknown) => e instanceof NetlinkError && e.errno === 22;
  const a4: Tuple = { src: '127.0.0.1', dst: '127.1.0.1', sport: 1024, dport: 1024, proto: 17 };
  assert.throws(() => expectationMessage(a4, pinholes6[0]!), einval, 'IPv6 pinhole on an IPv4 anchor');
  assert.throws(() => expectationMessage(anchor6, { ...pinholes6[0]!, privateIp: '10.77.0.11' }), einval, 'IPv4 private address');
  assert.throws(() => expectationMessage(anchor6, { ...pinholes6[0]!, remoteIp: '198.51.100.7' }), einval, 'IPv4 remote');
  assert.throws(() => getMessage({ ...flow, dst: '198.51.100.7' }), einval);
  assert.throws(() => anchorMessage({ ...anchor6, src: '127.0.0.1' }, 60), einval);
  assert.equal(tupleFamily(flow), AF_INET6);
  assert.equal(tupleFamily(a4), AF_INET);
  assert.equal(addressFamily('::'), AF_INET6);
  // text that only looks like IPv6 is refused (never written as "::"): when an Attr tree is built,
  // or when the NlWriter writes it, either way before the socket sends anything
  assert.throws(() => encode(getMessage({ ...flow, src: 'fd00::zz' }), 1), einval);
  const badExp = expectationMessage(anchor6, { ...pinholes6[0]!, publicIp: '2001:db8::1::2' });
  assert.throws(() => encode(badExp, 1), einval);
});

test('parseConntrack / parseExpectation read IPv6 tuples (RFC 5952 text), and IPv4 ones as before', () => {
  const ct = Buffer.from([
    10, 0, 0, 0, // nfgenmsg AF_INET6
    ...nest(1, ...tuple6('fd00:77::11', '2001:db8::10', 5060, 5070)),
    ...nest(2, ...tuple6('2001:db8::10', '2001:db8::1', 5070, 40000)),
    ...nla(3, be32(0x18e)), ...nla(7, be32(117)), ...nla(8, be32(0x2a)), ...nla(12, be32(0xdeadbeef)),
  ]);
  assert.deepEqual(parseConntrack(ct), {
    orig: { src: 'fd00:77::11', dst: '2001:db8::10', sport: 5060, dport: 5070, proto: 17 },
    reply: { src: '2001:db8::10', dst: '2001:db8::1', sport: 5070, dport: 40000, proto: 17 },
    status: 0x18e, timeout: 117, id: 0xdeadbeef, packets: 0, mark: 0x2a,
  });
  const ct4 = Buffer.from([2, 0, 0, 0, ...nest(1, ...tuple4('10.77.0.12', '198.51.100.7', 5060, 5080)), ...nest(2, ...tuple4('198.51.100.7', '203.0.113.1', 5080, 5060))]);
  assert.deepEqual(parseConntrack(ct4)?.reply, { src: '198.51.100.7', dst: '203.0.113.1', sport: 5080, dport: 5060, proto: 17 });
  // a short CTA_IP_V6_SRC is not an address
  const short = Buffer.from([10, 0, 0, 0, ...nest(1, nest(1, nla(3, [0xfd, 0]), nla(4, v6('::1'))), nest(2, nla(1, [17]))), ...nest(2, ...tuple6('::1', '::1', 1, 1))]);
  assert.equal(parseConntrack(short), undefined);
  const exp = Buffer.from([
    10, 0, 0, 0,
    ...nest(1, ...tuple6('::1', 'fd00:ffff::1', 1024, 1025)),
    ...nest(2, ...tuple6('::', '2001:db8::1', 0, 10000)),
    ...nest(3, ...tuple6('::', ALL6, 0, 0xffff)),
    ...nla(4, be32(170)), ...nla(9, be32(1)),
    ...nest(10, nla(1, be32(1)), nest(2, ...tuple6('fd00:77::11', '::', 6000, 0))),
  ]);
  assert.deepEqual(parseExpectation(exp), {
    master: { src: '::1', dst: 'fd00:ffff::1', sport: 1024, dport: 1025, proto: 17 },
    tuple: { src: '::', dst: '2001:db8::1', sport: 0, dport: 10000, proto: 17 },
    timeout: 170,
    nat: { src: 'fd00:77::11', dst: '::', sport: 6000, dport: 0, proto: 17 },
    cls: 1,
  });
});

test('what anchorMessage / expectationMessage write parses back to their tuples (both families)', () => {
  const body = (m: NlMessage) => encode(m, 1).subarray(16); // after nlmsghdr: nfgenmsg + attributes, as a dump delivers it
  const a = parseConntrack(body(anchorMessage({ ...anchor6, dst: 'FD00:FFFF:0::1' }, 60)));
  assert.deepEqual([a?.orig, a?.reply, a?.timeout], [anchor6, { src: anchor6.dst, dst: anchor6.src, sport: 1025, dport: 1024, proto: 17 }, 60]);
  const e = parseExpectation(body(expectationMessage(anchor6, pinholes6[1]!)));
  assert.deepEqual(e, {
    master: anchor6, tuple: { src: '2001:db8:ffff::7', dst: '2001:db8::1', sport: 0, dport: 65535, proto: 17 },
    timeout: 0xffffffff, nat: { src: 'fd00:77::50', dst: '::', sport: 1, dport: 0, proto: 17 }, cls: 0,
  });
  const a4: Tuple = { src: '127.0.0.1', dst: '127.1.0.1', sport: 1024, dport: 1024, proto: 17 };
  assert.deepEqual(parseConntrack(body(anchorMessage(a4, 60)))?.orig, a4);
  // the anchor's mark (its dialog's tag, carried to a router pair's peer): CTA_MARK, 32 bits big-endian
  assert.equal(parseConntrack(body(anchorMessage(a4, 60)))?.mark, 0, 'no mark: no CTA_MARK');
  const marked = body(anchorMessage(a4, 60, 0xdeadbeef));
  assert.equal(parseConntrack(marked)?.mark, 0xdeadbeef);
  assert.ok(marked.includes(Buffer.from([8, 0, 8, 0, 0xde, 0xad, 0xbe, 0xef])), 'nla_len 8, type CTA_MARK (8), the value in network order');
});

/** A Ctnetlink whose socket records requests instead of sending them (its constructor would open a netlink socket). */
function recording(reply: Buffer[] = []): { ct: Ctnetlink; sent: Buffer[] } {
  const sent: Buffer[] = [];
  const rec = new NlWriter();
  const sock = {
    request(type: number, flags: number, family: number, attrs: readonly Attr[] | AttrWriter): Buffer[] {
      rec.reset().message(type, flags, 0, family, attrs);
      sent.push(rec.copy());
      return reply;
    },
    requestBatch(msgs: readonly NlMessage[]): { error: undefined; payloads: Buffer[]; done: boolean }[] {
      return msgs.map((m) => {
        rec.reset().message(m.type, m.flags | ACK, 0, m.family, m.attrs);
        sent.push(rec.copy());
        return { error: undefined, payloads: [], done: true };
      });
    },
  };
  const ct = Object.create(Ctnetlink.prototype) as Ctnetlink;
  Reflect.set(ct, 'sock', sock);
  return { ct, sent };
}

test('Ctnetlink methods send the IPv6 messages above; dumps ask for both families (AF_UNSPEC) or one', () => {
  const { ct, sent } = recording();
  ct.get(flow);
  ct.createSnat(flow, '2001:db8::1', 120, 40000);
  ct.setTimeout(flow, 300);
  ct.delete(flow);
  ct.createAnchorWithExpectations(anchor6, 3603, pinholes6);
  ct.createSnatBatch([{ t: flow, publicIp: '2001:db8::1', timeoutSec: 60, port: 40000 }, { t: { ...flow, sport: flow.sport + 1 }, publicIp: '2001:db8::1', timeoutSec: 60, port: 40001 }]);
  assert.deepEqual(ct.createSnatBatch([]), [], 'nothing to send');
  assert.deepEqual(sent, [
    encode(getMessage(flow), 0), encode(snatMessage(flow, '2001:db8::1', 120, 40000), 0), encode(setTimeoutMessage(flow, 300), 0), encode(deleteMessage(flow), 0),
    encode(anchorMessage(anchor6, 3603), 0), encode(expectationMessage(anchor6, pinholes6[0]!), 0), encode(expectationMessage(anchor6, pinholes6[1]!), 0),
    encode(snatMessage(flow, '2001:db8::1', 60, 40000), 0), encode(snatMessage({ ...flow, sport: flow.sport + 1 }, '2001:db8::1', 60, 40001), 0),
  ]);
  assert.ok(sent.slice(0, 4).every((b) => b[16] === AF_INET6));
  const ctDump = Buffer.from([10, 0, 0, 0, ...nest(1, ...tuple6('fd00:77::11', '2001:db8::10', 5060, 5070)), ...nest(2, ...tuple6('2001:db8::10', '2001:db8::1', 5070, 40000))]);
  const d = recording([ctDump]);
  assert.deepEqual(d.ct.dump().map((c) => c.orig.src), ['fd00:77::11']);
  d.ct.dump(4);
  d.ct.dump(6);
  d.ct.dumpExpectations();
  assert.deepEqual(d.sent, [
    nlmsg(CT_GET, DUMP, 0, AF_UNSPEC, []), nlmsg(CT_GET, DUMP, 0, AF_INET, []), nlmsg(CT_GET, DUMP, 0, AF_INET6, []), nlmsg(EXP_GET, DUMP, 0, AF_UNSPEC, []),
  ]);
  assert.deepEqual(encode(dumpMessage(true, AF_INET6), 3), nlmsg(EXP_GET, DUMP, 3, 10, []));
});

test('prefixMask: the source mask of a register pinhole\'s provider range, IPv4 and IPv6', () => {
  assert.equal(prefixMask(AF_INET, 24), '255.255.255.0');
  assert.equal(prefixMask(AF_INET, 29), '255.255.255.248');
  assert.equal(prefixMask(AF_INET, 0), '0.0.0.0');
  assert.equal(prefixMask(AF_INET, 32), '255.255.255.255');
  assert.equal(prefixMask(AF_INET6, 36), 'ffff:ffff:f000:0:0:0:0:0');
  assert.equal(prefixMask(AF_INET6, 128), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
});

test('conntrackStatus reads CTA_STATUS past the other attributes, without decoding them', () => {
  const attr = (type: number, body: Buffer) => {
    const b = Buffer.alloc(4 + ((body.length + 3) & ~3));
    b.writeUInt16LE(4 + body.length, 0);
    b.writeUInt16LE(type, 2);
    body.copy(b, 4);
    return b;
  };
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };
  const nfgen = Buffer.from([2, 0, 0, 0]);
  const msg = Buffer.concat([nfgen, attr(1 | 0x8000, Buffer.alloc(10, 7)), attr(7, u32(120)), attr(3, u32(0x18e))]);
  assert.equal(conntrackStatus(msg), 0x18e);
  assert.equal(conntrackStatus(Buffer.concat([nfgen, attr(7, u32(120))])), undefined);
  assert.equal(conntrackStatus(Buffer.concat([nfgen, Buffer.from([200, 0, 3, 0])])), undefined, 'a length past the end stops the scan');
});

test('deleteSoon outside a queue batch: held, then sent in one batch before the next synchronous request (the kernel sees call order); ENOENT is not a failure, other errors reach their caller', () => {
  const ct = new Ctnetlink();
  try {
    const sock = (ct as unknown as { sock: NetlinkSocket }).sock;
    const sent: string[] = [];
    // the socket's sends, recorded (each runs the socket's beforeSend first, as the real ones do)
    sock.requestBatch = (msgs: readonly NlMessage[]) => {
      sock.beforeSend?.();
      sent.push(`batch of ${msgs.length}`);
      return msgs.map((_m, i) => ({ error: new NetlinkError(i === 0 ? 2 : 1, 'delete'), payloads: [], done: true }));
    };
    sock.request = () => { sock.beforeSend?.(); sent.push('request'); return []; };
    const failed: [string, number][] = [];
    const t = (port: number): Tuple => ({ src: '10.77.0.11', sport: port, dst: '198.51.100.7', dport: 7000, proto: 17 });
    ct.deleteSoon(t(6000), (e) => failed.push(['a', e]));
    ct.deleteSoon(t(6001), (e) => failed.push(['b', e]));
    assert.deepEqual(sent, [], 'held');
    ct.setTimeout(t(5060), 100);
    assert.deepEqual(sent, ['batch of 2', 'request'], 'the held deletions leave first, together');
    assert.deepEqual(failed, [['b', 1]], 'ENOENT (already gone) is no failure; EPERM is');
    ct.flushDeletes();
    assert.deepEqual(sent, ['batch of 2', 'request'], 'nothing left to send');
  } finally {
    ct.close();
  }
});
