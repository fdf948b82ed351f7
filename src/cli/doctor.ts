/**
 * `sip-alg doctor`: looks at the router it runs on (its network namespace) and says, one line per
 * check, what stops the ALG from working or makes it work twice, and how to fix it. Exit status 0
 * when no check fails, 1 otherwise; `--json` for scripts. The same detection of the kernel's own SIP
 * helper keeps the daemon from starting beside it (kernel-helper-policy).
 *
 * Checks read the kernel's own views: /proc and /sys, `iptables -S` (nft or legacy, whichever
 * `iptables` is), `nft list ruleset`, `conntrack -L`, /proc/net/netfilter/nfnetlink_queue.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { Config } from '../config/schema';

export type CheckStatus = 'ok' | 'warn' | 'fail';
export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  /** what to do about it (warn and fail) */
  fix?: string;
}

const read = (path: string): string | undefined => {
  try { return readFileSync(path, 'utf8').trim(); } catch { return undefined; }
};
const run = (cmd: string, args: string[]): { code: number; out: string } => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10000, maxBuffer: 32 << 20 });
  return { code: r.error ? -1 : r.status ?? -1, out: `${r.stdout ?? ''}` };
};
const rulesOf = (table: string, ipt = 'iptables') => {
  const r = run(ipt, ['-w', '-t', table, '-S']);
  return r.code === 0 ? r.out.split('\n').filter(Boolean) : undefined;
};
/** the ports a rule restricts itself to (--dport, --sport, --ports, --dports, --sports), or undefined when it matches any */
function rulePorts(rule: string): number[] | undefined {
  const out: number[] = [];
  for (const m of rule.matchAll(/--(?:d|s)?ports? (\S+)/g)) for (const p of m[1]!.split(',')) {
    const [a, b] = p.split(':').map(Number);
    for (let x = a!; x <= (b ?? a!) && x - a! < 70000; x++) out.push(x);
  }
  return out.length ? out : undefined;
}

/**
 * Where the kernel's own SIP helper (nf_conntrack_sip + nf_nat_sip) is attached to SIP traffic on
 * `ports`: `-j CT --helper sip` rules in raw (IPv4 and IPv6), nftables `ct helper` objects of type
 * "sip", automatic helper assignment (nf_conntrack_helper=1, old kernels and OpenWrt), firewalld's
 * sip service, and live conntrack entries with helper=sip that are not sip-alg's anchors. Each a
 * line naming what was found.
 */
export function kernelHelperFindings(ports: readonly number[], includeEntries = true): string[] {
  const found: string[] = [];
  const onPorts = (rule: string) => {
    const p = rulePorts(rule);
    return !p || p.some((x) => ports.includes(x));
  };
  for (const ipt of ['iptables', 'ip6tables']) {
    for (const rule of rulesOf('raw', ipt) ?? []) if (/--helper "?sip"?(\s|$)/.test(rule) && onPorts(rule)) found.push(`${ipt} -t raw ${rule}`);
  }
  const nft = run('nft', ['list', 'ruleset']);
  if (nft.code === 0 && /type "sip"/.test(nft.out)) {
    for (const line of nft.out.split('\n')) if (/type "sip"|ct helper set/.test(line)) found.push(`nftables: ${line.trim()}`);
  }
  if (read('/proc/sys/net/netfilter/nf_conntrack_helper') === '1') found.push('net.netfilter.nf_conntrack_helper=1 (automatic helper assignment: the sip helper on every flow to 5060)');
  const fw = run('firewall-cmd', ['--list-services']);
  if (fw.code === 0 && /(^|\s)sip(\s|$)/.test(fw.out)) found.push('firewalld: service "sip" enabled (it attaches the kernel helper)');
  const ct = includeEntries ? run('conntrack', ['-L', '-p', 'udp']) : { code: -1, out: '' };
  if (ct.code === 0) {
    const lines = ct.out.split('\n').filter((l) => /helper=sip/.test(l) && !/src=127\./.test(l) && !/src=::[12]/.test(l) && ports.some((p) => l.includes(`port=${p} `)));
    if (lines.length) found.push(`${lines.length} conntrack entr${lines.length === 1 ? 'y' : 'ies'} with helper=sip on the SIP ports, e.g. ${lines[0]!.replace(/\s+/g, ' ').trim()}`);
  }
  return found;
}

/**
 * The kernel's expectation table is a hash of `buckets` (nf_conntrack.expect_hashsize: fixed at boot
 * or module load, by default conntrack's hashsize / 256, with nf_conntrack_expect_max 4 times it).
 * Every new pinhole walks its bucket (ctnetlink_new_expect -> __nf_ct_expect_find, nf_ct_exp_equal
 * per entry), and so does every new connection's search for its expectation: with many pending
 * pinholes per bucket each call set-up costs time that grows with them (measured with 1024 buckets:
 * nf_ct_exp_equal 2.9% of the daemon's CPU at ~6k pending pinholes, 10.9% at ~40k). Raising
 * nf_conntrack_expect_max alone (the tables check's advice) lengthens the chains.
 */
export function expectHashCheck(buckets: number, expMax: number, pending: number): Check {
  if (!(buckets > 0)) return { name: 'expect-hash', status: 'ok', detail: 'the expectation hash size is not readable (/sys/module/nf_conntrack/parameters/expect_hashsize)' };
  const full = expMax / buckets, now = pending / buckets;
  const want = 2 ** Math.ceil(Math.log2(Math.max(buckets, expMax / 4)));
  const warn = full > 16 || now > 8;
  const detail = `expectation hash of ${buckets} buckets: ${Number.isFinite(full) ? `${Math.round(full)} pinholes a bucket when nf_conntrack_expect_max (${expMax}) is reached, ` : ''}${now.toFixed(1)} now (${pending} pending)${warn ? ': each new pinhole and each new media flow compares them one by one' : ''}`;
  return { name: 'expect-hash', status: warn ? 'warn' : 'ok', detail, ...(warn ? { fix: `boot with nf_conntrack.expect_hashsize=${want} (with nf_conntrack as a module: options nf_conntrack expect_hashsize=${want} in /etc/modprobe.d/, then reload it); or keep nf_conntrack_expect_max near ${buckets * 4}` } : {}) };
}

/**
 * The fresh-flow mark: the rules' MARK rule (`-A SIPALG ... ! --ctstatus CONFIRMED ... --set-xmark M/M`,
 * their --fresh-mark) against the daemon's fresh-flow-mark. A mismatch leaves the rules' bits on the
 * packets past the queue and the daemon blind to flows whose entry vanished (`conntrack -F`).
 */
export function freshMarkCheck(ruleMarks: readonly number[], configMark: number): Check {
  const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;
  const fix = `iptables/sip-alg-rules.sh install ... --fresh-mark ${hex(configMark)} (the rules and fresh-flow-mark must agree)`;
  if (!ruleMarks.length && !configMark) return { name: 'fresh-mark', status: 'ok', detail: 'off (rules and daemon): for a second after a conntrack flush a flow\'s messages may name its old public port' };
  if (!ruleMarks.length) return { name: 'fresh-mark', status: 'warn', detail: `the daemon expects fresh flows marked ${hex(configMark)}, the rules mark none: after a conntrack flush a flow's messages may name its old public port for a second`, fix };
  if (ruleMarks.some((m) => m !== configMark >>> 0)) return { name: 'fresh-mark', status: 'fail', detail: `the rules mark fresh flows ${ruleMarks.map(hex).join(',')}, the daemon's fresh-flow-mark is ${hex(configMark)}: the daemon does not clear those bits, packets leave with them`, fix };
  return { name: 'fresh-mark', status: 'ok', detail: `fresh flows marked ${hex(configMark)} by the rules, cleared by the daemon` };
}

/** The router's checks against `config` (the daemon's, from the same file and flags). */
export async function doctorChecks(config: Config): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (name: string, status: CheckStatus, detail: string, fix?: string) => checks.push({ name, status, detail, ...(status !== 'ok' && fix ? { fix } : {}) });
  // the WAN links (wan0, or wan0,wan1: each is checked; the rules and NAT must cover each)
  const links = config.wan.split(',');
  const wan = links[0]!;
  for (const wan of links) {
    const oper = read(`/sys/class/net/${wan}/operstate`);
    const addr = networkInterfaces()[wan]?.find((a) => a.family === 'IPv4')?.address;
    if (oper === undefined) add('wan-link', 'fail', `interface ${wan} does not exist (${Object.keys(networkInterfaces()).join(', ')})`, `set --wan to the WAN interface, or bring ${wan} up (PPPoE creates it when connected)`);
    else if (oper === 'down' || oper === 'lowerlayerdown') add('wan-link', 'fail', `${wan} is ${oper}`, `ip link set ${wan} up; check the cable or the PPPoE session`);
    else if (!addr) add('wan-link', 'fail', `${wan} is ${oper} but has no IPv4 address`, 'wait for DHCP/PPPoE, or set public-ip');
    else add('wan-link', 'ok', `${wan} is ${oper}, address ${addr}${config.publicIp && config.publicIp !== addr ? ` (public-ip ${config.publicIp})` : ''}`);
  }

  add('ip-forward', read('/proc/sys/net/ipv4/ip_forward') === '1' ? 'ok' : 'fail', `net.ipv4.ip_forward=${read('/proc/sys/net/ipv4/ip_forward') ?? '?'}`, 'sysctl -w net.ipv4.ip_forward=1 (and in /etc/sysctl.d/ to keep it)');

  // NAT on each WAN link
  const nat = rulesOf('nat') ?? [];
  const nftNat = run('nft', ['list', 'ruleset']);
  for (const wan of links) {
    const natRule = nat.find((r) => /^-A POSTROUTING\b/.test(r) && /-j (MASQUERADE|SNAT)\b/.test(r) && (new RegExp(`-o ${wan.replace(/[.+]/g, '\\$&')}( |$)`).test(r) || !/ -o /.test(r)));
    const nftMasq = nftNat.code === 0 && nftNat.out.split('\n').find((l) => /\b(masquerade|snat)\b/.test(l) && (l.includes(`"${wan}"`) || !/oifname/.test(l)) && !/^\s*#/.test(l) && !/comment/.test(l) && !/xt target/.test(l));
    if (natRule) add('nat', 'ok', `LAN→WAN is masqueraded on ${wan}: ${natRule}`);
    else if (nftMasq) add('nat', 'ok', `LAN→WAN is masqueraded on ${wan} (nftables): ${nftMasq.trim()}`);
    else add('nat', 'fail', `no MASQUERADE or SNAT on ${wan} in nat POSTROUTING: the ALG rewrites to a binding that no NAT makes`, `iptables -t nat -A POSTROUTING -o ${wan} -j MASQUERADE`);
  }

  // the project's rules
  const mangle = rulesOf('mangle') ?? [];
  const jumps = mangle.filter((r) => /-j SIPALG( |$)/.test(r));
  const out = jumps.filter((r) => /^-A POSTROUTING/.test(r)), inb = jumps.filter((r) => /^-A FORWARD/.test(r));
  const queueRules = mangle.filter((r) => /^-A SIPALG .*-j NFQUEUE/.test(r) && / -p udp /.test(r));
  if (!jumps.length) add('rules', 'fail', 'the sip-alg rules are not installed (no jump to mangle SIPALG)', `iptables/sip-alg-rules.sh install --wan ${config.wan} --queues ${config.queues.first}:${config.queues.last} --ports ${config.ports.join(',')}`);
  else {
    const problems: string[] = [];
    for (const wan of links) {
      if (!out.some((r) => r.includes(`-o ${wan} `))) problems.push(`no LAN→WAN jump for ${wan} (found: ${out.map((r) => /-o (\S+)/.exec(r)?.[1]).join(',') || 'none'})`);
      if (!inb.some((r) => r.includes(`-i ${wan} `))) problems.push(`no WAN→LAN jump for ${wan}`);
    }
    const udpJump = out.find((r) => / -p udp /.test(r));
    const ruled = udpJump ? rulePorts(udpJump) : undefined;
    if (ruled && (ruled.length !== config.ports.length || !config.ports.every((p) => ruled.includes(p)))) problems.push(`rules divert ports ${ruled.join(',')}, the daemon treats ${config.ports.join(',')}`);
    const q = queueRules[0] ?? '';
    const qm = /--queue-balance (\d+):(\d+)/.exec(q) ?? /--queue-num (\d+)/.exec(q);
    const [qa, qb] = qm ? [Number(qm[1]), Number(qm[2] ?? qm[1])] : [NaN, NaN];
    if (qa !== config.queues.first || qb !== config.queues.last) problems.push(`rules queue to ${qm ? `${qa}:${qb}` : 'nothing'}, the daemon binds ${config.queues.first}:${config.queues.last}`);
    if (problems.length) add('rules', 'fail', problems.join('; '), `iptables/sip-alg-rules.sh install --wan ${config.wan} --queues ${config.queues.first}:${config.queues.last} --ports ${config.ports.join(',')}`);
    else add('rules', 'ok', `installed for ${config.wan}, ports ${config.ports.join(',')}, queues ${config.queues.first}:${config.queues.last}`);
    const bypass = queueRules.every((r) => r.includes('--queue-bypass'));
    if (bypass === config.failClosed) add('fail-mode', 'warn', `rules are ${bypass ? 'fail-open (--queue-bypass)' : 'fail-closed'}, the config says fail-closed=${config.failClosed}`, `reinstall the rules ${config.failClosed ? 'with --fail-closed' : 'without --fail-closed'}`);
    else add('fail-mode', 'ok', bypass ? 'fail-open: SIP passes unchanged while no daemon is bound (--queue-bypass)' : 'fail-closed: SIP is dropped while no daemon is bound');
    const marks = mangle.filter((r) => /^-A SIPALG .*--ctstatus CONFIRMED .*-j MARK/.test(r)).map((r) => Number(/--set-xmark (0x[0-9a-f]+)/i.exec(r)?.[1] ?? NaN));
    checks.push(freshMarkCheck(marks, config.freshFlowMark));
  }

  // a daemon on every queue
  const bound = new Set((read('/proc/net/netfilter/nfnetlink_queue') ?? '').split('\n').filter(Boolean).map((l) => Number(l.trim().split(/\s+/)[0])));
  const missing: number[] = [];
  for (let q = config.queues.first; q <= config.queues.last; q++) if (!bound.has(q)) missing.push(q);
  add('daemon', missing.length ? 'fail' : 'ok', missing.length ? `no process is bound to NFQUEUE ${missing.join(',')}: SIP there passes ${config.failClosed ? 'nowhere (fail-closed)' : 'untranslated (fail-open)'}` : `a process is bound to every queue ${config.queues.first}:${config.queues.last}`, 'systemctl start sip-alg (or sip-alg run with the same --queues)');

  // two ALGs on one call
  const helper = kernelHelperFindings(config.ports);
  const undo = helper.map((h) => {
    const m = /^(ip6?tables) -t raw -A (.*)$/.exec(h);
    if (m) return `${m[1]} -t raw -D ${m[2]}`;
    if (h.startsWith('nftables')) return 'nft delete the ct helper object of type "sip" and its "ct helper set" rule';
    if (h.startsWith('firewalld')) return 'firewall-cmd --permanent --remove-service=sip && firewall-cmd --reload';
    if (h.startsWith('net.netfilter')) return 'sysctl -w net.netfilter.nf_conntrack_helper=0';
    return 'they go with their flows once the helper is detached (conntrack -D -p udp --dport 5060 to end them now)';
  });
  add('kernel-helper', helper.length ? 'fail' : 'ok', helper.length ? `the kernel's own SIP helper is attached to SIP traffic (two ALGs on one call translate twice and fight over pinholes): ${helper.join(' | ')}` : 'the kernel\'s SIP helper is not attached to the SIP ports', [...new Set(undo)].join('; '));

  // table headroom
  const ctCount = Number(read('/proc/sys/net/netfilter/nf_conntrack_count') ?? NaN), ctMax = Number(read('/proc/sys/net/netfilter/nf_conntrack_max') ?? NaN);
  const expMax = Number(read('/proc/sys/net/netfilter/nf_conntrack_expect_max') ?? NaN);
  const expCount = (read('/proc/net/nf_conntrack_expect') ?? '').split('\n').filter(Boolean).length;
  const ctUse = ctCount / ctMax, expUse = expCount / expMax;
  const worst = Math.max(Number.isFinite(ctUse) ? ctUse : 0, Number.isFinite(expUse) ? expUse : 0);
  add('tables', worst >= 0.95 ? 'fail' : worst >= 0.8 ? 'warn' : 'ok', `conntrack ${ctCount}/${ctMax}, expectations ${expCount}/${Number.isFinite(expMax) ? expMax : '?'}`, 'raise net.netfilter.nf_conntrack_max and nf_conntrack_expect_max (each call holds up to 4 expectations while it rings), and the expectation hash with it (expect-hash)');
  checks.push(expectHashCheck(Number(read('/sys/module/nf_conntrack/parameters/expect_hashsize') ?? NaN), expMax, expCount));

  // UDP timeouts against registrations
  const udpStream = Number(read('/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream') ?? NaN);
  add('udp-timeouts', 'ok', `UDP conntrack timeout ${read('/proc/sys/net/netfilter/nf_conntrack_udp_timeout') ?? '?'} s / stream ${Number.isFinite(udpStream) ? udpStream : '?'} s: shorter than registrations (typically 3600 s), so the daemon raises each registered phone's binding to its lifetime (registration-margin-seconds ${config.registrationMarginSeconds})`);

  // rp_filter
  const rp = [read('/proc/sys/net/ipv4/conf/all/rp_filter'), read(`/proc/sys/net/ipv4/conf/${wan}/rp_filter`)];
  add('rp-filter', rp.includes('1') ? 'warn' : 'ok', `rp_filter all=${rp[0] ?? '?'} ${wan}=${rp[1] ?? '?'}${rp.includes('1') ? ': strict reverse-path filtering drops media from a far end whose route is another link (multi-WAN)' : ''}`, `sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.${wan}.rp_filter=2 (loose)`);

  // metrics, state, clock
  if (config.metricsListen === 'off') add('metrics', 'ok', 'metrics-listen off');
  else {
    const host = config.metricsListen.replace(/^\[|\](?=:)/g, '');
    try {
      const res = await fetch(`http://${config.metricsListen}/metrics`, { signal: AbortSignal.timeout(3000) });
      const body = await res.text();
      add('metrics', res.ok && body.includes('sipalg_') ? 'ok' : 'fail', `http://${config.metricsListen}/metrics answered ${res.status}${body.includes('sipalg_') ? '' : ' without sipalg_ metrics'}`, `is the daemon running with metrics-listen ${host}?`);
    } catch (e) {
      add('metrics', 'fail', `http://${config.metricsListen}/metrics does not answer: ${(e as Error).message}`, 'start the daemon; check metrics-listen and the firewall on that address');
    }
  }
  if (config.stateDir === 'off') add('state-dir', 'ok', 'state-dir off: a restart cleans up instead of taking calls back');
  else {
    try {
      if (!existsSync(config.stateDir)) mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
      accessSync(config.stateDir, constants.W_OK);
      add('state-dir', 'ok', `${config.stateDir} is writable`);
    } catch (e) {
      add('state-dir', 'fail', `${config.stateDir} is not writable: ${(e as Error).message}`, 'create it (root, 0700) or set state-dir');
    }
  }
  const year = new Date().getUTCFullYear();
  add('clock', year >= 2024 && year < 2100 ? 'ok' : 'warn', `system time ${new Date().toISOString()}`, 'start NTP (systemd-timesyncd, chrony): registrations and timers count in wall-clock time');
  return checks;
}

export function formatChecks(checks: Check[]): string {
  const w = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => `${c.status.padEnd(4)}  ${c.name.padEnd(w)}  ${c.detail}${c.fix ? `\n      ${''.padEnd(w)}  fix: ${c.fix}` : ''}`);
  const fails = checks.filter((c) => c.status === 'fail').length, warns = checks.filter((c) => c.status === 'warn').length;
  lines.push(`${checks.length} checks: ${checks.length - fails - warns} ok, ${warns} warn, ${fails} fail`);
  return lines.join('\n');
}
