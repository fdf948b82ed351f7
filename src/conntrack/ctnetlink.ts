/**
 * ctnetlink (nfnetlink subsystem 1): look up conntrack entries and create NAT'd ones, so the ALG
 * writes the binding the kernel really uses (netfilter-facts.md §1). Wire format as in
 * include/uapi/linux/netfilter/nfnetlink_conntrack.h.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ENOBUFS, ENOENT, NetlinkError } from '../errors';
import { formatIpv6 } from '../packet/addr';
import { decodeAttrs, NetlinkSocket, type NlMessage, type NlReply, NlWriter, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL } from './netlink';

const SUBSYS_CTNETLINK = 1;
const SUBSYS_CTNETLINK_EXP = 2;
const MSG_EXP_NEW = 0, MSG_EXP_GET = 1;
const MSG_EXP_DELETE = 2; // IPCTNL_MSG_EXP_DELETE
const CTA_HELP = 5, CTA_HELP_NAME = 1;
const CTA_EXPECT_MASTER = 1, CTA_EXPECT_TUPLE = 2, CTA_EXPECT_MASK = 3, CTA_EXPECT_TIMEOUT = 4, CTA_EXPECT_CLASS = 9, CTA_EXPECT_NAT = 10, CTA_EXPECT_FN = 11;
const CTA_EXPECT_NAT_DIR = 1, CTA_EXPECT_NAT_TUPLE = 2;
const MSG_CT_NEW = 0;
const MSG_CT_GET = 1;
const MSG_CT_DELETE = 2;
const CTA_TUPLE_ORIG = 1, CTA_TUPLE_REPLY = 2, CTA_STATUS = 3, CTA_NAT_SRC = 6, CTA_TIMEOUT = 7, CTA_MARK = 8, CTA_ID = 12;
const CTA_TUPLE_IP = 1, CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1, CTA_IP_V4_DST = 2, CTA_IP_V6_SRC = 3, CTA_IP_V6_DST = 4; // enum ctattr_ip
const CTA_PROTO_NUM = 1, CTA_PROTO_SRC_PORT = 2, CTA_PROTO_DST_PORT = 3;
const CTA_NAT_V4_MINIP = 1, CTA_NAT_V4_MAXIP = 2, CTA_NAT_PROTO = 3, CTA_NAT_V6_MINIP = 4, CTA_NAT_V6_MAXIP = 5; // enum ctattr_nat
const CTA_PROTONAT_PORT_MIN = 1, CTA_PROTONAT_PORT_MAX = 2;
/** nfgenmsg families (include/linux/socket.h): a request's tuples are all of this family (ctnetlink parses them with nfgen_family) */
export const AF_UNSPEC = 0, AF_INET = 2, AF_INET6 = 10;
const EINVAL = 22;
const CTA_PROTOINFO = 4, CTA_PROTOINFO_TCP = 1, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL = 4, CTA_PROTOINFO_TCP_FLAGS_REPLY = 5;
const IP_CT_TCP_FLAG_BE_LIBERAL = 0x08;
export const IPPROTO_UDP = 17;

export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;
export const IPS_CONFIRMED = 1 << 3;
/** the entry has seen a packet in its reply direction (nf_conntrack_common.h IPS_SEEN_REPLY_BIT) */
export const IPS_SEEN_REPLY = 1 << 1;

export interface Tuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
}

export interface Conntrack {
  orig: Tuple;
  reply: Tuple;
  status: number;
  timeout: number;
  id: number;
  /** packets in both directions (0 unless nf_conntrack_acct is on) */
  packets: number;
  /** the connection mark (sip-alg's anchors: their dialog's tag, anchorMark) */
  mark: number;
}

const CTA_COUNTERS_ORIG = 9, CTA_COUNTERS_REPLY = 10, CTA_COUNTERS_PACKETS = 1;
function counterPackets(b: Buffer | undefined): number {
  const p = b ? decodeAttrs(b).get(CTA_COUNTERS_PACKETS) : undefined;
  return p && p.length === 8 ? Number(p.readBigUInt64BE(0)) : 0;
}

/** The nfgenmsg family of an address's text: AF_INET6 for IPv6 text (it has colons), AF_INET otherwise. */
export function addressFamily(addr: string): typeof AF_INET | typeof AF_INET6 {
  return addr.indexOf(':') >= 0 ? AF_INET6 : AF_INET;
}

/**
 * The family of a request whose addresses are `addrs` (undefined ones skipped): one nfgenmsg
 * family covers every tuple of a ctnetlink message, so addresses of both families in one request
 * are refused (EINVAL) before anything is sent.
 */
function familyOf(what: string, ...addrs: (string | undefined)[]): typeof AF_INET | typeof AF_INET6 {
  let fam: typeof AF_INET | typeof AF_INET6 | undefined;
  for (const a of addrs) {
    if (a === undefined) continue;
    const f = addressFamily(a);
    if (fam === undefined) fam = f;
    else if (f !== fam) throw new NetlinkError(EINVAL, `${what}: IPv4 and IPv6 addresses in one request`);
  }
  return fam ?? AF_INET;
}

/** The family of a tuple (src and dst must agree). */
export function tupleFamily(t: Tuple): typeof AF_INET | typeof AF_INET6 {
  return familyOf('tuple', t.src, t.dst);
}

/** src/dst of a CTA_TUPLE_IP: CTA_IP_V4_* (4 bytes) or CTA_IP_V6_* (16 bytes, RFC 5952 text) */
function parseTupleIp(ip: Map<number, Buffer>): [string, string] | undefined {
  const s = ip.get(CTA_IP_V4_SRC), d = ip.get(CTA_IP_V4_DST);
  if (s && d) return [`${s[0]}.${s[1]}.${s[2]}.${s[3]}`, `${d[0]}.${d[1]}.${d[2]}.${d[3]}`];
  const s6 = ip.get(CTA_IP_V6_SRC), d6 = ip.get(CTA_IP_V6_DST);
  if (s6 && d6 && s6.length >= 16 && d6.length >= 16) return [formatIpv6(s6), formatIpv6(d6)];
  return undefined;
}

function parseTuple(b: Buffer | undefined): Tuple | undefined {
  if (!b) return undefined;
  const a = decodeAttrs(b);
  const ipb = a.get(CTA_TUPLE_IP), pb = a.get(CTA_TUPLE_PROTO);
  if (!ipb || !pb) return undefined;
  const ip = parseTupleIp(decodeAttrs(ipb)), pr = decodeAttrs(pb);
  if (!ip) return undefined;
  return {
    src: ip[0],
    dst: ip[1],
    proto: pr.get(CTA_PROTO_NUM)?.[0] ?? 0,
    sport: pr.get(CTA_PROTO_SRC_PORT)?.readUInt16BE(0) ?? 0,
    dport: pr.get(CTA_PROTO_DST_PORT)?.readUInt16BE(0) ?? 0,
  };
}

export function parseConntrack(msg: Buffer): Conntrack | undefined {
  const a = decodeAttrs(msg, 4); // skip nfgenmsg
  const orig = parseTuple(a.get(CTA_TUPLE_ORIG));
  const reply = parseTuple(a.get(CTA_TUPLE_REPLY));
  if (!orig || !reply) return undefined;
  return {
    orig,
    reply,
    status: a.get(CTA_STATUS)?.readUInt32BE(0) ?? 0,
    timeout: a.get(CTA_TIMEOUT)?.readUInt32BE(0) ?? 0,
    id: a.get(CTA_ID)?.readUInt32BE(0) ?? 0,
    packets: counterPackets(a.get(CTA_COUNTERS_ORIG)) + counterPackets(a.get(CTA_COUNTERS_REPLY)),
    mark: a.get(CTA_MARK)?.readUInt32BE(0) ?? 0,
  };
}

/** CTA_STATUS of a conntrack message (after nlmsghdr), read without decoding the other attributes; undefined without one. */
export function conntrackStatus(msg: Buffer): number | undefined {
  for (let o = 4; o + 4 <= msg.length;) {
    const len = msg.readUInt16LE(o);
    if (len < 4 || o + len > msg.length) break;
    if ((msg.readUInt16LE(o + 2) & 0x3fff) === CTA_STATUS && len >= 8) return msg.readUInt32BE(o + 4);
    o += (len + 3) & ~3;
  }
  return undefined;
}

export interface Expectation {
  master: Tuple;
  tuple: Tuple;
  /** seconds left */
  timeout: number;
  /** where the expected connection is DNATed (CTA_EXPECT_NAT), when it is */
  nat: Tuple | undefined;
  cls: number;
}

export function parseExpectation(msg: Buffer): Expectation | undefined {
  const a = decodeAttrs(msg, 4);
  const master = parseTuple(a.get(CTA_EXPECT_MASTER));
  const tuple = parseTuple(a.get(CTA_EXPECT_TUPLE));
  if (!master || !tuple) return undefined;
  const natb = a.get(CTA_EXPECT_NAT);
  return {
    master,
    tuple,
    timeout: a.get(CTA_EXPECT_TIMEOUT)?.readUInt32BE(0) ?? 0,
    nat: natb ? parseTuple(decodeAttrs(natb).get(CTA_EXPECT_NAT_TUPLE)) : undefined,
    cls: a.get(CTA_EXPECT_CLASS)?.readUInt32BE(0) ?? 0,
  };
}

/** What one pinhole is made of: createExpectation's argument. */
/** An entry made with source NAT (Ctnetlink.createSnatBatch): `t` leaves as publicIp:port. */
export interface SnatFlow { t: Tuple; publicIp: string; timeoutSec: number; port?: number; mark?: number }

export interface PinholeSpec {
  remoteIp: string | undefined;
  /** the source prefix length when remoteIp is a network (a register pinhole's provider ranges); a full mask when absent */
  remoteBits?: number;
  publicIp: string;
  publicPort: number;
  privateIp: string;
  privatePort: number;
  cls: number;
  timeoutSec: number;
}

/** CTA_TUPLE_IP + CTA_TUPLE_PROTO under `type`, written straight into `w`; `fam` says whether the addresses are CTA_IP_V4_* or CTA_IP_V6_*. */
function writeTuple(w: NlWriter, type: number, fam: number, src: string, dst: string, sport: number, dport: number, proto: number): void {
  const tuple = w.beginNest(type);
  const ip = w.beginNest(CTA_TUPLE_IP);
  if (fam === AF_INET6) {
    w.ip6(CTA_IP_V6_SRC, src);
    w.ip6(CTA_IP_V6_DST, dst);
  } else {
    w.ip4(CTA_IP_V4_SRC, src);
    w.ip4(CTA_IP_V4_DST, dst);
  }
  w.endNest(ip);
  const pr = w.beginNest(CTA_TUPLE_PROTO);
  w.u8(CTA_PROTO_NUM, proto);
  w.u16be(CTA_PROTO_SRC_PORT, sport);
  w.u16be(CTA_PROTO_DST_PORT, dport);
  w.endNest(pr);
  w.endNest(tuple);
}

/** `t` as the entry's CTA_TUPLE_ORIG (how an anchor is made, and get, delete and a timeout's update name an entry). */
function writeOrig(w: NlWriter, fam: number, t: Tuple): void {
  writeTuple(w, CTA_TUPLE_ORIG, fam, t.src, t.dst, t.sport, t.dport, t.proto);
}

/** createAnchor's IPCTNL_MSG_CT_NEW, byte for byte, with its attributes written without a tree. */
export function anchorMessage(t: Tuple, timeoutSec: number, mark = 0): NlMessage {
  const fam = tupleFamily(t);
  return {
    type: (SUBSYS_CTNETLINK << 8) | MSG_CT_NEW,
    flags: NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    family: fam,
    attrs: (w) => {
      writeOrig(w, fam, t);
      writeTuple(w, CTA_TUPLE_REPLY, fam, t.dst, t.src, t.dport, t.sport, t.proto);
      w.u32be(CTA_TIMEOUT, timeoutSec);
      // the dialog's tag, carried to a router pair's peer by conntrackd (and inherited by the media
      // conntracks its expectations create, nf_conntrack_core.c init_conntrack)
      if (mark) w.u32be(CTA_MARK, mark);
      const help = w.beginNest(CTA_HELP);
      w.strz(CTA_HELP_NAME, 'sip');
      w.endNest(help);
    },
  };
}

/** The wildcard ("any") and the full mask of an address of family `fam` (struct nf_conntrack_tuple_mask) */
const ANY: Record<number, string> = { [AF_INET]: '0.0.0.0', [AF_INET6]: '::' };
const ALL_ONES: Record<number, string> = { [AF_INET]: '255.255.255.255', [AF_INET6]: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' };

/** The mask of a prefix of `bits` in family `fam`, as an address (struct nf_conntrack_tuple_mask src.u3). */
export function prefixMask(fam: number, bits: number): string {
  if (fam === AF_INET6) {
    const groups: string[] = [];
    for (let g = 0; g < 8; g++) {
      const n = Math.max(0, Math.min(16, bits - g * 16));
      groups.push(((0xffff << (16 - n)) & 0xffff).toString(16));
    }
    return groups.join(':');
  }
  const m = bits <= 0 ? 0 : (0xffffffff << (32 - Math.min(32, bits))) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 255).join('.');
}

/**
 * The family of a pinhole under `anchor`: the anchor's, and every address of `e` must be of it
 * (ctnetlink_create_expect parses master, tuple, mask and NAT tuple with the one nfgen_family).
 */
function pinholeFamily(anchor: Tuple, e: PinholeSpec): typeof AF_INET | typeof AF_INET6 {
  return familyOf('expectation', anchor.src, anchor.dst, e.remoteIp, e.publicIp, e.privateIp);
}

/** CTA_EXPECT_TUPLE of a pinhole: from remoteIp (any when undefined), any port, to publicIp:publicPort */
function writeExpectTuple(w: NlWriter, fam: number, e: PinholeSpec): void {
  writeTuple(w, CTA_EXPECT_TUPLE, fam, e.remoteIp ?? ANY[fam]!, e.publicIp, 0, e.publicPort, IPPROTO_UDP);
}

/**
 * createExpectation's IPCTNL_MSG_EXP_NEW, byte for byte, with its attributes written without a
 * tree. IPv6 when the anchor is IPv6: then the mask of a full address is ffff:...:ffff and "any"
 * is ::, as 255.255.255.255 and 0.0.0.0 are for IPv4. Throws EINVAL when the pinhole's addresses
 * are not all of the anchor's family.
 */
export function expectationMessage(anchor: Tuple, e: PinholeSpec, exclusive = true): NlMessage {
  const fam = pinholeFamily(anchor, e);
  const any = ANY[fam]!, all = ALL_ONES[fam]!;
  const srcMask = !e.remoteIp ? any : e.remoteBits === undefined ? all : prefixMask(fam, e.remoteBits);
  return {
    type: (SUBSYS_CTNETLINK_EXP << 8) | MSG_EXP_NEW,
    // without NLM_F_EXCL an existing expectation of this tuple is updated (its timeout:
    // nf_conntrack_netlink.c ctnetlink_new_expect -> ctnetlink_change_expect)
    flags: NLM_F_ACK | NLM_F_CREATE | (exclusive ? NLM_F_EXCL : 0),
    family: fam,
    attrs: (w) => {
      writeTuple(w, CTA_EXPECT_MASTER, fam, anchor.src, anchor.dst, anchor.sport, anchor.dport, anchor.proto);
      writeExpectTuple(w, fam, e);
      writeTuple(w, CTA_EXPECT_MASK, fam, srcMask, all, 0, 0xffff, IPPROTO_UDP);
      w.u32be(CTA_EXPECT_TIMEOUT, e.timeoutSec);
      w.u32be(CTA_EXPECT_CLASS, e.cls);
      const nat = w.beginNest(CTA_EXPECT_NAT);
      w.u32be(CTA_EXPECT_NAT_DIR, 1);
      writeTuple(w, CTA_EXPECT_NAT_TUPLE, fam, e.privateIp, any, e.privatePort, 0, IPPROTO_UDP);
      w.endNest(nat);
      w.strz(CTA_EXPECT_FN, 'sip');
    },
  };
}

/**
 * IPCTNL_MSG_EXP_DELETE of the pinhole `e` under `anchor`, by CTA_EXPECT_TUPLE
 * (nf_conntrack_netlink.c ctnetlink_del_expect); never send one without it: that flushes every
 * expectation.
 */
export function expectationDeleteMessage(anchor: Tuple, e: PinholeSpec): NlMessage {
  const fam = pinholeFamily(anchor, e);
  return { type: (SUBSYS_CTNETLINK_EXP << 8) | MSG_EXP_DELETE, flags: NLM_F_ACK, family: fam, attrs: (w) => writeExpectTuple(w, fam, e) };
}

/** IPCTNL_MSG_EXP_GET of the pinhole `e` by CTA_EXPECT_TUPLE (nf_conntrack_netlink.c ctnetlink_get_expect): its expectation, or ENOENT. */
export function expectationGetMessage(anchor: Tuple, e: PinholeSpec): NlMessage {
  const fam = pinholeFamily(anchor, e);
  return { type: (SUBSYS_CTNETLINK_EXP << 8) | MSG_EXP_GET, flags: NLM_F_ACK, family: fam, attrs: (w) => writeExpectTuple(w, fam, e) };
}

/** Ctnetlink.get's IPCTNL_MSG_CT_GET of the entry holding `t`. */
export function getMessage(t: Tuple): NlMessage {
  const fam = tupleFamily(t);
  return { type: (SUBSYS_CTNETLINK << 8) | MSG_CT_GET, flags: NLM_F_ACK, family: fam, attrs: (w) => writeOrig(w, fam, t) };
}

/**
 * Ctnetlink.createSnat's IPCTNL_MSG_CT_NEW: `t` and its reply with source NAT to `publicIp`
 * (CTA_NAT_V4_MINIP/MAXIP, or CTA_NAT_V6_MINIP/MAXIP for IPv6: nf_nat_core.c
 * nf_nat_ipv6_nlattr_to_range), the port pinned when given. Throws EINVAL when `publicIp` is not
 * an address of the tuple's family.
 */
export function snatMessage(t: Tuple, publicIp: string, timeoutSec: number, port?: number, mark = 0): NlMessage {
  const fam = tupleFamily(t);
  if (fam === AF_INET6 ? !isIPv6(publicIp) : !isIPv4(publicIp)) throw new NetlinkError(EINVAL, `createSnat: ${JSON.stringify(publicIp)} is not an ${fam === AF_INET6 ? 'IPv6' : 'IPv4'} address as the tuple's are`);
  return {
    type: (SUBSYS_CTNETLINK << 8) | MSG_CT_NEW,
    flags: NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    family: fam,
    // written without a tree, as anchorMessage is (one a media flow and mapping record: per call)
    attrs: (w) => {
      writeOrig(w, fam, t);
      writeTuple(w, CTA_TUPLE_REPLY, fam, t.dst, t.src, t.dport, t.sport, t.proto);
      w.u32be(CTA_TIMEOUT, timeoutSec);
      const nat = w.beginNest(CTA_NAT_SRC);
      if (fam === AF_INET6) {
        w.ip6(CTA_NAT_V6_MINIP, publicIp);
        w.ip6(CTA_NAT_V6_MAXIP, publicIp);
      } else {
        w.ip4(CTA_NAT_V4_MINIP, publicIp);
        w.ip4(CTA_NAT_V4_MAXIP, publicIp);
      }
      if (port !== undefined) {
        const pn = w.beginNest(CTA_NAT_PROTO);
        w.u16be(CTA_PROTONAT_PORT_MIN, port);
        w.u16be(CTA_PROTONAT_PORT_MAX, port);
        w.endNest(pn);
      }
      w.endNest(nat);
      // a dialog's media flows carry its anchor's mark, as the flows its pinholes create do
      // (inherited from the master): a router pair's standby finds a call's flows by it
      if (mark) w.u32be(CTA_MARK, mark);
    },
  };
}

/** Ctnetlink.setTimeout's IPCTNL_MSG_CT_NEW (an update: no NLM_F_CREATE) of the entry holding `t`. */
export function setTimeoutMessage(t: Tuple, timeoutSec: number): NlMessage {
  const fam = tupleFamily(t);
  return {
    type: (SUBSYS_CTNETLINK << 8) | MSG_CT_NEW,
    flags: NLM_F_ACK,
    family: fam,
    attrs: (w) => {
      writeOrig(w, fam, t);
      w.u32be(CTA_TIMEOUT, timeoutSec);
    },
  };
}

/** Ctnetlink.setTcpLiberal's update of the entry holding `t`. */
export function tcpLiberalMessage(t: Tuple): NlMessage {
  const fam = tupleFamily(t);
  const flags = Buffer.from([IP_CT_TCP_FLAG_BE_LIBERAL, IP_CT_TCP_FLAG_BE_LIBERAL]); // struct nf_ct_tcp_flags { flags, mask }
  return {
    type: (SUBSYS_CTNETLINK << 8) | MSG_CT_NEW,
    flags: NLM_F_ACK,
    family: fam,
    attrs: (w) => {
      writeOrig(w, fam, t);
      const info = w.beginNest(CTA_PROTOINFO);
      const tcp = w.beginNest(CTA_PROTOINFO_TCP);
      w.bytes(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, flags);
      w.bytes(CTA_PROTOINFO_TCP_FLAGS_REPLY, flags);
      w.endNest(tcp);
      w.endNest(info);
    },
  };
}

/** Ctnetlink.delete's IPCTNL_MSG_CT_DELETE of the entry holding `t`. */
export function deleteMessage(t: Tuple): NlMessage {
  const fam = tupleFamily(t);
  return { type: (SUBSYS_CTNETLINK << 8) | MSG_CT_DELETE, flags: NLM_F_ACK, family: fam, attrs: (w) => writeOrig(w, fam, t) };
}

/** A dump request of the conntrack table (`expectations` false) or the expectation table, of one family or (AF_UNSPEC) all. */
export function dumpMessage(expectations: boolean, family: number = AF_UNSPEC): NlMessage {
  return { type: expectations ? (SUBSYS_CTNETLINK_EXP << 8) | MSG_EXP_GET : (SUBSYS_CTNETLINK << 8) | MSG_CT_GET, flags: NLM_F_DUMP, family, attrs: [] };
}

/** 4 or 6 as a dump's nfgenmsg family; undefined: both (AF_UNSPEC: ctnetlink then applies no family filter). */
function dumpFamily(family: 4 | 6 | undefined): number {
  return family === 4 ? AF_INET : family === 6 ? AF_INET6 : AF_UNSPEC;
}

/**
 * A datagram that is leaving anyway and may carry ctnetlink requests: the NFQUEUE verdicts of the
 * current batch (NfQueue.request). `request` returns false when it cannot take them now.
 */
export interface RequestRider {
  request(msg: Buffer): boolean;
  /** sends what rode so far now (a synchronous request must not overtake it) */
  flush(): void;
}

/** requests in flight on a rider, by sequence number (a failure comes back within the next wake-up) */
const RIDE_SLOTS = 4096;
/** rider sequence numbers: 0x40000000 and up (the queue numbers its verdicts below) */
const RIDE_SEQ_BASE = 0x40000000;

export class Ctnetlink {
  private readonly sock: NetlinkSocket;
  private rider: RequestRider | undefined;
  private readonly rideOut = new NlWriter();
  private rideSeq = 0;
  private readonly riding: (((errno: number) => void) | undefined)[] = new Array(RIDE_SLOTS).fill(undefined);
  private readonly ridingSeq = new Uint32Array(RIDE_SLOTS);
  /** requests rode the rider since its last flush by us */
  private rode = false;
  constructor(timeoutMs = 200) {
    this.sock = new NetlinkSocket(undefined, timeoutMs);
    // order: what rode leaves before any synchronous request (a redial's pinholes after the old call's deletions)
    this.sock.beforeSend = () => {
      if (this.rode) {
        this.rode = false;
        this.rider?.flush();
      }
      if (this.pendingDeletes.length) this.flushDeletes();
    };
  }

  /** Requests that need no answer before the packet goes on may ride `r` (undefined: never). */
  attachRider(r: RequestRider | undefined): void {
    this.rider = r;
  }

  /**
   * Sets the timeout of the existing entry holding `t` without a round trip of its own: the request
   * joins the datagram the rider sends anyway (no NLM_F_ACK: only a failure is answered, and
   * `onFailed` gets its errno when settle() reads it, ENOENT when there is no such entry).
   * Returns false when no rider took it: the caller uses setTimeout().
   */
  setTimeoutRiding(t: Tuple, timeoutSec: number, onFailed: (errno: number) => void): boolean {
    const r = this.rider;
    if (!r) return false;
    return this.ride(r, setTimeoutMessage(t, timeoutSec), onFailed);
  }

  /**
   * Deletes the entry holding `t` (with an anchor, its pending pinholes too) when nothing waits on
   * the answer: during a queue batch it rides the verdicts' datagram; otherwise it joins the
   * deletions sent together by flushDeletes() (a sweep's releases: one sendmsg for all, not a round
   * trip each), at the latest before the next synchronous request, so the kernel sees every request
   * in call order. `onFailed` gets a failure other than ENOENT (already gone).
   */
  deleteSoon(t: Tuple, onFailed: (errno: number) => void): void {
    this.soon(deleteMessage(t), onFailed);
  }

  /** Deletes the pinhole `e` under `anchor` as deleteSoon deletes an entry (a retired pinhole: nothing waits on it). */
  deleteExpectationSoon(anchor: Tuple, e: PinholeSpec, onFailed: (errno: number) => void): void {
    this.soon(expectationDeleteMessage(anchor, e), onFailed);
  }

  private soon(m: NlMessage, onFailed: (errno: number) => void): void {
    const r = this.rider;
    if (r && this.ride(r, m, (errno) => { if (errno !== ENOENT) onFailed(errno); })) return;
    this.pendingDeletes.push({ m, onFailed });
    if (this.pendingDeletes.length >= 512) this.flushDeletes();
  }

  /** Sends the deletions deleteSoon() and deleteExpectationSoon() hold, in one batch; each failure (but ENOENT) to its caller. */
  flushDeletes(): void {
    if (!this.pendingDeletes.length) return;
    const list = this.pendingDeletes.splice(0);
    let replies: NlReply[];
    try {
      replies = this.sock.requestBatch(list.map((d) => d.m));
    } catch (e) {
      const errno = (e as { errno?: number }).errno ?? 5;
      for (const d of list) d.onFailed(errno);
      return;
    }
    for (let i = 0; i < list.length; i++) {
      const err = replies[i]?.error;
      if (err && err.errno !== ENOENT) list[i]!.onFailed(err.errno);
    }
  }

  private readonly pendingDeletes: { m: NlMessage; onFailed: (errno: number) => void }[] = [];

  private ride(r: RequestRider, m: NlMessage, onFailed: (errno: number) => void): boolean {
    const seq = RIDE_SEQ_BASE + this.rideSeq;
    this.rideOut.reset().message(m.type, m.flags & ~NLM_F_ACK, seq, m.family, m.attrs);
    if (!r.request(this.rideOut.view())) return false;
    this.rode = true;
    const slot = this.rideSeq % RIDE_SLOTS;
    this.riding[slot] = onFailed;
    this.ridingSeq[slot] = seq;
    this.rideSeq = (this.rideSeq + 1) & 0x3fffffff;
    return true;
  }

  /** A failure the rider's socket answered (sequence number, errno): to the request it belongs to; false when none is known. */
  settle(seq: number, errno: number): boolean {
    if (seq < RIDE_SEQ_BASE) return false;
    const slot = (seq - RIDE_SEQ_BASE) % RIDE_SLOTS;
    const f = this.riding[slot];
    if (!f || this.ridingSeq[slot] !== seq) return false;
    this.riding[slot] = undefined;
    f(errno);
    return true;
  }

  /** The entry holding `t` in either direction, or undefined when there is none (ENOENT). */
  get(t: Tuple): Conntrack | undefined {
    const m = getMessage(t);
    try {
      const msgs = this.sock.request(m.type, m.flags, m.family, m.attrs);
      return msgs.length ? parseConntrack(msgs[0]!) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENOENT) return undefined;
      throw e;
    }
  }

  /**
   * Creates a confirmed conntrack entry for the original tuple `t` with source NAT to `publicIp`.
   * With no `port` the kernel picks the port as MASQUERADE would: the source port when that
   * tuple is free, another one on a clash (nf_nat_core.c get_unique_tuple). Throws EEXIST when
   * the flow already has an entry. IPv4 or IPv6 by the tuple's addresses (snatMessage); EINVAL
   * when `publicIp` is of the other family.
   */
  createSnat(t: Tuple, publicIp: string, timeoutSec: number, port?: number): void {
    const m = snatMessage(t, publicIp, timeoutSec, port);
    this.sock.request(m.type, m.flags, m.family, m.attrs);
  }

  /**
   * createSnat for each of `flows`, in one sendmsg (NetlinkSocket.requestBatch): per flow, in
   * order, its error (EEXIST when it already has an entry), or undefined when it was created.
   */
  createSnatBatch(flows: readonly SnatFlow[]): (NetlinkError | undefined)[] {
    if (!flows.length) return [];
    return this.sock.requestBatch(flows.map((f) => snatMessage(f.t, f.publicIp, f.timeoutSec, f.port, f.mark))).map((r) => r.error);
  }

  /**
   * Creates an inert anchor entry (a loopback tuple that never carries traffic) bound to the
   * kernel's `sip` helper: ctnetlink only accepts expectations whose master has a helper
   * (netfilter-facts.md §2). Deleting the anchor deletes its expectations.
   */
  createAnchor(t: Tuple, timeoutSec: number): void {
    const m = anchorMessage(t, timeoutSec);
    this.sock.request(m.type, m.flags, m.family, m.attrs);
  }

  /**
   * A pinhole: traffic from `remoteIp` (any source when undefined) and any port to
   * publicIp:publicPort becomes a RELATED connection DNATed to privateIp:privatePort (expectation
   * NAT with the kernel's "sip" expectfn). CTA_EXPECT_HELP_NAME is deliberately not set: it would
   * make the media conntrack carry the helper.
   */
  createExpectation(anchor: Tuple, e: PinholeSpec): void {
    const m = expectationMessage(anchor, e);
    this.sock.request(m.type, m.flags, m.family, m.attrs);
  }

  /**
   * Whether the pinhole `e` under `anchor` is still pending in the kernel: an expectation is gone
   * once a connection used it (nf_ct_expect_related, not NF_CT_EXPECT_PERMANENT) or its timeout ran out.
   */
  hasExpectation(anchor: Tuple, e: PinholeSpec): boolean {
    const m = expectationGetMessage(anchor, e);
    try {
      const msgs = this.sock.request(m.type, m.flags, m.family, m.attrs);
      return msgs.some((b) => parseExpectation(b) !== undefined);
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === ENOENT) return false;
      throw err;
    }
  }

  /**
   * For each pinhole `spec` under `anchor`: whether it is still pending (hasExpectation), and the
   * entry holding `flow` when one is given (get): all in one sendmsg per 64 requests instead of a
   * round trip each (the sweep checks every pending pinhole of the table).
   */
  pinholeStates(items: readonly { anchor: Tuple; spec: PinholeSpec; flow: Tuple | undefined }[]): { pending: boolean; ct: Pick<Conntrack, 'status'> | undefined }[] {
    if (!items.length) return [];
    const msgs: NlMessage[] = [];
    for (const x of items) {
      msgs.push(expectationGetMessage(x.anchor, x.spec));
      if (x.flow) msgs.push(getMessage(x.flow));
    }
    const replies = this.sock.requestBatch(msgs);
    const out: { pending: boolean; ct: Pick<Conntrack, 'status'> | undefined }[] = [];
    let k = 0;
    for (const x of items) {
      const e = replies[k++]!;
      if (e.error && e.error.errno !== ENOENT) throw e.error;
      // an answer to EXP_GET is the expectation: only whether there is one matters here
      const pending = !e.error && e.payloads.length > 0;
      let ct: Pick<Conntrack, 'status'> | undefined;
      if (x.flow) {
        const g = replies[k++]!;
        if (g.error && g.error.errno !== ENOENT) throw g.error;
        const status = g.error || !g.payloads.length ? undefined : conntrackStatus(g.payloads[0]!);
        ct = status === undefined ? undefined : { status };
      }
      out.push({ pending, ct });
    }
    return out;
  }

  /**
   * Re-arms the timeout of the pinhole `e` under `anchor` (created when it is missing); false when
   * the anchor is gone (ENOENT: ctnetlink_create_expect finds no master).
   */
  refreshExpectation(anchor: Tuple, e: PinholeSpec): boolean {
    return this.unlessAbsent(expectationMessage(anchor, e, false));
  }

  /** Sends `m`: true when the kernel accepted it, false when what it names is not there (ENOENT); other errors throw. */
  private unlessAbsent(m: NlMessage): boolean {
    try {
      this.sock.request(m.type, m.flags, m.family, m.attrs);
      return true;
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === ENOENT) return false;
      throw err;
    }
  }

  /** Deletes the pinhole `e` under `anchor` (only it: the message always names its tuple); false when it was not there. */
  deleteExpectation(anchor: Tuple, e: PinholeSpec): boolean {
    return this.unlessAbsent(expectationDeleteMessage(anchor, e));
  }

  /** Sets the timeout of the existing entry holding `t` (ctnetlink update); false when there is none. */
  setTimeout(t: Tuple, timeoutSec: number): boolean {
    return this.unlessAbsent(setTimeoutMessage(t, timeoutSec));
  }

  /**
   * Turns off TCP window tracking for the connection holding `t` (IP_CT_TCP_FLAG_BE_LIBERAL on both
   * directions, nf_conntrack_proto_tcp.c tcp_in_window): once the ALG changes a segment's length the
   * two ends count bytes differently from what conntrack saw before the queue.
   */
  setTcpLiberal(t: Tuple): void {
    const m = tcpLiberalMessage(t);
    this.sock.request(m.type, m.flags, m.family, m.attrs);
  }

  /** A dump of one table, each message parsed; unparsable entries (neither IPv4 nor IPv6 tuples) are skipped. */
  private dumpOf<T>(m: NlMessage, parse: (m: Buffer) => T | undefined): T[] {
    const out: T[] = [];
    for (const b of this.sock.request(m.type, m.flags, m.family, m.attrs)) {
      const x = parse(b);
      if (x) out.push(x);
    }
    return out;
  }

  /** Every conntrack entry, IPv4 and IPv6, or of one family (for start-up housekeeping, not the packet path). */
  dump(family?: 4 | 6): Conntrack[] {
    return this.dumpOf(dumpMessage(false, dumpFamily(family)), parseConntrack);
  }

  /** Every expectation, IPv4 and IPv6, or of one family (for inspection, not the packet path). */
  dumpExpectations(family?: 4 | 6): Expectation[] {
    return this.dumpOf(dumpMessage(true, dumpFamily(family)), parseExpectation);
  }

  delete(t: Tuple): boolean {
    return this.unlessAbsent(deleteMessage(t));
  }

  /**
   * createAnchor(anchor) and then createExpectation(anchor, e) for each of `exps`, in one sendmsg
   * (NetlinkSocket.requestBatch: the kernel handles the messages in order, so the anchor exists
   * when its expectations arrive). Throws as createAnchor does when the anchor is not created; any
   * expectation the kernel then hung on an entry that already held the anchor's tuple (EEXIST) is
   * deleted again, as is any of `flows` (entries with source NAT, createSnatBatch's) made in the
   * same batch. Otherwise returns, per expectation and then per flow, in order, its error, or
   * undefined when it was created.
   */
  createAnchorWithExpectations(anchor: Tuple, timeoutSec: number, exps: readonly PinholeSpec[], mark = 0, flows: readonly SnatFlow[] = []): (NetlinkError | undefined)[] {
    const msgs: NlMessage[] = [anchorMessage(anchor, timeoutSec, mark)];
    for (const e of exps) msgs.push(expectationMessage(anchor, e));
    for (const f of flows) msgs.push(snatMessage(f.t, f.publicIp, f.timeoutSec, f.port, f.mark));
    const replies = this.sock.requestBatch(msgs);
    const failed = replies[0]?.error;
    if (failed) {
      const ok = (i: number) => replies[i]?.done && !replies[i]?.error;
      const undo = [...exps.filter((_e, i) => ok(i + 1)).map((e) => expectationDeleteMessage(anchor, e)), ...flows.filter((_f, i) => ok(i + 1 + exps.length)).map((f) => deleteMessage(f.t))];
      if (undo.length) {
        try {
          this.sock.requestBatch(undo);
        } catch { /* best effort: they expire with their timeout */ }
      }
      throw failed;
    }
    return replies.slice(1).map((r) => r.error);
  }

  /**
   * createAnchorWithExpectations without a round trip of its own, when a rider is there (a queue
   * batch): the anchor and then its pinholes join the datagram of the batch's verdicts, ahead of the
   * verdicts given after this call, so the kernel has made them when the packet goes on (it handles
   * the messages of a datagram in order: the anchor exists when its pinholes arrive). No NLM_F_ACK:
   * only a refusal is answered, and `onRefused(index, errno)` gets it when settle() reads it, within
   * the next wake-up (index 0: the anchor; i + 1: exps[i]). Returns undefined when the anchor could
   * not ride (no rider, outside a batch, or its datagram is full): the caller makes them with
   * createAnchorWithExpectations. Otherwise, per pinhole, undefined (sent), or ENOBUFS when it could
   * not join the anchor's datagram (not made).
   */
  rideAnchorWithExpectations(anchor: Tuple, timeoutSec: number, exps: readonly PinholeSpec[], mark: number, onRefused: (index: number, errno: number) => void): (NetlinkError | undefined)[] | undefined {
    const r = this.rider;
    if (!r || !this.ride(r, anchorMessage(anchor, timeoutSec, mark), (errno) => onRefused(0, errno))) return undefined;
    const out: (NetlinkError | undefined)[] = new Array(exps.length);
    for (let i = 0; i < exps.length; i++) {
      const k = i + 1;
      out[i] = this.ride(r, expectationMessage(anchor, exps[i]!), (errno) => onRefused(k, errno)) ? undefined : new NetlinkError(ENOBUFS, 'pinhole could not join its anchor\'s datagram');
    }
    return out;
  }

  /**
   * Sets the timeout of the entries holding each of `ts` in one sendmsg (`timeoutSec`: one for all,
   * or one per tuple); per tuple: true when set, false when there is none (ENOENT), or the error.
   */
  setTimeouts(ts: readonly Tuple[], timeoutSec: number | readonly number[]): (boolean | NetlinkError)[] {
    if (!ts.length) return [];
    return this.sock.requestBatch(ts.map((t, i) => setTimeoutMessage(t, typeof timeoutSec === 'number' ? timeoutSec : timeoutSec[i]!))).map((r) => (!r.error ? true : r.error.errno === ENOENT ? false : r.error));
  }

  /** Deletes the entries holding each of `ts` in one sendmsg; per tuple, its error, or undefined when it was deleted or not there (ENOENT). */
  deleteBatch(ts: readonly Tuple[]): (NetlinkError | undefined)[] {
    if (!ts.length) return [];
    return this.sock.requestBatch(ts.map((t) => deleteMessage(t))).map((r) => (r.error?.errno === ENOENT ? undefined : r.error));
  }

  close(): void {
    this.sock.close();
  }
}
