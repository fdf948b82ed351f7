/**
 * Real-phone scenarios (issue 14): baresip phones behind the router, Kamailio and SIPp on the WAN,
 * audio counted on the wire at both ends (tcpdump, read with tshark). Run the same way with sip-alg,
 * the kernel's SIP helper and plain NAT (media.ts prepare), so the tests can assert on sip-alg and
 * the README can show where each one breaks.
 */
import { join } from 'node:path';
import { phoneIp, PROVIDER_IP, SRC_LAB } from './lab';
import { count, firstTime, prepare, type Mode } from './media';
import { startBaresip, tone, type Baresip } from './baresip';
import { mkdirSync, writeFileSync } from 'node:fs';

export type PhoneScenario = 'out' | 'in' | 'hairpin' | 'hairpin-late' | 'reinvite' | 'hold' | 'transfer' | 'silence' | 'linphone';
export const PHONE_SCENARIOS: PhoneScenario[] = ['out', 'in', 'hairpin', 'hairpin-late', 'reinvite', 'hold', 'transfer', 'silence', 'linphone'];
export const SCENARIO_LABEL: Record<PhoneScenario, string> = {
  out: 'phone → WAN party (SIPp)',
  in: 'WAN party → phone, through its registration (Kamailio)',
  hairpin: 'phone ↔ phone through the provider (both legs through the router)',
  'hairpin-late': 'phone ↔ phone through a slow provider (the answer held 500 ms): the callee\'s audio reaches the router before its answer reaches the caller',
  reinvite: 'far end re-INVITEs 8 s into the call (seed 000): audio after it',
  hold: 'phone puts a WAN phone (baresip) on hold and resumes: audio both ways after the resume',
  transfer: 'WAN phone A transfers the phone to WAN phone B (REFER, RFC 3515): audio between the phone and B',
  silence: 'registered, then 3 min of silence with UDP timeouts of 30 s, then an inbound call',
  linphone: 'linphone (linphonec) registers through the router, WAN party → it through the registration',
};
/** the silence before the inbound call of the 'silence' scenario */
export const SILENCE_MS = 180_000;

export interface PhoneResult {
  scenario: PhoneScenario;
  mode: Mode;
  /** signaling: the call was set up (and, for SIPp, completed) */
  callOk: boolean;
  /** RTP packets (172-byte G.711 + headers) that reached each end */
  rxA: number;
  rxB: number;
  /** what each count is */
  what: string;
  note: string;
  /** hairpin-late: RTP packets phone 2 sent before its answer reached phone 1 (the race the scenario sets up) */
  early?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** RTP of G.711: 20 ms from baresip (160 + 12 bytes: UDP length 180), 30 ms from SIPp's g711a.pcap (240 + 12: 260) */
const rtpTo = (ip: string) => `ip.dst==${ip} && (udp.length==180 || udp.length==260)`;

/** One scenario in one mode, in a lab of its own (prefix), closed afterwards. */
export async function phoneScenario(prefix: string, scenario: PhoneScenario, mode: Mode): Promise<PhoneResult> {
  const { lab } = await prepare(prefix, 2, mode);
  const phones: Baresip[] = [];
  try {
    const caps = await Promise.all([lab.capture(lab.phone(1), 'eth0', 'p1', 'udp'), lab.capture(lab.phone(2), 'eth0', 'p2', 'udp'), lab.capture(lab.provider, 'eth0', 'w', 'udp')]);
    let callOk = false, note = '', resumedAt = 0;
    const sippArgs = ['-nostdin', '-nr', '-timeout', '40s', '-timeout_error'];
    if (scenario === 'out' || scenario === 'reinvite') {
      const uas = lab.runAsync(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios', scenario === 'out' ? 'uas-rtp.xml' : 'uas-reinvite.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', ...sippArgs, ...(process.env.SIPALG_SIPP_TRACE ? ['-trace_msg', '-trace_err'] : [])], 60000);
      await lab.waitListening(lab.provider, [5080]);
      const p1 = await startBaresip(lab, lab.phone(1), { ip: phoneIp(1), user: 'phone1', registrar: PROVIDER_IP, register: false });
      phones.push(p1);
      p1.command('dial', `sip:pbx@${PROVIDER_IP}:5080`);
      // uas-rtp waits for the caller's BYE (after its 7 s of audio); uas-reinvite hangs up itself
      if (scenario === 'out') {
        await sleep(9000);
        p1.command('hangup');
      }
      const r = await uas;
      callOk = r.code === 0;
      if (!callOk) note = (r.stdout + r.stderr).split('\n').filter((l) => /error|fail|timeout|unexpected/i.test(l)).slice(-1)[0]?.trim() ?? `sipp exit ${r.code}`;
    } else if (scenario === 'hold') {
      // the far end is a baresip too, on the provider's address (port 5070 beside Kamailio's)
      const far = await startBaresip(lab, lab.provider, { ip: PROVIDER_IP, user: 'wan', registrar: PROVIDER_IP, register: false, port: 5070 });
      const p1 = await startBaresip(lab, lab.phone(1), { ip: phoneIp(1), user: 'phone1', registrar: PROVIDER_IP, register: false });
      phones.push(far, p1);
      const from = far.log.length;
      p1.command('dial', `sip:wan@${PROVIDER_IP}:5070`);
      callOk = await far.waitLog(/Call established|established/i, 10000, from).then(() => true, () => false);
      await sleep(3000);
      p1.command('hold');
      await sleep(3000);
      p1.command('resume');
      resumedAt = Date.now() / 1000 + 0.5;
      await sleep(5000);
      p1.command('hangup');
      if (!callOk) note = 'the call was not established';
    } else if (scenario === 'transfer') {
      // two baresip on the provider's address: A (5070) answers, then refers the phone to B (5072)
      const a = await startBaresip(lab, lab.provider, { ip: PROVIDER_IP, user: 'a', registrar: PROVIDER_IP, register: false, port: 5070, ctrlPort: 4444 });
      const b = await startBaresip(lab, lab.provider, { ip: PROVIDER_IP, user: 'b', registrar: PROVIDER_IP, register: false, port: 5072, ctrlPort: 4445 });
      const p1 = await startBaresip(lab, lab.phone(1), { ip: phoneIp(1), user: 'phone1', registrar: PROVIDER_IP, register: false });
      phones.push(a, b, p1);
      p1.command('dial', `sip:a@${PROVIDER_IP}:5070`);
      const up = await a.waitLog(/established/i, 10000).then(() => true, () => false);
      await sleep(2000);
      const fromB = b.log.length;
      a.command('transfer', `sip:b@${PROVIDER_IP}:5072`);
      callOk = up && await b.waitLog(/established/i, 10000, fromB).then(() => true, () => false);
      resumedAt = Date.now() / 1000 + 0.3;
      if (!callOk) note = up ? 'the transferred call did not reach B' : 'the first call was not established';
      await sleep(4500);
      p1.command('hangup');
    } else if (scenario === 'linphone') {
      // Debian's linphonec, driven by linphonecsh (its socket is per user, not per namespace: one at a
      // time on a host); headless: wav files instead of a sound card, the lab's tone as its audio
      await lab.startKamailio();
      const home = join(lab.dir, 'linphone-home');
      for (const d of ['.local/share/linphone', '.config/linphone']) mkdirSync(join(home, d), { recursive: true });
      const rc = join(home, 'linphonerc');
      writeFileSync(rc, `[sip]\nsip_port=5060\nsip_tcp_port=-1\nsip_tls_port=-1\n\n[rtp]\naudio_rtp_port=8000\n`);
      const sh = (cmd: string) => lab.run(lab.phone(2), 'sh', ['-c', `HOME=${home} linphonecsh ${cmd}`]);
      const steps = [`init -c ${rc} -a`, "generic 'soundcard use files'", `generic 'play ${tone(lab.dir)}'`, `register --host ${PROVIDER_IP} --username phone2 --password x`];
      for (const c of steps) {
        // linphonec opens its control pipe some time after `init` returns (seconds on a loaded box):
        // until then linphonecsh says "Failed to connect pipe"; other errors fail at once
        let r = sh(c);
        for (const end = Date.now() + 20000; r.code !== 0 && /Failed to connect pipe/.test(r.stderr + r.stdout) && Date.now() < end; r = sh(c)) await sleep(500);
        if (r.code !== 0) throw new Error(`linphonecsh ${c}: ${r.stderr}${r.stdout}`);
      }
      await sleep(2000);
      const reg = sh('status register').stdout;
      if (!/registered,/.test(reg)) note = `linphone not registered: ${reg.trim()}`;
      try {
        const r = await lab.runAsync(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', PROVIDER_IP, '-p', '5091', '-mp', '7000', '-m', '1', '-s', 'phone2', `${PROVIDER_IP}:5060`, ...sippArgs], 60000);
        callOk = r.code === 0;
        if (!callOk && !note) note = (r.stdout + r.stderr).split('\n').filter((l) => /error|fail|timeout|unexpected|404|408|480/i.test(l)).slice(-1)[0]?.trim() ?? `sipp exit ${r.code}`;
      } finally {
        sh('exit');
      }
      await sleep(500);
      const [, c2, w2] = await Promise.all(caps.map((c) => c.stop()));
      return { scenario, mode, callOk, rxA: count(c2!, rtpTo(phoneIp(2))), rxB: count(w2!, rtpTo(PROVIDER_IP)), what: 'RTP at linphone (of 236 sent) / at the provider', note };
    } else if (scenario === 'in' || scenario === 'silence') {
      await lab.startKamailio();
      if (scenario === 'silence') {
        // the kernel forgets an idle UDP flow (and its NAT binding) after 30 s (seed 004)
        const r = lab.run(lab.router, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_udp_timeout=30', 'net.netfilter.nf_conntrack_udp_timeout_stream=30']);
        if (r.code !== 0) throw new Error(`sysctl: ${r.stderr}`);
      }
      // registers once (no re-registration, no keep-alive within the silence)
      const p1 = await startBaresip(lab, lab.phone(1), { ip: phoneIp(1), user: 'phone1', registrar: PROVIDER_IP, register: true, regint: 3600 });
      phones.push(p1);
      await p1.waitLog(/200 OK|registered|Register: Destination/i, 10000).catch(() => undefined);
      await sleep(scenario === 'silence' ? SILENCE_MS : 500);
      const r = await lab.runAsync(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', PROVIDER_IP, '-p', '5091', '-mp', '7000', '-m', '1', '-s', 'phone1', `${PROVIDER_IP}:5060`, ...sippArgs], 60000);
      callOk = r.code === 0;
      if (!callOk) note = (r.stdout + r.stderr).split('\n').filter((l) => /error|fail|timeout|unexpected|404|408|480/i.test(l)).slice(-1)[0]?.trim() ?? `sipp exit ${r.code}`;
    } else {
      await lab.startKamailio({ answerDelayMs: scenario === 'hairpin-late' ? 500 : 0 });
      const p1 = await startBaresip(lab, lab.phone(1), { ip: phoneIp(1), user: 'phone1', registrar: PROVIDER_IP, register: true, ctrlPort: 4444 });
      const p2 = await startBaresip(lab, lab.phone(2), { ip: phoneIp(2), user: 'phone2', registrar: PROVIDER_IP, register: true, ctrlPort: 4444 });
      phones.push(p1, p2);
      await sleep(1500); // both registered
      const from = p2.log.length;
      p1.command('dial', `sip:phone2@${PROVIDER_IP}`);
      callOk = await p2.waitLog(/Call established|established/i, 10000, from).then(() => true, () => false);
      if (!callOk) note = 'the call did not reach phone 2';
      await sleep(7000); // 7 s of audio both ways
      p1.command('hangup');
    }
    await sleep(500);
    const [c1, c2, w] = await Promise.all(caps.map((c) => c.stop()));
    if (scenario === 'hairpin' || scenario === 'hairpin-late') {
      const res: PhoneResult = { scenario, mode, callOk, rxA: count(c1!, rtpTo(phoneIp(1))), rxB: count(c2!, rtpTo(phoneIp(2))), what: 'RTP at phone 1 / at phone 2 (7 s: ~350 each)', note };
      if (scenario === 'hairpin-late') {
        // the answer's arrival at phone 1 on its own wire; phone 2's RTP sent before it
        const answered = firstTime(c1!, 'sip.Status-Code == 200 && sip.CSeq.method == "INVITE"');
        res.early = answered === undefined ? 0 : count(c2!, `ip.src==${phoneIp(2)} && (udp.length==180 || udp.length==260) && frame.time_epoch < ${answered.toFixed(6)}`);
        res.note = [res.note, `phone 2 sent ${res.early} RTP packets before its answer reached phone 1`].filter(Boolean).join('; ');
      }
      return res;
    }
    if (scenario === 'hold' || scenario === 'transfer') {
      // the hold and the resume crossed the WAN as re-INVITEs (RFC 3264 §8.4: a=sendonly, then sendrecv)
      if (scenario === 'hold' && callOk && !count(w!, 'sip.Method == "INVITE" && sdp.media_attr == "sendonly"')) { callOk = false; note = 'no hold re-INVITE reached the far end'; }
      const after = ` && frame.time_epoch >= ${resumedAt.toFixed(3)}`;
      const what = scenario === 'hold' ? 'RTP after the resume at the phone / at the WAN phone (4.5 s: ~225 each)' : 'RTP after the transfer at the phone / at the WAN phones (4 s: ~200 each)';
      return { scenario, mode, callOk, rxA: count(c1!, rtpTo(phoneIp(1)) + after), rxB: count(w!, rtpTo(PROVIDER_IP) + after), what, note };
    }
    const prov = count(w!, rtpTo(PROVIDER_IP));
    const phone = count(c1!, rtpTo(phoneIp(1)));
    const what = scenario === 'reinvite' ? 'RTP at the phone (236 before + 236 after the re-INVITE) / at the provider' : 'RTP at the phone (of 236 sent) / at the provider';
    return { scenario, mode, callOk, rxA: phone, rxB: prov, what, note };
  } finally {
    await lab.close();
  }
}

/** A matrix row as text. */
export function describeResult(r: PhoneResult): string {
  return `${r.callOk ? 'call ok' : 'call FAILED'}; RTP ${r.rxA} / ${r.rxB}${r.note ? ` (${r.note})` : ''}`;
}

