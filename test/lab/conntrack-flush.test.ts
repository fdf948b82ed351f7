/**
 * Integration: `conntrack -F` under a running daemon (an operator clearing the NAT table, a firewall
 * script that flushes it). Two phones send from port 5060 to one registrar: the first keeps 5060 on
 * the WAN, the second is given another port. After the flush the second phone sends first, and the
 * kernel NATs it anew, now to 5060. Its message must name the port it really leaves from: the rules
 * mark a packet whose conntrack entry is not in the table (fresh-flow-mark), and the daemon reads
 * that flow's binding from the kernel instead of its cache. The worker's cache is held long here
 * (SIPALG_BINDING_CACHE_MS) so that the flush always falls inside it; with the mark ignored
 * (`--fresh-flow-mark 0`) the same scenario writes the stale port: the check can fail. The kernel
 * helper runs the same scenario.
 * A second scenario flushes during a call with RTP both ways: the flush takes the call's anchor,
 * pinholes and media flows, and the phone's next RTP is NATed by MASQUERADE to a port of its own
 * choosing, not the one the SDP announced. The worker's flush watch (a sentinel entry it re-arms
 * each second) finds the flush and makes the call's flows and pinholes again.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { metricSum, phoneIp, PROVIDER_IP, ROOT, ROUTER_WAN_IP, SRC_LAB } from '../../src/lab/lab';
import { prepare, type Mode } from '../../src/lab/media';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));
const PEER = join(ROOT, 'dist/src/lab/udp-peer.js');
type Got = { received: { from: string; len: number; text: string }[] };
const parse = (out: string): Got => JSON.parse(out.trim().split('\n').pop() || '{"received":[]}') as Got;

/** What the registrar saw of one message: the port it came from, the ports its Via and Contact name. */
interface Seen { phone: number; from: number; via: number; contact: number }

async function scenario(mode: Mode, prefix: string, daemonArgs: string[] = []): Promise<{ seen: Seen[]; flow: string; log: string; marked: number; markedPastQueue: number }> {
  process.env.SIPALG_BINDING_CACHE_MS = '60000';
  const { lab, log } = await prepare(prefix, 2, mode, daemonArgs);
  delete process.env.SIPALG_BINDING_CACHE_MS;
  try {
    const prov = lab.start(lab.provider, process.execPath, [PEER, 'recv', PROVIDER_IP, '5080', '3', '20000']);
    let provOut = '';
    prov.stdout!.on('data', (d: Buffer) => { provOut += d.toString(); });
    await lab.waitListening(lab.provider, [5080]);
    // counts the SIP packets that still carry the fresh-flow bit past the queue (nat POSTROUTING runs after mangle's)
    const count = lab.run(lab.router, 'iptables', ['-t', 'nat', '-I', 'POSTROUTING', '-p', 'udp', '--dport', '5080', '-m', 'mark', '--mark', '0x10000000/0x10000000', '-m', 'comment', '--comment', 'fresh-bit-past-queue']);
    assert.equal(count.code, 0, count.stderr);
    const send = async (phone: number, tag: string) => {
      const r = await lab.runAsync(lab.phone(phone), process.execPath, [PEER, 'send', phoneIp(phone), '5060', PROVIDER_IP, '5080', '200', `sip:reg@${PROVIDER_IP}`, '400'], 20000);
      assert.equal(r.code, 0, `${tag}: ${r.stderr}`);
    };
    await send(1, 'phone 1');
    await send(2, 'phone 2');
    const before = lab.conntrack(['-L', '-p', 'udp', '--orig-src', phoneIp(2)]);
    const f = lab.run(lab.router, 'conntrack', ['-F']);
    assert.equal(f.code, 0, f.stderr);
    await send(2, 'phone 2 after the flush');
    await new Promise((r) => { if (prov.exitCode !== null) r(0); prov.once('exit', r); setTimeout(r, 5000); });
    const got = parse(provOut).received;
    assert.equal(got.length, 3, `the registrar got the three messages: ${provOut}\n${log().slice(-1500)}`);
    const port = (text: string, header: RegExp) => Number(header.exec(text)?.[1] ?? NaN);
    const wan = ROUTER_WAN_IP.replace(/\./g, '\\.');
    const seen = got.map((m, i) => ({
      phone: i === 0 ? 1 : 2,
      from: Number(m.from.split(':').pop()),
      via: port(m.text, new RegExp(`^Via: SIP/2\\.0/UDP ${wan}:(\\d+);`, 'm')),
      contact: port(m.text, new RegExp(`^Contact: <sip:blf@${wan}:(\\d+)>`, 'm')),
    }));
    const after = lab.conntrack(['-L', '-p', 'udp', '--orig-src', phoneIp(2)]);
    const counter = (table: string, chain: string, what: RegExp) => {
      const l = lab.run(lab.router, 'iptables', ['-t', table, '-L', chain, '-v', '-x', '-n']).stdout.split('\n').find((x) => what.test(x));
      return l ? Number(l.trim().split(/\s+/)[0]) : 0;
    };
    return {
      seen, flow: `before the flush: ${before.trim()} | after: ${after.trim()}`, log: log().slice(-1500),
      marked: mode === 'alg' ? counter('mangle', 'SIPALG', /MARK/) : 0,
      markedPastQueue: counter('nat', 'POSTROUTING', /fresh-bit-past-queue/),
    };
  } finally {
    await lab.close();
  }
}

test('after conntrack -F, a phone\'s next message names the port it leaves from (fresh-flow-mark); the kernel helper alike', { timeout: 180000 }, async () => {
  const alg = await scenario('alg', 'sflu');
  const [one, two, again] = alg.seen;
  assert.equal(one!.from, 5060, 'the first phone keeps its port');
  assert.notEqual(two!.from, 5060, 'the second phone is given another one');
  assert.equal(again!.from, 5060, `after the flush the kernel NATs the second phone anew, to the port now free (${alg.flow})`);
  for (const s of alg.seen) {
    assert.equal(s.via, s.from, `Via names the port the message came from: ${JSON.stringify(alg.seen)}\n${alg.log}`);
    assert.equal(s.contact, s.from, `Contact too: ${JSON.stringify(alg.seen)}`);
  }
  // the rules marked the fresh packets (each phone's first, and phone 2's after the flush), and the
  // daemon's verdicts cleared the bit: none reaches nat POSTROUTING (a new entry's first packet) with it
  assert.ok(alg.marked >= 3, `fresh packets marked: ${alg.marked}`);
  assert.equal(alg.markedPastQueue, 0, 'no packet carries the fresh-flow bit past the queue');

  // the mark ignored: the cache's binding, the port the second phone had before the flush
  const off = await scenario('alg', 'sflo', ['--fresh-flow-mark', '0']);
  assert.equal(off.seen[2]!.from, 5060);
  assert.equal(off.seen[2]!.via, off.seen[1]!.from, `without the mark, the stale binding is written: ${JSON.stringify(off.seen)}`);
  assert.ok(off.markedPastQueue >= 3, `a daemon that does not clear the bit leaves it on the packets (${off.markedPastQueue}): the counter sees it`);

  // the kernel's SIP helper rewrites with the entry the packet has, so it holds too
  const kernel = await scenario('kernel', 'sflk');
  for (const s of kernel.seen) assert.equal(s.via, s.from, `kernel helper: Via names the port the message came from: ${JSON.stringify(kernel.seen)}`);
  console.log(`# sip-alg: ${JSON.stringify(alg.seen)}; sip-alg without the mark: ${JSON.stringify(off.seen)}; kernel helper: ${JSON.stringify(kernel.seen)}`);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The capture times (s) of the packets `filter` selects. */
const times = (pcap: string, filter: string) => spawnSync('tshark', ['-r', pcap, '-Y', filter, '-T', 'fields', '-e', 'frame.time_epoch'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);

/** A call with 7 s of RTP each way (SIPp, g711a.pcap), `conntrack -F` 2.5 s into it; RTP counted before and after. */
async function flushDuringCall(mode: Mode, prefix: string): Promise<{ callOk: boolean; phoneBefore: number; phoneAfter: number; providerBefore: number; providerAfter: number; repaired: number; log: string }> {
  const { lab, log } = await prepare(prefix, 1, mode);
  try {
    const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp and not port 5060');
    const prov = await lab.capture(lab.provider, 'eth0', 'w', 'udp and not port 5080');
    const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios', 'uas-rtp.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
    const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 40000); });
    await lab.waitListening(lab.provider, [5080]);
    const call = lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios', 'uac-rtp.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`, '-nostdin', '-nr', '-timeout', '40s', '-timeout_error'], 60000);
    await sleep(2500);
    const flushAt = Date.now() / 1000;
    const f = lab.run(lab.router, 'conntrack', ['-F']);
    assert.equal(f.code, 0, f.stderr);
    const r = await call;
    await uasDone;
    await sleep(1200); // one stats flush
    const repaired = mode === 'alg' ? metricSum(lab.metrics(), 'sipalg_dialogs_total', { event: 'repaired_after_flush' }) : 0;
    const p = await phone.stop();
    const w = await prov.stop();
    // after the flush, past the flush watch's second and a margin
    const n = (xs: number[], after: boolean) => xs.filter((t) => (after ? t >= flushAt + 2 : t < flushAt)).length;
    const rx = times(p, `ip.dst==${phoneIp(1)} && udp.dstport==6000 && udp.srcport==7000`);
    const tx = times(w, `ip.dst==${PROVIDER_IP} && udp.dstport==7000`);
    return { callOk: r.code === 0, phoneBefore: n(rx, false), phoneAfter: n(rx, true), providerBefore: n(tx, false), providerAfter: n(tx, true), repaired, log: log().slice(-2000) };
  } finally {
    await lab.close();
  }
}

test('conntrack -F during a call: the flush watch makes the call\'s media flows and pinholes again, RTP flows both ways after it (the kernel helper\'s figures beside it)', { timeout: 180000 }, async () => {
  const alg = await flushDuringCall('alg', 'sflc');
  assert.ok(alg.callOk, `the call completed: ${alg.log}`);
  assert.ok(alg.phoneBefore > 20 && alg.providerBefore > 20, `RTP both ways before the flush: ${JSON.stringify({ ...alg, log: undefined })}`);
  assert.equal(alg.repaired, 1, 'the call was made again (sipalg_dialogs_total{event="repaired_after_flush"})');
  assert.ok(alg.phoneAfter > 20, `the phone hears the far end again after the flush: ${JSON.stringify({ ...alg, log: undefined })}\n${alg.log}`);
  assert.ok(alg.providerAfter > 20, `the far end hears the phone after the flush: ${JSON.stringify({ ...alg, log: undefined })}`);
  // the kernel helper, same scenario: reported (on this kernel the phone hears nothing after the flush)
  const kernel = await flushDuringCall('kernel', 'sflk2');
  console.log(`# RTP packets before / from 2 s after the flush, phone and provider: sip-alg ${alg.phoneBefore}/${alg.phoneAfter}, ${alg.providerBefore}/${alg.providerAfter}; kernel helper ${kernel.phoneBefore}/${kernel.phoneAfter}, ${kernel.providerBefore}/${kernel.providerAfter} (call ${kernel.callOk ? 'ok' : 'failed'})`);
});
