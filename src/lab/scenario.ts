/**
 * The lab's main scenario, shared by `sip-alg demo` and the integration test: two (or more) phones
 * behind one public address, all using local port 5060, call a provider through the ALG, register
 * with a Kamailio registrar, and receive calls that Kamailio routes to their registered Contact.
 * Everything that crossed the WAN link is captured and checked.
 */
import { join } from 'node:path';
import { Lab, phoneIp, PROVIDER_IP, ROUTER_WAN_IP, SRC_LAB, sippUac, type RunResult } from './lab';
import { checkWan, readSip, tsharkProblems, type WireMessage } from './wire-check';

export interface ScenarioOptions {
  prefix: string;
  phones: number;
  callsPerPhone: number;
  /** run with the ALG (true) or with plain NAT only (false), to show the difference */
  alg: boolean;
  daemonArgs?: string[];
  onStep?: (s: string) => void;
}

export interface ScenarioReport {
  outbound: { phone: number; calls: number; ok: boolean; detail: string }[];
  registrations: { phone: number; ok: boolean; detail: string }[];
  inbound: { phone: number; ok: boolean; detail: string }[];
  wan: WireMessage[];
  problems: string[];
  tsharkProblems: string[];
  bindings: string[];
  metrics: string;
  daemonLog: string;
  pcap: string;
}

function sippOk(r: RunResult): { ok: boolean; detail: string } {
  const failed = /Failed call\s*\|\s*\d+\s*\|\s*(\d+)/.exec(r.stdout)?.[1];
  const ok = r.code === 0;
  return { ok, detail: ok ? 'ok' : `sipp exit ${r.code}${failed ? `, failed calls ${failed}` : ''} ${r.stderr.trim().split('\n').slice(-2).join(' ')}` };
}

export async function runScenario(lab: Lab, o: ScenarioOptions): Promise<ScenarioReport> {
  const step = o.onStep ?? (() => undefined);
  step(`building namespaces: router ${lab.router}, provider ${lab.provider}, ${o.phones} phones`);
  lab.up();
  let daemon: Awaited<ReturnType<Lab['startDaemon']>> | undefined;
  if (o.alg) {
    const r = lab.rules('install', ['--wan', 'wan0', '--queues', '0:1']);
    if (r.code !== 0) throw new Error(`rules install failed: ${r.stderr}`);
    step(r.stdout.trim());
    daemon = await lab.startDaemon(['--queues', '0:1', ...(o.daemonArgs ?? [])]);
    step('sip-alg daemon running in the router namespace (2 workers on NFQUEUE 0:1)');
  } else step('no ALG: plain MASQUERADE only');
  const cap = await lab.capture(lab.router, 'wan0', 'wan');
  const uas = lab.start(lab.provider, 'sipp', ['-sn', 'uas', '-i', PROVIDER_IP, '-p', '5080', '-nostdin', '-nr']);
  await lab.waitListening(lab.provider, [5080]);
  await lab.startKamailio();
  step(`provider: SIPp UAS on ${PROVIDER_IP}:5080, Kamailio registrar on ${PROVIDER_IP}:5060`);

  // 1. outbound calls, all phones at once, all from local port 5060
  step(`outbound: ${o.phones} phones x ${o.callsPerPhone} calls (INVITE+SDP, 180, 200+SDP, ACK, BYE) from port 5060 each`);
  const phones = Array.from({ length: o.phones }, (_, k) => k + 1);
  const outRes = await Promise.all(phones.map((i) => lab.runAsync(lab.phone(i), 'sipp', sippUac(phoneIp(i), `${PROVIDER_IP}:5080`, 'pbx', o.callsPerPhone, ['-l', '1', '-r', '20']), 60000)));
  const outbound = outRes.map((r, k) => ({ phone: k + 1, calls: o.callsPerPhone, ...sippOk(r) }));

  // 2. registrations through the ALG
  step('registration: each phone REGISTERs with Kamailio');
  const regRes = await Promise.all(phones.map((i) => lab.runAsync(lab.phone(i), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/register.xml'), '-i', phoneIp(i), '-p', '5060', '-m', '1', '-s', `phone${i}`, `${PROVIDER_IP}:5060`, '-timeout', '10s', '-timeout_error', '-nostdin', '-nr'], 20000)));
  const registrations = regRes.map((r, k) => ({ phone: k + 1, ...sippOk(r) }));

  // 3. inbound calls: provider -> Kamailio -> registered Contact -> router -> phone
  step('inbound: the provider calls phoneN through Kamailio, which routes to the registered Contact');
  const inbound: ScenarioReport['inbound'] = [];
  for (const i of phones) {
    const phoneUas = lab.start(lab.phone(i), 'sipp', ['-sn', 'uas', '-i', phoneIp(i), '-p', '5060', '-m', '1', '-nostdin', '-nr']);
    const phoneDone = new Promise<number>((res) => phoneUas.on('exit', (c) => res(c ?? -1)));
    await new Promise((r) => setTimeout(r, 300));
    const caller = await lab.runAsync(lab.provider, 'sipp', ['-sn', 'uac', '-i', PROVIDER_IP, '-p', String(5090 + i), '-m', '1', '-s', `phone${i}`, `${PROVIDER_IP}:5060`, '-timeout', '10s', '-timeout_error', '-nostdin', '-nr'], 20000);
    const uasCode = await Promise.race([phoneDone, new Promise<number>((r) => setTimeout(() => r(-2), 5000))]);
    if (uasCode === -2) phoneUas.kill('SIGKILL');
    const c = sippOk(caller);
    inbound.push({ phone: i, ok: c.ok && uasCode === 0, detail: c.ok && uasCode === 0 ? 'ok' : `caller: ${c.detail}; phone uas exit ${uasCode}` });
  }

  const bindings = lab.conntrack(['-L', '-p', 'udp']).split('\n').filter((l) => /sport=5060/.test(l) && l.includes('10.77.0.'));
  const metrics = o.alg ? lab.metrics() : '';
  const pcap = await cap.stop();
  const wan = readSip(pcap);
  return {
    outbound,
    registrations,
    inbound,
    wan,
    problems: checkWan(wan, { lanPrefix: '10.77.0.', publicIp: ROUTER_WAN_IP }),
    tsharkProblems: tsharkProblems(pcap),
    bindings,
    metrics,
    daemonLog: daemon?.log() ?? '',
    pcap,
  };
}
