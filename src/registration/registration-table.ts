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
 */
import type { Conntrack, Ctnetlink, Tuple } from '../conntrack/ctnetlink';
import { IPPROTO_UDP } from '../conntrack/ctnetlink';
import type { DialogCounters } from '../dialog/dialog-table';

export interface Registration {
  aor: string;
  /** the signaling flow, LAN→WAN orientation */
  flow: Tuple;
  publicIp: string;
  publicPort: number;
  expiresAt: number;
  refreshedAt: number;
}

export interface RegistrationOptions {
  /** seconds added to the remaining lifetime when the flow's timeout is raised */
  marginSec: number;
  /** how often live registrations' flows are raised again */
  refreshMs: number;
}

export class RegistrationTable {
  readonly entries = new Map<string, Registration>();
  /** bumped on every change: the worker persists the table when it moved */
  version = 0;

  constructor(private readonly ct: Ctnetlink, private opts: RegistrationOptions, private readonly counters: DialogCounters) {}

  get size(): number {
    return this.entries.size;
  }

  setOptions(opts: RegistrationOptions): void {
    this.opts = opts;
  }

  /** What `sip-alg registrations` shows. */
  snapshot(now: number): { aor: string; phone: string; public: string; expiresInSec: number; keptAliveSecAgo: number }[] {
    return [...this.entries.values()].map((r) => ({
      aor: r.aor,
      phone: `${r.flow.src}:${r.flow.sport}`,
      public: `${r.publicIp}:${r.publicPort}`,
      expiresInSec: Math.round((r.expiresAt - now) / 1000),
      keptAliveSecAgo: Math.round((now - r.refreshedAt) / 1000),
    }));
  }

  /** A 2xx to a REGISTER crossed WAN→LAN: `expiresSec` is our contact's lifetime, 0 when removed. */
  confirmed(aor: string, flow: Tuple, publicIp: string, publicPort: number, expiresSec: number, now: number): void {
    const key = `${flow.src}:${flow.sport}|${aor}`;
    this.version++;
    if (expiresSec <= 0) {
      if (this.entries.delete(key)) this.counters.inc('g|removed');
      return;
    }
    // the phone's own REGISTER replaces what a takeover inferred for its flow
    if (this.entries.delete(`${flow.src}:${flow.sport}|`)) this.counters.inc('g|taken_over_confirmed');
    const had = this.entries.has(key);
    const r: Registration = { aor, flow, publicIp, publicPort, expiresAt: now + expiresSec * 1000, refreshedAt: 0 };
    this.entries.set(key, r);
    this.counters.inc(had ? 'g|refreshed' : 'g|created');
    this.keepAlive(r, now);
  }

  private keepAlive(r: Registration, now: number): void {
    const remaining = Math.ceil((r.expiresAt - now) / 1000);
    // TCP: the connection is the binding, and its established timeout (5 days) is longer already
    if (r.flow.proto !== IPPROTO_UDP) return;
    try {
      if (this.ct.setTimeout(r.flow, remaining + this.opts.marginSec)) this.counters.inc('g|kept_alive');
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
      this.entries.set(`${r.flow.src}:${r.flow.sport}|${r.aor}`, { ...r, refreshedAt: 0 });
      this.counters.inc('g|restored');
    }
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
    const known = new Set([...this.entries.values()].map((r) => `${r.flow.src}:${r.flow.sport}`));
    for (const e of entries) {
      const f = e.orig;
      if (f.proto !== IPPROTO_UDP || !sipPorts.includes(f.dport) || e.reply.dst !== publicIp || f.src === publicIp || e.timeout <= callFlowSec + this.opts.marginSec) continue;
      if (known.has(`${f.src}:${f.sport}`)) continue;
      known.add(`${f.src}:${f.sport}`);
      this.entries.set(`${f.src}:${f.sport}|`, { aor: '(taken over)', flow: f, publicIp, publicPort: e.reply.dport, expiresAt: now + (e.timeout - this.opts.marginSec) * 1000, refreshedAt: now });
      this.counters.inc('g|taken_over');
      n++;
    }
    if (n) this.version++;
    return n;
  }

  /** A router pair's switch to standby: the peer keeps the flows alive now; forgotten without touching the kernel. */
  standby(): number {
    const n = this.entries.size;
    this.entries.clear();
    this.version++;
    return n;
  }

  /** Drops expired registrations and raises the flows of live ones again. */
  sweep(now: number): void {
    for (const [key, r] of this.entries) {
      if (now >= r.expiresAt) {
        this.entries.delete(key);
        this.version++;
        this.counters.inc('g|expired');
      } else if (now - r.refreshedAt >= this.opts.refreshMs) this.keepAlive(r, now);
    }
  }
}
