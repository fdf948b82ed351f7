/**
 * The router's WAN address changes while the daemon runs (issue 20): a DHCP renewal (the address
 * replaced on the same interface) and a PPPoE reconnect (the interface deleted and made again, with
 * a new index and a new address). Each round registers both phones with Kamailio, places an
 * outbound call from phone 1 and an inbound call to phone 2 through its registration, and reads back
 * every SIP message the router sent on the WAN; after each change the router's conntrack table and
 * expectations are read for the old address.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { prepare, type Mode } from './media';
import { type Lab, phoneIp, PROVIDER_IP, sippUac, SRC_LAB } from './lab';
import { readSip } from './wire-check';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sippArgs = ['-nostdin', '-nr', '-timeout', '25s', '-timeout_error'];
export const WAN_ADDRESSES = ['203.0.113.1', '203.0.113.2', '203.0.113.3'];

export interface RoundResult {
  address: string;
  registered: boolean[];
  outbound: boolean;
  inbound: boolean;
  /** SIP messages the router sent on the WAN, and those that left from or named another address than `address`, or a LAN one */
  sent: number;
  wrong: string[];
  /** conntrack entries and expectations in the router that still name an earlier address */
  staleConntracks: string[];
  staleExpectations: string[];
}

const esc = (ip: string) => ip.replace(/\./g, '\\.');

async function round(lab: Lab, address: string, earlier: string[], n: number): Promise<RoundResult> {
  const wan = await lab.capture(lab.router, 'wan0', `wan-${n}`, 'udp port 5060 or udp port 5080');
  const registered: boolean[] = [];
  for (const i of [1, 2]) {
    const r = await lab.runAsync(lab.phone(i), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/register.xml'), '-i', phoneIp(i), '-p', '5060', '-m', '1', '-s', `phone${i}`, `${PROVIDER_IP}:5060`, ...sippArgs]);
    registered.push(r.code === 0);
  }
  const uas = lab.start(lab.provider, 'sipp', ['-sn', 'uas', '-i', PROVIDER_IP, '-p', '5080', '-m', '1', '-nostdin', '-nr']);
  await lab.waitListening(lab.provider, [5080]);
  const out = await lab.runAsync(lab.phone(1), 'sipp', sippUac(phoneIp(1), `${PROVIDER_IP}:5080`, 'pbx', 1));
  uas.kill();
  const phoneUas = lab.start(lab.phone(2), 'sipp', ['-sn', 'uas', '-i', phoneIp(2), '-p', '5060', '-m', '1', '-nostdin', '-nr']);
  const phoneDone = new Promise<number>((r) => { phoneUas.once('exit', (c) => r(c ?? -1)); setTimeout(() => r(-2), 30000); });
  await lab.waitListening(lab.phone(2), [5060]);
  const inb = await lab.runAsync(lab.provider, 'sipp', ['-sn', 'uac', '-i', PROVIDER_IP, '-p', '5091', '-m', '1', '-s', 'phone2', `${PROVIDER_IP}:5060`, ...sippArgs]);
  const inboundOk = inb.code === 0 && (await phoneDone) === 0;
  phoneUas.kill();
  await sleep(300);
  const msgs = readSip(await wan.stop()).filter((m) => m.dst === PROVIDER_IP);
  const wrong: string[] = [];
  for (const m of msgs) {
    const text = m.text.replace(/^Call-ID:.*$/gim, ''); // opaque (RFC 3261 §8.1.1.4)
    if (m.src !== address) wrong.push(`from ${m.src}: ${m.text.split('\r\n')[0]}`);
    else if (/\b10\.77\.0\.\d+/.test(text)) wrong.push(`names a LAN address: ${m.text.split('\r\n')[0]}`);
    else for (const e of earlier) if (new RegExp(`${esc(e)}(?![0-9])`).test(text)) wrong.push(`names ${e}: ${m.text.split('\r\n')[0]}`);
  }
  const stale = (lines: string) => lines.split('\n').filter((l) => earlier.some((e) => new RegExp(`=${esc(e)}(?![0-9])`).test(l)));
  return {
    address, registered, outbound: out.code === 0, inbound: inboundOk, sent: msgs.length, wrong,
    staleConntracks: stale(lab.conntrack(['-L'])), staleExpectations: stale(lab.conntrack(['-L', 'expect'])),
  };
}

/** Rounds on .1; the address replaced by .2 (DHCP); wan0 deleted and made again with .3 (PPPoE). */
export async function wanChange(prefix: string, mode: Mode): Promise<{ lab: Lab; log: () => string; run: () => Promise<RoundResult[]> }> {
  const { lab, log } = await prepare(prefix, 2, mode);
  const run = async () => {
    await lab.startKamailio();
    const results: RoundResult[] = [];
    results.push(await round(lab, WAN_ADDRESSES[0]!, [], 1));
    // a DHCP renewal with a new address
    lab.run(lab.router, 'ip', ['addr', 'del', `${WAN_ADDRESSES[0]}/24`, 'dev', 'wan0']);
    lab.run(lab.router, 'ip', ['addr', 'add', `${WAN_ADDRESSES[1]}/24`, 'dev', 'wan0']);
    await sleep(2500);
    results.push(await round(lab, WAN_ADDRESSES[1]!, WAN_ADDRESSES.slice(0, 1), 2));
    // a PPPoE reconnect: the interface goes, and comes back under its name with another index and address
    lab.run(lab.router, 'ip', ['link', 'del', 'wan0']);
    await sleep(1000);
    const mk = (args: string[]) => { const r = spawnSync('ip', args, { encoding: 'utf8' }); if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`); };
    mk(['link', 'add', 'wan0', 'netns', lab.router, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lab.provider]);
    lab.run(lab.router, 'ip', ['addr', 'add', `${WAN_ADDRESSES[2]}/24`, 'dev', 'wan0']);
    lab.run(lab.router, 'ip', ['link', 'set', 'wan0', 'up']);
    lab.run(lab.provider, 'ip', ['addr', 'add', `${PROVIDER_IP}/24`, 'dev', 'eth0']);
    lab.run(lab.provider, 'ip', ['link', 'set', 'eth0', 'up']);
    await sleep(3000);
    results.push(await round(lab, WAN_ADDRESSES[2]!, WAN_ADDRESSES.slice(0, 2), 3));
    return results;
  };
  return { lab, log, run };
}
