/**
 * The router pair's failover during a call's set-up (issue 23), run the same way with sip-alg and
 * with the kernel's own SIP helper: a phone (SIPp, RTP played from g711a.pcap after the answer)
 * calls the provider (SIPp, which answers late and plays the same audio), and the active router
 * fails while the call is still being set up.
 *   1. ringing: 180 at once, A fails 0.5 s later, the 200 OK with SDP (6 s) reaches the phone through B;
 *   2. early media: 183 with SDP and RTP at once, B fails 1 s later (A returned as the standby), the
 *      200 OK (7.5 s) and the rest through A;
 *   3. after that failback, a new call from the same phone and ports through A, with no failover.
 * RTP is counted on the wire at both ends (the phone's interface and the provider's).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PairLab, type RouterName } from './pair';
import { checkWan, readSip } from './wire-check';
import { SRC_LAB } from './lab';

const PHONE = '10.77.0.11', FAR = '203.0.113.10', PUBLIC = '203.0.113.1';
/** RTP packets in /usr/share/sip-tester/g711a.pcap (UDP length 260) */
export const PCAP_RTP = 236;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface SetupCall {
  name: string;
  /** the router that forwarded the answer and the rest of the call */
  via: RouterName;
  /** both SIPp ends finished without error (the call was answered, ACKed and ended by a BYE) */
  completed: boolean;
  sippOutput: string;
  /** the phone's public RTP port, from its SDP as it crossed the WAN */
  advertisedPort: number;
  /** the far end's RTP after the answer: sent (on the provider's interface) and received at the phone */
  farSent: number;
  farToPhone: number;
  /** the phone's RTP after the answer at the provider's interface: from the advertised port, from any other */
  phoneToFar: number;
  phoneFromOther: number;
  /** early media (before the answer) at the phone, and its largest gap (ms) */
  earlyAtPhone: number;
  earlyGapMs: number;
  /** left on the router that carried the call, 4 s after its BYE: sip-alg's anchors, media pinholes (expectations to the public port range) */
  anchorsLeft: number;
  pinholesLeft: number;
  /** the standby's expectations right before the failover, as `conntrack -L expect` shows them (what conntrackd synced) */
  syncedExpectations: string[];
  /** seconds from the link failure to the other router's MASTER */
  failoverSec: number;
}

export interface SetupResult {
  calls: SetupCall[];
  /** SIP messages on the WAN that named a private address or a wrong public one (sip-alg: none) */
  wanProblems: string[];
}

function fields(pcap: string, filter: string, ...f: string[]): string[][] {
  const r = spawnSync('tshark', ['-r', pcap, '-Y', filter, '-T', 'fields', ...f.flatMap((x) => ['-e', x])], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
}

export async function setupFailover(prefix: string, mode: 'alg' | 'kernel'): Promise<SetupResult> {
  const pair = new PairLab(prefix, mode);
  const calls: SetupCall[] = [];
  try {
    await pair.start();
    const lab = pair.lab;
    const caps = await Promise.all([lab.capture(pair.ns('p1'), 'eth0', 'p1', 'udp'), lab.capture(pair.ns('w'), 'eth0', 'w', 'udp')]);
    const links = (r: RouterName, state: 'up' | 'down') => { for (const l of ['wan0', 'lan0']) lab.run(pair.ns(r), 'ip', ['link', 'set', l, state]); };
    const other = (r: RouterName): RouterName => (r === 'a' ? 'b' : 'a');
    const windows: { start: number; end: number }[] = [];
    const plan: { name: string; scenario: string; failAfterMs?: number; from: RouterName }[] = [
      { name: 'ringing at the failover', scenario: 'uas-ring-answer.xml', failAfterMs: 500, from: 'a' },
      { name: 'early media across the failover (failback to A)', scenario: 'uas-early-rtp.xml', failAfterMs: 1000, from: 'b' },
      { name: 'a new call after the failback, same phone and ports', scenario: 'uas-ring-answer.xml', from: 'a' },
    ];
    for (const p of plan) {
      const start = Date.now() / 1000;
      const far = lab.runAsync(pair.ns('w'), 'sipp', ['-sf', join(SRC_LAB, 'scenarios', p.scenario), '-i', FAR, '-p', '5060', '-mp', '7000', '-m', '1', '-nostdin', '-timeout', '60s', '-timeout_error'], 90000);
      await lab.waitListening(pair.ns('w'), [5060]);
      const phone = lab.runAsync(pair.ns('p1'), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', PHONE, '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'far', `${FAR}:5060`, '-nostdin', '-timeout', '60s', '-timeout_error'], 90000);
      let via = p.from, failoverSec = 0, syncedExpectations: string[] = [];
      if (p.failAfterMs !== undefined) {
        await sleep(p.failAfterMs - 200);
        syncedExpectations = pair.conntrack(other(p.from), ['-L', 'expect']).split('\n').filter((l) => /proto=17/.test(l) && !/dport=50[68]0\b/.test(l));
        await sleep(200);
        const failedAt = Date.now();
        links(p.from, 'down');
        via = other(p.from);
        await pair.waitMaster(via);
        failoverSec = (Date.now() - failedAt) / 1000;
      }
      const [ph, fr] = await Promise.all([phone, far]);
      await sleep(4000); // the BYE's grace (2 s) and a sweep
      const anchorsLeft = pair.conntrack(via, ['-L']).split('\n').filter((l) => /dst=127\.1\.|dst=127\.2\./.test(l)).length;
      const pinholesLeft = pair.conntrack(via, ['-L', 'expect']).split('\n').filter((l) => /proto=17/.test(l) && !/dport=50[68]0\b/.test(l)).length;
      windows.push({ start, end: Date.now() / 1000 });
      calls.push({ name: p.name, via, completed: ph.code === 0 && fr.code === 0, sippOutput: `${ph.stdout.slice(-400)}${ph.stderr.slice(-300)}${fr.stderr.slice(-300)}`, advertisedPort: 0, farSent: 0, farToPhone: 0, phoneToFar: 0, phoneFromOther: 0, earlyAtPhone: 0, earlyGapMs: 0, anchorsLeft, pinholesLeft, syncedExpectations, failoverSec });
      if (p.failAfterMs !== undefined) {
        // the failed router comes back (as the standby: no preemption)
        links(p.from, 'up');
        const end = Date.now() + 15000;
        while (pair.states(p.from).at(-1) !== 'BACKUP' && Date.now() < end) await sleep(200);
        await sleep(2000);
      }
    }
    const [p1, w] = await Promise.all(caps.map((c) => c.stop()));
    const msgs = readSip(w!);
    calls.forEach((c, i) => {
      const { start, end } = windows[i]!;
      const inWin = (t: number) => t >= start && t <= end;
      const invite = msgs.find((m) => inWin(m.time) && /^INVITE /.test(m.text) && m.src === PUBLIC);
      c.advertisedPort = Number(/^m=audio (\d+)/m.exec(invite?.text ?? '')?.[1] ?? 0);
      const ok = msgs.find((m) => inWin(m.time) && /^SIP\/2\.0 200/.test(m.text) && /^CSeq:\s*1 INVITE/im.test(m.text) && m.src === FAR);
      const answeredAt = ok?.time ?? end;
      const rtp = 'udp.length==260';
      const times = (pcap: string, filter: string) => fields(pcap, `${filter} && ${rtp} && frame.time_epoch >= ${start} && frame.time_epoch <= ${end}`, 'frame.time_epoch', 'udp.srcport').map(([t, sp]) => ({ t: Number(t), sport: Number(sp) }));
      const farOut = times(w!, `ip.src==${FAR} && udp.srcport==7000`);
      const atPhone = times(p1!, `ip.dst==${PHONE} && udp.dstport==6000 && ip.src==${FAR}`);
      const phoneOut = times(w!, `ip.src==${PUBLIC} && ip.dst==${FAR} && udp.dstport==7000`).filter((x) => x.t > answeredAt);
      c.farSent = farOut.filter((x) => x.t > answeredAt).length;
      c.farToPhone = atPhone.filter((x) => x.t > answeredAt).length;
      c.phoneToFar = phoneOut.filter((x) => x.sport === c.advertisedPort).length;
      c.phoneFromOther = phoneOut.length - c.phoneToFar;
      const early = atPhone.filter((x) => x.t <= answeredAt).map((x) => x.t);
      c.earlyAtPhone = early.length;
      c.earlyGapMs = Math.round(early.slice(1).reduce((g, t, k) => Math.max(g, t - early[k]!), 0) * 1000);
    });
    return { calls, wanProblems: checkWan(msgs, { lanPrefix: '10.77.0.', publicIp: PUBLIC }).slice(0, 5) };
  } finally {
    await pair.close();
  }
}
