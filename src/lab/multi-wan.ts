/**
 * Two WAN links (issue 20 part 2): a router with wan0 (198.51.107.1) and wan1 (198.51.108.1),
 * MASQUERADE on both, one rule set and one daemon for both (--wan wan0,wan1). Provider X
 * (192.0.2.10) is reached over wan0, provider Y (192.0.2.20) over wan1, with a backup route over
 * wan0; both live in one namespace with a leg on each link. Phone 1 (10.85.1.11) calls X while phone
 * 2 (10.85.2.11) calls Y, both from local port 5060 and media port 6000; then wan1 fails (link down:
 * Y's route moves to the backup over wan0) and phone 2 calls Y again. Every SIP message on each link
 * is read back. Addresses exist only inside these namespaces; close() removes them.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DAEMON_NODE_FLAGS, Lab, ROOT } from './lab';
import { checkWan, readSip, type WireMessage } from './wire-check';

export const LINK0 = '198.51.107.1', LINK1 = '198.51.108.1', X = '192.0.2.10', Y = '192.0.2.20';

export interface MultiWanResult {
  /** SIPp's exit codes: phase 1 (phone 1 -> X, phone 2 -> Y at once), phase 2 (phone 2 -> Y after wan1 failed) */
  codes: { x: number; y: number; yAfter: number };
  /** SIP messages per link and phase */
  wan0: WireMessage[];
  wan1: WireMessage[];
  failedAt: number;
  /** problems: private addresses, wrong Content-Length (checkWan), a message naming the other link's address */
  problems: string[];
  sippTail: string;
}

function sh(cmd: string[]): void {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr}`);
}

/** A message from `own` that names `other` (another link's address) anywhere but in Call-ID. */
function namesOther(msgs: WireMessage[], own: string, other: string): string[] {
  return msgs.filter((m) => m.src === own && m.text.split('\r\n').some((l) => !/^(call-id|i)\s*:/i.test(l) && l.includes(other))).map((m) => `frame ${m.frame} from ${own} names ${other}: ${m.text.split('\r\n')[0]}`);
}

export async function multiWan(prefix: string): Promise<MultiWanResult> {
  const ns = (n: string) => `${prefix}-${n}`;
  const names = ['r', 'p1', 'p2', 'x'].map(ns);
  const down = () => { for (const n of names) spawnSync('ip', ['netns', 'del', n]); };
  const lab = new Lab(prefix, 0);
  down();
  try {
    for (const n of names) { sh(['ip', 'netns', 'add', n]); sh(['ip', 'netns', 'exec', n, 'ip', 'link', 'set', 'lo', 'up']); }
    const ex = (n: string, ...a: string[]) => sh(['ip', 'netns', 'exec', ns(n), ...a]);
    for (const [i, p] of [[1, 'p1'], [2, 'p2']] as const) {
      sh(['ip', 'link', 'add', `lan${i}`, 'netns', ns('r'), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(p)]);
      ex('r', 'ip', 'addr', 'add', `10.85.${i}.1/24`, 'dev', `lan${i}`); ex('r', 'ip', 'link', 'set', `lan${i}`, 'up');
      ex(p, 'ip', 'addr', 'add', `10.85.${i}.11/24`, 'dev', 'eth0'); ex(p, 'ip', 'link', 'set', 'eth0', 'up');
      ex(p, 'ip', 'route', 'add', 'default', 'via', `10.85.${i}.1`);
    }
    for (const [i, net] of [[0, '107'], [1, '108']] as const) {
      sh(['ip', 'link', 'add', `wan${i}`, 'netns', ns('r'), 'type', 'veth', 'peer', 'name', `e${i}`, 'netns', ns('x')]);
      ex('r', 'ip', 'addr', 'add', `198.51.${net}.1/24`, 'dev', `wan${i}`); ex('r', 'ip', 'link', 'set', `wan${i}`, 'up');
      ex('x', 'ip', 'addr', 'add', `198.51.${net}.10/24`, 'dev', `e${i}`); ex('x', 'ip', 'link', 'set', `e${i}`, 'up');
      ex('r', 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', `wan${i}`, '-j', 'MASQUERADE');
    }
    ex('x', 'ip', 'addr', 'add', `${X}/32`, 'dev', 'lo'); ex('x', 'ip', 'addr', 'add', `${Y}/32`, 'dev', 'lo');
    ex('x', 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0');
    ex('r', 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    ex('r', 'ip', 'route', 'add', `${X}/32`, 'via', '198.51.107.10', 'dev', 'wan0');
    ex('r', 'ip', 'route', 'add', `${Y}/32`, 'via', '198.51.108.10', 'dev', 'wan1', 'metric', '10');
    ex('r', 'ip', 'route', 'add', `${Y}/32`, 'via', '198.51.107.10', 'dev', 'wan0', 'metric', '20');
    ex('r', 'bash', join(ROOT, 'iptables/sip-alg-rules.sh'), 'install', '--wan', 'wan0,wan1', '--queues', '0:0', '--ports', '5060');
    const daemon = lab.start(ns('r'), process.execPath, [...DAEMON_NODE_FLAGS, join(ROOT, 'bin/sip-alg'), 'run', '--wan', 'wan0,wan1', '--queues', '0:0', '--ports', '5060', '--control-socket', join(lab.dir, 'control.sock'), '--state-dir', 'off', '--teardown-grace-seconds', '1']);
    await Lab.waitFor(daemon, /msg="sip-alg running"/, 15000, 'sip-alg');
    const caps = await Promise.all([lab.capture(ns('r'), 'wan0', 'wan0', 'udp port 5060'), lab.capture(ns('r'), 'wan1', 'wan1', 'udp port 5060')]);
    for (const ip of [X, Y]) lab.start(ns('x'), 'sipp', ['-sn', 'uas', '-i', ip, '-p', '5060', '-nostdin']);
    await lab.waitListening(ns('x'), [5060]);
    await new Promise((r) => setTimeout(r, 300));
    const uac = (p: string, i: number, to: string, calls: number) => lab.runAsync(ns(p), 'sipp', ['-sn', 'uac', '-i', `10.85.${i}.11`, '-p', '5060', '-mp', '6000', '-m', String(calls), '-r', '2', '-d', '1500', '-s', 'provider', `${to}:5060`, '-nostdin', '-timeout', '40s', '-timeout_error'], 60000);
    const [a, b] = await Promise.all([uac('p1', 1, X, 4), uac('p2', 2, Y, 4)]);
    // wan1 fails: its routes go, Y is reached over wan0 (the backup route); MASQUERADE forgets
    // wan1's entries, and the daemon makes its own again on wan0 at their next packet
    const failedAt = Date.now() / 1000;
    ex('r', 'ip', 'link', 'set', 'wan1', 'down');
    await new Promise((r) => setTimeout(r, 500));
    const c = await uac('p2', 2, Y, 3);
    await new Promise((r) => setTimeout(r, 500));
    const [w0, w1] = await Promise.all(caps.map((x) => x.stop()));
    const wan0 = readSip(w0!), wan1 = readSip(w1!);
    const problems = [
      ...checkWan(wan0, { lanPrefix: '10.85.', publicIp: LINK0 }),
      ...checkWan(wan1, { lanPrefix: '10.85.', publicIp: LINK1 }),
      ...namesOther(wan0, LINK0, LINK1),
      ...namesOther(wan1, LINK1, LINK0),
      ...wan0.filter((m) => m.dst === X || m.dst === Y).filter((m) => m.src !== LINK0).map((m) => `frame ${m.frame} left wan0 from ${m.src}`),
      ...wan1.filter((m) => m.dst === X || m.dst === Y).filter((m) => m.src !== LINK1).map((m) => `frame ${m.frame} left wan1 from ${m.src}`),
    ];
    return { codes: { x: a.code, y: b.code, yAfter: c.code }, wan0, wan1, failedAt, problems, sippTail: `${a.stdout.slice(-300)} | ${b.stdout.slice(-300)} | ${c.stdout.slice(-300)}${c.stderr.slice(-300)}` };
  } finally {
    await lab.close();
    down();
  }
}
