/**
 * The per-message decision (src/worker/pipeline.ts). The pipeline's parts are stand-ins here: each
 * step's own behaviour has its unit tests (processor, protection, dialog table, registrations), and
 * the lab tests run the whole path on a real NFQUEUE. What is tested is the order of the steps and
 * what each refusal or failure makes of the verdict.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PacketPipeline, type PipelineParts } from '../../../src/worker/pipeline';
import { WorkerStats } from '../../../src/metrics/worker-stats';
import { NF_ACCEPT, NF_DROP } from '../../../src/native/binding';
import { Reason } from '../../../src/errors';
import type { Outcome } from '../../../src/alg/processor';
import type { SipEvent } from '../../../src/dialog/dialog-table';
import { udpPacket } from '../../helpers/packet';

const INVITE = 'INVITE sip:bob@203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.0.11:5060;branch=z9hG4bK1\r\nContact: <sip:alice@10.77.0.11:5060>\r\nContent-Length: 0\r\n\r\n';
const pkt = udpPacket('10.77.0.11', '203.0.113.10', 5060, 5060, INVITE);

function outcome(over: Partial<Outcome> = {}): Outcome {
  const event = { dir: 'out', isRequest: true, method: 'INVITE', status: 0, info: { callId: 'c1', fromTag: 'a', toTag: '', cseqMethod: 'INVITE' } } as unknown as SipEvent;
  return { accept: true, packet: Buffer.from('rewritten'), reason: Reason.REWRITTEN, message: 'INVITE', fields: ['via'], bindingSource: 'conntrack', event, src: '10.77.0.11', dst: '203.0.113.10', initial: true, ...over };
}

function parts(o: () => Outcome, opts: { protect?: string; observe?: boolean | 'throw'; move?: boolean; processThrows?: boolean } = {}) {
  const calls: string[] = [];
  const resolver = { stats: { moved: 0 } };
  const p = {
    proc: { process: () => { if (opts.processThrows) throw new Error('boom'); if (opts.move) resolver.stats.moved++; calls.push('process'); return o(); } },
    resolver,
    protection: { request: () => { calls.push('protection'); return opts.protect ?? 'ok'; }, inviteFinal: () => false },
    dialogs: { observe: () => { calls.push('dialog'); if (opts.observe === 'throw') throw new Error('ctnetlink'); return opts.observe ?? true; } },
    registrations: { confirmed: () => calls.push('registration') },
    stats: new WorkerStats(),
  } as unknown as PipelineParts;
  return { p, calls };
}

const policy = { leakPolicy: 'drop' as const, inviteBlockSeconds: 60, debug: false };

test('steps in order: parse+rewrite, protection, dialog, registration; the rewritten packet is accepted and counted', () => {
  const { p, calls } = parts(() => outcome({ registration: { aor: 'a', flow: {} as never, publicIp: '1.2.3.4', publicPort: 5060, expires: 60 } }));
  const d = new PacketPipeline(p, policy).datagram(pkt, 'out', 1000);
  assert.deepEqual(calls, ['process', 'protection', 'dialog', 'registration']);
  assert.equal(d.verdict, NF_ACCEPT);
  assert.equal(d.out?.toString(), 'rewritten');
  assert.deepEqual(d.fields, ['via']);
  const c = p.stats.flush(0, 0, 0, 0).counters;
  assert.equal(c['p|out|accept|rewritten'], 1);
  assert.equal(c['o|out|INVITE|rewritten'], 1);
  assert.equal(c['r|out|via'], 1);
});

test('a refusal drops the packet with its reason and skips the later steps (rate limit, dialog limit, link moved)', () => {
  const rate = parts(() => outcome(), { protect: Reason.RATE_LIMITED });
  let d = new PacketPipeline(rate.p, policy).datagram(pkt, 'out', 1000);
  assert.equal(d.verdict, NF_DROP);
  assert.equal(d.reason, Reason.RATE_LIMITED);
  assert.equal(d.out, undefined);
  assert.deepEqual(rate.calls, ['process', 'protection'], 'no pinholes for a refused INVITE');

  const limit = parts(() => outcome(), { observe: false });
  d = new PacketPipeline(limit.p, policy).datagram(pkt, 'out', 1000);
  assert.equal(d.verdict, NF_DROP);
  assert.equal(d.reason, Reason.DIALOG_LIMIT);
  assert.equal(limit.p.stats.flush(0, 0, 0, 0).counters['o|out|INVITE|dropped'], 1);

  const moved = parts(() => outcome(), { move: true });
  d = new PacketPipeline(moved.p, policy).datagram(pkt, 'out', 1000);
  assert.equal(d.verdict, NF_DROP);
  assert.equal(d.reason, Reason.LINK_MOVED);
  assert.deepEqual(moved.calls, ['process']);
});

test('fail open: a failed pinhole setup passes the message (counted); an internal error accepts unchanged unless the packet would leak', () => {
  const failed = parts(() => outcome(), { observe: 'throw' });
  let d = new PacketPipeline(failed.p, policy).datagram(pkt, 'out', 1000);
  assert.equal(d.verdict, NF_ACCEPT);
  assert.equal(failed.p.stats.flush(0, 0, 0, 0).counters['h|failed'], 1);

  const boom = parts(() => outcome(), { processThrows: true });
  d = new PacketPipeline(boom.p, policy).datagram(pkt, 'in', 1000);
  assert.equal(d.verdict, NF_ACCEPT, 'WAN→LAN: accepted unchanged');
  assert.equal(d.reason, Reason.INTERNAL_ERROR);
  d = new PacketPipeline(boom.p, policy).datagram(pkt, 'out', 1000);
  assert.equal(d.verdict, NF_DROP, 'LAN→WAN with the phone\'s address and leak-policy=drop: dropped');
  d = new PacketPipeline(boom.p, { ...policy, leakPolicy: 'pass' }).datagram(pkt, 'out', 1000);
  assert.equal(d.verdict, NF_ACCEPT, 'leak-policy=pass: accepted unchanged');
});

test('a message that could not be translated is not passed to the WAN with the private address (leak guard)', () => {
  const { p } = parts(() => outcome({ packet: undefined, reason: Reason.NO_BINDING, event: undefined }));
  const d = new PacketPipeline(p, policy).datagram(pkt, 'out', 1000);
  assert.equal(d.verdict, NF_DROP);
  assert.equal(p.stats.flush(0, 0, 0, 0).counters['k|no_binding'], 1);
});

test('a message inside a TCP stream is observed and counted, not enforced', () => {
  const { p, calls } = parts(() => outcome(), { observe: false });
  new PacketPipeline(p, policy).streamMessage('out', outcome(), 1000);
  assert.deepEqual(calls, ['dialog']);
  const c = p.stats.flush(0, 0, 0, 0).counters;
  assert.equal(c['d|tcp_policy_not_enforced'], 1);
  assert.equal(c['o|out|INVITE|rewritten'], 1);
});
