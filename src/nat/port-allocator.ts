/**
 * Public media ports, unique across all workers of the router: a SharedArrayBuffer of one slot per
 * even/odd port pair (RTP even, RTCP odd: RFC 3550 §11), claimed with Atomics.compareExchange so
 * worker threads never hand out the same pair. Leases (which private endpoint holds which pair)
 * are per worker: a phone's signaling flows are balanced to one queue, so one worker sees its SDP.
 * Beside each pair's owner the buffer holds the private endpoint it maps to (the holder, IPv4 or
 * IPv6), so any worker can tell which phone behind this router a public port belongs to: the two
 * legs of a call between two phones behind this router (hairpin) may be balanced to different workers.
 */
import { SlotList } from '../collections/slot-list';
import { endpointKey, formatIpv6, writeIpv4, writeIpv6 } from '../packet/addr';

/** pairs of ports 0-65535 */
const PAIRS = 32768;
/** per pair, Int32 words of the holder's record: a sequence (odd while its writer writes), the address family (0: none), the RTP port */
const META = 4;
const M_SEQ = 0, M_FAMILY = 1, M_PORT = 2;

/** A private media endpoint: the phone (or media server) behind this router holding a public pair. */
export interface Holder {
  ip: string;
  /** its private RTP port */
  port: number;
}

export interface Lease {
  publicPort: number; // even: RTP; +1 is RTCP
  lastSeen: number;
  /** its key in the lease map (endpointKey) */
  key: string | number;
  /** its index in the sweep's list (SlotList) */
  slot: number;
}

export class PortAllocator {
  private readonly slots: Int32Array;
  /** per pair: the holder's record (META words) and its address (16 octets; an IPv4 address in the first 4) */
  private readonly meta: Int32Array;
  private readonly addr: Uint8Array;
  /** [0]: pairs of [min, max] claimed by all workers, so that an exhausted range is answered at once, not by a scan of every pair */
  private readonly claimed: Int32Array;
  private readonly leases = new Map<string | number, Lease>();
  /** the leases again, for the sweep's walk in slices */
  private readonly list = new SlotList<Lease>();
  private cursor: number;

  /**
   * @param shared from PortAllocator.createShared(), the same buffer for every worker
   * @param owner non-zero id of this worker, stored in the slots it holds
   */
  constructor(shared: SharedArrayBuffer, private readonly owner: number, private readonly min: number, private readonly max: number, private readonly leaseMs: number) {
    this.slots = new Int32Array(shared, 0, PAIRS);
    this.meta = new Int32Array(shared, PAIRS * 4, PAIRS * META);
    this.addr = new Uint8Array(shared, PAIRS * 4 * (1 + META), PAIRS * 16);
    this.claimed = new Int32Array(shared, PAIRS * 4 * (1 + META) + PAIRS * 16, 1);
    this.cursor = this.firstPair() + ((owner * 7919) % Math.max(1, this.pairCount()));
  }

  static createShared(): SharedArrayBuffer {
    return new SharedArrayBuffer(PAIRS * 4 * (1 + META) + PAIRS * 16 + 4);
  }

  /**
   * The private endpoint that public RTP or RTCP port `publicPort` maps to, whichever worker holds
   * it; undefined when the pair is free (or its record is being rewritten: a seqlock, retried).
   */
  holder(publicPort: number): Holder | undefined {
    const pair = publicPort >> 1;
    if (pair < 0 || pair >= PAIRS) return undefined;
    const m = pair * META, o = pair * 16, a = this.addr;
    for (let tries = 0; tries < 4; tries++) {
      const seq = Atomics.load(this.meta, m + M_SEQ);
      if (seq & 1) continue;
      if (Atomics.load(this.slots, pair) === 0) return undefined;
      const family = Atomics.load(this.meta, m + M_FAMILY), port = Atomics.load(this.meta, m + M_PORT);
      const ip = family === 4 ? `${a[o]}.${a[o + 1]}.${a[o + 2]}.${a[o + 3]}` : family === 6 ? formatIpv6(a, o) : undefined;
      if (Atomics.load(this.meta, m + M_SEQ) === seq) return ip === undefined ? undefined : { ip, port };
    }
    return undefined;
  }

  private hold(pair: number, ip: string, port: number): void {
    const m = pair * META, o = pair * 16;
    Atomics.add(this.meta, m + M_SEQ, 1);
    const fam = writeIpv4(ip, this.addr, o) ? 4 : writeIpv6(ip, this.addr, o) ? 6 : 0;
    Atomics.store(this.meta, m + M_FAMILY, fam);
    Atomics.store(this.meta, m + M_PORT, port);
    Atomics.add(this.meta, m + M_SEQ, 1);
  }

  /** Gives pair up if this worker holds it (its record first: a reader never sees our claim with another's record). */
  private free(pair: number): void {
    if (Atomics.load(this.slots, pair) !== this.owner) return;
    Atomics.store(this.meta, pair * META + M_FAMILY, 0);
    if (Atomics.compareExchange(this.slots, pair, this.owner, 0) === this.owner && this.inRange(pair)) Atomics.sub(this.claimed, 0, 1);
  }

  private firstPair(): number { return (this.min + 1) >> 1; }
  private lastPair(): number { return (this.max - 1) >> 1; }
  private pairCount(): number { return this.lastPair() - this.firstPair() + 1; }
  private inRange(pair: number): boolean { return pair >= this.firstPair() && pair <= this.lastPair(); }

  /** claims a free pair of the range for this worker */
  private claim(pair: number): boolean {
    if (Atomics.compareExchange(this.slots, pair, 0, this.owner) !== 0) return false;
    Atomics.add(this.claimed, 0, 1);
    return true;
  }

  /** pairs of the range claimed by all workers (a worker's add may lag its claim by a few instructions) */
  get claimedPairs(): number {
    return Atomics.load(this.claimed, 0);
  }

  /**
   * The public RTP port for private media endpoint ip:port. The same endpoint keeps its port while
   * its lease lives; a new one keeps its private port when that pair is free (as the kernel's NAT
   * would), otherwise gets the next free pair. Undefined when the range is exhausted.
   */
  allocate(ip: string, port: number, now: number): number | undefined {
    const key = endpointKey(ip, port);
    const lease = this.leases.get(key);
    if (lease) {
      lease.lastSeen = now;
      return lease.publicPort;
    }
    let pair = -1;
    const own = port >> 1;
    if ((port & 1) === 0 && port >= this.min && port + 1 <= this.max && this.claim(own)) pair = own;
    else {
      const first = this.firstPair(), n = this.pairCount();
      // every pair taken: answered without looking at each (a flood of calls that exhausts the range
      // must not make each further INVITE cost a walk of 25k pairs)
      if (Atomics.load(this.claimed, 0) >= n) return undefined;
      for (let i = 0; i < n; i++) {
        const p = first + ((this.cursor - first + i) % n);
        if (this.claim(p)) {
          pair = p;
          this.cursor = p + 1;
          break;
        }
      }
    }
    if (pair < 0) return undefined;
    this.hold(pair, ip, port);
    this.addLease(key, pair * 2, now);
    return pair * 2;
  }

  /**
   * Takes back a lease a previous run of this worker held (state file after a restart): the pair
   * is claimed again unless another worker holds it now.
   */
  adopt(ip: string, port: number, publicPort: number, now: number): boolean {
    const key = endpointKey(ip, port);
    if (this.leases.has(key)) return true;
    const pair = publicPort >> 1;
    const was = Atomics.compareExchange(this.slots, pair, 0, this.owner);
    if (was !== 0 && was !== this.owner) return false;
    if (was === 0 && this.inRange(pair)) Atomics.add(this.claimed, 0, 1);
    this.hold(pair, ip, port);
    this.addLease(key, pair * 2, now);
    return true;
  }

  /** Returns the pair leased to private endpoint ip:port (its dialog ended). */
  release(ip: string, port: number): void {
    const key = endpointKey(ip, port);
    const l = this.leases.get(key);
    if (!l) return;
    this.free(l.publicPort >> 1);
    this.dropLease(l);
  }

  private addLease(key: string | number, publicPort: number, now: number): void {
    const l: Lease = { publicPort, lastSeen: now, key, slot: -1 };
    this.leases.set(key, l);
    this.list.add(l);
  }

  private dropLease(l: Lease): void {
    this.leases.delete(l.key);
    this.list.remove(l);
  }

  /** Returns pairs whose lease has not been used for leaseMs. */
  /**
   * Frees the leases unused for leaseMs; with a budget, at most that many leases are looked at and
   * the next call goes on where this one stopped (a live iterator), so a table of 100k leases is
   * never walked in one go. Returns the number freed.
   */
  sweep(now: number, budget = Infinity): number {
    let freed = 0;
    this.list.walk(budget, (l) => {
      if (now - l.lastSeen < this.leaseMs) return;
      this.free(l.publicPort >> 1);
      this.dropLease(l);
      freed++;
    });
    return freed;
  }

  /** Releases every pair this worker holds (worker shutdown). */
  releaseAll(): void {
    for (const l of this.list.values()) this.free(l.publicPort >> 1);
    this.leases.clear();
    this.list.clear();
  }

  get active(): number {
    return this.leases.size;
  }
}
