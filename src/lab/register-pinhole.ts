/**
 * Register pinholes in the lab (issue 24): a phone registers through the router with Kamailio on
 * the provider's registrar address; then the provider calls it through the registrar, from another
 * of its proxies (a second address of the provider namespace, inside the allowed prefix) and from an
 * address outside it, each straight to the binding the registrar stored. What reached the phone is
 * read off its own capture, what crossed the WAN off the router's; `conntrack -L expect` after the
 * registration ends.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { count, prepare, type Mode } from './media';
import { Lab, phoneIp, PROVIDER_IP, ROUTER_WAN_IP, SRC_LAB } from './lab';
import { readSip } from './wire-check';

export const OTHER_PROXY_IP = '203.0.113.12';
export const OUTSIDER_IP = '203.0.113.66';
/** the provider's published range in the lab: the registrar (.10) and the other proxy (.12), not the outsider (.66) */
export const PROVIDER_RANGE = '203.0.113.8/29';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sippArgs = ['-nostdin', '-nr', '-timeout', '25s', '-timeout_error'];

export interface RegisterPinholeResult {
  registered: boolean;
  /** the binding the registrar stored (the REGISTER's Contact on the WAN) */
  binding: string;
  /** per caller: the call completed (SIPp exit 0), INVITEs that reached the phone, RTP the phone received and sent back */
  calls: Record<'registrar' | 'other proxy' | 'outsider', { ok: boolean; invitesAtPhone: number; rtpAtPhone: number; rtpFromPhone: number }>;
  /** signaling expectations to the binding while registered, and after the registration ended */
  pinholesRegistered: string[];
  pinholesAfter: string[];
  /** SIP messages the router sent on the WAN that name a private address */
  privateOnWan: number;
  registrationsCli: string;
  /** every UDP stream the phone sent from its media port, "dst:port count" (a failure's diagnosis: where its audio went) */
  phoneMediaSent: string[];
  /** what the phone's SIPp UAS wrote on stderr (its errors) */
  phoneUasErrors: string;
}

export async function registerPinhole(prefix: string, mode: Mode, daemonArgs: string[] = [], kernelDirectSignalling?: 0 | 1): Promise<{ lab: Lab; log: () => string; run: () => Promise<RegisterPinholeResult> }> {
  const { lab, log } = await prepare(prefix, 1, mode, daemonArgs, '0:0');
  const run = async (): Promise<RegisterPinholeResult> => {
    // the kernel helper's own register pinhole: sip_direct_signalling=0 (a global module parameter: restored after)
    const param = '/sys/module/nf_conntrack_sip/parameters/sip_direct_signalling';
    const was = mode === 'kernel' && kernelDirectSignalling !== undefined && existsSync(param) ? readFileSync(param, 'utf8').trim() : undefined;
    if (was !== undefined) writeFileSync(param, String(kernelDirectSignalling));
    try {
      return await runOnce();
    } finally {
      if (was !== undefined) writeFileSync(param, was);
    }
  };
  const runOnce = async (): Promise<RegisterPinholeResult> => {
    for (const ip of [OTHER_PROXY_IP, OUTSIDER_IP]) lab.run(lab.provider, 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    const wan = await lab.capture(lab.router, 'wan0', 'wan', 'udp port 5060');
    const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp');
    await lab.startKamailio();
    const reg = await lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/register.xml'), '-i', phoneIp(1), '-p', '5060', '-m', '1', '-s', 'phone1', `${PROVIDER_IP}:5060`, ...sippArgs]);
    await sleep(300);
    const register = readSip(join(lab.dir, 'wan.pcap')).find((m) => m.src === ROUTER_WAN_IP && m.text.startsWith('REGISTER'));
    const binding = /^Contact:\s*<sip:[^@>]+@([^;>]+)/im.exec(register?.text ?? '')?.[1] ?? '';
    const [bindIp, bindPort] = binding.split(':');
    await sleep(500);
    const pinholeLines = () => lab.conntrack(['-L', 'expect']).split('\n').filter((l) => new RegExp(`^\\d+ proto=17 src=\\S+ dst=${bindIp} sport=0 dport=${bindPort} `).test(l.trim()));
    const pinholesRegistered = pinholeLines();
    const registrationsCli = mode === 'alg' ? lab.cli(['registrations']).stdout : '';
    // the phone answers with audio (uas-rtp: RTP right after its 200) on its registered port
    const uas = lab.start(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-rtp.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '3', '-nostdin', '-nr', '-trace_err', '-error_file', 'phone-uas-errors.log']);
    let phoneUasErrors = '';
    uas.stderr?.on('data', (d: Buffer) => { if (phoneUasErrors.length < 4000) phoneUasErrors += d.toString(); });
    await lab.waitListening(lab.phone(1), [5060]);
    const calls = {} as RegisterPinholeResult['calls'];
    const callers: [keyof RegisterPinholeResult['calls'], string, string[]][] = [
      ['registrar', PROVIDER_IP, ['-p', '5091', '-s', 'phone1', `${PROVIDER_IP}:5060`]],
      ['other proxy', OTHER_PROXY_IP, ['-p', '5060', '-s', 'phone1', binding]],
      ['outsider', OUTSIDER_IP, ['-p', '5060', '-s', 'phone1', binding, '-recv_timeout', '6000']],
    ];
    for (const [who, ip, args] of callers) {
      const r = await lab.runAsync(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', ip, '-mp', '7000', '-m', '1', ...args, ...(who === 'outsider' ? ['-nostdin', '-nr', '-timeout', '8s', '-timeout_error'] : sippArgs)], 40000);
      calls[who] = { ok: r.code === 0, invitesAtPhone: 0, rtpAtPhone: 0, rtpFromPhone: 0 };
      await sleep(500);
    }
    uas.kill();
    const unreg = await lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/unregister.xml'), '-i', phoneIp(1), '-p', '5060', '-m', '1', '-s', 'phone1', `${PROVIDER_IP}:5060`, ...sippArgs]);
    await sleep(1500);
    const pinholesAfter = pinholeLines();
    const p = await phone.stop();
    const w = await wan.stop();
    const invites = readSip(p).filter((m) => m.text.startsWith('INVITE') && m.dst === phoneIp(1));
    // an INVITE names its caller in the Call-ID SIPp writes (…@<local ip>) whatever addresses it crossed
    for (const [who, ip] of callers) {
      calls[who].invitesAtPhone = invites.filter((m) => new RegExp(`^Call-ID:\\s*\\S+@${ip.replace(/\./g, '\\.')}\\s*$`, 'im').test(m.text)).length;
      calls[who].rtpAtPhone = count(p, `ip.dst==${phoneIp(1)} && udp.dstport==6000 && ip.src==${ip}`);
      calls[who].rtpFromPhone = count(p, `ip.src==${phoneIp(1)} && udp.srcport==6000 && ip.dst==${ip}`);
    }
    // Call-ID is opaque (RFC 3261 §8.1.1.4: SIPp writes …@<its address>); every other header and the SDP must not name the LAN
    const privateOnWan = readSip(w).filter((m) => m.src === ROUTER_WAN_IP && /10\.77\.0\.\d+/.test(m.text.replace(/^Call-ID:.*$/gim, ''))).length;
    const sent = spawnSync('tshark', ['-r', p, '-Y', `ip.src==${phoneIp(1)} && udp.srcport==6000`, '-T', 'fields', '-e', 'ip.dst', '-e', 'udp.dstport'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const streams = new Map<string, number>();
    for (const l of sent.stdout.split('\n').filter(Boolean)) streams.set(l.replace('\t', ':'), (streams.get(l.replace('\t', ':')) ?? 0) + 1);
    const phoneMediaSent = [...streams].map(([k, n]) => `${k} ${n}`).concat(sent.status === 0 ? [] : [`tshark exit ${sent.status}: ${sent.stderr.slice(0, 300)}`]);
    // SIPp's own error log (-trace_err): why it aborted a call, when it did
    const errFile = join(lab.dir, 'phone-uas-errors.log');
    if (existsSync(errFile)) phoneUasErrors += `\n--- phone-uas-errors.log ---\n${readFileSync(errFile, 'latin1').slice(-3000)}`;
    return { registered: reg.code === 0 && unreg.code === 0 && binding !== '', binding, calls, pinholesRegistered, pinholesAfter, privateOnWan, registrationsCli, phoneMediaSent, phoneUasErrors };
  };
  return { lab, log, run };
}
