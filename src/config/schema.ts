/**
 * The configuration schema: one place that names every key, its type, default and meaning.
 * Every key is accepted in the JSON config file and as a `--key value` flag.
 */
import { readlinkSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';

export interface Config {
  wan: string;
  queues: { first: number; last: number };
  ports: number[];
  tlsPorts: number[];
  tcpHoldMs: number;
  tcpMaxConnections: number;
  publicIp: string | undefined;
  publicIp6: string;
  failClosed: boolean;
  queueMaxlen: number;
  leakPolicy: 'drop' | 'pass';
  maxMessageSize: number;
  malformedPolicy: 'pass' | 'drop';
  firstPacket: 'precreate' | 'pass';
  freshFlowMark: number;
  workerScheduling: 'batch' | 'normal';
  mediaPortMin: number;
  mediaPortMax: number;
  mediaLeaseSeconds: number;
  retainOnHold: boolean;
  provisionalInviteExpirySeconds: number;
  maxCallSeconds: number;
  callKeepaliveSeconds: number;
  maxIdleDialogs: number;
  maxDialogs: number;
  maxDialogsPerSource: number;
  inviteRatePerSource: number;
  registerRatePerSource: number;
  inviteFailureThreshold: number;
  inviteBlockSeconds: number;
  unknownMethodPolicy: 'pass' | 'drop';
  allowLowMediaPorts: boolean;
  thirdPartyMedia: 'allow' | 'block';
  pinholeSource: 'far-end' | 'any';
  kernelHelperPolicy: 'refuse' | 'warn';
  registrationMarginSeconds: number;
  /** 'registrar', 'any', or a normalized comma-separated list of address/prefix (signalingSources) */
  inboundSignalingFrom: string;
  directMedia: 'allow' | 'block';
  teardownGraceSeconds: number;
  dialogIdleSeconds: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  metricsListen: string;
  controlSocket: string;
  stateDir: string;
  nodeId: number;
}

type Parser<T> = (raw: unknown) => { ok: true; value: T } | { ok: false; allowed: string };

export interface KeySpec<K extends keyof Config = keyof Config> {
  key: string; // the name in files and flags (kebab-case)
  field: K;
  parse: Parser<Config[K]>;
  default: Config[K];
  doc: string;
}

const int = (min: number, max: number): Parser<number> => (raw) => {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
  return Number.isInteger(n) && n >= min && n <= max ? { ok: true, value: n } : { ok: false, allowed: `an integer from ${min} to ${max}` };
};
/** A packet mark mask (iptables MARK): 0, or 1 to 0xffffffff written in decimal or as 0x hexadecimal. */
const markMask: Parser<number> = (raw) => {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^(\d{1,10}|0x[0-9a-fA-F]{1,8})$/.test(raw) ? Number(raw) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff ? { ok: true, value: n } : { ok: false, allowed: '0 (off) or a mark mask from 1 to 0xffffffff (decimal or 0x hexadecimal), e.g. 0x10000000' };
};
const bool: Parser<boolean> = (raw) => {
  if (raw === true || raw === 'true' || raw === 'yes' || raw === '1') return { ok: true, value: true };
  if (raw === false || raw === 'false' || raw === 'no' || raw === '0') return { ok: true, value: false };
  return { ok: false, allowed: 'true or false' };
};
function oneOf<T extends string>(...values: T[]): Parser<T> {
  return (raw) => (typeof raw === 'string' && (values as string[]).includes(raw) ? { ok: true, value: raw as T } : { ok: false, allowed: `one of ${values.join(', ')}` });
}
/** One interface or several (a comma-separated list or an array in the file): the value is the list joined by commas. */
const ifnameList: Parser<string> = (raw) => {
  const parts = Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? raw.split(',').map((p) => p.trim()) : [];
  const good = parts.length >= 1 && parts.length <= 8 && new Set(parts).size === parts.length && parts.every((p) => /^[A-Za-z0-9_.@:-]{1,15}$/.test(p));
  return good ? { ok: true, value: parts.join(',') } : { ok: false, allowed: 'an interface name (1-15 characters of A-Z a-z 0-9 _ . - @ :), or 2 to 8 of them comma-separated for several WAN links, e.g. wan0,wan1' };
};
const portList: Parser<number[]> = (raw) => {
  const parts = Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? raw.split(',') : typeof raw === 'number' ? [String(raw)] : [];
  const ports = parts.map((p) => (/^\s*\d+\s*$/.test(p) ? Number(p) : NaN));
  const good = ports.length > 0 && ports.length <= 15 && ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535);
  return good ? { ok: true, value: [...new Set(ports)] } : { ok: false, allowed: 'a comma-separated list of 1 to 15 ports from 1 to 65535, e.g. 5060,5070' };
};
const queueRange: Parser<{ first: number; last: number }> = (raw) => {
  const m = typeof raw === 'string' ? /^(\d+)(?::(\d+))?$/.exec(raw) : typeof raw === 'number' ? [String(raw), String(raw)] : null;
  const first = m ? Number(m[1]) : NaN;
  const last = m ? Number(m[2] ?? m[1]) : NaN;
  const ok = Number.isInteger(first) && Number.isInteger(last) && first >= 0 && last <= 65535 && last >= first && last - first < 64;
  return ok ? { ok: true, value: { first, last } } : { ok: false, allowed: 'A or A:B with 0 <= A <= B <= 65535 and at most 64 queues (one worker per queue)' };
};
const optIpv4: Parser<string | undefined> = (raw) =>
  raw === undefined || raw === '' || raw === 'auto' ? { ok: true, value: undefined } : typeof raw === 'string' && isIPv4(raw) ? { ok: true, value: raw } : { ok: false, allowed: "an IPv4 address, or 'auto' for the WAN interface's first address" };
const ipv6OrAuto: Parser<string> = (raw) =>
  raw === undefined || raw === '' || raw === 'auto' ? { ok: true, value: 'auto' } : raw === 'off' || (typeof raw === 'string' && isIPv6(raw)) ? { ok: true, value: raw as string } : { ok: false, allowed: "an IPv6 address, 'auto' for the WAN interface's first global IPv6 address, or 'off'" };
const listen: Parser<string> = (raw) =>
  typeof raw === 'string' && (raw === 'off' || /^[0-9.]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(raw)) ? { ok: true, value: raw } : { ok: false, allowed: "HOST:PORT (e.g. 127.0.0.1:9477) or 'off'" };

/** An IPv4 or IPv6 address with its host bits cleared to a prefix of `bits`. */
function networkOf(ip: string, bits: number): string {
  if (isIPv4(ip)) {
    const n = ip.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
    const m = bits <= 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    const v = (n & m) >>> 0;
    return [24, 16, 8, 0].map((x) => (v >>> x) & 255).join('.');
  }
  // expand ::, clear the host bits group by group
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [], t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(tail === undefined ? 0 : 8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g || '0', 16));
  return groups.map((g, i) => {
    const keep = Math.max(0, Math.min(16, bits - i * 16));
    return (g & ((0xffff << (16 - keep)) & 0xffff)).toString(16);
  }).join(':');
}

/** The sources a register pinhole admits (config inbound-signaling-from): undefined for 'registrar' (no pinhole), 0.0.0.0/0 and ::/0 for 'any'. */
export function signalingSources(value: string): { ip: string; bits: number }[] | undefined {
  if (value === 'registrar') return undefined;
  if (value === 'any') return [{ ip: '0.0.0.0', bits: 0 }, { ip: '::', bits: 0 }];
  return value.split(',').map((p) => {
    const [ip, bits] = p.split('/');
    return { ip: ip!, bits: Number(bits) };
  });
}

const signalingFrom: Parser<string> = (raw) => {
  const allowed = "'registrar', 'any', or a comma-separated list of up to 16 addresses or prefixes (IPv4 or IPv6, e.g. 198.51.115.0/24,203.0.113.7)";
  if (raw === 'registrar' || raw === 'any') return { ok: true, value: raw };
  const parts = Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? raw.split(',').map((x) => x.trim()) : [];
  if (!parts.length || parts.length > 16) return { ok: false, allowed };
  const out: string[] = [];
  for (const p of parts) {
    const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(p);
    const ip = m?.[1] ?? '';
    const v4 = isIPv4(ip), v6 = isIPv6(ip);
    const bits = m?.[2] !== undefined ? Number(m[2]) : v4 ? 32 : 128;
    if (!(v4 || v6) || bits > (v4 ? 32 : 128)) return { ok: false, allowed };
    out.push(`${networkOf(ip.toLowerCase(), bits)}/${bits}`);
  }
  return { ok: true, value: [...new Set(out)].join(',') };
};

const absPathOrAuto: Parser<string> = (raw) => (raw === 'auto' ? { ok: true, value: 'auto' } : absPath(raw));

/** The control socket's path: 'auto' is one per network namespace (the CLI in that namespace finds it the same way). */
export function controlSocketPath(value: string, nsLink = '/proc/self/ns/net'): string {
  if (value !== 'auto') return value;
  let ns = 'unknown';
  try {
    ns = /\[(\d+)\]/.exec(readlinkSync(nsLink))?.[1] ?? ns;
  } catch { /* no procfs: one namespace */ }
  return `/run/sip-alg/control-net${ns}.sock`;
}

const absPath: Parser<string> = (raw) =>
  typeof raw === 'string' && (raw === 'off' || /^\/[^\0]{1,100}$/.test(raw)) ? { ok: true, value: raw } : { ok: false, allowed: "an absolute path of at most 101 characters, or 'off'" };

/** fresh-flow-mark's default, and the rules' (iptables/sip-alg-rules.sh FRESH_MARK) */
export const FRESH_FLOW_MARK = 0x10000000;

function spec<K extends keyof Config>(key: string, field: K, parse: Parser<Config[K]>, def: Config[K], doc: string): KeySpec<K> {
  return { key, field, parse, default: def, doc };
}

export const SCHEMA: KeySpec[] = [
  spec('wan', 'wan', ifnameList, 'wan0', "The WAN interface, or several (wan0,wan1: a primary line and a backup, one provider per line): SIP leaving through one is LAN→WAN and carries that link's address, SIP arriving on one is WAN→LAN."),
  spec('queues', 'queues', queueRange, { first: 0, last: 0 }, 'NFQUEUE numbers A:B; one worker thread per queue, the rules balance flows over them.'),
  spec('ports', 'ports', portList, [5060], 'UDP and TCP ports that carry SIP (either end of the flow).'),
  spec('tls-ports', 'tlsPorts', portList, [5061], 'TCP ports that carry SIP over TLS (SIPS): passed through untouched, new connections counted (tls_passthrough).'),
  spec('tcp-hold-ms', 'tcpHoldMs', int(0, 10000), 500, 'How long the TCP segments of a SIP message spread over several segments wait in the queue for the rest; past it (tcp_incomplete) LAN→WAN segments are dropped and resent by TCP under leak-policy drop, passed unchanged under pass; WAN→LAN ones pass unchanged.'),
  spec('tcp-max-connections', 'tcpMaxConnections', int(0, 1000000), 10000, 'SIP-over-TCP connections tracked at once; beyond it new connections pass unchanged.'),
  spec('public-ip', 'publicIp', optIpv4, undefined, "The address LAN hosts are masqueraded to; 'auto' takes the WAN interface's first IPv4 address."),
  spec('public-ip6', 'publicIp6', ipv6OrAuto, 'auto', "The IPv6 address LAN hosts are masqueraded to (NAT66); 'auto' takes the WAN interface's first global IPv6 address, and without one IPv6 SIP passes unchanged (ipv6_passthrough); 'off' always passes it."),
  spec('fail-closed', 'failClosed', bool, false, 'While no daemon is bound to the queue (stopped, crashed, restarting): false lets SIP through unchanged (--queue-bypass: calls work as with no ALG, private addresses included); true drops it. Read by the rules (packaging/sip-alg-rules).'),
  spec('queue-maxlen', 'queueMaxlen', int(16, 1000000), 2048, 'Packets one NFQUEUE holds waiting for its worker. Sized for bursts, but not much beyond what a worker handles in 500 ms (RFC 3261 T1): a SIP message held longer is retransmitted anyway. When it is full, leak-policy decides.'),
  spec('leak-policy', 'leakPolicy', oneOf('drop', 'pass'), 'drop', "While the daemon runs: a LAN→WAN SIP packet it cannot translate (its queue is full, or the message is malformed, its NAT binding cannot be read, an internal error) and that carries the sender's private address: 'drop' it (counted with its reason; SIP over UDP retransmits, RFC 3261 §17.1.1.2) or 'pass' it unchanged (the classic fail-open: the private address reaches the WAN)."),
  spec('max-message-size', 'maxMessageSize', int(512, 65507), 65507, 'Largest SIP message (UDP payload bytes) the ALG rewrites; larger ones are passed unchanged and counted (too_large).'),
  spec('malformed-policy', 'malformedPolicy', oneOf('pass', 'drop'), 'pass', 'What to do with malformed SIP: pass it unchanged (fail-open) or drop it. Both are counted with a reason.'),
  spec('first-packet', 'firstPacket', oneOf('precreate', 'pass'), 'precreate', "First packet of a new LAN→WAN flow: 'precreate' asks the kernel for the NAT binding over ctnetlink before rewriting; 'pass' sends it unchanged."),
  spec('fresh-flow-mark', 'freshFlowMark', markMask, FRESH_FLOW_MARK, "The packet mark bit(s) the rules (iptables/sip-alg-rules.sh --fresh-mark, the same value) set on a SIP/UDP packet whose conntrack entry is not in the table yet: the first packet of a new flow, or of a flow whose entry vanished (`conntrack -F`). Such a packet's NAT binding is read from the kernel, never from the worker's 1 s cache, and the worker clears the bits in its verdict. Use bits no other rule uses; 0 = off (after a flush a flow's next second of messages may carry its old public port)."),
  spec('worker-scheduling', 'workerScheduling', oneOf('normal', 'batch'), 'normal', "The workers' Linux scheduling policy (sched(7)). 'normal' (SCHED_OTHER): the kernel's default, a worker woken by a packet may preempt the task running on its core. 'batch' (SCHED_BATCH): it does not; it runs when that task yields or at the next tick, as fairly as ever, and is switched less often. In the router bench's call mix one interleaved A/B measured the daemon's CPU per message 108 -> 100 µs and the senders' 32 -> 28, a second one 112 -> 111 (BENCHMARKS.md, stop 36); p99 latency at 1k INVITE/s no worse with an idle core. Under CPU contention a batch worker may wait up to a scheduler slice (~3 ms) for its core."),
  spec('media-port-min', 'mediaPortMin', int(1024, 65534), 10000, 'Lowest public port for SDP media (RTP even, RTCP odd).'),
  spec('media-port-max', 'mediaPortMax', int(1025, 65535), 60999, 'Highest public port for SDP media.'),
  spec('media-lease-seconds', 'mediaLeaseSeconds', int(10, 86400), 7200, 'A public media port unused in any SDP for this long is returned to the pool.'),
  spec('retain-on-hold', 'retainOnHold', bool, true, 'true: a call put on hold (c=0.0.0.0, RFC 3264 §8.4) keeps its media pinholes and ports for the resume; false: they are released and re-allocated on resume.'),
  spec('provisional-invite-expiry-seconds', 'provisionalInviteExpirySeconds', int(10, 3600), 210, "An INVITE not answered (no 2xx) within this loses its pinholes (FortiGate's provisional-invite-expiry-time)."),
  spec('max-call-seconds', 'maxCallSeconds', int(0, 604800), 0, 'Hard maximum call duration: past it the call\'s pinholes and media flows are removed. 0 = off.'),
  spec('call-keepalive-seconds', 'callKeepaliveSeconds', int(0, 10080), 0, "FortiGate's call-keepalive: a confirmed call whose media conntracks carried no packet for this long is torn down (turns on nf_conntrack_acct). 0 = off."),
  spec('max-idle-dialogs', 'maxIdleDialogs', int(0, 10000000), 0, 'Dialogs kept per worker; beyond, the longest-idle ones are evicted. 0 = no limit.'),
  spec('max-dialogs', 'maxDialogs', int(0, 10000000), 0, 'Concurrent dialogs over all workers; a new INVITE beyond it is dropped (dialog_limit). 0 = no limit.'),
  spec('max-dialogs-per-source', 'maxDialogsPerSource', int(0, 1000000), 0, 'Concurrent dialogs per LAN address (per worker); a new INVITE beyond it is dropped. 0 = no limit.'),
  spec('invite-rate-per-source', 'inviteRatePerSource', int(0, 100000), 100, 'New INVITEs per second per source address (bursts of twice that); more are dropped (rate_limited). 0 = off.'),
  spec('register-rate-per-source', 'registerRatePerSource', int(0, 100000), 50, 'REGISTERs per second per source address (bursts of twice that). 0 = off.'),
  spec('invite-failure-threshold', 'inviteFailureThreshold', int(0, 100000), 20, 'INVITE failures (3xx-6xx but 401, 407, 487, 488) within 60 s that block the source\'s INVITEs. 0 = off.'),
  spec('invite-block-seconds', 'inviteBlockSeconds', int(1, 86400), 60, 'How long such a source\'s INVITEs are dropped (blocked).'),
  spec('unknown-method-policy', 'unknownMethodPolicy', oneOf('pass', 'drop'), 'pass', 'Requests with a method outside RFC 3261 and its common extensions: rewrite and pass, or drop (unknown_method).'),
  spec('allow-low-media-ports', 'allowLowMediaPorts', bool, false, 'Open pinholes to private media ports below 1024 (refused and counted by default).'),
  spec('kernel-helper-policy', 'kernelHelperPolicy', oneOf('refuse', 'warn'), 'refuse', "The kernel's own SIP helper attached to the same SIP ports (a raw-table `CT --helper sip` rule, an nftables ct helper of type sip, nf_conntrack_helper=1, firewalld's sip service) makes two ALGs on one call: 'refuse' to start, naming what was found; 'warn' and start anyway. `sip-alg doctor` checks the same."),
  spec('pinhole-source', 'pinholeSource', oneOf('far-end', 'any'), 'far-end', "Whom a media pinhole admits: 'far-end' only the far end's media address from its SDP (before its SDP is known, the signaling peer, as the kernel's SIP helper does), with a full source mask, and the pinhole goes once the far end's media arrives through the call's media conntrack; 'any' any source on the internet to the call's public media ports, for a provider whose media comes from addresses its SDP does not name (README, Security)."),
  spec('third-party-media', 'thirdPartyMedia', oneOf('allow', 'block'), 'block', "SDP from a LAN host naming media on another private LAN address (a media gateway): 'allow' translates it and opens the pinholes to that address; 'block' leaves it as written, with no pinhole (counted refused_third_party)."),
  spec('registration-margin-seconds', 'registrationMarginSeconds', int(0, 3600), 60, "A registered phone's signaling flow (and so its NAT binding) is kept alive for the registration's remaining lifetime plus this."),
  spec('inbound-signaling-from', 'inboundSignalingFrom', signalingFrom, 'registrar', "Register pinhole (FortiGate open-register-pinhole; the kernel helper's sip_direct_signalling=0): who may send SIP to a registered phone's public binding besides the flow its REGISTER used. 'registrar' (default): only that flow, no pinhole; a list of addresses or prefixes (the provider's published ranges): a pinhole from those sources to the binding while the registration lives; 'any': from anywhere on the internet, SIP scanners included (README, Security)."),
  spec('direct-media', 'directMedia', oneOf('allow', 'block'), 'allow', "MikroTik's sip-direct-media: 'block' drops a re-INVITE or UPDATE from the WAN that moves an established call's media to another address (counted direct_media_blocked); 'allow' follows it."),
  spec('teardown-grace-seconds', 'teardownGraceSeconds', int(0, 60), 5, 'After the final response to BYE or CANCEL (or a failure final response to the INVITE), pinholes stay this long.'),
  spec('dialog-idle-seconds', 'dialogIdleSeconds', int(60, 604800), 7200, 'A dialog with no SIP message for this long loses its pinholes (established media keeps flowing in the kernel).'),
  spec('log-level', 'logLevel', oneOf('debug', 'info', 'warn', 'error'), 'info', 'Least severe log level printed.'),
  spec('control-socket', 'controlSocket', absPathOrAuto, 'auto', "The local control socket of `sip-alg calls|registrations|pinholes|stats|capture|trace|reload|takeover|standby` (mode 0600: root only), or 'off'. 'auto': /run/sip-alg/control-net<namespace inode>.sock, one per network namespace, so `ip netns exec R sip-alg calls` reaches R's daemon; a daemon never takes a socket another live daemon listens on."),
  spec('state-dir', 'stateDir', absPath, '/run/sip-alg', "Where each worker keeps its dialogs and registrations, so a daemon killed or crashed mid-call comes back with its calls and pinholes; 'off' cleans up instead."),
  spec('node-id', 'nodeId', int(0, 255), 0, "A router pair (README 'Running a router pair'): this router's number, different on the two (1 and 2); its conntrack anchors use 127.0.<node-id>.1, so each router's daemon cleans up only its own. 0 = a router alone."),
  spec('metrics-listen', 'metricsListen', listen, '127.0.0.1:9477', "Where /metrics is served (Prometheus text format), or 'off'."),
];
