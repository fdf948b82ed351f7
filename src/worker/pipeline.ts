/**
 * The per-message decision, one named pipeline for UDP and TCP:
 *
 *   parse + rewrite (Processor) → link check → protection → dialog (pinholes) → registration
 *   → leak guard → count → verdict
 *
 * A UDP datagram is one SIP message and its verdict is enforced here (`datagram`). A message framed
 * inside a TCP stream (`streamMessage`) goes through the same dialog, registration and counting
 * steps, but a message inside a stream cannot be dropped without breaking the stream: policy is
 * observed, not enforced, and the TCP layer gives its segments their verdicts.
 * Fail open (conntrack-tools cthelper habit): an internal error accepts the packet unchanged,
 * unless that would send the phone's private address to the WAN (leak-policy=drop).
 */
import { Reason } from '../errors';
import { STALL_MS, waitedMs } from './stall';
import { NF_ACCEPT, NF_DROP } from '../native/binding';
import type { Processor, Outcome } from '../alg/processor';
import type { BindingResolver } from '../nat/binding-resolver';
import type { DialogTable } from '../dialog/dialog-table';
import type { RegistrationTable } from '../registration/registration-table';
import type { Protection } from '../policy/protection';
import type { WorkerStats } from '../metrics/worker-stats';
import type { Direction } from '../sip/rewrite';
import { carriesSourceAddress, mayLeak } from '../policy/leak-guard';
import { log } from '../log';

const NO_FIELDS: string[] = [];

/** What the pipeline decided for one packet; one instance per pipeline, reused packet after packet. */
export class Decision {
  verdict = NF_ACCEPT;
  /** the rewritten packet, when there is one */
  out: Buffer | undefined = undefined;
  reason: Reason = Reason.INTERNAL_ERROR;
  /** method or status class ('' when not SIP), for taps */
  message = '';
  /** the fields rewritten, for taps */
  fields: string[] = NO_FIELDS;

  reset(): this {
    this.verdict = NF_ACCEPT;
    this.out = undefined;
    this.reason = Reason.INTERNAL_ERROR;
    this.message = '';
    this.fields = NO_FIELDS;
    return this;
  }
}

export interface PipelineParts {
  proc: Processor;
  resolver: BindingResolver;
  protection: Protection;
  dialogs: DialogTable;
  registrations: RegistrationTable;
  stats: WorkerStats;
}

export interface PipelinePolicy {
  leakPolicy: 'pass' | 'drop';
  inviteBlockSeconds: number;
  debug: boolean;
}

export class PacketPipeline {
  private readonly d = new Decision();

  constructor(private readonly parts: PipelineParts, public policy: PipelinePolicy) {}

  /** One UDP datagram (one SIP message), its verdict enforced. The Decision is reused by the next call. */
  datagram(payload: Buffer, dir: Direction, now: number): Decision {
    const { proc, resolver, stats } = this.parts;
    const d = this.d.reset();
    try {
      const moved = resolver.stats.moved;
      const w0 = STALL_MS ? waitedMs() : 0;
      const t0 = STALL_MS ? performance.now() : 0;
      // parse + rewrite
      const o = proc.process(payload, dir, now);
      const t1 = STALL_MS ? performance.now() : 0;
      d.out = o.packet;
      if (!o.accept) d.verdict = NF_DROP;
      d.reason = o.reason;
      d.message = o.message;
      // link check: its flow moved to another WAN link; the packet is still bound to the old entry in
      // the kernel and would leave with the old link's address; the retransmission uses the new entry
      if (resolver.stats.moved !== moved && dir === 'out') this.refuse(d, o, Reason.LINK_MOVED);
      // protection: new INVITEs and REGISTERs per source (rate, blocking), INVITE failures
      this.protect(d, o, now);
      // dialog: pinholes are in place before the message that announces them leaves the router
      if (o.event && !this.observe(o, now) && d.verdict === NF_ACCEPT) {
        this.refuse(d, o, o.event.isRequest && o.event.method === 'INVITE' && !o.event.info.toTag ? Reason.DIALOG_LIMIT : Reason.DIRECT_MEDIA_BLOCKED);
      }
      const t2 = STALL_MS ? performance.now() : 0;
      // registration: a 2xx to REGISTER that passes keeps the phone's binding
      if (d.verdict === NF_ACCEPT) this.register(o, now);
      if (STALL_MS) {
        const t3 = performance.now();
        if (t3 - t0 >= STALL_MS) log('warn', 'slow datagram', { message: o.message, preemptedMs: +(waitedMs() - w0).toFixed(2), processMs: +(t1 - t0).toFixed(2), protectAndDialogMs: +(t2 - t1).toFixed(2), registrationMs: +(t3 - t2).toFixed(2) });
      }
      // leak guard
      if (dir === 'out' && d.verdict === NF_ACCEPT && !d.out && this.leaks(d.reason, payload)) d.verdict = NF_DROP;
      // count
      stats.add(stats.counter('p', dir, d.verdict === NF_DROP ? 'drop' : 'accept', d.reason));
      if (d.verdict === NF_DROP) {
        if (o.message) stats.add(stats.counter('o', dir, o.message, 'dropped'));
        if (o.refusedThirdParty) stats.inc('h|refused_third_party', o.refusedThirdParty);
      } else this.count(dir, o, d.out !== undefined);
      if (d.out) d.fields = o.fields;
      if (this.policy.debug) log('debug', 'packet', { dir, message: o.message, reason: o.reason, fields: o.fields.join(',') || undefined, binding: o.bindingSource, len: payload.length, newLen: d.out?.length });
    } catch (e) {
      d.reason = Reason.INTERNAL_ERROR;
      d.out = undefined;
      d.verdict = dir === 'out' && this.leaks(d.reason, payload) ? NF_DROP : NF_ACCEPT;
      stats.add(stats.counter('p', dir, d.verdict === NF_DROP ? 'drop' : 'accept', d.reason));
      log('error', `internal error, packet ${d.verdict === NF_DROP ? 'dropped (it carries a private address)' : 'accepted unchanged'}`, { err: e as Error, stack: (e as Error).stack?.split('\n')[1]?.trim() });
    }
    return d;
  }

  /** One SIP message framed in a TCP stream: observed (dialog, registration) and counted, not enforced. */
  streamMessage(dir: Direction, o: Outcome, now: number): void {
    if (o.event && !this.observe(o, now)) this.parts.stats.inc('d|tcp_policy_not_enforced');
    this.register(o, now);
    this.count(dir, o, o.reason === Reason.REWRITTEN);
  }

  /**
   * leak-policy=drop: a LAN→WAN packet about to pass unchanged with the sender's address in it
   * (counted `k|reason`).
   */
  leaks(reason: Reason, payload: Buffer): boolean {
    if (this.policy.leakPolicy !== 'drop' || !mayLeak(reason) || !carriesSourceAddress(payload)) return false;
    this.parts.stats.add(this.parts.stats.counter('k', reason));
    return true;
  }

  private refuse(d: Decision, o: Outcome, reason: Reason): void {
    d.verdict = NF_DROP;
    d.out = undefined;
    d.reason = reason;
    o.event = undefined;
    o.registration = undefined;
  }

  private protect(d: Decision, o: Outcome, now: number): void {
    const { protection, stats } = this.parts;
    if (o.initial && o.event && o.src) {
      const v = protection.request(o.event.method, o.src, now);
      if (v !== 'ok') this.refuse(d, o, v);
    }
    const e = o.event;
    if (e && !e.isRequest && e.info.cseqMethod === 'INVITE' && e.status >= 300 && o.dst && protection.inviteFinal(e.status, o.dst, now)) {
      stats.inc('d|source_blocked');
      log('warn', 'source blocked after repeated INVITE failures', { source: o.dst, seconds: this.policy.inviteBlockSeconds });
    }
  }

  /** The dialog step: false when policy refuses the message (dialog limit, direct media). A failure to set up pinholes passes the message (counted). */
  private observe(o: Outcome, now: number): boolean {
    try {
      return this.parts.dialogs.observe(o.event!, now);
    } catch (e) {
      this.parts.stats.inc('h|failed');
      log('warn', 'pinhole setup failed, message passed', { err: e as Error, callId: o.event?.info.callId });
      return true;
    }
  }

  private register(o: Outcome, now: number): void {
    const g = o.registration;
    if (g) this.parts.registrations.confirmed(g.aor, g.flow, g.publicIp, g.publicPort, g.expires, now);
  }

  private count(dir: Direction, o: Outcome, rewritten: boolean): void {
    const stats = this.parts.stats;
    if (o.message) stats.add(stats.counter('o', dir, o.message, rewritten ? 'rewritten' : 'unchanged'));
    if (rewritten) for (const f of o.fields) stats.add(stats.counter('r', dir, f));
    if (o.bindingSource && rewritten) stats.add(stats.counter('b', o.bindingSource));
    if (o.refusedThirdParty) stats.inc('h|refused_third_party', o.refusedThirdParty);
  }
}
