/**
 * Router-level benchmark (issue 6): the namespace lab with plain NAT forwarding, the kernel's SIP
 * helper (nf_conntrack_sip + nf_nat_sip) and sip-alg with 1 worker and with one worker per core,
 * measured in one run:
 *   - highest zero-loss SIP message rate (INVITE with SDP; and a REGISTER/INVITE/18x/200/ACK/BYE mix),
 *     searched by doubling then bisection, each trial from a fresh state;
 *   - one-way latency through the router at 1k and 5k messages/s (send time in the Via branch,
 *     CLOCK_MONOTONIC is system-wide), and what the router adds over plain NAT;
 *   - SIPp calls per second with zero failed calls;
 *   - RTP packets/s forwarded during calls;
 *   - resident memory of the daemon with 10k and 50k dialogs and 100k registrations.
 * The load generator is bench/loadgen.c, compiled here. Needs root. Prints tables; asserts nothing.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DAEMON_NODE_FLAGS, Lab, metricSum, PROVIDER_IP, ROOT, ROUTER_WAN_IP, SRC_LAB, phoneIp } from '../src/lab/lab';
import { prepare, type Daemon, type Mode } from '../src/lab/media';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LOADGEN = '/tmp/sipalg-bench/loadgen';
const FLOOR = '/tmp/sipalg-bench/floor';
/**
 * floor: the project's rules and queue with bench/floor.c bound to it instead of the daemon: per
 * message only the kernel work sip-alg must do (the queue's round trip, an INVITE's anchor and two
 * pinholes in one ctnetlink batch, the verdict with its payload) and a same-length address
 * translation in C, no dialogs: a lower bound of any userspace ALG on this kernel
 */
type SetupId = 'none' | 'kernel' | 'floor' | 'nodefloor' | 'alg1' | 'alg2';
const SETUPS: SetupId[] = ['none', 'kernel', 'floor', 'nodefloor', 'alg1', 'alg2'];
const LABEL: Record<SetupId, string> = { none: 'plain NAT', kernel: 'kernel helper', floor: 'C floor (queue + pinholes, no SIP logic)', nodefloor: 'node floor (the same in TypeScript)', alg1: 'sip-alg 1 worker', alg2: 'sip-alg 2 workers' };
/** the floors: a process of their own on the rules' queue 0 instead of the daemon */
const isFloor = (id: SetupId) => id === 'floor' || id === 'nodefloor';
/** per-source protections and limits off: the load comes from a handful of addresses */
export const ALG_FLAGS = ['--invite-rate-per-source', '0', '--register-rate-per-source', '0', '--max-dialogs-per-source', '0', '--max-dialogs', '0', '--max-idle-dialogs', '0',
  '--invite-failure-threshold', '0', '--media-port-min', '1024', '--media-port-max', '65535'];
/** CPU trials' default warm-up (RouterBenchOptions.warm), seconds */
export const CPU_WARM_S = 6;

/** extra addresses of phone 1 the load comes from (one signaling flow each) */
export const CANDIDATE_IPS = Array.from({ length: 24 }, (_, i) => `10.77.0.${101 + i}`);

export interface RouterBenchOptions {
  /** shorter trials and coarser search (smoke test) */
  quick?: boolean;
  /** only these parts: rate, latency, cps, rtp, memory, cpu, growth */
  only?: string[];
  /**
   * sip-alg's trials (zero-loss rate, latency, CPU): seconds of 1500 msg/s of the trial's kind before
   * each, then the daemon's tables emptied (settle: a settled JIT; 0: a fresh daemon). Default
   * CPU_WARM_S: a fresh daemon's first seconds are the JIT's, and each worker's isolate tiers up on its
   * own share of the load, so cold trials charged 2 workers +50-75% per message where warm ones show
   * +15-40% (BENCHMARKS.md stop 34); a router's daemon runs for days
   */
  warm?: number;
  /** only these set-ups (default all: plain NAT, kernel helper, sip-alg 1 and 2 workers) */
  setups?: SetupId[];
}

function buildLoadgen(): void {
  mkdirSync('/tmp/sipalg-bench', { recursive: true });
  const r = spawnSync('cc', ['-O2', '-pthread', '-o', LOADGEN, join(ROOT, 'bench/loadgen.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot compile bench/loadgen.c: ${r.stderr}`);
  const f = spawnSync('cc', ['-O2', '-o', FLOOR, join(ROOT, 'bench/floor.c'), '-lnetfilter_queue'], { encoding: 'utf8' });
  if (f.status !== 0) throw new Error(`cannot compile bench/floor.c: ${f.stderr}`);
}

/** bench/floor.c (or with `node` bench/floor-node.ts, with the daemon's node flags) bound to queue 0 in the router namespace, as a Daemon (its CPU read like the daemon's). */
async function startFloor(lab: Lab, node = false): Promise<Daemon> {
  const args = ['--queue', '0', '--wan-ip', ROUTER_WAN_IP];
  const p = node ? lab.start(lab.router, process.execPath, [...DAEMON_NODE_FLAGS, join(__dirname, 'floor-node.js'), ...args]) : lab.start(lab.router, FLOOR, args);
  let log = '';
  p.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  await Lab.waitFor(p, /floor ready/, 5000, 'bench/floor.c');
  return Object.assign(p, { log: () => log });
}

function lastJson(s: string): Record<string, any> | undefined {
  const line = s.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  try {
    return line ? JSON.parse(line) : undefined;
  } catch {
    return undefined;
  }
}

/** One set-up: its lab (phone 1 with extra addresses, provider, router) and, for sip-alg, the daemon. */
export class Setup {
  daemon?: Daemon;
  private constructor(readonly id: SetupId, readonly lab: Lab, daemon?: Daemon) {
    this.daemon = daemon;
  }

  /** the floor's mode is 'alg' (the project's rules and queue, translation checked); its process is in `daemon` */
  get mode(): Mode { return this.id === 'none' ? 'none' : this.id === 'kernel' ? 'kernel' : 'alg'; }
  get queues(): string { return this.id === 'alg2' ? '0:1' : '0:0'; }
  /** sip-alg's daemon (not the floor) */
  get isAlg(): boolean { return this.id === 'alg1' || this.id === 'alg2'; }

  static async create(id: SetupId, prefix: string): Promise<Setup> {
    const mode: Mode = id === 'none' ? 'none' : id === 'kernel' ? 'kernel' : 'alg';
    let p: Awaited<ReturnType<typeof prepare>>;
    try {
      // the per-source limit in the kernel off too (the rules' default would cap each address at 1000/s)
      if (isFloor(id)) {
        p = await prepare(prefix, 1, 'none');
        const r = p.lab.rules('install', ['--wan', 'wan0', '--queues', '0:0', '--source-rate', '0']);
        if (r.code !== 0) throw new Error(r.stderr);
        p.daemon = await startFloor(p.lab, id === 'nodefloor');
      } else p = await prepare(prefix, 1, mode, ALG_FLAGS, id === 'alg2' ? '0:1' : '0:0', ['--source-rate', '0']);
    } catch (e) {
      // prepare() built the namespaces (and may have started the daemon) before it failed
      for (const pid of spawnSync('ip', ['netns', 'pids', `${prefix}-r`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      spawnSync('bash', [join(SRC_LAB, 'lab.sh'), 'down', prefix]);
      throw e;
    }
    const { lab, daemon } = p;
    const s = new Setup(id, lab, daemon);
    for (const ip of CANDIDATE_IPS) s.lab.run(lab.phone(1), 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    return s;
  }

  /** A fresh state for the next trial: no conntrack entries or expectations; for sip-alg a new daemon (no dialogs). */
  async reset(extra: string[] = []): Promise<void> {
    if (this.daemon) {
      const d = this.daemon;
      this.daemon = undefined;
      await new Promise<void>((r) => {
        if (d.exitCode !== null) return r();
        const t = setTimeout(() => { d.kill('SIGKILL'); r(); }, 15000);
        d.once('exit', () => { clearTimeout(t); r(); });
        d.kill('SIGTERM');
      });
    }
    this.lab.conntrack(['-F']);
    this.lab.conntrack(['-F', 'expect']);
    // the daemon keeps its dialogs in the state dir (Lab passes --state-dir lab.dir) and a new one
    // adopts them: remove them so that every trial starts without dialogs
    for (const f of readdirSync(this.lab.dir)) if (/^state-.*\.json/.test(f)) rmSync(join(this.lab.dir, f), { force: true });
    if (isFloor(this.id)) this.daemon = await startFloor(this.lab, this.id === 'nodefloor');
    else if (this.mode === 'alg') this.daemon = await this.lab.startDaemon(['--queues', this.queues, '--teardown-grace-seconds', '2', ...ALG_FLAGS, ...extra]);
  }

  /** Starts the provider's UAS (loadgen uas); stop() returns its report. */
  async uas(run: number, respond: boolean): Promise<{ stop: () => Promise<Record<string, any>> }> {
    const p = this.lab.start(this.lab.provider, LOADGEN, ['uas', '--bind', `${PROVIDER_IP}:5080`, '--run', String(run), ...(respond ? ['--respond'] : [])]);
    let out = '';
    p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await Lab.waitFor(p, /ready/, 5000, 'loadgen uas');
    return {
      stop: () => new Promise((res) => {
        const t = setTimeout(() => p.kill('SIGKILL'), 10000);
        p.once('close', () => { clearTimeout(t); res(lastJson(out) ?? { error: out.slice(-300) }); });
        p.kill('SIGTERM');
      }),
    };
  }

  async uac(args: string[], timeoutMs = 120000): Promise<Record<string, any>> {
    const r = await this.lab.runAsync(this.lab.phone(1), LOADGEN, ['uac', ...args], timeoutMs);
    const j = lastJson(r.stdout);
    // what the load generator printed is kept in the error: a run that ended without its report (seen once, exit 0) says why
    if (!j) throw new Error(`loadgen uac failed (${r.code}): stdout ${JSON.stringify(r.stdout.slice(-300))} stderr ${r.stderr.slice(-300)}`);
    return j;
  }

  /** Packets each NFQUEUE received (id_sequence) and dropped, from /proc in the router namespace. */
  queueStats(): { id: number; seq: number; dropped: number; userDropped: number }[] {
    const t = this.lab.run(this.lab.router, 'cat', ['/proc/net/netfilter/nfnetlink_queue']).stdout;
    return t.split('\n').filter((l) => l.trim()).map((l) => {
      const f = l.trim().split(/\s+/).map(Number);
      return { id: f[0]!, seq: f[7]!, dropped: f[5]!, userDropped: f[6]! };
    });
  }

  rss(): number {
    const pid = this.daemon?.pid;
    if (!pid) return NaN;
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  }

  metric(name: string): number {
    return metricSum(this.lab.metrics(), name, {});
  }

  async close(): Promise<void> {
    await this.lab.close();
  }
}

export interface Trial {
  rate: number;
  ok: boolean;
  why: string;
  lost: number;
  untranslated: number;
  latency?: { p50_us: number; p99_us: number; p999_us: number; max_us: number; n: number };
  genLimited: boolean;
  queues?: string;
}

let runSeq = Math.floor(Date.now() / 1000) % 100000;
/** p99 one-way latency above which a trial counts as not kept up (the queue was growing) */
const KEPT_UP_US = 50000;
/** the rate of the CPU-per-message trials: well below every set-up's zero-loss rate */
const CPU_RATE = 1500;

/**
 * A daemon that has run for a while (the bench's `--warm=S`): `seconds` of `rate` msg/s of `kind`,
 * then its calls and registrations forgotten (`sip-alg standby`) and the kernel's tables flushed, so
 * that the trial meets a JIT that has settled (V8 tiers the dialog table's larger functions up only
 * after 7-16 s at this rate, see BENCHMARKS.md) with tables as small as a fresh daemon's. The media
 * ports it offers are the odd slots of two (`--mslot 1 --mslots 2`): a trial after it takes even ones.
 * Nothing for plain NAT, the kernel helper and the C floor (no JIT), or with `seconds` 0; the node floor gets the load alone.
 */
async function settle(s: Setup, kind: 'invite' | 'register' | 'mix', seconds: number, ips: string[], run: number, rate = CPU_RATE): Promise<void> {
  // the node floor has a JIT to settle too (its own load, no tables to empty)
  if (seconds <= 0 || !(s.isAlg || s.id === 'nodefloor')) return;
  // its own UAS, answering as the trial's will (the trial's UAS, started after, counts only the trial)
  const uas = await s.uas(run + 70000, kind === 'mix');
  try {
    await s.uac(['--ips', ips.join(','), '--kind', kind, '--rate', String(rate), '--duration', String(seconds), '--run', String(run + 70000), '--seq0', '70000000', '--mslot', '1', '--mslots', '2', '--linger', '300']);
  } finally {
    await uas.stop();
  }
  if (s.isAlg) {
    const r = s.lab.cli(['standby']);
    if (r.code !== 0) throw new Error(`sip-alg standby: ${r.stderr}`);
  }
  s.lab.conntrack(['-F']);
  s.lab.conntrack(['-F', 'expect']);
  // the trial's flows (the phones' addresses, port 5060) are NATed anew after the flush, maybe to
  // other ports than the daemon's cached bindings say: the rules mark their first packets fresh and
  // the daemon reads those bindings from the kernel (fresh-flow-mark; stop 35 met the flush here)
  await sleep(300);
}

/**
 * One trial: `rate` SIP messages/s through the router for `seconds`. invite: INVITEs with SDP
 * LAN→WAN; mix: requests LAN→WAN and the UAS's responses WAN→LAN, `rate` counting both.
 * Zero loss means every message arrived and, with an ALG, arrived translated (a message the ALG
 * let through untranslated, e.g. fail-open on a full queue, counts as lost).
 */
export async function trial(s: Setup, kind: 'invite' | 'mix', rate: number, seconds: number, ips: string[], procs = 2, warmup = 0, settleS = 0): Promise<Trial> {
  await s.reset();
  const run = ++runSeq;
  await settle(s, kind, settleS, ips, run);
  const uas = await s.uas(run, kind === 'mix');
  if (warmup) {
    // steady state: the same load for `warmup` seconds first (another run id, other media ports), not measured
    await s.uac(['--ips', ips.join(','), '--kind', kind, '--rate', String(rate), '--duration', String(warmup), '--run', String(run + 50000), '--seq0', '50000000', '--mslot', '1', '--mslots', '2', '--linger', '0']);
    await sleep(300);
  }
  const q0 = s.mode === 'alg' ? s.queueStats() : [];
  // `procs` generator processes (one per core), each with its share of the addresses and the rate
  const share = (k: number) => ips.filter((_, i) => Math.floor(i / 2) % procs === k);
  // after a warm-up or a settled daemon's load the even media slots (both left the odd ones)
  const slots = warmup || settleS ? 2 * procs : procs;
  let parts: Record<string, any>[];
  try {
    parts = await Promise.all(Array.from({ length: procs }, (_, k) => s.uac(['--ips', (share(k).length ? share(k) : ips).join(','), '--kind', kind, '--rate', String(rate / procs), '--duration', String(seconds),
      '--run', String(run), '--seq0', String(k * 10000000), '--mslot', String(warmup || settleS ? 2 * k : k), '--mslots', String(slots), '--linger', '700'])));
  } finally {
    await sleep(100);
  }
  const uac: Record<string, any> = {};
  for (const p of parts) for (const [key, v] of Object.entries(p)) if (typeof v === 'number') uac[key] = key === 'behind_us' ? Math.max(uac[key] ?? 0, v) : (uac[key] ?? 0) + v;
  uac.resp_bad = parts.find((p) => typeof p.resp_bad === 'string')?.resp_bad;
  const w = await uas.stop();
  const check = s.mode !== 'none';
  let lost = uac.sent - w.rx, untranslated = check ? w.rx - w.clean : 0;
  if (kind === 'mix') {
    lost += w.resp_sent - uac.resp_rx;
    if (check) untranslated += uac.resp_rx - uac.resp_ok;
  }
  const expected = kind === 'mix' ? Math.floor((rate / 2) * seconds) : Math.floor(rate * seconds);
  const genLimited = uac.behind_us > 0.05 * seconds * 1e6 || uac.send_errors > 0 || (kind === 'invite' && uac.sent < expected);
  let queues: string | undefined;
  if (s.mode === 'alg') {
    const q1 = s.queueStats();
    queues = q1.map((q) => {
      const before = q0.find((x) => x.id === q.id);
      return `q${q.id}:${q.seq - (before?.seq ?? 0)}${q.dropped - (before?.dropped ?? 0) ? ` dropped ${q.dropped - (before?.dropped ?? 0)}` : ''}${q.userDropped - (before?.userDropped ?? 0) ? ` overrun ${q.userDropped - (before?.userDropped ?? 0)}` : ''}`;
    }).join(' ');
  }
  // kept up: a router that falls behind hides it for a while in its queue (4096 packets for sip-alg);
  // a backlog shows as one-way latency, so a trial whose p99 exceeds KEPT_UP_US does not pass
  const backlog = (w.latency?.p99_us ?? 0) > KEPT_UP_US;
  const ok = lost === 0 && untranslated === 0 && !genLimited && !backlog;
  if (s.isAlg && !ok) {
    await sleep(1100); // workers flush their counters every second
    const m = s.lab.metrics();
    const reasons = new Map<string, number>();
    for (const line of m.split('\n')) {
      if (!line.startsWith('sipalg_packets_total{')) continue;
      const l = (k: string) => new RegExp(`${k}="([^"]*)"`).exec(line)?.[1] ?? '?';
      const reason = l('reason'), n = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (reason !== 'rewritten' && reason !== 'unchanged' && n > 0) reasons.set(`${l('direction')} ${l('verdict')} ${reason}`, n);
    }
    if (reasons.size) queues = `${queues ?? ''}; daemon: ${[...reasons].map(([k, v]) => `${k} ${v}`).join(', ')}`;
  }
  const why = genLimited ? `load generator fell behind (${Math.round(uac.behind_us / 1000)} ms)` : lost ? `${lost} lost` : untranslated ? `${untranslated} untranslated${w.unclean ? ` (first at the UAS: ${w.unclean})` : ''}${uac.resp_bad ? ` (first response at the phone: ${uac.resp_bad})` : ''}` : backlog ? `zero loss but backlog: p99 ${Math.round(w.latency.p99_us / 1000)} ms` : 'zero loss';
  return { rate, ok, why, lost, untranslated, latency: w.latency ?? undefined, genLimited, queues };
}

/** On-CPU time of every thread of a process (ns → µs), from /proc/<pid>/task/<tid>/schedstat: exact, includes the kernel work done inside its syscalls. */
function processCpuUs(pid: number | undefined): number {
  if (!pid) return 0;
  let ns = 0;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
  } catch { /* exited */ }
  return ns / 1000;
}

export interface CpuSample {
  kind: 'invite' | 'register' | 'mix';
  messages: number;
  /**
   * the load generator's two processes (getrusage), µs per message: what they send is forwarded by
   * the router inside their sendto (softirq charged to the sending task; this VM's /proc/stat
   * softirq and user/system columns are tick samples that lost up to ~40% of busy time in a check),
   * so this includes the router's forwarding, NAT and the kernel helper's SIP work
   */
  senders: number;
  /** the sip-alg daemon's threads (schedstat), µs per message, the kernel work of its syscalls included (the rest of the forwarding after a verdict too) */
  daemon: number;
}

/**
 * CPU per message (issue 12): `rate` msg/s of one kind for `seconds`; exact per-process CPU of the
 * senders and the daemon. What a set-up adds over plain NAT for the same traffic is its cost.
 */
/** The latency trial of routerBench (INVITE with SDP at `rate`, 1 generator, 1 s of the same load first), for bench/latency-probe.ts. */
export function latencyTrial(s: Setup, rate: number, seconds: number, ips: string[], warmup = 1): Promise<Trial> {
  return trial(s, 'invite', rate, seconds, ips, 1, warmup);
}

export async function cpuTrial(s: Setup, kind: 'invite' | 'register' | 'mix', rate: number, seconds: number, ips: string[], warm = 0, daemonFlags: string[] = []): Promise<CpuSample> {
  await s.reset(daemonFlags);
  const run = ++runSeq;
  await sleep(700); // the new daemon's start-up work is done
  await settle(s, kind, warm, ips, run, rate);
  const uas = await s.uas(run, kind === 'mix');
  // steady state: the same load for 1 s first, not measured (another run id, the other half of the
  // media ports), so that the JIT's compilation of the hot path, a one-time cost of a fresh daemon,
  // is not charged to the measured messages (before stop 26 it was: see BENCHMARKS.md)
  await s.uac(['--ips', ips.join(','), '--kind', kind, '--rate', String(rate), '--duration', '1', '--run', String(run + 50000), '--seq0', '50000000', '--mslot', '1', '--mslots', '2', '--linger', '300']);
  const d0 = processCpuUs(s.daemon?.pid);
  const u = await s.uac(['--ips', ips.join(','), '--kind', kind, '--rate', String(rate), '--duration', String(seconds), '--run', String(run), '--mslot', '0', '--mslots', '2', '--linger', '300']);
  const d1 = processCpuUs(s.daemon?.pid);
  // a daemon that died in the trial takes its threads' CPU with it (the sum of the live ones is then
  // meaningless, negative even): that is a failure of the trial, not a figure
  if (s.daemon && (s.daemon.exitCode !== null || s.daemon.signalCode !== null)) throw new Error(`the daemon exited during the CPU trial (${s.daemon.signalCode ?? `status ${s.daemon.exitCode}`}): ${s.daemon.log().slice(-2000)}`);
  const w = await uas.stop();
  const messages = kind === 'mix' ? (u.sent ?? 0) + (w.resp_sent ?? 0) : u.sent ?? 0;
  const per = (x: number) => (messages ? x / messages : NaN);
  return { kind, messages, senders: per((u.cpu_us ?? NaN) + (w.cpu_us ?? NaN)), daemon: per(d1 - d0) };
}

/** cpuTrial `reps` times; the median of each figure. */
async function cpuMedian(s: Setup, kind: CpuSample['kind'], rate: number, seconds: number, ips: string[], reps: number, warm = 0): Promise<CpuSample & { log: string }> {
  const xs: CpuSample[] = [];
  for (let i = 0; i < reps; i++) xs.push(await cpuTrial(s, kind, rate, seconds, ips, warm));
  const med = (f: (x: CpuSample) => number) => xs.map(f).sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { kind, messages: med((x) => x.messages), senders: med((x) => x.senders), daemon: med((x) => x.daemon), log: xs.map((x) => `${x.kind} ${x.messages} msgs senders ${x.senders.toFixed(1)} daemon ${x.daemon.toFixed(1)} µs/msg`).join('; ') };
}

interface Search {
  rate: number;
  capped: boolean;
  log: string[];
}

/** Highest rate with zero loss: doubling from `start`, then bisection to ~`resolution`. */
async function zeroLossRate(s: Setup, kind: 'invite' | 'mix', start: number, cap: number, seconds: number, resolution: number, ips: string[], settleS = 0): Promise<Search> {
  const log: string[] = [];
  let lo = 0, hi = Infinity, r = start, capped = false;
  for (let i = 0; i < 14; i++) {
    const t = await trial(s, kind, r, seconds, ips, 2, 0, settleS);
    log.push(`${r}/s: ${t.why}${t.queues ? ` [${t.queues}]` : ''}`);
    if (t.genLimited && !t.lost && !t.untranslated && t.ok === false && !/backlog/.test(t.why)) { capped = true; hi = r; break; }
    if (t.ok) lo = r;
    else hi = r;
    if (t.ok && r >= cap) { capped = true; break; }
    if (hi === Infinity) r = Math.min(cap, r * 2);
    else if (lo === 0) { if (r <= 100) break; r = Math.max(100, Math.round(r / 2)); }
    else if (hi / lo <= resolution) break;
    else r = Math.round(Math.sqrt(lo * hi) / 50) * 50;
    if (r === lo || r === hi) break;
  }
  return { rate: lo, capped, log };
}

/** SIPp: uas-quiet on the provider, uac-cps from two phone addresses (one per queue), `rate` calls/s in all. */
async function sippCps(s: Setup, rate: number, seconds: number, ips: string[]): Promise<{ ok: boolean; success: number; failed: number; why: string }> {
  await s.reset();
  const q0 = s.mode === 'alg' ? s.queueStats() : [];
  const uas = s.lab.start(s.lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-quiet.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-nostdin', '-nr', '-max_socket', '65000']);
  try {
    await s.lab.waitListening(s.lab.provider, [5080]);
    const per = rate / ips.length;
    const calls = Math.round(per * seconds);
    const runs = await Promise.all(ips.map((ip, i) => s.lab.runAsync(s.lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-cps.xml'), '-i', ip, '-p', '5060', '-mp', String(20000 + i * 20000),
      '-s', 'bench', `${PROVIDER_IP}:5080`, '-r', String(per), '-m', String(calls), '-l', String(Math.max(100, per * 10)), '-timeout', String(seconds + 30) + 's', '-timeout_error', '-nostdin', '-nr', '-trace_stat', '-stf', join(s.lab.dir, `cps-${rate}-${i}.csv`)], (seconds + 45) * 1000)));
    let success = 0, failed = 0;
    for (let i = 0; i < runs.length; i++) {
      const stat = readStat(join(s.lab.dir, `cps-${rate}-${i}.csv`));
      success += stat.success;
      failed += stat.failed + (stat.success + stat.failed === 0 ? calls : 0);
    }
    // with fail-open, a full queue lets SIP through untranslated and SIPp would not notice: every one
    // of the 6 messages of a call (INVITE, 180, 200, ACK, BYE, 200) must have gone through the queue
    let bypassed = 0;
    if (s.mode === 'alg') {
      const queued = s.queueStats().reduce((a, q) => a + q.seq - (q0.find((x) => x.id === q.id)?.seq ?? 0), 0);
      bypassed = Math.max(0, 6 * success - queued);
    }
    const ok = runs.every((r) => r.code === 0) && failed === 0 && success === Math.round(per * seconds) * ips.length && bypassed === 0;
    const err = runs.map((r) => (r.code ? (r.stderr + r.stdout).trim().split('\n').filter((l) => /error|fail|timeout/i.test(l)).slice(-1)[0] ?? '' : '')).filter(Boolean).join(' | ').slice(0, 200);
    return { ok, success, failed, why: ok ? 'all calls ok' : `${failed} failed, ${success} of ${Math.round(per * seconds) * ips.length} ok${bypassed ? `, at least ${bypassed} messages bypassed the ALG (queue full)` : ''} (exit ${runs.map((r) => r.code).join('/')}${err ? `: ${err}` : ''})` };
  } finally {
    uas.kill('SIGKILL');
    await new Promise((r) => { if (uas.exitCode !== null) r(undefined); else uas.once('exit', r); });
  }
}

function readStat(file: string): { success: number; failed: number } {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const head = lines[0]!.split(';');
    const last = lines[lines.length - 1]!.split(';');
    const col = (n: string) => Number(last[head.indexOf(n)] ?? 0);
    return { success: col('SuccessfulCall(C)'), failed: col('FailedCall(C)') };
  } catch {
    return { success: 0, failed: 0 };
  }
}

async function cpsSearch(s: Setup, seconds: number, ips: string[], quick: boolean): Promise<{ rate: number; log: string[] }> {
  const ladder = quick ? [500, 1000, 2000] : [500, 1000, 1500, 2000, 3000, 4000, 6000];
  const log: string[] = [];
  let best = 0;
  for (const r of ladder) {
    const t = await sippCps(s, r, seconds, ips);
    log.push(`${r} calls/s: ${t.why}`);
    if (!t.ok) break;
    best = r;
  }
  if (best === 0) {
    const t = await sippCps(s, 250, seconds, ips);
    log.push(`250 calls/s: ${t.why}`);
    if (t.ok) best = 250;
  }
  return { rate: best, log };
}

/** Router interface counters (packets sent on wan0 and on the phone's LAN port). */
function txPackets(s: Setup): number {
  const j = JSON.parse(s.lab.run(s.lab.router, 'ip', ['-s', '-j', 'link', 'show']).stdout) as { ifname: string; stats64?: { tx: { packets: number } } }[];
  return j.filter((l) => l.ifname === 'wan0' || l.ifname === `${s.lab.prefix}-l1`).reduce((a, l) => a + (l.stats64?.tx.packets ?? 0), 0);
}

/** Sets up `calls` calls (INVITE with SDP, 180, 200 with SDP) whose media the RTP test then sends. */
export async function rtpCalls(s: Setup, calls: number): Promise<{ phonePorts: string; provPorts: string; note: string }> {
  await s.reset();
  const run = ++runSeq;
  const uas = await s.uas(run, true);
  const setup = await s.uac(['--ips', phoneIp(1), '--kind', 'invite', '--rate', '200', '--count', String(calls), '--run', String(run), '--mbase', '30000', '--mports', String(calls)]);
  await uas.stop();
  return {
    phonePorts: Array.from({ length: calls }, (_, i) => 30000 + 2 * i).join(','),
    provPorts: Array.from({ length: calls }, (_, i) => 40000 + 2 * i).join(','),
    note: `${setup.resp_2xx}/${calls} calls answered`,
  };
}

/** One repetition: both ends send 172-byte RTP packets as fast as they can, full duplex; packets/s the router forwarded. */
export async function rtpRep(s: Setup, c: { phonePorts: string; provPorts: string }, seconds: number): Promise<{ pps: number; note: string }> {
  const prov = s.lab.start(s.lab.provider, LOADGEN, ['rtp', '--bind', PROVIDER_IP, '--ports', c.provPorts, '--latch', '--duration', String(seconds + 0.5)]);
  let provOut = '';
  prov.stdout?.on('data', (d: Buffer) => (provOut += d.toString()));
  await Lab.waitFor(prov, /ready/, 5000, 'loadgen rtp');
  const before = txPackets(s);
  const t0 = process.hrtime.bigint();
  const phone = await s.lab.runAsync(s.lab.phone(1), LOADGEN, ['rtp', '--bind', phoneIp(1), '--ports', c.phonePorts, '--peer', PROVIDER_IP, '--peer-ports', c.provPorts, '--duration', String(seconds)], (seconds + 20) * 1000);
  const el = Number(process.hrtime.bigint() - t0) / 1e9;
  await new Promise((r) => { if (prov.exitCode !== null) r(undefined); else prov.once('exit', r); });
  const fwd = txPackets(s) - before;
  const pj = lastJson(phone.stdout), wj = lastJson(provOut);
  return { pps: fwd / el, note: `${Math.round(fwd / el)} (phone sent ${pj?.sent}, got ${pj?.rx}; provider sent ${wj?.sent}, got ${wj?.rx})` };
}

/**
 * RTP packets/s through the router during 4 calls in every set-up. The four labs are up at the same
 * time and the repetitions alternate between them, so that drift in the machine's load (other work
 * on the same cores) spreads over all set-ups; the median repetition is reported.
 */
async function rtpAll(ids: SetupId[], seconds: number, reps: number, details: string[]): Promise<Partial<Record<SetupId, number>>> {
  const setups: Setup[] = [];
  const out: Partial<Record<SetupId, number>> = {};
  try {
    for (const id of ids) setups.push(await Setup.create(id, `bnr${id.slice(-1)}`));
    const calls = new Map<Setup, Awaited<ReturnType<typeof rtpCalls>>>();
    for (const s of setups) calls.set(s, await rtpCalls(s, 4));
    const got = new Map<Setup, { pps: number; note: string }[]>(setups.map((s) => [s, []]));
    for (let k = 0; k < reps; k++) for (const s of setups) got.get(s)!.push(await rtpRep(s, calls.get(s)!, seconds));
    for (const s of setups) {
      const r = got.get(s)!;
      const sorted = r.map((x) => x.pps).sort((a, b) => a - b);
      out[s.id] = sorted[Math.floor(sorted.length / 2)];
      details.push(`${LABEL[s.id]}, RTP during 4 calls (${calls.get(s)!.note}), packets/s forwarded per repetition: ${r.map((x) => x.note).join('; ')}`);
    }
  } catch (e) {
    details.push(`RTP: error: ${(e as Error).stack ?? (e as Error).message}`);
  } finally {
    for (const s of setups) await s.close();
  }
  return out;
}

/** Daemon RSS with 10k and 50k dialogs, then 100k registrations on top. */
async function memory(s: Setup, rate: number): Promise<{ rows: [string, string][]; log: string[] }> {
  const log: string[] = [];
  // calls stay up for the whole measurement (no provisional expiry while they ring)
  await s.reset(['--provisional-invite-expiry-seconds', '3600']);
  await sleep(3000);
  const base = s.rss();
  const rows: [string, string][] = [['idle daemon (2 workers)', mb(base)]];
  const waitFor = async (name: string, target: number, ms: number) => {
    const deadline = Date.now() + ms;
    let v = 0;
    while (Date.now() < deadline) {
      v = s.metric(name);
      if (v >= target) break;
      await sleep(1000);
    }
    return v;
  };
  const run = ++runSeq;
  let uas = await s.uas(run, true);
  // 10k calls: INVITE with SDP answered 180 + 200 with SDP (confirmed dialogs with pinholes and media flows), each its own private media port (1024..65534 holds ~32k RTP/RTCP pairs)
  let r = await s.uac(['--ips', CANDIDATE_IPS.slice(0, 8).join(','), '--kind', 'invite', '--rate', String(rate), '--count', '10000', '--run', String(run), '--mbase', '1024', '--mports', '25000'], 300000);
  let d = await waitFor('sipalg_dialogs_active', 10000, 15000);
  await sleep(3000);
  const rss10 = s.rss();
  log.push(`10k: sent ${r.sent}, dialogs ${d}, pinholes created ${s.lab.metrics().match(/sipalg_pinholes_total\{event="created"\} (\d+)/)?.[1] ?? '?'}, kernel expectations ${s.lab.conntrack(['-C', 'expect']).trim()}`);
  rows.push([`${d} dialogs`, `${mb(rss10)} (+${Math.round((rss10 - base) / Math.max(1, d))} B/dialog)`]);
  r = await s.uac(['--ips', CANDIDATE_IPS.slice(0, 8).join(','), '--kind', 'invite', '--rate', String(rate), '--count', '40000', '--seq0', '10000', '--mslot', '10000', '--run', String(run), '--mbase', '1024', '--mports', '25000'], 300000);
  d = await waitFor('sipalg_dialogs_active', 50000, 30000);
  await sleep(3000);
  const rss50 = s.rss();
  await uas.stop();
  log.push(`50k: sent ${r.sent} more, dialogs ${d}, kernel expectations ${s.lab.conntrack(['-C', 'expect']).trim()}, conntrack entries ${s.lab.conntrack(['-C']).trim()} (dialogs beyond 25k share a private media endpoint with an earlier one: one public address has ~32k RTP/RTCP port pairs)`);
  rows.push([`${d} dialogs`, `${mb(rss50)} (+${Math.round((rss50 - base) / Math.max(1, d))} B/dialog; 10k→50k: ${Math.round((rss50 - rss10) / Math.max(1, d - 10000))} B/dialog)`]);
  const run2 = ++runSeq;
  uas = await s.uas(run2, true);
  r = await s.uac(['--ips', CANDIDATE_IPS.slice(0, 8).join(','), '--kind', 'register', '--rate', String(rate), '--count', '100000', '--aors', '0', '--run', String(run2)], 300000);
  const g = await waitFor('sipalg_registrations_active', 100000, 30000);
  await sleep(3000);
  const rssReg = s.rss();
  await uas.stop();
  log.push(`registrations: sent ${r.sent}, 200 OK back ${r.resp_2xx}, registrations ${g}`);
  rows.push([`${d} dialogs + ${g} registrations`, `${mb(rssReg)} (+${Math.round((rssReg - rss50) / Math.max(1, g))} B/registration)`]);
  return { rows, log };
}

interface GrowthPoint { live: number; exps: number; calls: number; daemon: number; senders: number; p50: number; p99: number }

/**
 * CPU per call set-up (INVITE with SDP, 180, 200 with SDP) and the INVITEs' one-way latency,
 * measured at a small and at large tables of live calls (issue 21: no growth of p99 or CPU per
 * message between 1k and 50k live dialogs). The calls stay up (answered, no BYE, no provisional
 * expiry); each window is 3 s of 1500 INVITE/s with a UAS of its own (its latency is the window's).
 * One public address has ~32k RTP/RTCP port pairs (--media-port-min/max 1024-65535): beyond that
 * the calls' private media endpoints repeat (each new call shares its endpoint with a live one, as a
 * phone's redial does, and takes its media over). For the kernel helper the senders' CPU carries its work.
 */
async function growth(s: Setup, ips: string[], quick: boolean): Promise<{ points: GrowthPoint[]; log: string[] }> {
  await s.reset(['--provisional-invite-expiry-seconds', '3600']);
  const run = ++runSeq;
  const points: GrowthPoint[] = [], log: string[] = [];
  let next = 0; // the next call's index: its Call-ID and (mod 32000) its private media port
  /** `n` calls at `rate`/s, answered by a UAS of their own: the UAC's and the UAS's reports */
  const calls = async (n: number, rate: number, timeoutMs = 120000) => {
    const uas = await s.uas(run, true);
    const args = ['--ips', ips.join(','), '--kind', 'invite', '--rate', String(rate), '--count', String(n), '--seq0', String(next), '--mslot', String(next % 32000), '--mports', '32000', '--mbase', '1024', '--run', String(run), '--linger', '500'];
    next += n;
    let u: Record<string, any>;
    try {
      u = await s.uac(args, timeoutMs);
    } finally {
      await sleep(200);
    }
    return { u, w: await uas.stop() };
  };
  const live = () => (s.mode === 'alg' ? s.metric('sipalg_dialogs_active') : next);
  const exps = () => Number(s.lab.conntrack(['-C', 'expect']).trim());
  const window = quick ? 1500 : 4500;
  for (const target of quick ? [1000, 10000] : [1000, 25000, 50000]) {
    if (target > next) await calls(target - next, 2000, 300000);
    await sleep(2000);
    const at = live(), e = exps();
    const d0 = processCpuUs(s.daemon?.pid);
    const { u, w } = await calls(window, 1500);
    const d1 = processCpuUs(s.daemon?.pid);
    const n = Math.max(1, u.sent ?? 0);
    log.push(`${target}: live ${at}, expectations ${e}, window sent ${u.sent} INVITEs, 200 OK back ${u.resp_2xx}, latency ${JSON.stringify(w.latency)}`);
    points.push({ live: at, exps: e, calls: u.sent ?? 0, daemon: s.daemon ? (d1 - d0) / n : NaN, senders: (u.cpu_us ?? NaN) / n, p50: w.latency?.p50_us ?? NaN, p99: w.latency?.p99_us ?? NaN });
  }
  return { points, log };
}

const mb = (b: number) => (Number.isFinite(b) ? `${(b / 1048576).toFixed(1)} MB` : 'n/a');
const fmt = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? 'n/a' : n >= 100 ? String(Math.round(n)) : n.toFixed(1));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || !b || !Number.isFinite(a) || !Number.isFinite(b) ? 'n/a' : (a / b).toFixed(2));

/** Picks source addresses so that sip-alg's two queues get the same number of flows. */
async function balancedIps(s: Setup, perQueue: number): Promise<{ ips: string[]; note: string }> {
  const byQueue = new Map<number, string[]>();
  for (const ip of CANDIDATE_IPS) {
    const before = s.queueStats();
    await s.uac(['--ips', ip, '--kind', 'register', '--rate', '1000', '--count', '1', '--run', '1', '--linger', '0']);
    const after = s.queueStats();
    const q = after.find((a) => a.seq > (before.find((b) => b.id === a.id)?.seq ?? 0))?.id;
    if (q !== undefined) byQueue.set(q, [...(byQueue.get(q) ?? []), ip]);
  }
  const q0 = byQueue.get(0) ?? [], q1 = byQueue.get(1) ?? [];
  const n = Math.min(perQueue, q0.length, q1.length);
  if (n === 0) return { ips: CANDIDATE_IPS.slice(0, 2 * perQueue), note: `hash put every candidate address on one queue (${q0.length}/${q1.length}); unbalanced` };
  const ips: string[] = [];
  for (let i = 0; i < n; i++) ips.push(q0[i]!, q1[i]!);
  return { ips, note: `${ips.length} phone addresses, ${n} per queue (NFQUEUE --queue-balance hashes the address pair)` };
}

/**
 * The global conntrack limits every bench of the lab runs with (nf_conntrack_max and
 * nf_conntrack_expect_max are writable only in the init namespace): the kernel's default of 4096
 * expectations fills within 2-3 s at 1-1.5k INVITE/s (pinholes pend 180 s), and refused pinholes
 * and their retries would be measured instead of the calls. Raised to 524288 / 262144 (never
 * lowered); `restore` puts back what was found.
 */
export function raiseConntrackLimits(out: (s: string) => void): { restore(): void } {
  const sysctl = (k: string) => readFileSync(`/proc/sys/net/netfilter/${k}`, 'utf8').trim();
  const saved = { nf_conntrack_max: sysctl('nf_conntrack_max'), nf_conntrack_expect_max: sysctl('nf_conntrack_expect_max') };
  const setSysctl = (k: string, v: string) => { try { writeFileSync(`/proc/sys/net/netfilter/${k}`, v); } catch (e) { out(`cannot set ${k}: ${(e as Error).message}`); } };
  setSysctl('nf_conntrack_max', String(Math.max(Number(saved.nf_conntrack_max), 524288)));
  setSysctl('nf_conntrack_expect_max', String(Math.max(Number(saved.nf_conntrack_expect_max), 262144)));
  out(`conntrack limits for the run: nf_conntrack_max ${sysctl('nf_conntrack_max')}, nf_conntrack_expect_max ${sysctl('nf_conntrack_expect_max')} (restored to ${saved.nf_conntrack_max} / ${saved.nf_conntrack_expect_max} afterwards)`);
  return {
    restore() {
      setSysctl('nf_conntrack_expect_max', saved.nf_conntrack_expect_max);
      setSysctl('nf_conntrack_max', saved.nf_conntrack_max);
    },
  };
}

export async function routerBench(out: (s: string) => void, opts: RouterBenchOptions = {}): Promise<void> {
  const quick = !!opts.quick;
  const want = (p: string) => !opts.only || opts.only.includes(p);
  buildLoadgen();
  const seconds = quick ? 1 : 2;
  const warm = quick ? 0 : opts.warm ?? CPU_WARM_S;
  const cpu = cpus();
  out(`machine: ${cpu.length} x ${cpu[0]?.model ?? '?'} (${cpu.length} cores), ${(totalmem() / 2 ** 30).toFixed(1)} GB RAM; kernel ${release()}; node ${process.version}`);
  const limits = raiseConntrackLimits(out);

  const res: Record<SetupId, Partial<{ invite: Search; mix: Search; lat1k: Trial; lat5k: Trial; cps: { rate: number; log: string[] }; rtp: { pps: number; log: string[] }; cpu: Record<CpuSample['kind'], CpuSample>; growth: GrowthPoint[] }>> = { none: {}, kernel: {}, floor: {}, nodefloor: {}, alg1: {}, alg2: {} };
  let ips = CANDIDATE_IPS.slice(0, 8);
  let ipNote = '';
  let mem: { rows: [string, string][]; log: string[] } | undefined;
  const details: string[] = [];
  const order = (['alg2', 'alg1', 'nodefloor', 'floor', 'kernel', 'none'] as SetupId[]).filter((id) => !opts.setups || opts.setups.includes(id));
  try {
    for (const id of order) {
      const s = await Setup.create(id, `bn${id[0]}${id.slice(-1)}`);
      try {
        if (id === 'alg2') {
          const b = await balancedIps(s, 4);
          ips = b.ips;
          ipNote = b.note;
        }
        const start = s.isAlg ? 1000 : 8000;
        const cap = 64000;
        if (want('rate')) {
          res[id].invite = await zeroLossRate(s, 'invite', start, cap, seconds, quick ? 1.5 : 1.15, ips, warm);
          details.push(`${LABEL[id]}, INVITE zero-loss search: ${res[id].invite!.log.join('; ')}`);
          res[id].mix = await zeroLossRate(s, 'mix', start, cap, seconds, quick ? 1.5 : 1.15, ips, warm);
          details.push(`${LABEL[id]}, mix zero-loss search: ${res[id].mix!.log.join('; ')}`);
        }
        if (want('cpu')) {
          const cpu = {} as Record<CpuSample['kind'], CpuSample>;
          for (const kind of ['invite', 'register', 'mix'] as const) {
            const m = await cpuMedian(s, kind, CPU_RATE, quick ? 2 : 6, ips, quick ? 1 : 3, warm);
            cpu[kind] = m;
            details.push(`${LABEL[id]}, CPU per message at ${CPU_RATE}/s: ${m.log}`);
          }
          res[id].cpu = cpu;
        }
        if (want('latency')) {
          res[id].lat1k = await trial(s, 'invite', 1000, quick ? 1 : 3, ips, 1, 1, warm);
          res[id].lat5k = await trial(s, 'invite', 5000, quick ? 1 : 3, ips, 1, 1, warm);
          details.push(`${LABEL[id]}, latency: 1k/s ${res[id].lat1k!.why} ${JSON.stringify(res[id].lat1k!.latency)}; 5k/s ${res[id].lat5k!.why} ${JSON.stringify(res[id].lat5k!.latency)}`);
        }
        if (want('cps') && !isFloor(id)) {
          const two = [ips[0]!, ips[1]!];
          res[id].cps = await cpsSearch(s, quick ? 2 : 4, two, quick);
          details.push(`${LABEL[id]}, SIPp calls/s: ${res[id].cps!.log.join('; ')}`);
        }
        if (want('growth') && (id === 'alg1' || id === 'kernel')) {
          const g = await growth(s, ips, quick);
          res[id].growth = g.points;
          details.push(`${LABEL[id]}, growth: ${g.log.join('; ')}`);
        }
        if (id === 'alg2' && want('memory')) {
          const r = res.alg2.invite?.rate;
          mem = await memory(s, Math.max(500, Math.min(2000, r ? Math.round(r * 0.5) : 2000)));
          details.push(`sip-alg memory: ${mem.log.join('; ')}`);
        }
      } catch (e) {
        details.push(`${LABEL[id]}: error: ${(e as Error).stack ?? (e as Error).message}`);
      } finally {
        await s.close();
      }
    }
    if (want('rtp')) {
      const withMedia = SETUPS.filter((id) => !isFloor(id));
      const r = await rtpAll(withMedia, quick ? 1 : 2, quick ? 1 : 5, details);
      for (const id of withMedia) if (r[id] !== undefined) res[id].rtp = { pps: r[id]!, log: [] };
    }
  } finally {
    limits.restore();
  }

  // ---- the table ----
  const rate = (s: Search | undefined) => (s ? `${s.rate ? s.rate : '< 100'}${s.capped ? '+' : ''}` : 'n/a');
  const lat = (t: Trial | undefined, p: 'p50_us' | 'p99_us') => (t?.latency && t.ok ? fmt(t.latency[p]) : t?.latency ? `${fmt(t.latency[p])} (${t.why})` : 'n/a');
  const added = (t: Trial | undefined, base: Trial | undefined, p: 'p50_us' | 'p99_us') => (t?.latency && base?.latency ? fmt(t.latency[p] - base.latency[p]) : 'n/a');
  const k = res.kernel;
  const rows: string[][] = [['measure', ...SETUPS.map((s) => LABEL[s]), 'sip-alg / kernel (1w, 2w)']];
  const num = (s: Search | undefined) => s?.rate;
  rows.push(['zero-loss rate, INVITE with SDP (msg/s)', ...SETUPS.map((s) => rate(res[s].invite)), `${ratio(num(res.alg1.invite), num(k.invite))}, ${ratio(num(res.alg2.invite), num(k.invite))}`]);
  rows.push(['zero-loss rate, mix REGISTER/INVITE/18x/200/ACK/BYE (msg/s)', ...SETUPS.map((s) => rate(res[s].mix)), `${ratio(num(res.alg1.mix), num(k.mix))}, ${ratio(num(res.alg2.mix), num(k.mix))}`]);
  for (const [key, label] of [['lat1k', '1k'], ['lat5k', '5k']] as const) {
    rows.push([`one-way latency at ${label} INVITE/s, p50 / p99 (µs)`, ...SETUPS.map((s) => `${lat(res[s][key], 'p50_us')} / ${lat(res[s][key], 'p99_us')}`), `${ratio(res.alg1[key]?.latency?.p99_us, k[key]?.latency?.p99_us)}, ${ratio(res.alg2[key]?.latency?.p99_us, k[key]?.latency?.p99_us)} (p99)`]);
    rows.push([`added over plain NAT at ${label}/s, p50 / p99 (µs)`, '0 / 0', ...(['kernel', 'floor', 'nodefloor', 'alg1', 'alg2'] as const).map((s) => `${added(res[s][key], res.none[key], 'p50_us')} / ${added(res[s][key], res.none[key], 'p99_us')}`), '']);
  }
  rows.push(['SIPp calls/s, zero failed calls', ...SETUPS.map((s) => (res[s].cps ? String(res[s].cps!.rate || '< 250') : 'n/a')), `${ratio(res.alg1.cps?.rate, k.cps?.rate)}, ${ratio(res.alg2.cps?.rate, k.cps?.rate)}`]);
  rows.push(['RTP packets/s forwarded during 4 calls (full duplex)', ...SETUPS.map((s) => fmt(res[s].rtp?.pps)), `${ratio(res.alg1.rtp?.pps, k.rtp?.pps)}, ${ratio(res.alg2.rtp?.pps, k.rtp?.pps)}`]);
  out('');
  out('| ' + rows[0]!.join(' | ') + ' |');
  out('|' + rows[0]!.map(() => '---').join('|') + '|');
  for (const r of rows.slice(1)) out('| ' + r.join(' | ') + ' |');
  out('');
  out('"+": the search reached the load generator\'s limit (the router may go higher). Zero loss = every message arrived, translated by the ALG (untranslated = lost), and p99 one-way latency under 50 ms (no growing queue). Trials of ' + seconds + ' s from a fresh state (conntrack flushed, new daemon' + (warm ? `; sip-alg's settled by ${warm} s of ${CPU_RATE} msg/s of the same kind first, then its tables emptied` : '') + ').');
  if (ipNote) out(`Load: ${ipNote}.`);
  /** CPU a set-up adds per message of `kind` over plain NAT: its senders and process minus plain NAT's */
  const cpuAdded = (id: SetupId, kind: CpuSample['kind']) => {
    const x = res[id].cpu?.[kind], b = res.none.cpu?.[kind];
    return x && b ? x.senders + x.daemon - b.senders - b.daemon : undefined;
  };
  if (SETUPS.some((id) => res[id].cpu)) {
    out('');
    out(`CPU per message at ${CPU_RATE} msg/s (issue 12), median of ${quick ? 1 : 3} runs of ${quick ? 2 : 6} s${warm ? `, sip-alg's each after ${warm} s of the same load and the daemon's tables emptied (standby, conntrack -F)` : ''}: the load generator's sender and receiver (getrusage: the router's forwarding, NAT and the kernel helper run in softirq inside their sendto and are charged to them) and the sip-alg daemon (schedstat of its threads, its syscalls' kernel work included). Added = the sum minus plain NAT's for the same traffic.`);
    out('');
    const kinds: [CpuSample['kind'], string][] = [['invite', 'INVITE with SDP (LAN→WAN; sip-alg: a dialog, anchor + 2 pinholes)'], ['register', 'REGISTER (LAN→WAN)'], ['mix', 'call mix: REGISTER/200, INVITE/180/200 with SDP, ACK, BYE/200, per message']];
    out('| message | ' + SETUPS.map((id) => `${LABEL[id]}: senders`).join(' | ') + ' | C floor / node floor / sip-alg daemon 1w / 2w (process µs/msg) | added µs/msg: kernel helper | added: C floor / node floor | added: sip-alg 1w / 2w | sip-alg / kernel (1w, 2w) | sip-alg 1w / C floor, / node floor |');
    out('|---|' + SETUPS.map(() => '---').join('|') + '|---|---|---|---|---|---|');
    for (const [kind, label] of kinds) {
      const c = (id: SetupId) => res[id].cpu?.[kind];
      const add = (id: SetupId) => cpuAdded(id, kind);
      out(`| ${label} | ${SETUPS.map((id) => fmt(c(id)?.senders)).join(' | ')} | ${fmt(c('floor')?.daemon)} / ${fmt(c('nodefloor')?.daemon)} / ${fmt(c('alg1')?.daemon)} / ${fmt(c('alg2')?.daemon)} | ${fmt(add('kernel'))} | ${fmt(add('floor'))} / ${fmt(add('nodefloor'))} | ${fmt(add('alg1'))} / ${fmt(add('alg2'))} | ${ratio(add('alg1'), add('kernel'))}, ${ratio(add('alg2'), add('kernel'))} | ${ratio(add('alg1'), add('floor'))}, ${ratio(add('alg1'), add('nodefloor'))} |`);
    }
    out('');
    out('C floor: bench/floor.c on the same rules and queue, doing per message only the kernel work sip-alg must do (the queue round trip, an INVITE\'s or answer\'s anchor and 2 pinholes in one ctnetlink batch, the verdict with its payload) and a same-length address translation, with no dialog or registration state and no deletes: what any userspace ALG on this kernel pays at least. Node floor: the same work in TypeScript with the project\'s queue binding and Ctnetlink (bench/floor-node.ts): what node adds to it, the least an ALG built as sip-alg is pays.');
    const pi = cpuAdded('alg1', 'invite'), pm = cpuAdded('alg1', 'mix');
    if (pi !== undefined && pm !== undefined) {
      out('');
      out(`On paper, from the 1-worker figures (one worker per core, each core doing only its worker's share): a core handles ~${Math.round(1e6 / pi)} INVITE/s or ~${Math.round(1e6 / pm)} mix messages/s; 8 cores ~${Math.round(8e6 / pi)} INVITE/s (${Math.round(8e6 / pm)} mix msg/s), 16 cores ~${Math.round(16e6 / pi)} INVITE/s (${Math.round(16e6 / pm)} mix msg/s), as nothing serialises the workers (thread-scaling table of npm run bench).`);
    }
  }
  if (res.alg1.growth || res.kernel.growth) {
    out('');
    out('CPU per call set-up (INVITE with SDP, 180, 200 with SDP) and the INVITEs\' one-way latency against the number of live calls (3 s windows at 1500 INVITE/s; calls stay up): sip-alg 1 worker daemon CPU, and the load generator\'s UAC (whose sends carry the router\'s softirq work, the kernel helper\'s included).');
    out('');
    out('| live calls at the window\'s start | kernel expectations | sip-alg daemon µs per set-up | sip-alg UAC µs | sip-alg INVITE p50 / p99 µs | kernel helper: calls set up / expectations | kernel helper UAC µs | kernel helper p50 / p99 µs |');
    out('|---|---|---|---|---|---|---|---|');
    const a = res.alg1.growth ?? [], k2 = res.kernel.growth ?? [];
    for (let i = 0; i < Math.max(a.length, k2.length); i++) {
      const x = a[i], y = k2[i];
      out(`| ${x?.live ?? 'n/a'} | ${x?.exps ?? 'n/a'} | ${fmt(x?.daemon)} | ${fmt(x?.senders)} | ${fmt(x?.p50)} / ${fmt(x?.p99)} | ${y ? `${y.live} / ${y.exps}` : 'n/a'} | ${fmt(y?.senders)} | ${fmt(y?.p50)} / ${fmt(y?.p99)} |`);
    }
  }
  if (mem) {
    out('');
    out('| sip-alg daemon resident memory (VmRSS, 2 workers) | |');
    out('|---|---|');
    for (const [a, b] of mem.rows) out(`| ${a} | ${b} |`);
  }
  // ---- targets ----
  out('');
  out('Targets (reported, not asserted):');
  const best = (a: number | undefined, b: number | undefined) => Math.max(a ?? 0, b ?? 0);
  const tInv = best(num(res.alg1.invite), num(res.alg2.invite)), kInv = num(k.invite) ?? 0;
  const tMix = best(num(res.alg1.mix), num(res.alg2.mix)), kMix = num(k.mix) ?? 0;
  const verdict = (b: boolean | undefined) => (b === undefined ? 'NOT MEASURED' : b ? 'met' : 'NOT met');
  out(`- zero-loss rate >= 1/2 of the kernel helper's: INVITE ${tInv} vs ${kInv}${k.invite?.capped ? '+' : ''} (${ratio(tInv, kInv)}): ${verdict(res.kernel.invite && (res.alg2.invite || res.alg1.invite) ? tInv >= kInv / 2 : undefined)}; mix ${tMix} vs ${kMix}${k.mix?.capped ? '+' : ''} (${ratio(tMix, kMix)}): ${verdict(k.mix && (res.alg2.mix || res.alg1.mix) ? tMix >= kMix / 2 : undefined)}`);
  const add99 = (id: SetupId) => (res[id].lat5k?.latency && res.none.lat5k?.latency ? res[id].lat5k!.latency!.p99_us - res.none.lat5k!.latency!.p99_us : undefined);
  const a1 = add99('alg1'), a2 = add99('alg2');
  out(`- p99 added latency <= 250 µs at 5k msg/s: 1 worker ${fmt(a1)} µs${res.alg1.lat5k && !res.alg1.lat5k.ok ? ` (${res.alg1.lat5k.why})` : ''}, 2 workers ${fmt(a2)} µs${res.alg2.lat5k && !res.alg2.lat5k.ok ? ` (${res.alg2.lat5k.why})` : ''}: ${verdict(a1 === undefined && a2 === undefined ? undefined : Math.min(a1 ?? Infinity, a2 ?? Infinity) <= 250 && !!(res.alg2.lat5k?.ok || res.alg1.lat5k?.ok))}`);
  const cpuTargets: [CpuSample['kind'], string, number][] = [['invite', 'INVITE', 75], ['register', 'REGISTER', 35], ['mix', 'mix message', 45]];
  out(`- CPU added per message with 1 worker (issue 21: INVITE <= 75, REGISTER <= 35, mix <= 45 µs): ${cpuTargets.map(([k, l, t]) => `${l} ${fmt(cpuAdded('alg1', k))} (C floor ${fmt(cpuAdded('floor', k))}, node floor ${fmt(cpuAdded('nodefloor', k))}, kernel helper ${fmt(cpuAdded('kernel', k))}; target ${t})`).join(', ')}: ${verdict(res.alg1.cpu ? cpuTargets.every(([k, , t]) => (cpuAdded('alg1', k) ?? Infinity) <= t) : undefined)}`);
  const c = best(res.alg1.cps?.rate, res.alg2.cps?.rate);
  out(`- >= 1000 SIPp calls/s with zero failures: ${c} calls/s: ${verdict(res.alg1.cps || res.alg2.cps ? c >= 1000 : undefined)}`);
  const rr = res.alg2.rtp && res.none.rtp ? res.alg2.rtp.pps / res.none.rtp.pps : undefined;
  const rr1 = res.alg1.rtp && res.none.rtp ? res.alg1.rtp.pps / res.none.rtp.pps : undefined;
  out(`- RTP rate with the ALG >= 0.98 of without: 2 workers ${rr?.toFixed(3) ?? 'n/a'}, 1 worker ${rr1?.toFixed(3) ?? 'n/a'} of plain NAT: ${verdict(rr === undefined ? undefined : rr >= 0.98 && (rr1 ?? 1) >= 0.98)}`);
  if (mem) {
    // per dialog: what each dialog adds from 10k to 50k, and the whole growth from the idle daemon to
    // 50k; idle to 10k is reported too, but it carries the one-time growth of the workers' heaps under
    // load (young generation, compiled code), whatever the number of dialogs
    const m = /\+(\d+) B\/dialog/.exec(mem.rows[1]?.[1] ?? '');
    const m50 = /\+(\d+) B\/dialog;/.exec(mem.rows[2]?.[1] ?? '');
    const m2 = /10k→50k: (\d+) B\/dialog/.exec(mem.rows[2]?.[1] ?? '');
    out(`- <= 2 KB per dialog: ${m2 ? `${m2[1]} B/dialog from 10k to 50k` : 'n/a'}, ${m50 ? `${m50[1]} B/dialog from idle to 50k` : 'n/a'} (${m ? `${m[1]} B/dialog from idle to 10k, with the heaps' one-time growth under load` : 'idle to 10k n/a'}): ${verdict(m2 && m50 ? Number(m2[1]) <= 2048 && Number(m50[1]) <= 2048 : undefined)}`);
  } else out('- <= 2 KB per dialog: NOT MEASURED');
  out('');
  out('Details:');
  for (const d of details) out(`- ${d}`);
}

if (require.main === module) {
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
  const w = process.argv.find((a) => a.startsWith('--warm='))?.slice(7);
  const warm = w === undefined ? undefined : Number(w);
  const setups = process.argv.find((a) => a.startsWith('--setups='))?.slice(9).split(',') as SetupId[] | undefined;
  routerBench((s) => console.log(s), { quick: process.argv.includes('--quick'), only, warm, setups }).catch((e) => { console.error(e); process.exit(1); });
}
