/**
 * Dialogs (RFC 3261 §12) and the media pinholes they own.
 *
 * Every SDP the LAN side sends (offer or answer, in INVITE, 18x, 2xx, ACK, PRACK, UPDATE) opens
 * pinholes as conntrack expectations: far end -> public-ip:public-port becomes a RELATED
 * connection DNATed to the phone, for RTP and RTCP (RFC 3605 a=rtcp, else port+1). They hang off
 * one helper-bound anchor per dialog, so the kernel's per-master limits never bind a trunk with
 * many calls, and deleting the anchor deletes them all. When the far end's SDP is known too, the
 * outbound media flow is pre-created with SNAT to the advertised public port, so the phone's own
 * RTP leaves from the port it advertised (symmetric RTP), even when another phone holds its
 * private port on the public address.
 *
 * Lifecycle: a changed media set re-pins (RFC 3264 §8, re-INVITE/UPDATE), an unchanged one keeps
 * its pinholes (refreshed before the kernel's 180 s expectation timeout); hold (RFC 3264 §8.4)
 * keeps them unless retain-on-hold is off; BYE and CANCEL release after their final response plus
 * a grace (5 s by default), as do failure final responses to the initial INVITE; forking keeps the
 * far-end media of the first 2xx; an idle dialog is released after dialog-idle-seconds.
 */
import { SlotList } from '../collections/slot-list';
import type { Conntrack, Ctnetlink, Expectation, PinholeSpec, SnatFlow, Tuple } from '../conntrack/ctnetlink';
import { IPPROTO_UDP, IPS_SEEN_REPLY } from '../conntrack/ctnetlink';
import { endpointKey, ipFamily, sameAddress } from '../packet/addr';
import { EEXIST, errnoName, NetlinkError } from '../errors';
import { log, logLimited } from '../log';
import type { PortAllocator } from '../nat/port-allocator';
import type { SdpMediaMapping } from '../sdp/rewrite';
import type { RemoteMedia } from '../sdp/remote-media';
import type { DialogInfo } from '../sip/dialog-info';

/** a media flow or retired pinhole that could not be deleted expires with its timeout */
const IGNORE_ERRNO = (_errno: number): void => undefined;

export interface SipEvent {
  dir: 'in' | 'out';
  isRequest: boolean;
  method: string;
  status: number;
  info: DialogInfo;
  privateIp: string;
  publicIp: string;
  local: SdpMediaMapping[] | undefined;
  remote: (RemoteMedia | undefined)[] | undefined;
  /** Session-Expires delta-seconds of the message (RFC 4028 §4), when present */
  sessionExpires?: number;
  /** the signaling flow the message crossed, LAN→WAN orientation (phone -> far end) */
  flow?: Tuple;
}

export interface DialogOptions {
  retainOnHold: boolean;
  directMedia?: 'allow' | 'block';
  graceMs: number;
  idleMs: number;
  /** how often unchanged pinholes are re-created, below the kernel's 180 s expectation timeout */
  refreshMs?: number;
  /** an INVITE dialog not answered within this is released (FortiGate provisional-invite-expiry-time) */
  provisionalMs?: number;
  /** hard maximum call duration (0 = off) */
  maxCallMs?: number;
  /** media inactivity measured from the media conntracks' packet counters (0 = off) */
  mediaInactivityMs?: number;
  /** dialogs kept per worker; beyond, the longest-idle ones are evicted (0 = off) */
  maxIdleDialogs?: number;
  /** concurrent dialogs: all workers together (shared counter) and per LAN source address (0 = off) */
  maxDialogs?: number;
  maxDialogsPerSource?: number;
  /** pinholes to private media ports below 1024 */
  allowLowMediaPorts?: boolean;
  /** this router's number in a router pair (config node-id; 0 standalone): the anchors' source address */
  node?: number;
  /**
   * Whom a pinhole admits (config pinhole-source). 'far-end' (default): the far end's media address
   * from its SDP, and before that SDP is known the signaling peer (as the kernel's nf_conntrack_sip
   * does with sip_direct_media=1); 'any': any source on the internet (a provider whose media comes
   * from addresses its SDP does not name).
   */
  pinholeSource?: 'far-end' | 'any';
}

/** A call the router pair's peer set up, found in this router's kernel table at a takeover. */
interface ForeignCall {
  anchor: Tuple;
  /** the media conntracks marked alike: pre-created outbound flows and those the pinholes created */
  media: Tuple[];
  /** the call's media mapping records (mappingRecords) */
  maps: Tuple[];
  /** the media mapping read back from them and from the anchor's pending expectations */
  local: SdpMediaMapping[];
  /** the private address the media goes to (the phone, unless third-party media) */
  privateIp: string | undefined;
  /** per media line, the far end's media address its pinholes admitted ('' = any), so they stay narrow */
  sources: string[];
  /** the call's public address (the SNAT of its records and flows) */
  publicIp: string | undefined;
  /** public ports a media conntrack of the call already carries (their pinholes were used) */
  carried: Set<number>;
}

export interface Dialog {
  callId: string;
  privateIp: string;
  publicIp: string;
  anchor: Tuple | undefined;
  pinnedAt: number;
  local: SdpMediaMapping[];
  remote: (RemoteMedia | undefined)[] | undefined;
  /** the media conntracks pre-created for this dialog (a few: RTP and RTCP per m= line) */
  mediaCts: Tuple[];
  /** the media mapping records of this dialog's pinholes (mappingRecords): what a router pair's standby reads the mapping back from */
  mapCts: readonly Tuple[];
  confirmed: boolean;
  winnerTag: string;
  created: number;
  lastSeen: number;
  endAt: number;
  /** RFC 4028: the session interval and when it was last refreshed (2xx to INVITE/UPDATE) */
  sessionMs: number;
  refreshedAt: number;
  /** media packet counters (sum over the media flows) and when they last moved */
  mediaPackets: number;
  mediaSeenAt: number;
  mediaCheckedAt: number;
  /** the signaling flow, kept alive while the call lasts, and when it was last raised */
  flow: Tuple | undefined;
  flowKeptAt: number;
  /**
   * Pinholes (expectations) of the anchor the kernel still holds: created, and not yet used by a
   * connection, retired (the far end's media arrives through a media conntrack) or expired. What
   * the pinholes gauge and `sip-alg calls` show; checked against the kernel by the sweep.
   */
  pinholes: number;
  /** public ports (RTP, RTCP) whose pinhole is no longer pending, since the last pin */
  settled: readonly number[];
  /** pinholes the kernel refused at the last pin (retried by the sweep) and the retries so far */
  pinFailed: number;
  pinRetries: number;
  /** the source each media line's pinholes admit ('' = any), as pinned */
  sources: string[];
  /** a taken-over call's far-end media addresses per media line, read back from the kernel, until its next SDP */
  sourceHint: string[] | undefined;
  pinCheckedAt: number;
  /** its index in the table's SlotList (what the sweep walks); -1 when not in the table (the state file carries it too: adopt ignores it) */
  slot: number;
  /** what it adds to the table's pinholes gauge now (DialogTable.gauge; the state file carries it too: adopt ignores it) */
  gauged: number;
  /** what its times count from (DialogClock) */
  readonly clock: DialogClock;
}

/**
 * The clock of a table's dialogs (issue 21, memory): the times a dialog keeps (created, lastSeen, its
 * timers) are milliseconds since `base`, not wall-clock milliseconds. A wall-clock time (~1.8e12) is
 * beyond V8's small integers (31 bits and a sign on 64-bit), so each of a dialog's nine time fields
 * held a heap number of its own: 16 B each, 127 B of a dialog's heap (bench/dialog-memory.ts). Since
 * the base they are small integers. A table's clock reads CLOCK_START at the first time it is given
 * and its base moves forward (DialogTable.rebase) before the clock leaves the small integers. The
 * times come in and go out as wall-clock times: at the table's methods, and in every JSON of a
 * dialog (the state file's format is unchanged).
 */
export interface DialogClock { base: number }
/** the table's clock at its first time: a time 0 (never, in the fields that use it so) stays ~12 days in the past */
const CLOCK_START = 2 ** 30;
/** the clock is moved back to CLOCK_START when it reaches this (every ~6 days) */
const CLOCK_REBASE_AT = CLOCK_START + 2 ** 29;
/**
 * `t` as a small integer when it is one in value: the difference of two wall-clock times is a heap
 * number whatever its value, and a field that once holds one keeps every value of every dialog boxed
 */
const small = (t: number) => (t >= -0x80000000 && t <= 0x7fffffff ? t | 0 : t);
/** the dialog times on the clock (0 stays 0: "never") */
const TIME_FIELDS = ['pinnedAt', 'created', 'lastSeen', 'endAt', 'refreshedAt', 'mediaSeenAt', 'mediaCheckedAt', 'flowKeptAt', 'pinCheckedAt'] as const;

/**
 * A dialog, every field present and in one order: the dialogs of a table then share one hidden
 * class whether they were created by a phone's offer, taken over from a router pair's peer or read
 * back from the state file (JSON leaves undefined fields out), so the packet path's property loads
 * on them stay monomorphic.
 */
class DialogRecord implements Dialog {
  anchor: Tuple | undefined = undefined;
  pinnedAt = 0;
  local: SdpMediaMapping[] = [];
  remote: (RemoteMedia | undefined)[] | undefined = undefined;
  mediaCts: Tuple[] = [];
  mapCts: readonly Tuple[] = NO_TUPLES;
  confirmed = false;
  winnerTag = '';
  created: number;
  lastSeen: number;
  endAt = 0;
  sessionMs = 0;
  refreshedAt: number;
  mediaPackets = 0;
  mediaSeenAt: number;
  mediaCheckedAt: number;
  flow: Tuple | undefined = undefined;
  flowKeptAt = 0;
  pinholes = 0;
  settled: readonly number[] = NO_PORTS;
  pinFailed = 0;
  pinRetries = 0;
  sources: string[] = [];
  sourceHint: string[] | undefined = undefined;
  pinCheckedAt: number;
  slot = -1;
  gauged = 0;

  constructor(public callId: string, public privateIp: string, public publicIp: string, now: number, readonly clock: DialogClock) {
    this.created = now;
    this.lastSeen = now;
    this.refreshedAt = now;
    this.mediaSeenAt = now;
    this.mediaCheckedAt = now;
    this.pinCheckedAt = now;
  }

  /**
   * The dialog as the state file keeps it: wall-clock times, no clock. Field by field, in the class's
   * order (a unit test holds them equal): 0.8 µs a record less than a copy by spread and a loop.
   */
  toJSON(): PersistedDialog {
    const b = this.clock.base;
    return {
      callId: this.callId, privateIp: this.privateIp, publicIp: this.publicIp, anchor: this.anchor, pinnedAt: wall(this.pinnedAt, b), local: this.local,
      remote: this.remote, mediaCts: this.mediaCts, mapCts: this.mapCts, confirmed: this.confirmed, winnerTag: this.winnerTag, created: wall(this.created, b),
      lastSeen: wall(this.lastSeen, b), endAt: wall(this.endAt, b), sessionMs: this.sessionMs, refreshedAt: wall(this.refreshedAt, b), mediaPackets: this.mediaPackets,
      mediaSeenAt: wall(this.mediaSeenAt, b), mediaCheckedAt: wall(this.mediaCheckedAt, b), flow: this.flow, flowKeptAt: wall(this.flowKeptAt, b), pinholes: this.pinholes,
      settled: this.settled, pinFailed: this.pinFailed, pinRetries: this.pinRetries, sources: this.sources, sourceHint: this.sourceHint,
      pinCheckedAt: wall(this.pinCheckedAt, b), slot: this.slot, gauged: this.gauged,
    };
  }
}

/** a time on a table's clock as wall-clock time (0 stays 0: never) */
const wall = (t: number, base: number) => (t === 0 ? 0 : t + base);

const SOURCE_SLOTS = 4096;
/**
 * dialogs whose pinholes one check slice compares with the kernel (one ctnetlink batch of up to 4
 * requests each, ~50 µs a dialog): small, so that the packets queued behind a slice wait little
 */
const PIN_CHECKS_PER_SLICE = 4;
/** dialogs waiting for their pinhole check at most; beyond it a due dialog waits for the next round */
const PIN_QUEUE_MAX = 2048;
/** dialogs re-made per slice after a conntrack flush (repairSlice): a pin and its media flows are ~0.1 ms each */
const REPAIRS_PER_SLICE = 16;
/**
 * dialogs whose pinholes are checked per second at most, whatever the call rate (~50 µs of the
 * worker and the kernel each): at 1.5k new calls/s the checks would otherwise cost more than the
 * calls' own messages. Under such a load the counts of used and retired pinholes lag; the pinholes
 * themselves are the kernel's and work the same.
 */
const PIN_CHECK_RATE = 320;
/** a confirmed dialog's signaling flow is raised to this timeout, again every SIGNALING_REFRESH_MS */
export const SIGNALING_TIMEOUT_SEC = 300;
const SIGNALING_REFRESH_MS = 20000;

/**
 * The loopback pair of a worker's anchors: 127.0.<node>.1 -> 127.1.<worker>.1, or for IPv6 ::1
 * (node 0) or ::2:<node> -> ::1:<worker>. `node` is the router's number in a router pair
 * (config node-id; 0 standalone): both routers' anchors are in both kernel tables (conntrackd), and
 * the source address says whose each is, so a daemon's start-up clean-up never deletes its peer's.
 */
export function anchorAddresses(worker: number, family: 4 | 6, node = 0): [string, string] {
  const n = node & 255;
  return family === 6 ? [n ? `::2:${n.toString(16)}` : '::1', `::1:${(worker & 255).toString(16)}`] : [`127.0.${n}.1`, `127.1.${worker & 255}.1`];
}

/** An anchor's source address, of any router of a pair (anchorAddresses). */
export const isAnchorSource = (ip: string) => /^127\.0\.\d{1,3}\.1$/.test(ip) || ip === '::1' || /^::2:[0-9a-f]{1,2}$/.test(ip);

/**
 * Where a dialog's media mapping records point: a loopback destination that never carries traffic
 * (mappingRecords). Not per router: both routers of a pair name the same record alike.
 */
export const MAPPING_TARGET = { 4: '127.2.0.1', 6: '::3:1' } as const;
export const isMappingTarget = (ip: string) => ip === MAPPING_TARGET[4] || ip === MAPPING_TARGET[6];

export const anchorKey = (t: Tuple) => `${t.src}:${t.sport}>${t.dst}:${t.dport}`;

/**
 * A dialog is one phone's side of a call: Call-ID and the phone's private address. Both legs of a
 * call between two phones behind this router through the provider (hairpin) carry the same Call-ID
 * (RFC 3261 §8.1.1.4: a proxy does not change it), and each leg has its own media and pinholes.
 */
export const dialogKey = (callId: string, privateIp: string) => `${callId}\n${privateIp}`;

/**
 * The tag a dialog's anchor carries as its conntrack mark (FNV-1a of the dialog key, never 0):
 * conntrackd carries it to a router pair's standby, whose daemon recognises the anchor at the
 * dialog's next SIP message after a takeover.
 */
export function anchorMark(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) || 1;
}

type PinState = 'pinholes' | 'settled' | 'pinFailed' | 'pinRetries' | 'sources' | 'pinCheckedAt' | 'mapCts' | 'sourceHint' | 'slot' | 'gauged';
/** A dialog as stored in the state file (files of earlier versions keyed the media flows: [key, tuple] pairs, and had no pinhole accounting). */
export type PersistedDialog = Omit<Dialog, 'mediaCts' | 'clock' | PinState> & Partial<Pick<Dialog, PinState>> & { mediaCts: Tuple[] | [string, Tuple][] };

const NO_RECORDS: readonly Tuple[] = [];
const sameFlow = (a: Tuple, b: Tuple) => a.sport === b.sport && a.dport === b.dport && a.src === b.src && a.dst === b.dst;

export interface DialogSnapshot {
  callId: string;
  phone: string;
  publicIp: string;
  state: 'early' | 'confirmed' | 'ending';
  ageSec: number;
  idleSec: number;
  sessionExpiresSec: number;
  /** the loopback anchor conntrack the pinholes hang off */
  anchor: string;
  media: { rtp: string; rtcp: string; remote: string; from: string }[];
  /** pinholes pending in the kernel (counted as the kernel holds them, checked by the sweep) */
  pinholes: number;
  /** pinholes the kernel refused at the last pin (retried) */
  pinholesFailed: number;
  mediaFlows: number;
}

export interface DialogCounters {
  inc(key: string, by?: number): void;
}

const MEDIA_METHODS = new Set(['INVITE', 'ACK', 'PRACK', 'UPDATE']);
const TRACKED = new Set(['INVITE', 'ACK', 'PRACK', 'UPDATE', 'BYE', 'CANCEL']);
const TERMINATION_TIMEOUT_MS = 32000; // RFC 3261 timer F/B (64*T1): no final response -> release anyway
/** how often the sweep compares a dialog's pending pinholes with the kernel */
const PIN_CHECK_MS = 1000;
/** ...backing off to this as the pinholes age (a call that rings long, a trunk of silent calls: netlink requests per second stay few) */
const PIN_CHECK_MAX_MS = 30000;
/** a pin the kernel refused is retried this often, at most PIN_RETRIES times */
const PIN_RETRY_MS = 2000;
const PIN_RETRIES = 5;
/**
 * pins retried per sweep slice at most (each a ctnetlink round trip, ~50-100 µs): with the kernel's
 * expectation table full every pin fails, and a slice of 256 such dialogs held the worker 2.5-9 ms
 * at each tick (the latency probe at 1k INVITE/s with nf_conntrack_expect_max 4096: p99 12 ms). The
 * others stay due for the next slices.
 */
const PIN_RETRIES_PER_SLICE = 4;
/** inbound offers remembered for dialogs not tracked yet: how many, how long (an INVITE rings at most provisional-invite-expiry) */
const MAX_OFFERS = 4096;
const OFFER_KEEP_MS = 300000;
const isUnspecified = (ip: string) => ip === '0.0.0.0' || ip === '::';

const sameSources = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

function sameMedia(a: SdpMediaMapping[], b: SdpMediaMapping[]): boolean {
  return a.length === b.length && a.every((x, i) => x.index === b[i]!.index && x.privatePort === b[i]!.privatePort && x.publicPort === b[i]!.publicPort && x.rtcpPrivatePort === b[i]!.rtcpPrivatePort && x.privateIp === b[i]!.privateIp);
}

const NO_DIALOGS: readonly Dialog[] = [];
/** what an empty list of a dialog points at until it has an entry (one list for all: 32 B a list a dialog saved) */
const NO_PORTS: readonly number[] = [];
const NO_TUPLES: readonly Tuple[] = [];

/**
 * A list a dialog keeps, at its own size. The lists the packet path builds (an SDP's media lines,
 * the far end's media) grow by push, and V8 gives a list pushed to from empty room for 17 entries
 * (152 B for one or two): a dialog kept three such lists for the call's life, a fifth of its heap.
 */
function exact<T>(l: T[]): T[] {
  return l.slice();
}

/** what one dialog gives up to a new one (handOver): its media lines on the new one's ports */
interface HandOver { o: Dialog; lines: SdpMediaMapping[] }
const NO_HANDOVER: readonly HandOver[] = [];

/**
 * An index entry: the one dialog under a key, or the dialogs when several share it (a redial's
 * hand-over). Nearly every key has one dialog: kept as itself, not in an array of one, it costs
 * the index nothing beyond the map's slot (two arrays of one were ~110 B of a dialog's heap).
 */
type Entries = Dialog | Dialog[];

/** How many dialogs an index entry holds. */
function entryCount(e: Entries | undefined): number {
  return e === undefined ? 0 : Array.isArray(e) ? e.length : 1;
}

/** The dialogs of an index entry, as a list (only the hand-over reads them so). */
function entryList(e: Entries | undefined): readonly Dialog[] {
  return e === undefined ? NO_DIALOGS : Array.isArray(e) ? e : [e];
}

/** Adds one entry `d` under `k`. */
function listAdd<K>(m: Map<K, Entries>, k: K, d: Dialog): void {
  const l = m.get(k);
  if (l === undefined) m.set(k, d);
  else if (Array.isArray(l)) l.push(d);
  else m.set(k, [l, d]);
}

/** Removes one entry under `k` (`d`'s, or another when `d` has none there); true while `k` still has entries. */
function listRemove<K>(m: Map<K, Entries>, k: K, d: Dialog): boolean {
  const l = m.get(k);
  if (l === undefined) return false;
  if (!Array.isArray(l)) {
    m.delete(k);
    return false;
  }
  const i = l.indexOf(d);
  l.splice(i >= 0 ? i : l.length - 1, 1);
  if (l.length > 1) return true;
  // one left: kept as itself again
  if (l.length === 1) {
    m.set(k, l[0]!);
    return true;
  }
  m.delete(k);
  return false;
}

export class DialogTable {
  readonly dialogs = new Map<string, Dialog>();
  private anchorSeq = 0;
  /** this worker's anchor addresses (IPv4, IPv6): one string each, shared by every anchor tuple */
  private readonly anchorAddr: [[string, string], [string, string]];
  /**
   * The dialogs holding each private media endpoint (endpointKey of a line's RTP), one entry per
   * media line: the endpoint's port lease lives while any does, and a redial's hand-over looks at
   * these dialogs only, not at the whole table (a trunk has tens of thousands)
   */
  private readonly holders = new Map<string | number, Entries>();
  /** the dialogs whose media lines name each public RTP port, one entry per line (hand-over by public port) */
  private readonly byPublicPort = new Map<number, Entries>();
  private readonly global: Int32Array;
  /** the dialogs changed since the state file last took them (takeChanges): each is written to its journal once */
  private readonly changed = new Set<Dialog>();
  /** the far end's offers (inbound INVITEs with SDP) of dialogs not tracked yet, oldest first; bounded */
  private readonly offers = new Map<string, { remote: (RemoteMedia | undefined)[]; at: number }>();
  /** anchors this worker's peer made (router pair, synced by conntrackd), by their mark, and the media conntracks marked alike */
  private readonly foreign = new Map<number, ForeignCall[]>();
  /** what the times of this table's dialogs count from (DialogClock); set by the first time given */
  private readonly clock: DialogClock = { base: NaN };

  constructor(
    private readonly ct: Ctnetlink,
    private readonly ports: PortAllocator,
    private readonly worker: number,
    private opts: DialogOptions,
    private readonly counters: DialogCounters,
    /** from DialogTable.createShared(): dialogs of all workers, in total and per source address */
    counts: SharedArrayBuffer = DialogTable.createShared(),
  ) {
    this.global = new Int32Array(counts);
    this.anchorAddr = [anchorAddresses(worker, 4, opts.node), anchorAddresses(worker, 6, opts.node)];
  }

  static createShared(): SharedArrayBuffer {
    return new SharedArrayBuffer(4 * (1 + SOURCE_SLOTS));
  }

  /** The shared per-source slot of an address (FNV-1a): sources that collide share a count, which only errs towards the limit. */
  private sourceSlot(ip: string): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < ip.length; i++) h = Math.imul(h ^ ip.charCodeAt(i), 0x01000193);
    return 1 + ((h >>> 0) % SOURCE_SLOTS);
  }

  private count(d: Dialog, by: 1 | -1): void {
    Atomics.add(this.global, 0, by);
    Atomics.add(this.global, this.sourceSlot(d.privateIp), by);
  }

  private rememberOffer(key: string, remote: (RemoteMedia | undefined)[], now: number): void {
    this.offers.delete(key);
    this.offers.set(key, { remote, at: now });
    // an offer the phone never answers goes after OFFER_KEEP_MS, or when the map is full (oldest first)
    for (const [k, o] of this.offers) {
      if (this.offers.size <= MAX_OFFERS && now - o.at < OFFER_KEEP_MS) break;
      this.offers.delete(k);
    }
  }

  /** A wall-clock time on the table's clock (DialogClock); the first one given sets the clock. */
  private time(wallNow: number): number {
    if (this.clock.base !== this.clock.base) this.clock.base = wallNow - CLOCK_START;
    const now = small(wallNow - this.clock.base);
    // ahead by ~6 days, or the wall clock set back before the base
    if (now >= CLOCK_REBASE_AT || now < 0) {
      this.rebase(now - CLOCK_START);
      return (this.lastNow = CLOCK_START);
    }
    return (this.lastNow = now);
  }

  /** the latest time a public method was given, on the table's clock (a pin refusal read later is dated by it) */
  private lastNow = 0;

  /**
   * The clock moves forward by `by` ms: every time the table keeps moves back by as much, so that
   * times stay small integers (DialogClock). Once every ~6 days it walks the table at once (~50 ns a
   * dialog: a few ms at 50k dialogs).
   */
  private rebase(by: number): void {
    this.clock.base += by;
    for (const d of this.dialogs.values()) for (const f of TIME_FIELDS) if (d[f] !== 0) d[f] = small(d[f] - by);
    for (const o of this.offers.values()) o.at = small(o.at - by);
    for (const [k, t] of this.flowsKept) this.flowsKept.set(k, small(t - by));
    this.pinTokensAt = small(this.pinTokensAt - by);
  }

  /** The table's dialogs, for the state file: their JSON (toJSON) carries wall-clock times, so their timers survive a restart. */
  export(): PersistedDialog[] {
    return [...this.dialogs.values()];
  }

  /**
   * A dialog's state changed (a message of it, a pin, its release): the state file's journal
   * writes it at its next append. Times the sweep moves alone (the media counters' last reading,
   * the next check) are written with the dialog's next change: a restart reads them again from the
   * kernel.
   */
  private touch(d: Dialog): void {
    this.changed.add(d);
  }

  /** How many dialogs changed since the last takeChanges. */
  get pendingChanges(): number {
    return this.changed.size;
  }

  /** The dialogs changed since the last call, by key: the dialog as it is, or undefined when it went (the state file's journal). */
  takeChanges(): [string, Dialog | undefined][] {
    const out: [string, Dialog | undefined][] = [];
    for (const d of this.changed) {
      const key = dialogKey(d.callId, d.privateIp);
      const live = this.dialogs.get(key);
      // a dialog replaced under its key (the same Call-ID again) is written as its successor, which changed too
      if (live === d) out.push([key, d]);
      else if (!live) out.push([key, undefined]);
    }
    this.changed.clear();
    return out;
  }

  /**
   * Takes back the dialogs a previous run of this worker persisted (kill -9, crash): those whose
   * anchor is still in the kernel keep it and its pinholes; the others re-pin at their next SDP.
   * Ports, per-source counts and the anchor sequence are restored. Returns the anchors adopted.
   * A dialog whose anchor is gone while another anchor carries its mark (`liveMarks`) moved to the
   * router pair's peer (it took the call over and made its own anchor): it is the peer's, not restored.
   */
  adopt(saved: PersistedDialog[], liveAnchors: Set<string>, wallNow: number, liveMarks: Set<number> = new Set()): Set<string> {
    const now = this.time(wallNow);
    // the file's wall-clock times on the table's clock (0, or none in older files: never), each
    // stored as a small integer from the start (a field that held a heap number once boxes them all)
    const at = (t: number | undefined) => (t ? small(t - this.clock.base) : 0);
    const adopted = new Set<string>();
    for (const p of saved) {
      if (this.dialogs.has(dialogKey(p.callId, p.privateIp))) continue;
      if (p.anchor && !liveAnchors.has(anchorKey(p.anchor)) && liveMarks.has(anchorMark(dialogKey(p.callId, p.privateIp)))) {
        this.counters.inc('d|handed_to_peer');
        continue;
      }
      // state files of earlier versions lack the pinhole accounting: their pinholes count as pending
      const d = new DialogRecord(p.callId, p.privateIp, p.publicIp, now, this.clock);
      d.anchor = p.anchor;
      d.pinnedAt = at(p.pinnedAt);
      d.local = p.local;
      d.remote = p.remote;
      d.mediaCts = p.mediaCts.map((x) => (Array.isArray(x) ? x[1] : x));
      d.mapCts = p.mapCts ?? [];
      d.confirmed = p.confirmed;
      d.winnerTag = p.winnerTag;
      d.created = at(p.created);
      d.lastSeen = at(p.lastSeen);
      d.endAt = at(p.endAt);
      d.sessionMs = p.sessionMs;
      d.refreshedAt = at(p.refreshedAt);
      d.mediaPackets = p.mediaPackets;
      d.mediaSeenAt = at(p.mediaSeenAt);
      d.mediaCheckedAt = at(p.mediaCheckedAt);
      d.flow = p.flow;
      d.flowKeptAt = at(p.flowKeptAt);
      d.pinholes = p.pinholes ?? (p.anchor ? p.local.length * 2 : 0);
      d.settled = p.settled ?? [];
      d.pinFailed = p.pinFailed ?? 0;
      d.pinRetries = p.pinRetries ?? 0;
      d.sources = p.sources ?? [];
      d.sourceHint = p.sourceHint;
      d.pinCheckedAt = at(p.pinCheckedAt ?? 0);
      const key = d.anchor ? anchorKey(d.anchor) : '';
      if (d.anchor && liveAnchors.has(key)) {
        adopted.add(key);
        this.anchorSeq = Math.max(this.anchorSeq, d.anchor.sport - 1024 + (d.anchor.dport - 1024) * 64000 + 1);
      } else d.anchor = undefined;
      for (const m of d.local) {
        this.ports.adopt(m.privateIp ?? d.privateIp, m.privatePort, m.publicPort, wallNow);
        this.holdLine(d, m);
      }
      this.put(dialogKey(d.callId, d.privateIp), d);
      this.count(d, 1);
      this.counters.inc('d|restored');
    }
    return adopted;
  }

  get size(): number {
    return this.dialogs.size;
  }

  /** Pinholes (RTP + RTCP expectations) the table holds now: kept as they change (gauge), not counted per read. */
  get pinholes(): number {
    return this.pinholeTotal;
  }

  /** the pinholes gauge: the sum of the dialogs' `gauged` */
  private pinholeTotal = 0;

  /**
   * Brings `d`'s share of the pinholes gauge up to date: its pending pinholes while it holds an
   * anchor and is in the table. Called wherever one of those changes; the stats read the sum once a
   * second, which was a walk of every dialog (~0.5-0.9 ms at 40k calls, the packets waiting behind it).
   */
  private gauge(d: Dialog): void {
    const n = d.anchor && d.slot >= 0 ? d.pinholes : 0;
    this.pinholeTotal += n - d.gauged;
    d.gauged = n;
  }

  /** The gauge counted again from every dialog (the unit tests' check of gauge's bookkeeping). */
  countPinholes(): number {
    let n = 0;
    for (const d of this.list.values()) if (d.anchor) n += d.pinholes;
    return n;
  }

  /** New options (config reload): timers and limits apply from the next message and sweep. */
  setOptions(opts: DialogOptions): void {
    this.opts = opts;
  }

  /** What `sip-alg calls` shows: one plain object per dialog. */
  snapshot(wallNow: number): DialogSnapshot[] {
    const now = this.time(wallNow);
    return [...this.dialogs.values()].map((d) => ({
      callId: d.callId,
      phone: d.privateIp,
      publicIp: d.publicIp,
      state: d.endAt ? 'ending' : d.confirmed ? 'confirmed' : 'early',
      ageSec: Math.round((now - d.created) / 1000),
      idleSec: Math.round((now - d.lastSeen) / 1000),
      sessionExpiresSec: d.sessionMs / 1000,
      anchor: d.anchor ? anchorKey(d.anchor) : '',
      media: d.local.map((m, i) => {
        const r = d.remote?.[m.index];
        const ip = m.privateIp ?? d.privateIp;
        return { rtp: `${ip}:${m.privatePort}<-${d.publicIp}:${m.publicPort}`, rtcp: `${ip}:${m.rtcpPrivatePort}<-${d.publicIp}:${m.rtcpPublicPort}`, remote: r ? `${r.ip}:${r.port}` : '', from: d.anchor ? d.sources[i] || 'any' : '' };
      }),
      pinholes: d.anchor ? d.pinholes : 0,
      pinholesFailed: d.pinFailed,
      mediaFlows: d.mediaCts.length,
    }));
  }

  /**
   * Updates the dialog and its pinholes for one message. Returns false when policy says the
   * message must be dropped (direct-media=block), true otherwise.
   */
  observe(e: SipEvent, wallNow: number): boolean {
    const now = this.time(wallNow);
    const cseqMethod = e.isRequest ? e.method : e.info.cseqMethod;
    if (!TRACKED.has(cseqMethod)) return true;
    // the rare paths (a blocked media move, a router pair's call, a new dialog) are functions of
    // their own: this one stays small, so V8 optimises it early and keeps it optimised
    const key = dialogKey(e.info.callId, e.privateIp);
    let d = this.dialogs.get(key);
    if (d && this.opts.directMedia === 'block' && this.movesMediaAway(d, e)) return false;
    if (!d && this.foreign.size) d = this.takeOver(key, e, now);
    if (!d) {
      if (!e.local?.length) {
        // a dialog is tracked once the LAN side has offered or answered media; the far end's offer
        // before that (an inbound INVITE) is kept for it, so its answer's pinholes admit only that far end
        if (e.dir === 'in' && e.remote && MEDIA_METHODS.has(cseqMethod)) this.rememberOffer(key, e.remote, now);
        return true;
      }
      d = this.create(key, e, now);
      // a new call over the limit is refused; anything else passes without media state
      if (!d) return !(e.isRequest && e.method === 'INVITE' && !e.info.toTag);
    }
    this.update(d, e, cseqMethod, now);
    return true;
  }

  /**
   * Direct media blocked (seed 002, MikroTik sip-direct-media): an in-dialog offer from the WAN
   * that moves the call's media to another address is refused (counted).
   */
  private movesMediaAway(d: Dialog, e: SipEvent): boolean {
    if (!(e.dir === 'in' && e.isRequest && (e.method === 'INVITE' || e.method === 'UPDATE') && d.confirmed && e.remote && d.remote)) return false;
    const was = new Set(d.remote.filter((r) => r).map((r) => r!.ip));
    if (!e.remote.some((r) => r && !was.has(r.ip))) return false;
    this.counters.inc('d|direct_media_blocked');
    return true;
  }

  /** A call the router pair's peer set up (its anchor and media conntracks are in our table): ours from its next message. */
  private takeOver(key: string, e: SipEvent, now: number): Dialog | undefined {
    const taken = this.takeForeign(key, e.privateIp);
    if (!taken) return undefined;
    const d = new DialogRecord(e.info.callId, e.privateIp, e.publicIp, now, this.clock);
    d.anchor = taken.anchor;
    d.pinnedAt = now;
    d.mediaCts = taken.media;
    d.mapCts = taken.maps;
    d.confirmed = true;
    d.winnerTag = e.info.toTag;
    d.flow = e.flow;
    d.sourceHint = taken.sources;
    this.put(key, d);
    this.count(d, 1);
    this.counters.inc('d|taken_over');
    // the call becomes ours: its pinholes move to an anchor of this router (the peer's goes, and
    // with it the peer's claim: a peer that restarts finds its anchor gone and leaves the call
    // alone), on the same public ports, so the SDP the phone's next message carries is unchanged
    if (taken.local.length && !(e.isRequest && (e.method === 'BYE' || e.method === 'CANCEL'))) {
      try {
        this.pin(d, taken.local, now);
      } catch {
        d.anchor = taken.anchor; // pinholes stay under the peer's anchor; ours at the next SDP
      }
    }
    return d;
  }

  /** A new dialog for the LAN side's first offer or answer, unless a limit refuses it (counted). */
  private create(key: string, e: SipEvent, now: number): Dialog | undefined {
    const limit = this.admit(e.privateIp);
    if (limit) {
      this.counters.inc(`d|${limit}`);
      return undefined;
    }
    const d = new DialogRecord(e.info.callId, e.privateIp, e.publicIp, now, this.clock);
    this.put(key, d);
    this.count(d, 1);
    this.counters.inc('d|created');
    const offer = this.offers.get(key);
    if (offer) {
      d.remote = exact(offer.remote);
      this.offers.delete(key);
    }
    return d;
  }

  /** What a message of dialog `d` changes: its state, timers, media and pinholes. */
  private update(d: Dialog, e: SipEvent, cseqMethod: string, now: number): void {
    d.lastSeen = now;
    if (!d.flow && e.flow) d.flow = e.flow;
    this.touch(d);
    const otherBranch = !e.isRequest && d.winnerTag !== '' && e.info.toTag !== d.winnerTag && e.dir === 'in';
    // RFC 3261 §13.2.2.4: the first 2xx establishes the dialog; later 2xx of other forks do not move media
    if (!e.isRequest && e.info.cseqMethod === 'INVITE' && e.status >= 200 && e.status < 300 && !d.winnerTag) {
      d.confirmed = true;
      d.winnerTag = e.info.toTag;
    }
    // RFC 4028 §10: a 2xx to INVITE/UPDATE refreshes the session; its Session-Expires sets the interval
    if (!e.isRequest && (cseqMethod === 'INVITE' || cseqMethod === 'UPDATE') && e.status >= 200 && e.status < 300) {
      d.refreshedAt = now;
      if (e.sessionExpires) d.sessionMs = e.sessionExpires * 1000;
    }
    if (e.remote && !otherBranch && MEDIA_METHODS.has(cseqMethod)) {
      d.remote = exact(e.remote);
      // the answer that established the dialog decides: media flows set up for other forks' early media go
      if (!e.isRequest && e.status >= 200 && e.status < 300) this.pruneFlows(d);
    }
    if (e.local && MEDIA_METHODS.has(cseqMethod)) {
      if (e.local.length) {
        if (!sameMedia(d.local, e.local) || !d.anchor || now - d.pinnedAt > (this.opts.refreshMs ?? 60000)) this.pin(d, e.local, now);
      } else if (!this.opts.retainOnHold) this.unpin(d, true);
    }
    // the far end's SDP named (or moved) its media address: the pinholes follow it, so that they
    // admit only the far end (an answer or early-media 18x after the offer, a re-INVITE's new address)
    if (d.anchor && d.local.length && !sameSources(this.sourcesOf(d, d.local), d.sources)) this.pin(d, d.local, now);
    if (d.anchor && d.remote) this.ensureMediaFlows(d);
    // teardown (RFC 3261 §15 BYE, §9 CANCEL; failure final responses to the initial INVITE)
    if (e.isRequest && (e.method === 'BYE' || e.method === 'CANCEL')) d.endAt = d.endAt ? Math.min(d.endAt, now + TERMINATION_TIMEOUT_MS) : now + TERMINATION_TIMEOUT_MS;
    else if (!e.isRequest && (cseqMethod === 'BYE' || cseqMethod === 'CANCEL') && e.status >= 200) d.endAt = now + this.opts.graceMs;
    else if (!e.isRequest && cseqMethod === 'INVITE' && e.status >= 300 && !d.confirmed) d.endAt = now + this.opts.graceMs;
  }

  /**
   * A router pair's takeover (`sip-alg takeover`, from the keepalived notify script): the anchors of
   * this worker's addresses in the kernel table that no dialog here owns, with a mark, were made by
   * the peer for its calls (conntrackd synced them, with the media conntracks their pinholes created,
   * which carry the same mark). Each is adopted by the first SIP message of its dialog that reaches
   * this worker (observe); from then on the dialog is this worker's: its BYE releases the anchor and
   * the media conntracks, a new SDP re-pins. Returns the number of anchors waiting to be adopted.
   */
  takeover(entries: readonly Conntrack[], expectations: readonly Expectation[] = []): number {
    const owned = new Set<string>();
    for (const d of this.dialogs.values()) if (d.anchor) owned.add(anchorKey(d.anchor));
    this.foreign.clear();
    const dsts = new Set(this.anchorAddr.map(([, dst]) => dst));
    const isAnchor = (t: Tuple) => dsts.has(t.dst) && isAnchorSource(t.src);
    const byAnchor = new Map<string, ForeignCall>();
    let n = 0;
    for (const e of entries) {
      if (!e.mark || !isAnchor(e.orig) || owned.has(anchorKey(e.orig))) continue;
      const f: ForeignCall = { anchor: e.orig, media: [], maps: [], local: [], privateIp: undefined, sources: [], publicIp: undefined, carried: new Set() };
      const list = this.foreign.get(e.mark);
      if (list) list.push(f);
      else this.foreign.set(e.mark, [f]);
      byAnchor.set(anchorKey(e.orig), f);
      n++;
    }
    // public port -> private endpoint, per call: from the media conntracks (the outbound flows
    // pre-created with SNAT: orig from the phone, reply to the public port; the inbound ones the
    // pinholes created: orig to the public port, reply from the phone) and the pending pinholes
    const seen = new Map<ForeignCall, Map<number, [string, number]>>();
    // and public port -> the far end's media address: the pre-created flows' destination, the
    // inbound flows' source, the pending pinholes' source (narrow pinholes stay narrow on this router)
    const far = new Map<ForeignCall, Map<number, string>>();
    const note = (f: ForeignCall, publicIp: string, pub: number, ip: string, port: number, remote: string) => {
      f.publicIp ??= publicIp;
      let m = seen.get(f);
      if (!m) seen.set(f, (m = new Map()));
      m.set(pub, [ip, port]);
      if (isUnspecified(remote) || isMappingTarget(remote)) return;
      let r = far.get(f);
      if (!r) far.set(f, (r = new Map()));
      if (!r.has(pub)) r.set(pub, remote);
    };
    for (const e of entries) {
      if (!e.mark || isAnchor(e.orig)) continue;
      for (const f of this.foreign.get(e.mark) ?? []) {
        // a mapping record (phone -> MAPPING_TARGET, SNAT to the public port: mappingRecords) has
        // the shape of an outbound media flow and is read alike, but carries no media
        const record = isMappingTarget(e.orig.dst);
        (record ? f.maps : f.media).push(e.orig);
        let pub = -1;
        if (!sameAddress(e.orig.src, e.reply.dst)) note(f, e.reply.dst, (pub = e.reply.dport), e.orig.src, e.orig.sport, e.orig.dst);
        else if (!sameAddress(e.orig.dst, e.reply.src)) note(f, e.orig.dst, (pub = e.orig.dport), e.reply.src, e.reply.sport, e.orig.src);
        if (!record && pub >= 0) f.carried.add(pub);
      }
    }
    const pending = new Map<ForeignCall, Expectation[]>();
    for (const x of expectations) {
      const f = byAnchor.get(anchorKey(x.master));
      if (!f) continue;
      if (x.nat) note(f, x.tuple.dst, x.tuple.dport, x.nat.src, x.nat.sport, x.tuple.src);
      else if (!isUnspecified(x.tuple.src)) {
        // conntrackd (through libnetfilter_conntrack) re-creates a synced expectation without its
        // NAT and class: its source still says whom the peer's pinhole admitted
        let r = far.get(f);
        if (!r) far.set(f, (r = new Map()));
        if (!r.has(x.tuple.dport)) r.set(x.tuple.dport, x.tuple.src);
      }
      const list = pending.get(f);
      if (list) list.push(x);
      else pending.set(f, [x]);
    }
    for (const [f, m] of seen) {
      const rtp = [...m.keys()].filter((p) => p % 2 === 0).sort((a, b) => a - b);
      f.local = rtp.map((pub, index) => {
        const [ip, port] = m.get(pub)!;
        const rtcp = m.get(pub + 1);
        return { index, media: 'audio', privatePort: port, publicPort: pub, rtcpPrivatePort: rtcp?.[1] ?? port + 1, rtcpPublicPort: pub + 1, privateIp: ip };
      });
      f.privateIp = f.local[0]?.privateIp;
      f.sources = f.local.map((l) => far.get(f)?.get(l.publicPort) ?? far.get(f)?.get(l.rtcpPublicPort) ?? '');
      // the peer's public ports stay theirs: a new call here must not be given one of them
      const now = Date.now();
      for (const l of f.local) this.ports.adopt(l.privateIp!, l.privatePort, l.publicPort, now);
      this.repairPinholes(f, pending.get(f) ?? []);
    }
    return n;
  }

  /**
   * The peer's call `f` gets its pinholes back at once, under the peer's anchor, so media reaching
   * this router before the call's next SIP message is admitted and DNATed to the phone. conntrackd
   * re-creates a synced expectation through libnetfilter_conntrack, which sends neither its class
   * nor its NAT (netfilter-facts.md §2): here it arrives as class 0, of which the \`sip\` helper keeps
   * one per master (the second evicts the first), and a packet it admits is not DNATed but ends on
   * this router as an UNREPLIED conntrack that then catches the call's media. Those are deleted; a
   * pinhole is made for each public port no media conntrack of the call carries yet.
   */
  private repairPinholes(f: ForeignCall, pending: readonly Expectation[]): void {
    for (const x of pending) {
      if (x.nat) continue;
      try {
        this.ct.deleteExpectation(f.anchor, { remoteIp: isUnspecified(x.tuple.src) ? undefined : x.tuple.src, publicIp: x.tuple.dst, publicPort: x.tuple.dport, privateIp: x.tuple.dst, privatePort: 0, cls: 0, timeoutSec: 0 });
      } catch { /* gone already */ }
    }
    const publicIp = f.publicIp;
    if (!publicIp) return;
    const specs: PinholeSpec[] = [];
    f.local.forEach((m, i) => {
      for (const [pub, priv] of [[m.publicPort, m.privatePort], [m.rtcpPublicPort, m.rtcpPrivatePort]] as const) {
        if (f.carried.has(pub) || (priv < 1024 && !this.opts.allowLowMediaPorts)) continue;
        const src = this.opts.pinholeSource === 'any' ? '' : f.sources[i] ?? '';
        specs.push({ remoteIp: src && ipFamily(src) === ipFamily(publicIp) ? src : undefined, publicIp, publicPort: pub, privateIp: m.privateIp ?? f.privateIp ?? publicIp, privatePort: priv, cls: 1, timeoutSec: 180 });
      }
    });
    let made = 0;
    for (const spec of specs) {
      try {
        this.ct.createExpectation(f.anchor, spec);
        made++;
      } catch (e) {
        log('warn', 'takeover: a pinhole of the peer\'s call not re-created', { anchor: anchorKey(f.anchor), port: spec.publicPort, err: e as Error });
      }
    }
    if (made) this.counters.inc('h|repaired', made);
  }

  /** The peer's call of dialog `key` (its mark), when one waits; the phone's address settles a shared mark. */
  private takeForeign(key: string, phone: string): { anchor: Tuple; media: Tuple[]; maps: Tuple[]; local: SdpMediaMapping[]; sources: string[] } | undefined {
    const mark = anchorMark(key);
    const list = this.foreign.get(mark);
    if (!list) return undefined;
    const i = Math.max(0, list.findIndex((f) => f.privateIp === undefined || f.privateIp === phone));
    const f = list.splice(i, 1)[0]!;
    if (!list.length) this.foreign.delete(mark);
    // the phone's own media address is implied (SdpMediaMapping.privateIp is for third-party media)
    const local = f.local.map((l) => (l.privateIp === phone ? { ...l, privateIp: undefined } : l));
    return { anchor: f.anchor, media: f.media, maps: f.maps, local, sources: f.sources };
  }

  /**
   * A router pair's switch to standby (`sip-alg standby`, keepalived notify BACKUP/FAULT): the
   * calls here are the peer's now (or will be at its takeover). They are forgotten without touching
   * the kernel table, whose entries conntrackd keeps in step with the peer's: deleting an anchor or
   * a media flow here would delete the peer's. Returns the number of dialogs forgotten.
   */
  standby(): number {
    const n = this.dialogs.size;
    for (const d of this.dialogs.values()) {
      for (const m of d.local) this.unref(d, m.privateIp ?? d.privateIp, m.privatePort);
      this.count(d, -1);
      this.touch(d);
      d.gauged = 0;
    }
    this.dialogs.clear();
    this.list.clear();
    this.pinholeTotal = 0;
    this.foreign.clear();
    this.byPublicPort.clear();
    if (n) this.counters.inc('d|handed_to_peer', n);
    return n;
  }

  private nextAnchor(family: 4 | 6): Tuple {
    const n = this.anchorSeq++;
    // loopback tuples that never carry traffic, unique per worker and dialog; an IPv6 dialog's
    // pinholes need an IPv6 anchor (one address family per ctnetlink message)
    const [src, dst] = this.anchorAddr[family === 6 ? 1 : 0];
    return { src, dst, sport: 1024 + (n % 64000), dport: 1024 + (Math.floor(n / 64000) % 64000), proto: IPPROTO_UDP };
  }

  /**
   * The source each media line's pinholes admit ('' = any). RFC 3264 §5: the far end's SDP names
   * where its media comes from; until it is known, the signaling peer (nf_conntrack_sip with
   * sip_direct_media=1 does the same). A hairpin call's far end is another phone behind this router
   * whose SDP names our public address: its media arrives from the private address holding the
   * public port the SDP names (the shared port table: the other leg may be another worker's), or
   * from the other leg when it is a dialog of this table; otherwise that pinhole admits any source.
   */
  private sourcesOf(d: Dialog, local: readonly SdpMediaMapping[]): string[] {
    if (this.opts.pinholeSource === 'any') return local.map(() => '');
    const fam = ipFamily(d.publicIp);
    const usable = (ip: string | undefined) => (ip && !isUnspecified(ip) && ipFamily(ip) === fam ? ip : undefined);
    return local.map((m, i) => {
      const far = d.remote?.[m.index];
      const r = usable(far?.ip);
      if (r && sameAddress(r, d.publicIp)) {
        const h = this.ports.holder(far!.port);
        if (h && ipFamily(h.ip) === fam) return h.ip;
        for (const o of this.dialogs.values()) if (o !== d && o.callId === d.callId && o.privateIp !== d.privateIp) return o.privateIp;
        return '';
      }
      return r ?? usable(d.sourceHint?.[i]) ?? usable(d.flow?.dst) ?? '';
    });
  }

  /**
   * The ports of `local` that other dialogs hold are this dialog's now (a phone that redials from
   * the same RTP port within the teardown grace, an inbound call answered on the port of the call
   * that just ended): their pinholes go with their anchor, and their media conntracks from those
   * private ports move to this dialog, so a conntrack object is owned by exactly one dialog and the
   * old dialog's release never deletes what the new call uses. Returns what each one gives up.
   */
  private handOver(d: Dialog, local: readonly SdpMediaMapping[]): readonly HandOver[] {
    // the endpoints' holders say whether any other dialog holds one of these ports: the rest runs
    // only then (a redial), never for an ordinary new call, which allocates nothing here
    let heldElsewhere = false;
    for (let i = 0; i < local.length && !heldElsewhere; i++) {
      const x = local[i]!, ip = x.privateIp ?? d.privateIp;
      const holders = entryCount(this.holders.get(endpointKey(ip, x.privatePort)));
      let mine = 0;
      for (let k = 0; k < d.local.length; k++) if (d.local[k]!.privatePort === x.privatePort && (d.local[k]!.privateIp ?? d.privateIp) === ip) mine = 1;
      heldElsewhere = holders > mine;
    }
    if (!heldElsewhere) return NO_HANDOVER;
    const out: HandOver[] = [];
    const ep = endpointKey;
    const mine = new Set<string | number>();
    const pubs = new Set<number>();
    for (const x of local) {
      mine.add(ep(x.privateIp ?? d.privateIp, x.privatePort));
      mine.add(ep(x.privateIp ?? d.privateIp, x.rtcpPrivatePort));
      pubs.add(x.publicPort);
    }
    // the dialogs that may give something up: those holding one of these private endpoints or
    // naming one of these public ports (the indexes, not a walk of the table: a redial on a trunk)
    const maybe = new Set<Dialog>();
    for (const k of mine) for (const o of entryList(this.holders.get(k))) maybe.add(o);
    for (const p of pubs) for (const o of entryList(this.byPublicPort.get(p))) maybe.add(o);
    for (const o of maybe) {
      if (o === d || !o.local.length) continue;
      const lines = o.local.filter((m) => mine.has(ep(m.privateIp ?? o.privateIp, m.privatePort)) || (sameAddress(o.publicIp, d.publicIp) && pubs.has(m.publicPort)));
      if (!lines.length) continue;
      this.unpin(o, false);
      const eps = new Set(lines.flatMap((m) => [ep(m.privateIp ?? o.privateIp, m.privatePort), ep(m.privateIp ?? o.privateIp, m.rtcpPrivatePort)]));
      // an ending dialog's media flows from those ports move; a live one keeps its own (the phone
      // uses one port for two calls: the new one has its pinholes, flows move on a clash only)
      if (o.endAt) {
        const moved = o.mediaCts.filter((t) => eps.has(ep(t.src, t.sport)));
        o.mediaCts = o.mediaCts.filter((t) => !eps.has(ep(t.src, t.sport)));
        for (const t of moved) if (!d.mediaCts.some((x) => sameFlow(x, t))) d.mediaCts.push(t);
        if (moved.length) this.counters.inc('f|handed_over', moved.length);
      }
      // the mapping records of those ports go with them (pin keeps those the new mapping names)
      const records = o.mapCts.filter((t) => eps.has(ep(t.src, t.sport)));
      if (records.length) {
        o.mapCts = o.mapCts.filter((t) => !eps.has(ep(t.src, t.sport)));
        d.mapCts = d.mapCts.concat(records.filter((t) => !d.mapCts.some((x) => sameFlow(x, t))));
      }
      this.counters.inc('h|handed_over', lines.length * 2);
      out.push({ o, lines });
    }
    return out;
  }

  /**
   * Makes `d`'s anchor and pinholes for `local`. During a queue batch (a router alone: no mapping
   * records) they ride the datagram of the batch's verdicts unless `ride` is false: no round trip of
   * their own, the pin counted as made, and a refusal the kernel answers within the next wake-up
   * undoes its share then (pinRefused). Otherwise one ctnetlink batch, its answers read at once.
   */
  private pin(d: Dialog, local: SdpMediaMapping[], now: number, ride = true): void {
    const retrying = d.pinFailed > 0;
    this.unpin(d, false);
    const given = this.handOver(d, local);
    const family = ipFamily(d.publicIp) === 6 ? 6 : 4;
    let anchor = this.nextAnchor(family);
    const sources = this.sourcesOf(d, local);
    const pinholes: PinholeSpec[] = [];
    let refused = 0;
    const low = !this.opts.allowLowMediaPorts;
    for (let i = 0; i < local.length; i++) {
      // RTP, then RTCP, of each media line
      const m = local[i]!, remoteIp = sources[i] || undefined, privateIp = m.privateIp ?? d.privateIp;
      if (m.privatePort < 1024 && low) refused++;
      else pinholes.push({ remoteIp, publicIp: d.publicIp, publicPort: m.publicPort, privateIp, privatePort: m.privatePort, cls: 1, timeoutSec: 180 });
      if (m.rtcpPrivatePort < 1024 && low) refused++;
      else pinholes.push({ remoteIp, publicIp: d.publicIp, publicPort: m.rtcpPublicPort, privateIp, privatePort: m.rtcpPrivatePort, cls: 1, timeoutSec: 180 });
    }
    // the ports are this dialog's from here on (refs before the old dialogs' go: the lease stays)
    const same = (a: SdpMediaMapping, b: SdpMediaMapping) => a.privatePort === b.privatePort && a.privateIp === b.privateIp;
    for (const m of local) if (!d.local.some((x) => same(x, m))) this.ref(d, m.privateIp ?? d.privateIp, m.privatePort);
    for (const m of d.local) if (!local.some((x) => same(x, m))) this.unref(d, m.privateIp ?? d.privateIp, m.privatePort);
    for (const m of d.local) listRemove(this.byPublicPort, m.publicPort, d);
    for (const m of local) listAdd(this.byPublicPort, m.publicPort, d);
    d.local = exact(local);
    const timeoutSec = Math.ceil(this.opts.idleMs / 1000) + 3600;
    const mark = anchorMark(dialogKey(d.callId, d.privateIp));
    // a router alone (node-id 0) has no standby to read the mapping back: no records, one conntrack
    // entry and one kernel create fewer per call
    const records = this.opts.node ? this.mappingRecords(d, local) : NO_RECORDS;
    const newRecords: SnatFlow[] = [];
    for (const t of records) if (!d.mapCts.some((x) => sameFlow(x, t))) newRecords.push({ t, publicIp: d.publicIp, timeoutSec, port: t.dport, mark });
    // the anchor, its pinholes and the new mapping records in one ctnetlink batch: one sendmsg,
    // which the kernel handles in order, so the anchor exists before its expectations (NetlinkSocket.requestBatch)
    let results: (NetlinkError | undefined)[] | undefined;
    let rode = false;
    if (ride && !records.length && !d.mapCts.length) {
      const a = anchor, list = pinholes;
      results = this.ct.rideAnchorWithExpectations(anchor, timeoutSec, pinholes, mark, (i, errno) => this.pinRefused(d, a, list, i, errno));
      rode = results !== undefined;
    }
    for (let tries = 0; !results; tries++) {
      try {
        results = this.ct.createAnchorWithExpectations(anchor, timeoutSec, pinholes, mark, newRecords);
      } catch (e) {
        // the tuple is taken: an anchor another daemon made (the peer of a router pair, synced by
        // conntrackd, numbers its anchors alike) or one left behind; take the next one
        if (e instanceof NetlinkError && e.errno === EEXIST && tries < 64) {
          anchor = this.nextAnchor(family);
          continue;
        }
        this.counters.inc('h|failed', pinholes.length);
        d.pinFailed = pinholes.length;
        d.pinnedAt = now;
        logLimited('anchor-refused', 1000, 'warn', 'media pinholes not created: anchor refused', { callId: d.callId, phone: d.privateIp, err: e as Error });
        this.finishHandOver(given, now);
        throw e;
      }
    }
    d.anchor = anchor;
    d.pinnedAt = now;
    d.pinCheckedAt = now;
    const before = d.sources;
    d.sources = sources;
    d.settled = NO_PORTS;
    if (refused) this.counters.inc('h|refused_low_port', refused);
    if (records.length || d.mapCts.length) this.keepRecords(d, records, newRecords, results.slice(pinholes.length));
    let made = 0;
    let failed: string[] | undefined;
    for (let i = 0; i < pinholes.length; i++) {
      const err = results[i];
      if (!err) made++;
      else (failed ??= []).push(`${pinholes[i]!.publicPort}: ${errnoName(err.errno) ?? `errno ${err.errno}`}`);
    }
    d.pinholes = made;
    this.gauge(d);
    if (made) this.counters.inc('h|created', made);
    if (failed) {
      this.counters.inc('h|failed', failed.length);
      logLimited('pin-refused', 1000, 'warn', 'media pinholes refused by the kernel', { callId: d.callId, phone: d.privateIp, failed: failed.join(', '), retry: d.pinRetries < PIN_RETRIES ? `in ${PIN_RETRY_MS} ms` : 'no more' });
    } else if (d.pinFailed && !rode) logLimited('pin-retried', 1000, 'info', 'media pinholes created on retry', { callId: d.callId, phone: d.privateIp, pinholes: made });
    d.pinFailed = failed?.length ?? 0;
    // a retry that rode is known to have been made only when no refusal comes: its count of retries stays
    if (!failed && !(rode && retrying)) d.pinRetries = 0;
    this.finishHandOver(given, now);
    local.forEach((m, i) => {
      if (sources[i] && sources[i] !== before[i]) this.clearEarlyHairpinMedia(d, m);
    });
  }

  /**
   * The kernel refused part of a pin that rode a verdicts' datagram (pin, Ctnetlink.settle), read
   * within the next wake-up: `index` 0 is the anchor, i + 1 the pinhole pinholes[i]. Its share is
   * undone, counted and logged as pin() does with a refusal it reads at once, and the sweep retries
   * it; nothing when the dialog has been pinned again or released since (it holds another anchor, or
   * none). pin() counted the pinhole as created when it was sent: a refused one counts as failed too.
   */
  private pinRefused(d: Dialog, anchor: Tuple, pinholes: readonly PinholeSpec[], index: number, errno: number): void {
    if (d.anchor !== anchor) return;
    this.changed.add(d);
    if (index === 0) {
      // the kernel handled the pinholes after their anchor: without it they were refused too (those
      // answers follow and find the dialog without this anchor), or, when its tuple was taken (EEXIST:
      // an anchor left behind by an earlier run), hung on that entry: deleted again by their tuple
      if (errno === EEXIST) for (const e of pinholes) this.ct.deleteExpectationSoon(anchor, e, IGNORE_ERRNO);
      d.anchor = undefined;
      d.pinholes = 0;
      this.gauge(d);
      if (errno === EEXIST) {
        // the next anchors, as pin() tries them at once (a round trip of its own: up to 64 tuples)
        try { this.pin(d, d.local, this.lastNow, false); } catch { /* counted and logged by pin; retried by the sweep */ }
        return;
      }
      this.counters.inc('h|failed', pinholes.length);
      d.pinFailed = pinholes.length;
      logLimited('anchor-refused', 1000, 'warn', 'media pinholes not created: anchor refused', { callId: d.callId, phone: d.privateIp, errno: errnoName(errno) ?? String(errno) });
      return;
    }
    const e = pinholes[index - 1];
    if (!e || d.pinholes <= 0) return;
    d.pinholes--;
    this.gauge(d);
    this.counters.inc('h|failed');
    d.pinFailed++;
    logLimited('pin-refused', 1000, 'warn', 'media pinholes refused by the kernel', { callId: d.callId, phone: d.privateIp, failed: `${e.publicPort}: ${errnoName(errno) ?? `errno ${errno}`}`, retry: d.pinRetries < PIN_RETRIES ? `in ${PIN_RETRY_MS} ms` : 'no more' });
  }

  /**
   * A hairpin call's media that reached this router before its pinhole admitted the other phone
   * (that phone answered and sent RTP while its answer was still on its way round through the
   * provider): the kernel confirmed an entry other phone -> our public port delivered to the router
   * itself, and every later packet of that stream follows it rather than the pinhole, so the phone
   * would never hear the other one. Such an entry goes once the pinhole admits the other phone; the
   * next packet then meets the pinhole. One lookup per media line, only when its source changes.
   */
  private clearEarlyHairpinMedia(d: Dialog, m: SdpMediaMapping): void {
    const far = d.remote?.[m.index];
    if (!far || !sameAddress(far.ip, d.publicIp)) return;
    const h = this.ports.holder(far.port);
    if (!h) return;
    const phone = m.privateIp ?? d.privateIp;
    for (const [sport, dport, priv] of [[h.port, m.publicPort, m.privatePort], [h.port + 1, m.rtcpPublicPort, m.rtcpPrivatePort]] as const) {
      const t: Tuple = { src: h.ip, sport, dst: d.publicIp, dport, proto: IPPROTO_UDP };
      try {
        const c = this.ct.get(t);
        // one the pinhole made is DNATed to this phone: it stays
        if (!c || (sameAddress(c.reply.src, phone) && c.reply.sport === priv)) continue;
        this.ct.delete(t);
        this.counters.inc('f|replaced');
        log('info', 'early hairpin media entry removed: the pinhole takes the stream now', { callId: d.callId, flow: anchorKey(t) });
      } catch { /* gone already, or the kernel is busy: the stream stays as it is */ }
    }
  }

  /**
   * A dialog's media mapping records: per media line an entry phone:private-port -> MAPPING_TARGET:
   * public-port with source NAT to public-ip:public-port and the dialog's mark (a second one for
   * RTCP when it is not on the next ports). Loopback destinations carry no traffic; the entries are
   * there for conntrackd, which syncs conntrack entries faithfully (tuples, NAT, mark) but
   * expectations without their NAT and class: a router pair's standby reads the call's media
   * mapping back from them at a takeover even while the call has no media conntrack yet (ringing).
   * Made only in a router pair (node-id set).
   */
  private mappingRecords(d: Dialog, local: readonly SdpMediaMapping[]): Tuple[] {
    const dst = MAPPING_TARGET[ipFamily(d.publicIp) === 6 ? 6 : 4];
    const out: Tuple[] = [];
    for (const m of local) {
      const src = m.privateIp ?? d.privateIp;
      if (ipFamily(src) !== ipFamily(d.publicIp)) continue;
      out.push({ src, sport: m.privatePort, dst, dport: m.publicPort, proto: IPPROTO_UDP });
      if (m.rtcpPrivatePort !== m.privatePort + 1 || m.rtcpPublicPort !== m.publicPort + 1) out.push({ src, sport: m.rtcpPrivatePort, dst, dport: m.rtcpPublicPort, proto: IPPROTO_UDP });
    }
    return out;
  }

  /**
   * After a pin: the dialog's records are `records`. Those made now (`errors` per `made`) join the
   * kept ones; one that already existed is taken from the dialog that held it, or (left by a run
   * that ended, or naming an old public address) made again; those no longer named are deleted.
   */
  private keepRecords(d: Dialog, records: readonly Tuple[], made: readonly SnatFlow[], errors: readonly (NetlinkError | undefined)[]): void {
    const stale = d.mapCts.filter((t) => !records.some((x) => sameFlow(x, t)));
    const kept = d.mapCts.filter((t) => records.some((x) => sameFlow(x, t)));
    made.forEach((f, i) => {
      const err = errors[i];
      if (err && err.errno === EEXIST) {
        let owner: Dialog | undefined;
        for (const o of this.dialogs.values()) if (o !== d && o.mapCts.some((x) => sameFlow(x, f.t))) owner = o;
        if (owner) owner.mapCts = owner.mapCts.filter((x) => !sameFlow(x, f.t));
        else {
          try {
            this.ct.delete(f.t);
            const [again] = this.ct.createSnatBatch([f]);
            if (again) throw again;
          } catch (e) {
            log('debug', 'media mapping record not made again', { callId: d.callId, record: anchorKey(f.t), err: e as Error });
            return;
          }
        }
      } else if (err) {
        log('debug', 'media mapping record not made', { callId: d.callId, record: anchorKey(f.t), err });
        return;
      }
      kept.push(f.t);
    });
    d.mapCts = kept;
    if (stale.length) {
      try { this.ct.deleteBatch(stale); } catch { /* they expire with their timeout */ }
    }
  }

  /** The dialogs that gave ports up keep the rest of their media (re-pinned without those lines); their refs on the ports go. */
  private finishHandOver(given: readonly HandOver[], now: number): void {
    for (const { o, lines } of given) {
      o.local = o.local.filter((m) => !lines.includes(m));
      for (const m of lines) this.dropLine(o, m);
      this.touch(o);
      if (o.local.length && !o.endAt) {
        try { this.pin(o, o.local, now); } catch { /* counted and logged by pin; retried by the sweep */ }
      }
    }
  }

  /** The phone's outbound RTP/RTCP flows, pre-created with SNAT to the advertised public ports: all new ones in one ctnetlink batch. */
  private ensureMediaFlows(d: Dialog): void {
    let flows: { t: Tuple; publicIp: string; timeoutSec: number; port: number; mark?: number }[] | undefined;
    for (const m of d.local) {
      const r = d.remote?.[m.index];
      // hairpin: the far end is another phone behind this router (its SDP names our public
      // address). Its pinhole DNATs this phone's media to it; a pre-created flow to our own public
      // address would catch that media first and deliver it to the router itself (baresip ↔
      // baresip through the provider: no audio either way)
      if (!r || sameAddress(r.ip, d.publicIp)) continue;
      for (const [priv, rport, pub] of [[m.privatePort, r.port, m.publicPort], [m.rtcpPrivatePort, r.rtcpPort, m.rtcpPublicPort]] as const) {
        const t: Tuple = { src: m.privateIp ?? d.privateIp, sport: priv, dst: r.ip, dport: rport, proto: IPPROTO_UDP };
        if (d.mediaCts.some((x) => sameFlow(x, t)) || flows?.some((f) => sameFlow(f.t, t))) continue;
        (flows ??= []).push({ t, publicIp: d.publicIp, timeoutSec: 60, port: pub });
      }
    }
    if (!flows) return;
    // the anchor's mark: a router pair's standby finds the call's flows by it (takeover)
    const mark = anchorMark(dialogKey(d.callId, d.privateIp));
    for (const f of flows) f.mark = mark;
    let errors: (NetlinkError | undefined)[];
    try {
      errors = this.ct.createSnatBatch(flows);
    } catch {
      errors = flows.map(() => new NetlinkError(0, 'ctnetlink batch failed'));
    }
    flows.forEach((f, i) => {
      const e = errors[i];
      if (!e) this.counters.inc('f|created');
      else if (e.errno === EEXIST) this.claimFlow(d, f);
      else {
        this.counters.inc('f|failed');
        log('warn', 'media flow not created', { callId: d.callId, flow: anchorKey(f.t), err: e });
      }
    });
    // the list grows once per answer: kept at its size (a list pushed to from empty reserves 17 slots)
    d.mediaCts = d.mediaCts.length ? d.mediaCts.concat(flows.map((f) => f.t)) : flows.map((f) => f.t);
  }

  /**
   * The media flow `f` already has an entry: another dialog's (the phone's last call, in its grace,
   * to the same far end) becomes this dialog's, so that dialog's release no longer deletes it; one
   * no dialog owns (the kernel made it from the phone's own packets) is kept if it maps to the port
   * the SDP advertised, and made again with that mapping if not (the far end sends there).
   */
  private claimFlow(d: Dialog, f: { t: Tuple; publicIp: string; timeoutSec: number; port: number; mark?: number }): void {
    for (const o of this.dialogs.values()) {
      if (o === d || !o.mediaCts.some((x) => sameFlow(x, f.t))) continue;
      o.mediaCts = o.mediaCts.filter((x) => !sameFlow(x, f.t));
      this.counters.inc('f|handed_over');
      return;
    }
    try {
      const c = this.ct.get(f.t);
      if (!c) {
        // the clash is on the reply side: the far end's media already made an entry to the public port
        if (!this.dropStrayInbound(f)) return;
        const [err] = this.ct.createSnatBatch([f]);
        if (err) throw err;
        this.counters.inc('f|replaced');
        return;
      }
      // found by its reply direction: the entry the far end's media made through the pinhole
      const byReply = !sameFlow(c.orig, f.t);
      if (byReply ? c.orig.dport === f.port && sameAddress(c.orig.dst, f.publicIp) : c.reply.dport === f.port && sameAddress(c.reply.dst, f.publicIp)) return;
      this.ct.delete(f.t);
      let [err] = this.ct.createSnatBatch([f]);
      // the phone's media had been NATed elsewhere (after a conntrack flush: MASQUERADE's own choice)
      // and the far end's, sent to the announced port, ended on the router meanwhile
      if (err?.errno === EEXIST && this.dropStrayInbound(f)) [err] = this.ct.createSnatBatch([f]);
      if (err) throw err;
      this.counters.inc('f|replaced');
    } catch (e) {
      this.counters.inc('f|failed');
      log('warn', 'media flow maps to another public port than the SDP says and could not be made again', { callId: d.callId, flow: anchorKey(f.t), port: f.port, err: e as Error });
    }
  }

  /**
   * The entry the far end's media made to the public port of flow `f`, unless its pinhole made it
   * (DNATed to this phone's port: it carries the phone's media too). Any other (media that reached
   * this router before the pinhole, a router pair's standby before its takeover, media after a
   * conntrack flush: the packets end on the router) would catch the far end's media for its whole
   * life: it is deleted. True when one was.
   */
  private dropStrayInbound(f: { t: Tuple; publicIp: string; port: number }): boolean {
    const inbound: Tuple = { src: f.t.dst, sport: f.t.dport, dst: f.publicIp, dport: f.port, proto: f.t.proto };
    const r = this.ct.get(inbound);
    if (!r || (sameAddress(r.reply.src, f.t.src) && r.reply.sport === f.t.sport)) return false;
    this.ct.delete(inbound);
    return true;
  }

  private pruneFlows(d: Dialog): void {
    d.mediaCts = d.mediaCts.filter((t) => {
      if (d.remote?.some((r) => r && r.ip === t.dst && (r.port === t.dport || r.rtcpPort === t.dport))) return true;
      try { this.ct.delete(t); } catch { /* gone already */ }
      this.counters.inc('f|removed');
      return false;
    });
  }

  /** Deletes the anchor (and with it every pending pinhole); optionally the media flows too. */
  private unpin(d: Dialog, releasePorts: boolean): void {
    this.changed.add(d); // and pin(), which starts here: the anchor, pinholes and ports move
    if (d.anchor) {
      // no round trip of its own: in the verdicts' datagram during a queue batch, with the other
      // releases of a sweep otherwise (Ctnetlink.deleteSoon); its pinholes go with it
      const callId = d.callId;
      this.ct.deleteSoon(d.anchor, (errno) => log('warn', 'anchor not deleted: its pinholes expire with their timeout', { callId, errno: errnoName(errno) }));
      if (d.pinholes) this.counters.inc('h|removed', d.pinholes);
      d.anchor = undefined;
      d.pinholes = 0;
      d.settled = NO_PORTS;
      this.gauge(d);
    }
    if (releasePorts) {
      for (const m of d.local) this.dropLine(d, m);
      d.local = [];
      if (d.mapCts.length) {
        try { this.ct.deleteBatch(d.mapCts); } catch { /* they expire with their timeout */ }
        d.mapCts = NO_TUPLES;
      }
    }
  }

  private release(d: Dialog, cutMedia: boolean, why: string = cutMedia ? 'ended' : 'expired'): void {
    this.unpin(d, true);
    if (cutMedia) for (const t of d.mediaCts) this.ct.deleteSoon(t, IGNORE_ERRNO);
    this.drop(dialogKey(d.callId, d.privateIp));
    this.count(d, -1);
    this.touch(d);
    this.counters.inc(`d|${why}`);
  }

  /** Why a new dialog may not be created, or undefined when it may. */
  private admit(source: string): string | undefined {
    if (this.opts.maxDialogs && Atomics.load(this.global, 0) >= this.opts.maxDialogs) return 'limit_global';
    if (this.opts.maxDialogsPerSource && Atomics.load(this.global, this.sourceSlot(source)) >= this.opts.maxDialogsPerSource) return 'limit_source';
    return undefined;
  }

  /** Sum of the packet counters of the dialog's media flows; undefined when none is left. */
  private mediaPackets(d: Dialog): number | undefined {
    let sum = 0, found = false;
    for (const t of d.mediaCts) {
      const c = this.ct.get(t);
      if (!c) continue;
      found = true;
      sum += c.packets;
    }
    return found ? sum : undefined;
  }

  /** `d`'s media line `m` is in both indexes (its private endpoint held, its public port named) */
  private holdLine(d: Dialog, m: SdpMediaMapping): void {
    this.ref(d, m.privateIp ?? d.privateIp, m.privatePort);
    listAdd(this.byPublicPort, m.publicPort, d);
  }

  /** `d` gives its media line `m` up (holdLine undone: the last hold of the endpoint returns its lease) */
  private dropLine(d: Dialog, m: SdpMediaMapping): void {
    this.unref(d, m.privateIp ?? d.privateIp, m.privatePort);
    listRemove(this.byPublicPort, m.publicPort, d);
  }

  /** `d` holds private media endpoint ip:port (one of its lines) */
  private ref(d: Dialog, ip: string, port: number): void {
    listAdd(this.holders, endpointKey(ip, port), d);
  }

  /** `d` gives up one hold of ip:port; the last hold returns the endpoint's port lease */
  private unref(d: Dialog, ip: string, port: number): void {
    if (listRemove(this.holders, endpointKey(ip, port), d)) return;
    this.ports.release(ip, port);
  }

  /** The pinholes `pin` created for `d` (the RTP and RTCP of each media line, under its source), with the far-end flow each backs up. */
  private pinnedSpecs(d: Dialog): { spec: PinholeSpec; flow: Tuple | undefined }[] {
    const out: { spec: PinholeSpec; flow: Tuple | undefined }[] = [];
    d.local.forEach((m, i) => {
      const r = d.remote?.[m.index];
      for (const [pub, priv, rport] of [[m.publicPort, m.privatePort, r?.port], [m.rtcpPublicPort, m.rtcpPrivatePort, r?.rtcpPort]] as const) {
        if (priv < 1024 && !this.opts.allowLowMediaPorts) continue;
        const privateIp = m.privateIp ?? d.privateIp;
        const flow = r && rport && !isUnspecified(r.ip) && !sameAddress(r.ip, d.publicIp) ? { src: privateIp, sport: priv, dst: r.ip, dport: rport, proto: IPPROTO_UDP } : undefined;
        out.push({ spec: { remoteIp: d.sources[i] || undefined, publicIp: d.publicIp, publicPort: pub, privateIp, privatePort: priv, cls: 1, timeoutSec: 180 }, flow });
      }
    });
    return out;
  }

  /** Dialogs found due for a pinhole check and not checked yet (checkPinholesSlice). */
  get pinChecksPending(): number {
    return this.pinQueue.size;
  }

  /**
   * Compares the pending pinholes of up to `max` due dialogs with the kernel (one ctnetlink batch);
   * true while more are waiting and may run now (PIN_CHECK_RATE). The worker runs it between packets
   * (setImmediate), so a round's checks never hold the queue for long (at 1k calls/s, 32 dialogs in
   * one go held it 1.5-5 ms).
   */
  checkPinholesSlice(wallNow: number, max = PIN_CHECKS_PER_SLICE): boolean {
    return this.checkSlice(this.time(wallNow), max);
  }

  private checkSlice(now: number, max: number): boolean {
    const due: Dialog[] = [];
    if (max !== Infinity) {
      this.pinTokens = Math.min(PIN_CHECK_RATE / 10, this.pinTokens + ((now - this.pinTokensAt) * PIN_CHECK_RATE) / 1000);
      this.pinTokensAt = now;
      max = Math.min(max, Math.floor(this.pinTokens));
    }
    for (const d of this.pinQueue) {
      if (due.length >= max) break;
      this.pinQueue.delete(d);
      // released, or re-pinned without pinholes, since it was found due
      if (d.anchor && d.pinholes > 0 && this.dialogs.get(dialogKey(d.callId, d.privateIp)) === d) due.push(d);
    }
    this.pinTokens -= due.length;
    try {
      this.checkPinholes(due, now);
    } catch (e) {
      log('warn', 'pinhole check failed', { dialogs: due.length, err: e as Error });
    }
    // out of checks for now: the next sweep tick starts the slices again
    return this.pinQueue.size > 0 && this.pinTokens >= 1;
  }

  /**
   * Keeps a dialog's pending pinholes as the kernel holds them. A pinhole whose media flow has
   * carried the far end's packets (IPS_SEEN_REPLY on the flow pre-created toward the far end's SDP
   * address and port) is no longer needed: media arrives through the flow, so it is removed
   * ('retired'). One the kernel no longer holds was used by a connection (the far end sends from
   * another port than its SDP says) or expired ('used').
   */
  private checkPinholes(due: readonly Dialog[], now: number): void {
    const items: { d: Dialog; anchor: Tuple; spec: PinholeSpec; flow: Tuple | undefined }[] = [];
    for (const d of due) {
      d.pinCheckedAt = now;
      for (const { spec, flow } of this.pinnedSpecs(d)) if (!d.settled.includes(spec.publicPort)) items.push({ d, anchor: d.anchor!, spec, flow });
    }
    // the kernel's answers for every due pinhole in one batch (a round trip each would cost the
    // worker ~10 µs per pinhole per check)
    const states = this.ct.pinholeStates(items);
    items.forEach(({ d, anchor, spec }, i) => {
      const { pending, ct } = states[i]!;
      if (ct && ct.status & IPS_SEEN_REPLY) {
        // (with the slice's other retirements in one batch: it expires with its timeout if that fails)
        if (pending) this.ct.deleteExpectationSoon(anchor, spec, IGNORE_ERRNO);
        this.counters.inc('h|retired');
      } else if (!pending) this.counters.inc('h|used');
      else return;
      d.settled = d.settled.concat(spec.publicPort);
      d.pinholes = Math.max(0, d.pinholes - 1);
      this.gauge(d);
      this.touch(d);
    });
    this.ct.flushDeletes();
  }

  /**
   * How long after its last check a dialog's pending pinholes are compared with the kernel again.
   * With the far end's SDP known, a pinhole is retired as soon as the call's media flow toward that
   * address has carried the far end's packets: checks come early (1 s), then as the call ages (a
   * quarter of its age, 30 s at most). Before it (an offer not answered yet) there is no media flow
   * to retire a pinhole by, and the answer's SDP re-pins the call to the far end's address anyway: a
   * check could only count a pinhole used or expired, so it comes every 30 s. A trunk's ringing and
   * unanswered calls made ~13 checks each in their first 30 s (two expectation look-ups each, a walk
   * of a bucket of the kernel's expectation hash: 3.6% of the CPU of 1500 unanswered INVITE/s, stop 37).
   */
  private checkInterval(d: Dialog, now: number): number {
    if (!d.remote?.length) return PIN_CHECK_MAX_MS;
    return Math.min(PIN_CHECK_MAX_MS, Math.max(PIN_CHECK_MS, (now - d.pinnedAt) / 4));
  }

  /** the table's dialogs again, for the sweep's walk in slices (put/drop keep it and the map together) */
  private readonly list = new SlotList<Dialog>();

  /** `d` under `key` in the table (and the list), in place of whichever dialog was there */
  private put(key: string, d: Dialog): void {
    const old = this.dialogs.get(key);
    if (old === d) return;
    if (old) {
      this.list.remove(old);
      this.gauge(old);
    }
    this.dialogs.set(key, d);
    this.list.add(d);
    this.gauge(d);
  }

  /** the dialog under `key` out of the table and the list */
  private drop(key: string): void {
    const d = this.dialogs.get(key);
    if (!d) return;
    this.dialogs.delete(key);
    this.list.remove(d);
    this.gauge(d);
  }

  /** dialogs found due for a pinhole check by the sweep, in order (checkPinholesSlice) */
  private readonly pinQueue = new Set<Dialog>();
  /** dialogs whose kernel state a conntrack flush removed, re-made a few at a time (repairSlice) */
  private readonly repairQueue = new Set<Dialog>();
  /** checks left (PIN_CHECK_RATE a second, a tenth of a second's worth at most) and when they were counted */
  private pinTokens = 0;
  private pinTokensAt = 0;
  /** pin retries the running sweep slice may still make (PIN_RETRIES_PER_SLICE) */
  private retriesLeft = 0;
  /** signaling flows raised lately (anchorKey of the flow -> when): one keep-alive per flow and refresh interval, whatever the number of its dialogs */
  private readonly flowsKept = new Map<string, number>();

  /**
   * Ends dialogs whose teardown grace passed, whose timers ran out, or that were idle too long; checks
   * due pinholes (one ctnetlink batch) and keeps confirmed calls' signaling flows alive. With a
   * `budget` it looks at that many dialogs and goes on from there at the next call, so that no call
   * costs the worker time that grows with the table (the worker sweeps a tenth of it every 100 ms);
   * without one it goes through the whole table. True when a round of the table ended.
   */
  sweep(wallNow: number, budget = Infinity): boolean {
    const now = this.time(wallNow);
    const o = this.opts;
    const keep: Tuple[] = [];
    this.retriesLeft = budget === Infinity ? Infinity : PIN_RETRIES_PER_SLICE;
    const finished = this.list.walk(budget, (d) => this.sweepOne(d, now, keep));
    this.keepFlows(keep, now);
    // the slice's releases leave together (Ctnetlink.deleteSoon), not a round trip each
    this.ct.flushDeletes();
    // a whole sweep (tests, a clean stop) checks what it found due at once; a sweep in slices leaves
    // it to checkPinholesSlice between packets
    if (budget === Infinity) while (this.checkSlice(now, Infinity)) { /* all */ }
    if (!finished) return false;
    // once a round: the flows kept longer ago than an interval are due again (one entry per phone flow)
    for (const [k, t] of this.flowsKept) if (now - t >= SIGNALING_REFRESH_MS) this.flowsKept.delete(k);
    // max-idle-dialogs: the longest-idle dialogs beyond N go first (once a round of the table)
    if (o.maxIdleDialogs && this.dialogs.size > o.maxIdleDialogs) {
      const byIdle = [...this.dialogs.values()].sort((a, b) => a.lastSeen - b.lastSeen);
      for (const d of byIdle.slice(0, this.dialogs.size - o.maxIdleDialogs)) this.release(d, false, 'evicted');
      this.ct.flushDeletes();
    }
    return true;
  }

  private sweepOne(d: Dialog, now: number, keep: Tuple[]): void {
    const o = this.opts;
    if (d.endAt && now >= d.endAt) return this.release(d, true);
    if (!d.confirmed && o.provisionalMs && now - d.created > o.provisionalMs) return this.release(d, true, 'provisional_expired');
    if (o.maxCallMs && now - d.created > o.maxCallMs) return this.release(d, true, 'max_duration');
    // RFC 4028 §10: no refresh within the session interval (plus 32 s for the in-flight refresh)
    if (d.sessionMs && now - d.refreshedAt > d.sessionMs + TERMINATION_TIMEOUT_MS) return this.release(d, true, 'session_expired');
    if (now - d.lastSeen > o.idleMs) return this.release(d, false);
    if (o.mediaInactivityMs && d.confirmed && d.mediaCts.length && now - d.mediaCheckedAt >= Math.min(10000, o.mediaInactivityMs / 2)) {
      d.mediaCheckedAt = now;
      const packets = this.mediaPackets(d);
      if (packets !== undefined && packets > d.mediaPackets) {
        d.mediaPackets = packets;
        d.mediaSeenAt = now;
      } else if (now - d.mediaSeenAt >= o.mediaInactivityMs) return this.release(d, true, 'media_inactive');
    }
    if (d.endAt) return;
    try {
      // a pin the kernel refused (in part) is made again, a few times, then left to the next SDP
      if (d.pinFailed && d.local.length && d.pinRetries < PIN_RETRIES && now - d.pinnedAt >= PIN_RETRY_MS && this.retriesLeft > 0) {
        this.retriesLeft--;
        d.pinRetries++;
        this.counters.inc('h|retried');
        this.pin(d, d.local, now);
      } else if (d.anchor && d.pinholes > 0 && now - d.pinCheckedAt >= this.checkInterval(d, now) && !this.pinQueue.has(d) && this.pinQueue.size < PIN_QUEUE_MAX) this.pinQueue.add(d);
    } catch (e) {
      log('warn', 'pinhole retry failed', { callId: d.callId, err: e as Error });
    }
    // a call can be silent on its signaling flow for far longer than the kernel's UDP timeouts
    // (120 s): without its conntrack entry the far end's BYE or re-INVITE finds no NAT binding.
    // TCP: conntrack's established timeout (5 days) already outlives the call; a shorter one must not be set
    if (!d.flow || d.flow.proto !== IPPROTO_UDP || !d.confirmed || now - (d.flowKeptAt ?? 0) < SIGNALING_REFRESH_MS) return;
    d.flowKeptAt = now;
    // the dialogs of one phone share its signaling flow: it is raised once a refresh interval, and the
    // slice's flows in one batch (keepFlows)
    const k = anchorKey(d.flow);
    const kept = this.flowsKept.get(k);
    if (kept !== undefined && now - kept < SIGNALING_REFRESH_MS) return;
    this.flowsKept.set(k, now);
    keep.push(d.flow);
  }

  /** The signaling flows a sweep slice found due, raised to SIGNALING_TIMEOUT_SEC in one ctnetlink batch. */
  private keepFlows(keep: Tuple[], now: number): void {
    if (!keep.length) return;
    let results: (boolean | Error)[];
    try {
      results = this.ct.setTimeouts(keep, SIGNALING_TIMEOUT_SEC);
    } catch {
      results = keep.map(() => new Error('netlink'));
    }
    for (const r of results) this.counters.inc(r === true ? 'd|signaling_kept_alive' : r === false ? 'd|signaling_flow_gone' : 'd|signaling_keepalive_failed');
  }

  /**
   * The WAN address changed from `old` to `now`: the pinholes and pre-created media flows of every
   * dialog on the old address go (nothing reaches it any more, and a flow SNATed to it would send
   * the phone's RTP from a dead address); the dialog stays, on the new address, and re-pins at its
   * next SDP (a re-INVITE through the new binding, RFC 3261 §14). Returns the dialogs moved.
   */
  readdress(old: string, now: string): number {
    let n = 0;
    for (const d of this.dialogs.values()) {
      if (d.publicIp !== old) continue;
      this.unpin(d, false);
      for (const t of d.mediaCts) try { this.ct.delete(t); } catch { /* gone already */ }
      d.mediaCts = [];
      // the mapping records name the old address too: made again with the next pin
      if (d.mapCts.length) {
        try { this.ct.deleteBatch(d.mapCts); } catch { /* they expire with their timeout */ }
        d.mapCts = NO_TUPLES;
      }
      d.publicIp = now;
      d.flow = undefined;
      d.pinFailed = 0;
      this.touch(d);
      n++;
    }
    return n;
  }

  /**
   * The kernel's conntrack table was flushed (`conntrack -F`, a firewall script; the worker's sentinel
   * entry says so): every call's anchor, pending pinholes, media flows and mapping records went with
   * it. The phone's next RTP is then NATed by MASQUERADE to a port of its choosing, not the public
   * port the call's SDP announced, and the far end's media to that port meets nothing: one-way audio
   * until a re-INVITE. Each live dialog with media is queued to be made again on the same public
   * ports (repairSlice). Returns the number queued.
   */
  afterFlush(): number {
    for (const d of this.dialogs.values()) {
      if (d.endAt || !d.local.length) continue;
      // what the table says the kernel holds, it no longer does
      d.anchor = undefined;
      d.pinholes = 0;
      d.settled = NO_PORTS;
      this.gauge(d);
      d.mediaCts = [];
      d.mapCts = NO_TUPLES;
      this.pinQueue.delete(d);
      this.touch(d);
      this.repairQueue.add(d);
    }
    return this.repairQueue.size;
  }

  /** Dialogs afterFlush queued and repairSlice has not made again yet. */
  get repairsPending(): number {
    return this.repairQueue.size;
  }

  /**
   * Makes up to `max` dialogs of the repair queue again: the media flows first (toward the far end's
   * SDP address, SNATed to the announced ports: claimFlow replaces the entry the phone's RTP made
   * meanwhile, whose reply tuple would otherwise clash with what the far end's media makes through
   * a pinhole), then the anchor and pinholes. True while more wait; the worker runs it between packets.
   */
  repairSlice(wallNow: number, max = REPAIRS_PER_SLICE): boolean {
    const now = this.time(wallNow);
    let n = 0;
    for (const d of this.repairQueue) {
      if (n++ >= max) break;
      this.repairQueue.delete(d);
      // ended, released or re-pinned by a message of its own since
      if (d.endAt || d.anchor || !d.local.length || this.dialogs.get(dialogKey(d.callId, d.privateIp)) !== d) continue;
      try {
        if (d.remote) this.ensureMediaFlows(d);
        this.pin(d, d.local, now);
        this.counters.inc('d|repaired_after_flush');
      } catch (e) {
        log('warn', 'call not made again after a conntrack flush: its media waits for its next SDP', { callId: d.callId, phone: d.privateIp, err: e as Error });
      }
    }
    this.ct.flushDeletes();
    return this.repairQueue.size > 0;
  }

  /** Releases everything (shutdown): pinholes go, established media keeps flowing in the kernel. */
  closeAll(): void {
    for (const d of [...this.dialogs.values()]) this.release(d, false);
    this.ct.flushDeletes();
  }
}
