/**
 * Media scenarios of the lab, measured the same way with sip-alg, with the kernel's own SIP helper
 * (nf_conntrack_sip + nf_nat_sip via `-j CT --helper sip`) and with plain NAT, so the tests can
 * assert on sip-alg and `npm run bench` can print the comparison.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Lab, metricSum, phoneIp, PROVIDER_IP, ROUTER_WAN_IP, SRC_LAB } from './lab';
import { readSip } from './wire-check';

export type Mode = 'alg' | 'kernel' | 'none';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function count(pcap: string, filter: string): number {
  const r = spawnSync('tshark', ['-r', pcap, '-Y', filter, '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return r.stdout.split('\n').filter(Boolean).length;
}
/** Epoch seconds of the first frame of `pcap` that matches `filter`, or undefined. */
export function firstTime(pcap: string, filter: string): number | undefined {
  const r = spawnSync('tshark', ['-r', pcap, '-Y', filter, '-T', 'fields', '-e', 'frame.time_epoch'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const t = Number.parseFloat(r.stdout.trim().split('\n')[0] ?? '');
  return Number.isFinite(t) ? t : undefined;
}
export const expectations = (lab: Lab) => lab.conntrack(['-L', 'expect']).split('\n').filter((l) => /^\d+ proto=17/.test(l.trim())).length;
export const anchors = (lab: Lab) => lab.conntrack(['-L']).split('\n').filter((l) => /dst=127\.1\.\d+\.1 /.test(l)).length;

export type Daemon = Awaited<ReturnType<Lab['startDaemon']>>;

/**
 * Builds the lab and sets up the mode's SIP handling on the router: for 'alg' the project's rules
 * (2 queues unless `queues` says otherwise, e.g. '0:0' for one worker; `ruleArgs` added to the rules
 * script's) and the daemon with `daemonArgs` added.
 */
export async function prepare(prefix: string, phones: number, mode: Mode, daemonArgs: string[] = [], queues = '0:1', ruleArgs: string[] = []): Promise<{ lab: Lab; log: () => string; daemon?: Daemon }> {
  const lab = new Lab(prefix, phones);
  lab.up();
  if (mode === 'alg') {
    const r = lab.rules('install', ['--wan', 'wan0', '--queues', queues, ...ruleArgs]);
    if (r.code !== 0) throw new Error(r.stderr);
    const daemon = await lab.startDaemon(['--queues', queues, '--teardown-grace-seconds', '2', ...daemonArgs]);
    return { lab, log: daemon.log, daemon };
  }
  if (mode === 'kernel') {
    for (const port of ['5060', '5080']) {
      const r = lab.run(lab.router, 'iptables', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', port, '-j', 'CT', '--helper', 'sip']);
      if (r.code !== 0) throw new Error(`kernel helper: ${r.stderr}`);
    }
  }
  return { lab, log: () => '' };
}

function sipp(lab: Lab, ns: string, args: string[], timeoutMs = 60000) {
  return lab.runAsync(ns, 'sipp', [...args, '-nostdin', '-nr', '-timeout', '40s', '-timeout_error'], timeoutMs);
}

export interface TwoPhonesResult {
  callsOk: boolean;
  phoneRx: number[];
  phoneTx: number[];
  providerRxByPort: Map<string, number>;
  advertised: string[];
  during: { exp: number; anchors: number };
  after: { exp: number; anchors: number; flows: number };
}

/** Two phones offer the same private RTP port 6000; the provider answers and sends audio first. */
export async function twoPhonesRtp(lab: Lab): Promise<TwoPhonesResult> {
  const caps = await Promise.all([
    lab.capture(lab.phone(1), 'eth0', 'p1', 'udp and not port 5060'),
    lab.capture(lab.phone(2), 'eth0', 'p2', 'udp and not port 5060'),
    lab.capture(lab.provider, 'eth0', 'w', 'udp'),
  ]);
  const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-rtp.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '2', '-nostdin', '-nr']);
  const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 30000); });
  await lab.waitListening(lab.provider, [5080]);
  const calls = [1, 2].map((i) => sipp(lab, lab.phone(i), ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', phoneIp(i), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`]));
  await sleep(4000);
  const during = { exp: expectations(lab), anchors: anchors(lab) };
  const results = await Promise.all(calls);
  await uasDone;
  await sleep(3500); // teardown grace (2 s) + sweep
  const after = { exp: expectations(lab), anchors: anchors(lab), flows: lab.conntrack(['-L', '-p', 'udp']).split('\n').filter((l) => /port=700[01] /.test(l)).length };
  const [p1, p2, w] = await Promise.all(caps.map((c) => c.stop()));
  const phoneRx = [p1!, p2!].map((p, k) => count(p, `ip.dst==${phoneIp(k + 1)} && udp.dstport==6000 && udp.srcport==7000`));
  const phoneTx = [p1!, p2!].map((p, k) => count(p, `ip.src==${phoneIp(k + 1)} && udp.srcport==6000`));
  const providerRxByPort = new Map<string, number>();
  for (const port of spawnSync('tshark', ['-r', w!, '-Y', `ip.dst==${PROVIDER_IP} && udp.dstport==7000`, '-T', 'fields', '-e', 'udp.srcport'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) providerRxByPort.set(port, (providerRxByPort.get(port) ?? 0) + 1);
  const advertised = readSip(w!).filter((m) => m.text.startsWith('INVITE')).map((m) => /^m=audio (\d+)/m.exec(m.text)?.[1] ?? '');
  return { callsOk: results.every((r) => r.code === 0), phoneRx, phoneTx, providerRxByPort, advertised, during, after };
}

export interface TrunkResult {
  callsOk: boolean;
  invitesOnWan: number;
  during: number;
  delivered: number;
  after: { exp: number; anchors: number };
}

/** `calls` concurrent calls from one PBX over one signaling flow; every pinhole is probed while the calls are up. */
export async function trunk(lab: Lab, calls: number): Promise<TrunkResult> {
  const wan = await lab.capture(lab.router, 'wan0', 'wan', 'udp port 5060 or udp port 5080');
  const lan = await lab.capture(lab.phone(1), 'eth0', 'lan', 'udp');
  const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-quiet.xml'), '-i', PROVIDER_IP, '-p', '5080', '-m', String(calls), '-nostdin', '-nr']);
  await lab.waitListening(lab.provider, [5080]);
  const pbx = sipp(lab, lab.phone(1), ['-sf', join(SRC_LAB, 'scenarios/uac-trunk.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '20000', '-m', String(calls), '-l', String(calls), '-r', '200', '-s', 'trunk', `${PROVIDER_IP}:5080`]);
  await sleep(4500);
  const during = expectations(lab);
  const invites = readSip(join(lab.dir, 'wan.pcap')).filter((m) => m.text.startsWith('INVITE') && m.src === ROUTER_WAN_IP);
  const probes = invites.map((m) => ({ callId: /^Call-ID: (\S+)/m.exec(m.text)?.[1] ?? '', port: Number(/^m=audio (\d+)/m.exec(m.text)?.[1] ?? 0) })).filter((p) => p.port > 0);
  const js = `const d=require('dgram').createSocket('udp4');const p=${JSON.stringify(probes)};d.bind(9999,'${PROVIDER_IP}',async()=>{for(const x of p){await new Promise(r=>d.send(x.callId,x.port,'${ROUTER_WAN_IP}',r));await new Promise(r=>setTimeout(r,2));}setTimeout(()=>d.close(),200);});`; // paced: a burst could outrun tcpdump on a busy box
  lab.run(lab.provider, process.execPath, ['-e', js]);
  const r = await pbx;
  uas.kill();
  await sleep(3500);
  const after = { exp: expectations(lab), anchors: anchors(lab) };
  await wan.stop();
  const lanPcap = await lan.stop();
  const privatePort = new Map(readSip(lanPcap).filter((m) => m.text.startsWith('INVITE')).map((m) => [/^Call-ID: (\S+)/m.exec(m.text)?.[1] ?? '', Number(/^m=audio (\d+)/m.exec(m.text)?.[1] ?? 0)]));
  let delivered = 0;
  for (const line of spawnSync('tshark', ['-r', lanPcap, '-Y', `udp.srcport==9999 && ip.dst==${phoneIp(1)}`, '-T', 'fields', '-e', 'udp.dstport', '-e', 'udp.payload'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout.split('\n').filter(Boolean)) {
    const [port, hex] = line.split('\t');
    if (privatePort.get(Buffer.from((hex ?? '').replace(/:/g, ''), 'hex').toString()) === Number(port)) delivered++;
  }
  return { callsOk: r.code === 0, invitesOnWan: invites.length, during, delivered, after };
}

export interface ReinviteResult {
  callsOk: boolean;
  rxBefore: number;
  rxAfter: number;
  answerPorts: number[];
}

/** The provider re-INVITEs some seconds in; the phone's answer moves its media from 6000 to 6010. */
export async function reinvite(lab: Lab): Promise<ReinviteResult> {
  const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp');
  const wan = await lab.capture(lab.router, 'wan0', 'wan', 'udp');
  const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-reinvite.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
  const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 40000); });
  await lab.waitListening(lab.provider, [5080]);
  const r = await sipp(lab, lab.phone(1), ['-sf', join(SRC_LAB, 'scenarios/uac-reinvited.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`]);
  await uasDone;
  const p = await phone.stop();
  const w = await wan.stop();
  return {
    callsOk: r.code === 0,
    rxBefore: count(p, `ip.dst==${phoneIp(1)} && udp.dstport==6000 && udp.srcport==7000`),
    rxAfter: count(p, `ip.dst==${phoneIp(1)} && udp.dstport==6010 && udp.srcport==7000`),
    answerPorts: readSip(w).filter((m) => m.src === ROUTER_WAN_IP && /^m=audio/m.test(m.text)).map((m) => Number(/^m=audio (\d+)/m.exec(m.text)![1])),
  };
}

export interface SingleCallResult {
  callsOk: boolean;
  /** RTP packets from the provider's media port 7000 that reached the phone's port 6000 */
  phoneRx: number;
  /** RTP packets from the phone that reached the provider's port 7000 */
  providerRx: number;
  /** pinholes (expectations) seen at sampleAtMs after the call started */
  sampled: number;
  after: { exp: number; anchors: number };
}

/** One phone, one call, with the given provider and phone scenarios (src/lab/scenarios). */
export async function singleCall(lab: Lab, uasScenario: string, uacScenario: string, sampleAtMs: number): Promise<SingleCallResult> {
  const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp and not port 5060');
  const prov = await lab.capture(lab.provider, 'eth0', 'w', 'udp and not port 5080');
  const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios', uasScenario), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
  const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 40000); });
  await lab.waitListening(lab.provider, [5080]);
  const call = sipp(lab, lab.phone(1), ['-sf', join(SRC_LAB, 'scenarios', uacScenario), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`]);
  await sleep(sampleAtMs);
  const sampled = expectations(lab);
  const r = await call;
  await uasDone;
  await sleep(3500);
  const after = { exp: expectations(lab), anchors: anchors(lab) };
  const p = await phone.stop();
  const w = await prov.stop();
  return {
    callsOk: r.code === 0,
    phoneRx: count(p, `ip.dst==${phoneIp(1)} && udp.dstport==6000 && udp.srcport==7000`),
    providerRx: count(w, `ip.dst==${PROVIDER_IP} && udp.dstport==7000`),
    sampled,
    after,
  };
}

export interface ForkResult {
  callsOk: boolean;
  phoneRx: number;
  /** media conntracks toward the losing fork's media port while the call is up */
  loserFlows: number;
  winnerFlows: number;
  after: { exp: number; anchors: number };
}

/** The phone calls through Kamailio, which forks to two provider UAS: A sends 183+SDP, B answers and sends audio. */
export async function forked(lab: Lab): Promise<ForkResult> {
  await lab.startKamailio();
  const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp and not port 5060');
  const sig = await lab.capture(lab.provider, 'any', 'sig', 'udp');
  const winner = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-fork-winner.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
  const loser = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-fork-loser.xml'), '-i', PROVIDER_IP, '-p', '5081', '-mp', '7100', '-m', '1', '-nostdin', '-nr']);
  const done = Promise.all([winner, loser].map((p) => new Promise((r) => { p.once('exit', r); setTimeout(r, 40000); })));
  await lab.waitListening(lab.provider, [5080, 5081]);
  const call = sipp(lab, lab.phone(1), ['-sf', join(SRC_LAB, 'scenarios/uac-fork.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'fork', `${PROVIDER_IP}:5060`]);
  await sleep(4000);
  const flows = lab.conntrack(['-L', '-p', 'udp']).split('\n');
  const loserFlows = flows.filter((l) => /port=710[01] /.test(l)).length;
  const winnerFlows = flows.filter((l) => /port=700[01] /.test(l)).length;
  const r = await call;
  await done;
  await sleep(3500);
  const after = { exp: expectations(lab), anchors: anchors(lab) };
  const p = await phone.stop();
  await sig.stop();
  return { callsOk: r.code === 0, phoneRx: count(p, `ip.dst==${phoneIp(1)} && udp.dstport==6000 && udp.srcport==7000`), loserFlows, winnerFlows, after };
}

export const STRANGER_IP = '203.0.113.66';
/** the SSRC of the far end's last phase of talk, which the phone's capture counts apart */
const LAST_SSRC = 0x4c415354;
/** the stranger's source port per phase: its datagrams are told apart by it whatever a NAT did to its address */
const STRANGER_PORTS: Record<string, number> = { ringing: 4441, 'answered, far end silent': 4442, talking: 4443 };

export interface RedialResult {
  callsOk: boolean;
  /** the public RTP port each call's SDP advertised on the WAN */
  advertised: number[];
  /** far-end packets sent and received at the phone, per call (RTP + RTCP), and those of the second call's last phase */
  farSent: number[];
  farReceived: number[];
  lastPhaseSent: number;
  lastPhaseReceived: number;
  /** the stranger's datagrams to the public RTP and RTCP ports, sent and reaching the phone, per phase of the second call */
  strangerSent: Record<string, number>;
  strangerReceived: Record<string, number>;
  /** `conntrack -L expect` lines of the calls while they ring, before the far end's media */
  expectRinging: string[][];
  /** pinholes `sip-alg calls` reported (sip-alg only) and the kernel held, sampled together */
  pinholesReported: number[];
  pinholesInKernel: number[];
  failedPinholes: number;
  after: { exp: number; anchors: number };
}

/**
 * Issue 19 as a user meets it: the phone calls, hangs up and redials at once from the same RTP port
 * (SIPp -m 2 -l 1, port 6000); the far end answers each call with early media (183 + SDP naming
 * 7000) and talks after the answer. Call 1's far end sends from another port of its SDP address
 * (7010/7011); call 2's from its SDP ports (7000/7001), through the end of the old call's teardown
 * grace and for the rest of the call. Meanwhile a WAN host that is not the far end (STRANGER_IP)
 * sends to the public RTP and RTCP ports the router advertised: while call 2 rings, right after its
 * answer while the far end is silent, and during the talk. Counted at the phone with tcpdump.
 */
export async function redialAndStranger(lab: Lab, mode: Mode): Promise<RedialResult> {
  lab.run(lab.provider, 'ip', ['addr', 'add', `${STRANGER_IP}/24`, 'dev', 'eth0']);
  const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp and not port 5060');
  const wan = await lab.capture(lab.router, 'wan0', 'wan', 'udp port 5060 or udp port 5080');
  const far = lab.start(lab.provider, process.execPath, [join(__dirname, 'far-end.js')], true);
  await Lab.waitFor(far, /ready/, 10000, 'far-end driver');
  const send = (c: { src: string; sport: number; dport?: number; count?: number; intervalMs?: number; tag: string; listen?: boolean; ssrc?: number }) => new Promise<number>((resolve) => {
    const onData = (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        if (!line.includes(`"tag":"${c.tag}"`)) continue;
        far.stdout?.off('data', onData);
        resolve((JSON.parse(line) as { sent?: number }).sent ?? 0);
      }
    };
    far.stdout?.on('data', onData);
    far.stdin?.write(JSON.stringify({ dst: ROUTER_WAN_IP, ...c }) + '\n');
  });
  await Promise.all([send({ src: PROVIDER_IP, sport: 7000, listen: true, tag: 'l0' }), send({ src: PROVIDER_IP, sport: 7001, listen: true, tag: 'l1' })]);
  const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-early-driven.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7100', '-m', '2', '-nostdin', '-nr']);
  const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 60000); });
  await lab.waitListening(lab.provider, [5080]);
  const t0 = Date.now();
  const dbg = (...a: unknown[]) => { if (process.env.SIPALG_LAB_DEBUG) console.error(((Date.now() - t0) / 1000).toFixed(2), ...a); };
  const at = (s: number) => sleep(Math.max(0, t0 + s * 1000 - Date.now()));
  const call = sipp(lab, lab.phone(1), ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '2', '-l', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`], 90000);
  const advertisedPort = (n: number) => {
    const invites = readSip(join(lab.dir, 'wan.pcap')).filter((m) => m.src === ROUTER_WAN_IP && m.text.startsWith('INVITE') && /^m=audio/m.test(m.text));
    const ids = [...new Set(invites.map((m) => /^Call-ID:\s*(\S+)/im.exec(m.text)?.[1]))];
    const m = invites.find((x) => /^Call-ID:\s*(\S+)/im.exec(x.text)?.[1] === ids[n]);
    return m ? Number(/^m=audio (\d+)/m.exec(m.text)![1]) : 0;
  };
  // media pinholes: not the kernel helper's signalling expectations (to the SIP ports)
  const expectLines = () => lab.conntrack(['-L', 'expect']).split('\n').filter((l) => /^\d+ proto=17/.test(l.trim()) && !/^\d+ proto=17 src=\S+ dst=\S+ sport=\d+ dport=50[68]0 /.test(l.trim()));
  const pinholeCounts = () => {
    if (mode !== 'alg') return { reported: 0, kernel: expectLines().length };
    const calls = JSON.parse(lab.cli(['calls', '--json']).stdout || '[]') as { pinholes: number }[];
    return { reported: calls.reduce((a, c) => a + c.pinholes, 0), kernel: expectLines().length };
  };
  const farSent = [0, 0], strangerSent: Record<string, number> = {};
  const expectRinging: string[][] = [];
  const reported: number[] = [], inKernel: number[] = [];
  const sample = () => { const c = pinholeCounts(); reported.push(c.reported); inKernel.push(c.kernel); };
  const farTalk = async (k: number, rtp: number, packets: number, ssrc?: number) => {
    const [a, b] = await Promise.all([
      send({ src: PROVIDER_IP, sport: rtp, dport: advertised[k]!, count: packets, intervalMs: 20, tag: `f${k}-${rtp}-${packets}-${Date.now()}`, ssrc }),
      send({ src: PROVIDER_IP, sport: rtp + 1, dport: advertised[k]! + 1, count: Math.ceil(packets / 10), intervalMs: 200, tag: `r${k}-${rtp}-${packets}-${Date.now()}`, ssrc }),
    ]);
    farSent[k] = (farSent[k] ?? 0) + a + b;
    return a + b;
  };
  const stranger = async (phase: string, packets: number) => {
    const [a, b] = await Promise.all([0, 1].map((o) => send({ src: STRANGER_IP, sport: STRANGER_PORTS[phase]!, dport: advertised[1]! + o, count: packets, intervalMs: 10, tag: `s-${phase}-${o}` })));
    strangerSent[phase] = a! + b!;
  };
  const advertised: number[] = [];
  // call 1: 183 at ~0 s, 200 at ~6 s, BYE ~9 s after the answer (uac-rtp.xml)
  await at(0.7);
  advertised[0] = advertisedPort(0);
  dbg('call 1 advertised', advertised[0]);
  expectRinging.push(expectLines());
  sample();
  await at(1.0);
  await farTalk(0, 7010, 200); // early media from another port of the SDP address
  await at(7.0);
  await farTalk(0, 7010, 300);
  // call 2 starts when call 1 has ended (~15.2 s): redial from port 6000 within the teardown grace
  const deadline = Date.now() + 20000;
  while (!(advertised[1] = advertisedPort(1)) && Date.now() < deadline) await sleep(100);
  const t2 = Date.now();
  dbg('call 2 advertised', advertised[1]);
  const at2 = (s: number) => sleep(Math.max(0, t2 + s * 1000 - Date.now()));
  await at2(0.5);
  expectRinging.push(expectLines());
  sample();
  await at2(0.8);
  await Promise.all([farTalk(1, 7000, 200), (async () => { await at2(1.5); await stranger('ringing', 100); })()]); // ~0.8-4.8 s
  await at2(6.4); // answered at ~6 s, the far end silent until 7.5 s
  await stranger('answered, far end silent', 40);
  await at2(7.5);
  await Promise.all([
    farTalk(1, 7000, 150),
    (async () => { await at2(8.0); await stranger('talking', 100); })(),
    (async () => { await at2(9.0); sample(); })(),
  ]);
  const lastPhaseSent = await farTalk(1, 7000, 100, LAST_SSRC); // ~10.5-12.5 s: well after the old call's grace ended
  dbg('last phase sent');
  const r = await call;
  dbg('uac done', r.code, r.stdout.slice(-500), r.stderr.slice(-500));
  await uasDone;
  far.stdin?.end();
  await sleep(mode === 'alg' ? 6500 : 500); // teardown grace (5 s) + sweep
  const after = { exp: expectLines().length, anchors: anchors(lab) };
  const failedPinholes = mode === 'alg' ? metricSum(lab.metrics(), 'sipalg_pinholes_total', { event: 'failed' }) : 0;
  const p = await phone.stop();
  await wan.stop();
  const atPhone = (filter: string) => count(p, `ip.dst==${phoneIp(1)} && (udp.dstport==6000 || udp.dstport==6001) && ${filter}`);
  const lastPhaseReceived = atPhone(`ip.src==${PROVIDER_IP} && (udp.srcport==7000 || udp.srcport==7001) && udp.payload[8:4] == ${LAST_SSRC.toString(16).match(/../g)!.join(':')}`);
  const strangerReceived: Record<string, number> = {};
  for (const k of Object.keys(strangerSent)) strangerReceived[k] = atPhone(`udp.srcport==${STRANGER_PORTS[k]}`);
  return {
    callsOk: r.code === 0,
    advertised,
    farSent,
    farReceived: [atPhone(`ip.src==${PROVIDER_IP} && (udp.srcport==7010 || udp.srcport==7011)`), atPhone(`ip.src==${PROVIDER_IP} && (udp.srcport==7000 || udp.srcport==7001)`)],
    lastPhaseSent,
    lastPhaseReceived,
    strangerSent,
    strangerReceived,
    expectRinging,
    pinholesReported: reported,
    pinholesInKernel: inKernel,
    failedPinholes,
    after,
  };
}
