/**
 * Abuse protection per source address (the knobs FortiGate, Juniper and MikroTik give, same
 * meaning): per-source rate limits for INVITE and REGISTER (token buckets), and blocking of a
 * source whose INVITEs keep failing (3xx-6xx other than 401/407/487/488, which are not real
 * failures: shared/seeds/002 "ALG DoS Attack Protection").
 */

export interface ProtectionOptions {
  /** INVITEs per second per source (0 = no limit); bursts of twice that are allowed */
  inviteRate: number;
  registerRate: number;
  /** failures within failureWindowMs that block the source (0 = off) */
  failureThreshold: number;
  failureWindowMs: number;
  blockMs: number;
}

import { Reason } from '../errors';

export type Verdict = 'ok' | typeof Reason.RATE_LIMITED | typeof Reason.BLOCKED;

interface Bucket {
  tokens: number;
  at: number;
}

const NOT_FAILURES = new Set([401, 407, 487, 488]);
const MAX_TRACKED = 100000;

export class Protection {
  private readonly buckets = new Map<string, Bucket>();
  private readonly failures = new Map<string, number[]>();
  private readonly blocked = new Map<string, number>();

  constructor(private o: ProtectionOptions) {}

  setOptions(o: ProtectionOptions): void {
    this.o = o;
  }

  /** Sources whose INVITEs are blocked now, with the seconds left. */
  blockedSources(now: number): { source: string; seconds: number }[] {
    return [...this.blocked].filter(([, until]) => until > now).map(([source, until]) => ({ source, seconds: Math.ceil((until - now) / 1000) }));
  }

  /** Checks a new request (INVITE without To tag, or REGISTER) from `src`. */
  request(method: string, src: string, now: number): Verdict {
    if (method === 'INVITE') {
      const until = this.blocked.get(src);
      if (until !== undefined) {
        if (now < until) return Reason.BLOCKED;
        this.blocked.delete(src);
      }
    }
    const rate = method === 'INVITE' ? this.o.inviteRate : method === 'REGISTER' ? this.o.registerRate : 0;
    if (rate <= 0) return 'ok';
    const key = `${method}|${src}`;
    const burst = Math.max(2 * rate, 5);
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_TRACKED) this.buckets.clear();
      b = { tokens: burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens < 1) return Reason.RATE_LIMITED;
    b.tokens -= 1;
    return 'ok';
  }

  /** A final response to an INVITE went to `requester`. */
  inviteFinal(status: number, requester: string, now: number): boolean {
    if (this.o.failureThreshold <= 0 || status < 300 || NOT_FAILURES.has(status)) return false;
    let list = this.failures.get(requester);
    if (!list) {
      if (this.failures.size >= MAX_TRACKED) this.failures.clear();
      list = [];
      this.failures.set(requester, list);
    }
    list.push(now);
    while (list.length && now - list[0]! > this.o.failureWindowMs) list.shift();
    if (list.length >= this.o.failureThreshold) {
      this.blocked.set(requester, now + this.o.blockMs);
      this.failures.delete(requester);
      return true;
    }
    return false;
  }

  /** Forgets stale state (called once a second). */
  sweep(now: number): void {
    for (const [k, b] of this.buckets) if (now - b.at > 60000) this.buckets.delete(k);
    for (const [k, until] of this.blocked) if (now >= until) this.blocked.delete(k);
    for (const [k, list] of this.failures) if (!list.length || now - list[list.length - 1]! > this.o.failureWindowMs) this.failures.delete(k);
  }
}
