/**
 * Registrations (RFC 3261 §10) seen through the ALG, and the NAT binding that must outlive them.
 *
 * A phone behind NAT is reachable for inbound calls only while the router keeps the conntrack
 * entry (and so the NAT binding) of its signaling flow to the registrar. The kernel's UDP timeouts
 * (30 s / 120 s) are far shorter than usual registration lifetimes, so a phone that re-registers
 * every hour loses its inbound calls after two minutes of silence (shared/seeds/004: "SIP ALG
 * timeout"). For every registration confirmed by a 2xx, the entry's timeout is raised over
 * ctnetlink to the registration's remaining lifetime plus a margin, and raised again periodically
 * because every packet of the flow resets it to the kernel's value. expires=0, a 2xx without our
 * Contact, or the end of the lifetime drops the registration.
 *
 * Register pinholes (config inbound-signaling-from; FortiGate's open-register-pinhole, the kernel
 * helper's sip_direct_signalling=0): large providers register phones on one server and send calls
 * from others, whose packets match no conntrack entry and so are never DNATed to the phone. For each
 * registered binding, one signaling expectation per allowed source prefix admits SIP from those
 * sources to the binding (public ip:port as the registrar sees it, RFC 3261 §10.2.1 Contact) and
 * DNATs it to the phone, for as long as the registration lives; its timeout (the sip helper's 180 s
 * for class 0) is re-armed every minute. Each hangs off its own anchor (the helper allows one
 * signaling expectation per master), `127.0.<node>.1:n -> 127.1.<worker>.1:65535`.
 */
import type { Conntrack, Ctnetlink, PinholeSpec, Tuple } from '../conntrack/ctnetlink';
import { IPPROTO_UDP } from '../conntrack/ctnetlink';
import { anchorAddresses, isAnchorSource, type DialogCounters } from '../dialog/dialog-table';
import { ENOENT } from '../errors';
import { ipFamily } from '../packet/addr';
import { log } from '../log';

/** the destination port of register-pinhole anchors (a dialog anchor's is 1024 + n/64000: never this) */
export const REGISTER_ANCHOR_DPORT = 65535;
/** how often a register pinhole's timeout (180 s for the sip helper's signalling class) is re-armed */
const PINHOLE_REFRESH_MS = 60000;

/** One register pinhole: the binding, and per allowed source its anchor. */
interface RegisterPinhole {
  flow: Tuple;
  publicIp: string;
  publicPort: number;
  anchors: { anchor: Tuple; spec: PinholeSpec }[];
  refreshedAt: number;
}

export interface Registration {
  aor: string;
  /** the signaling flow, LAN→WAN orientation */
  flow: Tuple;
  publicIp: string;
  publicPort: number;
  expiresAt: number;
  refreshedAt: number;
}

/** the AoR of a registration taken over from a router pair's peer (the kernel does not carry it) */
export const TAKEN_OVER = '(taken over)';

/** A registration's key in its table: the phone's flow and the AoR (none for one taken over: the phone's next REGISTER replaces it). */
export const registrationKey = (r: Pick<Registration, 'aor' | 'flow'>) => `${r.flow.src}:${r.flow.sport}|${r.aor === TAKEN_OVER ? '' : r.aor}`;

export interface RegistrationOptions {
  /** seconds added to the remaining lifetime when the flow's timeout is raised */
  marginSec: number;
  /** how often live registrations' flows are raised again */
  refreshMs: number;
  /** register pinholes: the sources that may send SIP to a registered binding (config inbound-signaling-from); none when undefined */
  inboundFrom?: { ip: string; bits: number }[];
  /** this worker and router (anchor addresses, as the dialogs' anchors) */
  worker?: number;
  node?: number;
}

export class RegistrationTable {
  readonly entries = new Map<string, Registration>();
  /** keys of the registrations changed since the state file last took them (takeChanges) */
  private readonly changed = new Set<string>();

  /** A registration changed (made, refreshed, gone): the state file's journal writes it at its next append. */
  private touch(key: string): void {
    this.changed.add(key);
  }

  /** How many registrations changed since the last takeChanges. */
  get pendingChanges(): number {
    return this.changed.size;
  }

  /** The registrations changed since the last call, by key: as they are now, or undefined when gone (the state file's journal). */
  takeChanges(): [string, Registration | undefined][] {
    const out: [string, Registration | undefined][] = [];
    for (const k of this.changed) out.push([k, this.entries.get(k)]);
    this.changed.clear();
    return out;
  }
  /** register pinholes by the phone's flow (src:sport): one per binding, whatever AoRs share it */
  private readonly pinholes = new Map<string, RegisterPinhole>();
  private anchorSeq = 0;

  constructor(private readonly ct: Ctnetlink, private opts: RegistrationOptions, private readonly counters: DialogCounters) {}

  get size(): number {
    return this.entries.size;
  }

  setOptions(opts: RegistrationOptions, now = Date.now()): void {
    const was = JSON.stringify(this.opts.inboundFrom ?? null);
    this.opts = opts;
    if (JSON.stringify(opts.inboundFrom ?? null) !== was) {
      for (const k of [...this.pinholes.keys()]) this.closePinhole(k);
      this.syncPinholes(now);
    }
  }

  /** What `sip-alg registrations` shows. */
  snapshot(now: number): { aor: string; phone: string; public: string; expiresInSec: number; keptAliveSecAgo: number; pinhole: string }[] {
    return [...this.entries.values()].map((r) => {
      const p = this.pinholes.get(`${r.flow.src}:${r.flow.sport}`);
      return {
        aor: r.aor,
        phone: `${r.flow.src}:${r.flow.sport}`,
        public: `${r.publicIp}:${r.publicPort}`,
        expiresInSec: Math.round((r.expiresAt - now) / 1000),
        keptAliveSecAgo: Math.round((now - r.refreshedAt) / 1000),
        pinhole: p ? `from ${p.anchors.map((a) => (a.spec.remoteIp ? `${a.spec.remoteIp}/${a.spec.remoteBits ?? 32}` : 'any')).join(',')}` : '',
      };
    });
  }

  /** The public binding of a registered phone's private ip:port (an inbound request through its register pinhole is a new flow: no conntrack to read yet). */
  bindingOf(ip: string, port: number): { publicIp: string; publicPort: number } | undefined {
    const p = this.pinholes.get(`${ip}:${port}`);
    return p ? { publicIp: p.publicIp, publicPort: p.publicPort } : undefined;
  }

  /** Register pinholes held now (anchors with their one expectation each). */
  get pinholeCount(): number {
    let n = 0;
    for (const p of this.pinholes.values()) n += p.anchors.length;
    return n;
  }

  private nextAnchor(family: 4 | 6): Tuple {
    const [src, dst] = anchorAddresses(this.opts.worker ?? 0, family, this.opts.node);
    const n = this.anchorSeq++;
    return { src, dst, sport: 1024 + (n % 64000), dport: REGISTER_ANCHOR_DPORT, proto: IPPROTO_UDP };
  }

  /** The pinholes follow the registrations: one per live UDP binding when inbound-signaling-from allows any source; re-armed every minute. */
  private syncPinholes(now: number): void {
    const sources = this.opts.inboundFrom;
    const want = new Map<string, Registration>();
    if (sources?.length) for (const r of this.entries.values()) if (r.flow.proto === IPPROTO_UDP && r.publicPort) want.set(`${r.flow.src}:${r.flow.sport}`, r);
    for (const [k, p] of this.pinholes) {
      const r = want.get(k);
      if (!r || r.publicIp !== p.publicIp || r.publicPort !== p.publicPort) this.closePinhole(k);
    }
    for (const [k, r] of want) {
      const p = this.pinholes.get(k);
      if (!p) this.openPinhole(k, r, now);
      else if (now - p.refreshedAt >= PINHOLE_REFRESH_MS) this.refreshPinhole(p, r, now);
    }
  }

  private anchorTimeout(r: Registration, now: number): number {
    return Math.max(60, Math.ceil((r.expiresAt - now) / 1000) + this.opts.marginSec);
  }

  private openPinhole(key: string, r: Registration, now: number): void {
    const fam = ipFamily(r.publicIp) === 6 ? 6 : 4;
    const p: RegisterPinhole = { flow: r.flow, publicIp: r.publicIp, publicPort: r.publicPort, anchors: [], refreshedAt: now };
    for (const s of this.opts.inboundFrom ?? []) {
      if ((ipFamily(s.ip) === 6 ? 6 : 4) !== fam) continue;
      const spec: PinholeSpec = { remoteIp: s.bits === 0 ? undefined : s.ip, remoteBits: s.bits, publicIp: r.publicIp, publicPort: r.publicPort, privateIp: r.flow.src, privatePort: r.flow.sport, cls: 0, timeoutSec: 180 };
      const a = this.createAnchored(spec, r, now);
      if (a) p.anchors.push({ anchor: a, spec });
    }
    this.pinholes.set(key, p);
    if (p.anchors.length) this.counters.inc('g|pinhole_opened');
  }

  /** An anchor with the one signaling expectation `spec`; undefined (counted, logged) when the kernel refused either. */
  private createAnchored(spec: PinholeSpec, r: Registration, now: number): Tuple | undefined {
    const fam = ipFamily(r.publicIp) === 6 ? 6 : 4;
    for (let tries = 0; tries < 8; tries++) {
      const anchor = this.nextAnchor(fam);
      try {
        const [err] = this.ct.createAnchorWithExpectations(anchor, this.anchorTimeout(r, now), [spec]);
        if (!err) return anchor;
        this.ct.delete(anchor);
        this.counters.inc('g|pinhole_failed');
        log('warn', 'register pinhole refused by the kernel', { aor: r.aor, binding: `${r.publicIp}:${r.publicPort}`, from: spec.remoteIp ?? 'any', err });
        return undefined;
      } catch (e) {
        if ((e as { errno?: number }).errno === 17) continue; // EEXIST: the anchor tuple is taken (a peer's, synced): the next one
        this.counters.inc('g|pinhole_failed');
        log('warn', 'register pinhole not created', { aor: r.aor, binding: `${r.publicIp}:${r.publicPort}`, err: e as Error });
        return undefined;
      }
    }
    return undefined;
  }

  private refreshPinhole(p: RegisterPinhole, r: Registration, now: number): void {
    p.refreshedAt = now;
    for (const a of p.anchors) {
      try {
        if (this.ct.refreshExpectation(a.anchor, a.spec)) {
          this.ct.setTimeout(a.anchor, this.anchorTimeout(r, now));
          continue;
        }
      } catch { /* made again below */ }
      // the anchor is gone (flushed, a restart's clean-up): made again
      try { this.ct.delete(a.anchor); } catch { /* gone */ }
      const made = this.createAnchored(a.spec, r, now);
      if (made) a.anchor = made;
    }
  }

  private closePinhole(key: string): void {
    const p = this.pinholes.get(key);
    if (!p) return;
    this.pinholes.delete(key);
    for (const a of p.anchors) {
      try { this.ct.delete(a.anchor); } catch { /* expires with its timeout */ }
    }
    if (p.anchors.length) this.counters.inc('g|pinhole_closed');
  }

  /** A 2xx to a REGISTER crossed WAN→LAN: `expiresSec` is our contact's lifetime, 0 when removed. */
  confirmed(aor: string, flow: Tuple, publicIp: string, publicPort: number, expiresSec: number, now: number): void {
    const key = registrationKey({ aor, flow });
    this.touch(key);
    if (expiresSec <= 0) {
      if (this.entries.delete(key)) this.counters.inc('g|removed');
      this.syncPinholes(now);
      return;
    }
    // the phone's own REGISTER replaces what a takeover inferred for its flow
    const taken = `${flow.src}:${flow.sport}|`;
    if (this.entries.delete(taken)) {
      this.touch(taken);
      this.counters.inc('g|taken_over_confirmed');
    }
    const had = this.entries.has(key);
    const r: Registration = { aor, flow, publicIp, publicPort, expiresAt: now + expiresSec * 1000, refreshedAt: 0 };
    this.entries.set(key, r);
    this.counters.inc(had ? 'g|refreshed' : 'g|created');
    this.keepAlive(r, now);
    this.syncFlow(`${flow.src}:${flow.sport}`, r, now);
  }

  /**
   * The register pinhole of one flow after its REGISTER's 2xx: made, moved to the binding the
   * registrar now has, or refreshed. Only this flow is looked at (a full syncPinholes walks every
   * registration: per REGISTER, that cost grew with the table); the sweep's full sync catches the rest.
   */
  private syncFlow(k: string, r: Registration, now: number): void {
    if (!this.opts.inboundFrom?.length || r.flow.proto !== IPPROTO_UDP || !r.publicPort) return;
    let p = this.pinholes.get(k);
    if (p && (r.publicIp !== p.publicIp || r.publicPort !== p.publicPort)) {
      this.closePinhole(k);
      p = undefined;
    }
    if (!p) this.openPinhole(k, r, now);
    else if (now - p.refreshedAt >= PINHOLE_REFRESH_MS) this.refreshPinhole(p, r, now);
  }

  /** the conntrack timeout a registration's flow needs now: what is left of the registration, plus the margin */
  private flowTimeout(r: Registration, now: number): number {
    return Math.ceil((r.expiresAt - now) / 1000) + this.opts.marginSec;
  }

  private readonly onKeepAliveFailed = (errno: number): void => this.counters.inc(errno === ENOENT ? 'g|flow_gone' : 'g|keepalive_failed');

  private keepAlive(r: Registration, now: number): void {
    // TCP: the connection is the binding, and its established timeout (5 days) is longer already
    if (r.flow.proto !== IPPROTO_UDP) return;
    // during a queue batch the update rides the verdicts' datagram (no round trip per REGISTER);
    // kept_alive then counts the requests, flow_gone / keepalive_failed the kernel's refusals
    if (this.ct.setTimeoutRiding(r.flow, this.flowTimeout(r, now), this.onKeepAliveFailed)) {
      this.counters.inc('g|kept_alive');
      r.refreshedAt = now;
      return;
    }
    try {
      if (this.ct.setTimeout(r.flow, this.flowTimeout(r, now))) this.counters.inc('g|kept_alive');
      else this.counters.inc('g|flow_gone');
    } catch {
      this.counters.inc('g|keepalive_failed');
    }
    r.refreshedAt = now;
  }

  /** Takes back persisted registrations (restart): their flows are kept alive again at the next sweep. */
  adopt(saved: Registration[], now: number): void {
    for (const r of saved) {
      if (now >= r.expiresAt) continue;
      // (the key of one taken over is its flow's alone, as when it was taken over: the phone's next REGISTER replaces it)
      this.entries.set(registrationKey(r), { ...r, refreshedAt: 0 });
      this.counters.inc('g|restored');
    }
    this.syncPinholes(now);
  }

  /**
   * A router pair's takeover: the peer kept its phones' registration flows alive by raising their
   * conntrack timeouts to the registrations' remaining lifetimes plus the margin, and conntrackd
   * carried those timeouts here. A UDP flow from the LAN to a SIP port, masqueraded to `publicIp`,
   * whose timeout is beyond what a call's signaling flow is given (`callFlowSec`) is such a
   * registration: kept alive here until that lifetime ends, or until the phone's next REGISTER
   * says what it is. The AoR is not in the kernel (shown as '(taken over)').
   */
  takeover(entries: readonly Conntrack[], publicIp: string, sipPorts: readonly number[], callFlowSec: number, now: number): number {
    let n = 0;
    // the peer's register pinholes (synced by conntrackd) give way to this router's own, made below
    const mine = new Set([anchorAddresses(this.opts.worker ?? 0, 4, this.opts.node)[0], anchorAddresses(this.opts.worker ?? 0, 6, this.opts.node)[0]]);
    for (const e of entries) {
      if (e.orig.dport === REGISTER_ANCHOR_DPORT && isAnchorSource(e.orig.src) && !mine.has(e.orig.src)) {
        try { this.ct.delete(e.orig); } catch { /* gone */ }
      }
    }
    const known = new Set([...this.entries.values()].map((r) => `${r.flow.src}:${r.flow.sport}`));
    for (const e of entries) {
      const f = e.orig;
      if (f.proto !== IPPROTO_UDP || !sipPorts.includes(f.dport) || e.reply.dst !== publicIp || f.src === publicIp || e.timeout <= callFlowSec + this.opts.marginSec) continue;
      if (known.has(`${f.src}:${f.sport}`)) continue;
      known.add(`${f.src}:${f.sport}`);
      const r: Registration = { aor: TAKEN_OVER, flow: f, publicIp, publicPort: e.reply.dport, expiresAt: now + (e.timeout - this.opts.marginSec) * 1000, refreshedAt: now };
      this.entries.set(registrationKey(r), r);
      this.touch(registrationKey(r));
      this.counters.inc('g|taken_over');
      n++;
    }
    this.syncPinholes(now);
    return n;
  }

  /** A router pair's switch to standby: the peer keeps the flows alive now; forgotten without touching the kernel. */
  standby(): number {
    const n = this.entries.size;
    for (const k of this.entries.keys()) this.touch(k);
    this.entries.clear();
    this.pinholes.clear(); // their anchors are the peer's to keep (conntrackd keeps both tables in step)
    return n;
  }

  /** Drops expired registrations and raises the flows of live ones again. */
  sweep(now: number): void {
    // the flows due for a keep-alive, each once (a PBX registers many lines over one flow) with the
    // longest lifetime its registrations need, all in one ctnetlink batch
    const due = new Map<string, { flow: Tuple; sec: number }>();
    for (const [key, r] of this.entries) {
      if (now >= r.expiresAt) {
        this.entries.delete(key);
        this.touch(key);
        this.counters.inc('g|expired');
      } else if (now - r.refreshedAt >= this.opts.refreshMs) {
        r.refreshedAt = now;
        // TCP: the connection is the binding, and its established timeout (5 days) is longer already
        if (r.flow.proto !== IPPROTO_UDP) continue;
        const sec = this.flowTimeout(r, now);
        const k = `${r.flow.src}:${r.flow.sport}>${r.flow.dst}:${r.flow.dport}`;
        const d = due.get(k);
        if (!d) due.set(k, { flow: r.flow, sec });
        else if (sec > d.sec) d.sec = sec;
      }
    }
    if (due.size) {
      const list = [...due.values()];
      let results: (boolean | Error)[];
      try {
        results = this.ct.setTimeouts(list.map((d) => d.flow), list.map((d) => d.sec));
      } catch {
        results = list.map(() => new Error('netlink'));
      }
      for (const x of results) this.counters.inc(x === true ? 'g|kept_alive' : x === false ? 'g|flow_gone' : 'g|keepalive_failed');
    }
    this.syncPinholes(now);
  }

  /** The WAN address `old` is gone: its registrations (and their pinholes) with it; each phone's next REGISTER makes a new one. Returns how many. */
  readdress(old: string): number {
    let n = 0;
    for (const [k, r] of this.entries) {
      if (r.publicIp !== old) continue;
      this.entries.delete(k);
      this.touch(k);
      n++;
    }
    for (const [k, p] of this.pinholes) if (p.publicIp === old) this.closePinhole(k);
    if (n) this.counters.inc('g|readdressed', n);
    return n;
  }

  /** Shutdown: the register pinholes go with their anchors (the registrations' flows stay in the kernel). */
  closeAll(): void {
    for (const k of [...this.pinholes.keys()]) this.closePinhole(k);
  }
}
