/**
 * Learns the NAT binding the kernel really uses for a signaling flow, so that what the ALG writes
 * in Via/Contact/SDP is what goes on the wire (netfilter-facts.md §1).
 *
 * Our queue hook runs before SNAT. For a flow with a confirmed conntrack entry the binding is read
 * over ctnetlink. For the first packet of a new LAN→WAN flow there is none yet: we create the entry
 * ourselves over ctnetlink with source NAT to the public address and no port, so the kernel chooses
 * the port with MASQUERADE's own algorithm (keep the source port if free, else another), then read
 * it back. When the queued packet reaches SNAT, get_unique_tuple() finds our entry through the
 * by-source table and picks the same mapping, and at confirmation nf_ct_resolve_clash() merges the
 * packet's unconfirmed entry into ours (UDP allows clashes; both tuples are equal).
 */
import { Ctnetlink, IPPROTO_UDP, type Conntrack, type Tuple } from '../conntrack/ctnetlink';
import { EEXIST, NetlinkError } from '../errors';
import { ipFamily } from '../packet/addr';

export interface Binding {
  privateIp: string;
  privatePort: number;
  publicIp: string;
  publicPort: number;
  /** conntrack: read from an existing entry; created: entry made by us for a first packet; registration: a new inbound flow to a registered binding (register pinhole); guessed: no entry (inbound) */
  source: 'conntrack' | 'created' | 'registration' | 'guessed';
}

export interface ResolverOptions {
  publicIp: string;
  /** NAT66: the public IPv6 address (IPv6 flows are masqueraded to it) */
  publicIp6?: string;
  firstPacket: 'precreate' | 'pass';
  /** timeout in seconds of entries we create (the kernel's unreplied UDP timeout is 30 s) */
  createdTimeout?: number;
  cacheMs?: number;
}

export function bindingFromConntrack(ct: Conntrack, ip: string, port: number): { ip: string; port: number } | undefined {
  if (ct.orig.src === ip && ct.orig.sport === port) return { ip: ct.reply.dst, port: ct.reply.dport };
  if (ct.reply.src === ip && ct.reply.sport === port) return { ip: ct.orig.dst, port: ct.orig.dport };
  return undefined;
}

export class BindingResolver {
  private readonly cache = new Map<string, { b: Binding; until: number }>();
  private readonly cacheMs: number;
  readonly stats = { lookups: 0, created: 0, createClash: 0, cacheHits: 0, moved: 0 };
  /** the public binding of a registered phone's private ip:port, for a new inbound flow (its entry is not confirmed yet) */
  inboundHint?: (ip: string, port: number) => { publicIp: string; publicPort: number } | undefined;
  /**
   * The IPv4 address of the WAN link the packet being handled leaves by (or arrived on), set per
   * packet by the worker from NFQUEUE's in/out interface: with several WAN links a new flow's binding
   * is that link's address (what MASQUERADE on it picks); unset, the primary's. An existing flow's
   * binding is always what its conntrack entry says.
   */
  linkIp: string | undefined;
  /**
   * The addresses of all WAN links when there are several: an outbound flow whose entry is NATed to
   * another link's address than the one it now leaves by (its route moved: a failover to the backup
   * line) is made again on the new link, as MASQUERADE does for its own entries when a link goes
   * down; entries the daemon pre-created carry an explicit SNAT that MASQUERADE leaves alone.
   */
  wanIps: ReadonlySet<string> | undefined;
  /**
   * Set per packet by the worker: the packet's conntrack entry is not in the kernel's table yet (the
   * rules' fresh-flow-mark): a new flow, or one whose entry vanished under the cache (`conntrack -F`,
   * then the kernel NATs the flow anew, maybe to another port). Its binding is read from the kernel
   * (and the cache refreshed), never served from the cache.
   */
  fresh = false;

  constructor(private readonly ct: Ctnetlink, private readonly opts: ResolverOptions) {
    this.cacheMs = opts.cacheMs ?? 1000;
  }

  /** The WAN's address changed: first packets are bound to the new one, and no binding of the old one is served from the cache. */
  setPublicIp(ip: string): void {
    this.opts.publicIp = ip;
    this.cache.clear();
  }

  /** LAN→WAN packet from src:sport (private) to dst:dport. */
  outbound(src: string, sport: number, dst: string, dport: number, now: number): Binding | undefined {
    const t: Tuple = { src, dst, sport, dport, proto: IPPROTO_UDP };
    const b = this.cached(t, now, src, sport, true);
    if (!b || !this.linkIp || b.publicIp === this.linkIp || !this.wanIps?.has(b.publicIp)) return b;
    // NATed to another WAN link's address than the one this packet leaves by
    this.cache.delete(`${t.src}:${t.sport}>${t.dst}:${t.dport}`);
    try { this.ct.delete(t); } catch { /* gone meanwhile */ }
    this.stats.moved++;
    return this.cached(t, now, src, sport, true);
  }

  /** WAN→LAN packet (already de-NATed by the kernel) from src:sport to dst:dport (private). */
  inbound(src: string, sport: number, dst: string, dport: number, now: number): Binding | undefined {
    const t: Tuple = { src: dst, dst: src, sport: dport, dport: sport, proto: IPPROTO_UDP };
    const b = this.cached(t, now, dst, dport, false);
    if (b) return b;
    // A new inbound flow: its entry is not confirmed yet. Through a register pinhole, the binding
    // is the registration's; the public side of a port forward is, by far most often, the same
    // port on the public address.
    const reg = this.inboundHint?.(dst, dport);
    if (reg) return { privateIp: dst, privatePort: dport, publicIp: reg.publicIp, publicPort: reg.publicPort, source: 'registration' };
    return { privateIp: dst, privatePort: dport, publicIp: this.publicFor(dst), publicPort: dport, source: 'guessed' };
  }

  private publicFor(addr: string): string {
    return ipFamily(addr) === 6 ? this.opts.publicIp6 ?? '' : this.linkIp || this.opts.publicIp;
  }

  private cached(t: Tuple, now: number, ip: string, port: number, mayCreate: boolean): Binding | undefined {
    const key = `${t.src}:${t.sport}>${t.dst}:${t.dport}`;
    const hit = this.fresh ? undefined : this.cache.get(key);
    if (hit && hit.until > now) {
      this.stats.cacheHits++;
      return hit.b;
    }
    this.stats.lookups++;
    let source: Binding['source'] = 'conntrack';
    let entry = this.ct.get(t);
    if (!entry && mayCreate && this.opts.firstPacket === 'precreate') {
      try {
        this.ct.createSnat(t, this.publicFor(t.src), this.opts.createdTimeout ?? 30);
        this.stats.created++;
        source = 'created';
      } catch (e) {
        if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
        this.stats.createClash++; // confirmed meanwhile by another packet of the flow
      }
      entry = this.ct.get(t);
    }
    if (!entry) return undefined;
    const pub = bindingFromConntrack(entry, ip, port);
    if (!pub) return undefined;
    const b: Binding = { privateIp: ip, privatePort: port, publicIp: pub.ip, publicPort: pub.port, source };
    if (this.cache.size > 65536) this.cache.clear();
    this.cache.set(key, { b, until: now + this.cacheMs });
    return b;
  }
}
