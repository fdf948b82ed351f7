/**
 * A worker thread: owns one NFQUEUE and one ctnetlink socket, runs the processor on each packet
 * and sets the verdict. Flushes stats to the main thread every second.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { Ctnetlink } from '../conntrack/ctnetlink';
import { native, NF_ACCEPT, NF_DROP } from '../native/binding';
import { NfQueue } from '../native/queue';
import { PacketPipeline } from './pipeline';
import { heapSample, timed } from './stall';
import { BindingResolver } from '../nat/binding-resolver';
import { PortAllocator } from '../nat/port-allocator';
import { Processor } from '../alg/processor';
import { TcpAlg, type TcpResult } from '../tcp/tcp-alg';
import { isTcp } from '../packet/tcp';
import { anchorAddresses, anchorKey, DialogTable, isAnchorSource, SIGNALING_TIMEOUT_SEC } from '../dialog/dialog-table';
import { type Change, instanceKey, StateFile, type StateSource } from '../state/state-file';
import { IPPROTO_UDP, type Tuple } from '../conntrack/ctnetlink';
import { RegistrationTable } from '../registration/registration-table';
import { Protection } from '../policy/protection';
import { writeFileSync } from 'node:fs';
import { Reason } from '../errors';
import { WorkerStats } from '../metrics/worker-stats';
import { log, setLogContext, setLogLevel } from '../log';
import { tapMatches, viewPacket, type TapFilter, type TapRecord } from '../capture/tap';

import { signalingSources, type Config } from '../config/schema';

/** the flush watch's sentinel entry lives this long without its re-arm each second (a day) */
const SENTINEL_TIMEOUT_SEC = 86400;
/** sched(7) policies by config worker-scheduling (SCHED_OTHER 0, SCHED_BATCH 3) */
const SCHED_POLICY = { normal: 0, batch: 3 } as const;
/** dialogs one slice of the sweep visits (~1 µs each in this kind of machine, more when they end) */
const SWEEP_SLICE = 256;

/** One WAN link as it is now: its interface index (0: missing) and IPv4 address ('': none yet). */
export interface WanLink { name: string; ifindex: number; publicIp: string }

export interface WorkerInit {
  config: Config;
  queue: number;
  index: number;
  /** the WAN links (config wan), the primary first: SIP arriving on one is WAN→LAN, and a message carries the address of the link it leaves by */
  links: WanLink[];
  /** the WAN's IPv6 address LAN hosts are masqueraded to (NAT66); undefined: IPv6 SIP passes unchanged */
  publicIp6: string | undefined;
  ports: SharedArrayBuffer;
  dialogCount: SharedArrayBuffer;
}

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'stats'; stats: ReturnType<WorkerStats['flush']> }
  | { type: 'fatal'; message: string }
  | { type: 'reply'; id: number; data: unknown }
  | { type: 'tap'; id: number; record: TapRecord };

/** What the main thread sends a worker. */
export type ToWorker =
  | { type: 'close' }
  | { type: 'query'; id: number; what: 'calls' | 'registrations' | 'blocked' | 'counts' | 'takeover' | 'standby' }
  | { type: 'tap'; id: number; filter: TapFilter }
  | { type: 'untap'; id: number }
  | { type: 'config'; config: Config }
  | { type: 'wan'; links: WanLink[] };

/** The option objects of the worker's parts, from the config (start-up and reload). */
export function partOptions(c: Config) {
  return {
    processor: { maxMessageSize: c.maxMessageSize, unknownMethod: c.unknownMethodPolicy, ports: c.ports, malformedPolicy: c.malformedPolicy, thirdPartyMedia: c.thirdPartyMedia },
    dialogs: {
      retainOnHold: c.retainOnHold, directMedia: c.directMedia, graceMs: c.teardownGraceSeconds * 1000, idleMs: c.dialogIdleSeconds * 1000,
      provisionalMs: c.provisionalInviteExpirySeconds * 1000, maxCallMs: c.maxCallSeconds * 1000, mediaInactivityMs: c.callKeepaliveSeconds * 1000,
      maxIdleDialogs: c.maxIdleDialogs, maxDialogs: c.maxDialogs, maxDialogsPerSource: c.maxDialogsPerSource, allowLowMediaPorts: c.allowLowMediaPorts, node: c.nodeId, pinholeSource: c.pinholeSource,
    },
    protection: { inviteRate: c.inviteRatePerSource, registerRate: c.registerRatePerSource, failureThreshold: c.inviteFailureThreshold, failureWindowMs: 60000, blockMs: c.inviteBlockSeconds * 1000 },
    registrations: { marginSec: c.registrationMarginSeconds, refreshMs: 20000, inboundFrom: signalingSources(c.inboundSignalingFrom), node: c.nodeId },
    tcp: { ports: c.ports, tlsPorts: c.tlsPorts, maxMessageSize: c.maxMessageSize, holdMs: c.tcpHoldMs, maxConnections: c.tcpMaxConnections, idleMs: 300_000, incomplete: c.leakPolicy },
  };
}

function main(): void {
  const init = workerData as WorkerInit;
  const port = parentPort!;
  setLogLevel(init.config.logLevel);
  setLogContext(`worker=${init.index} queue=${init.queue}`);
  const stats = new WorkerStats();
  heapSample(init.index);
  // config worker-scheduling batch: SCHED_BATCH (sched(7)) for this thread alone (sched_setscheduler
  // with pid 0 acts on the calling thread); 'normal' leaves the policy the process started with (a
  // unit's CPUSchedulingPolicy=, chrt). A refusal is logged and the worker runs as it was.
  if (init.config.workerScheduling !== 'normal') {
    const schedErr = native().threadSched(SCHED_POLICY[init.config.workerScheduling], 0);
    if (schedErr) log('warn', 'worker scheduling policy not set: the worker runs as it started', { policy: init.config.workerScheduling, errno: schedErr });
  }
  const ct = new Ctnetlink();
  // the WAN links by interface index: a packet that arrived on one is WAN→LAN; one leaving by one
  // carries its address (the primary's when the link is not known: a message the kernel routes
  // elsewhere than a WAN link still gets a public address)
  let links = init.links;
  const byIndex = new Map<number, WanLink>();
  const indexLinks = () => {
    byIndex.clear();
    for (const l of links) if (l.ifindex && l.publicIp) byIndex.set(l.ifindex, l);
    if (links.length > 1) resolver.wanIps = new Set(links.map((l) => l.publicIp).filter(Boolean));
  };
  const primaryIp = () => (links.find((l) => l.ifindex && l.publicIp) ?? links[0]!).publicIp;
  // SIPALG_BINDING_CACHE_MS: how long a flow's binding is kept (default 1 s), for the lab (test/lab/conntrack-flush.test.ts)
  const resolver = new BindingResolver(ct, { publicIp: primaryIp(), publicIp6: init.publicIp6, firstPacket: init.config.firstPacket, cacheMs: Number(process.env.SIPALG_BINDING_CACHE_MS) || undefined });
  // each link's address and index follow DHCP/PPPoE (the main thread's watcher, 'wan' message)
  indexLinks();
  const ports = new PortAllocator(init.ports, init.index + 1, init.config.mediaPortMin, init.config.mediaPortMax, init.config.mediaLeaseSeconds * 1000);
  let c = init.config;
  const opts = partOptions(c);
  const proc = new Processor(resolver, ports, { ...opts.processor, ipv6: init.publicIp6 !== undefined });
  const dialogs = new DialogTable(ct, ports, init.index, opts.dialogs, stats, init.dialogCount);
  const protection = new Protection(opts.protection);
  const enableAcct = () => {
    if (c.callKeepaliveSeconds <= 0) return;
    // media inactivity is read from conntrack packet counters
    try { writeFileSync('/proc/sys/net/netfilter/nf_conntrack_acct', '1'); } catch (e) { log('warn', 'cannot enable nf_conntrack_acct; call-keepalive sees no counters', { err: e as Error }); }
  };
  enableAcct();
  const registrations = new RegistrationTable(ct, { ...opts.registrations, worker: init.index }, stats);
  // a request through a register pinhole is a new inbound flow: its binding is the registration's
  resolver.inboundHint = (ip, port) => registrations.bindingOf(ip, port);
  const taps = new Map<number, TapFilter>();
  // SIP over TCP: the rules send it to the first queue only, so this worker sees both directions
  const tcp = new TcpAlg({
    lookup: (t) => ct.get(t),
    setLiberal: (t) => ct.setTcpLiberal(t),
    message: (b, s, e, d, p, proto, now, bind) => proc.message(b, s, e, d, p, proto, now, bind),
  }, opts.tcp);
  const pipeline = new PacketPipeline({ proc, resolver, protection, dialogs, registrations, stats }, { leakPolicy: c.leakPolicy, inviteBlockSeconds: c.inviteBlockSeconds, debug: c.logLevel === 'debug' });

  // a previous run of this worker (kill -9, crash) left anchors: the state file says which calls own
  // them (adopted, with their pinholes); any other of this router's (node-id) is an orphan, and
  // deleting it deletes its pinholes. A router pair's peer's anchors (synced by conntrackd) are
  // never touched here: their source address names the peer
  const stateFile = c.stateDir !== 'off' ? new StateFile(c.stateDir, instanceKey(c.wan, init.queue)) : undefined;
  try {
    const [src4, mine4] = anchorAddresses(init.index, 4, c.nodeId), [src6, mine6] = anchorAddresses(init.index, 6, c.nodeId);
    const live = new Map<string, Tuple>(), marks = new Set<number>();
    for (const e of ct.dump()) {
      if ((e.orig.dst === mine4 || e.orig.dst === mine6) && isAnchorSource(e.orig.src)) {
        live.set(anchorKey(e.orig), e.orig);
        if (e.mark) marks.add(e.mark);
      }
    }
    let adopted = new Set<string>();
    if (stateFile) {
      const { state, error } = stateFile.load();
      if (error) log('warn', 'state file unreadable, starting without it', { path: stateFile.path, err: error });
      const now = Date.now();
      adopted = dialogs.adopt(state.dialogs, new Set(live.keys()), now, marks);
      registrations.adopt(state.registrations, now);
      if (state.dialogs.length || state.registrations.length) log('info', 'state restored', { dialogs: dialogs.size, anchors: adopted.size, registrations: registrations.size, savedSecAgo: Math.round((now - state.savedAt) / 1000) });
    }
    let removed = 0;
    for (const [k, t] of live) if (!adopted.has(k) && (t.src === src4 || t.src === src6) && ct.delete(t)) removed++;
    if (removed) log('info', 'removed anchors left by a previous run', { anchors: removed });
    stats.inc('h|orphans_removed', removed);
  } catch (e) {
    log('warn', 'start-up state recovery failed', { err: e as Error });
  }
  // the state file is written in slices between packets (StateFile.begin/step): the records changed
  // since the last save appended to its journal, now and then a whole snapshot; a clean stop writes it whole
  const source: StateSource = {
    snapshot: () => ({ dialogs: dialogs.export(), registrations: [...registrations.entries.values()] }),
    pending: () => dialogs.pendingChanges + registrations.pendingChanges,
    size: () => dialogs.size + registrations.size,
    takeChanges: () => {
      const out: Change[] = [];
      for (const [key, value] of dialogs.takeChanges()) out.push({ kind: 'd', key, value });
      for (const [key, value] of registrations.takeChanges()) out.push({ kind: 'r', key, value });
      return out;
    },
  };
  const persist = (force = false) => {
    if (!stateFile) return;
    try {
      if (force) stateFile.saveAll(Date.now(), source);
      else if (stateFile.begin(Date.now(), source)) setImmediate(slice);
    } catch (e) {
      log('warn', 'cannot save state', { path: stateFile.path, err: e as Error });
    }
  };
  const slice = timed('state file slice', () => {
    try {
      if (!stateFile!.step()) setImmediate(slice);
    } catch (e) {
      log('warn', 'cannot save state', { path: stateFile!.path, err: e as Error });
    }
  });

  let q: NfQueue | undefined;
  const NO_FIELDS: string[] = [];
  const tap = (before: Buffer, dir: 'in' | 'out', verdict: number, out: Buffer | undefined, reason: string, message: string, fields: string[]) => {
    const after = verdict === NF_DROP ? undefined : out ?? before;
    const vb = viewPacket(before);
    const va = out ? viewPacket(out) : undefined;
    const tsUs = Date.now() * 1000 + Number(process.hrtime.bigint() % 1000n);
    for (const [tid, f] of taps) {
      if (!tapMatches(f, vb, va)) continue;
      const record: TapRecord = { tsUs, worker: init.index, dir, before: new Uint8Array(before), after: after ? new Uint8Array(after) : null, verdict: verdict === NF_DROP ? 'drop' : 'accept', reason, message, fields, callId: vb.callId || va?.callId || '' };
      port.postMessage({ type: 'tap', id: tid, record } satisfies WorkerMessage);
    }
  };
  /**
   * The kernel refused a verdict (a rewritten packet it cannot take, a full socket): the packet is
   * accepted unchanged, unless that sends the phone's private address to the WAN (leak-policy)
   */
  const verdictFailed = (id: number, dir: string, orig: Buffer | undefined, err: unknown) => {
    const fallback = dir === 'out' && orig && pipeline.leaks(Reason.VERDICT_ERROR, orig) ? NF_DROP : NF_ACCEPT;
    stats.add(stats.counter('p', dir, fallback === NF_DROP ? 'drop' : 'accept', Reason.VERDICT_ERROR));
    log('warn', `verdict failed, packet ${fallback === NF_DROP ? 'dropped' : 'accepted unchanged'}`, { err: err as Error, id });
    try { q?.verdict(id, fallback); } catch { /* the queue is gone: the kernel bypasses */ }
  };
  const verdictOf = (id: number, dir: string, verdict: number, out: Buffer | undefined, orig?: Buffer, mark = -1) => {
    try {
      q!.verdict(id, verdict, out, mark);
    } catch (e) {
      verdictFailed(id, dir, orig, e);
    }
  };
  /** SIP over TCP: the messages framed so far, then the segments whose verdict is due. */
  const applyTcp = (r: TcpResult, now: number) => {
    for (const { dir, outcome: o } of r.messages) {
      pipeline.streamMessage(dir, o, now);
    }
    for (const x of r.releases) {
      stats.add(stats.counter('p', x.dir, x.verdict === NF_DROP ? 'drop' : 'accept', x.reason));
      if (taps.size) {
        try { tap(x.original, x.dir, x.verdict, x.packet, x.reason, '', NO_FIELDS); } catch (e) { log('warn', 'tap failed', { err: e as Error }); }
      }
      verdictOf(x.id, x.dir, x.verdict, x.packet);
    }
  };
  const takeover = (): number => {
    try {
      const entries = ct.dump();
      const n = dialogs.takeover(entries, ct.dumpExpectations());
      // registrations: one worker keeps them all alive (a ctnetlink update, whichever worker sends it)
      const r = init.index === 0 ? registrations.takeover(entries, primaryIp(), c.ports, SIGNALING_TIMEOUT_SEC, Date.now()) : 0;
      log('info', 'takeover: calls of the peer to adopt at their next SIP message', { anchors: n, registrations: r });
      return n;
    } catch (e) {
      log('warn', 'takeover failed', { err: e as Error });
      return 0;
    }
  };
  const standby = (): number => {
    const n = dialogs.standby();
    const r = registrations.standby();
    log('info', 'standby: the peer router owns the calls and registrations now; forgotten here, kernel entries left to it', { dialogs: n, registrations: r });
    persist(true);
    return n;
  };
  /**
   * Link `l`'s address changed from `old`: what this daemon made for the old address goes: the
   * dialogs' pinholes and media flows (they re-pin on the new address at their next SDP), the
   * registrations (the phone's next REGISTER leaves through a new binding), and every conntrack entry
   * SNATed to the old address, which MASQUERADE's own clean-up leaves alone when ctnetlink made it
   * (worker 0 does that for all).
   */
  const readdress = (old: string, l: WanLink) => {
    const calls = dialogs.readdress(old, l.publicIp);
    const regs = registrations.readdress(old);
    let flows = 0;
    if (init.index === 0) {
      try {
        for (const e of ct.dump(4)) if (e.reply.dst === old && e.orig.src !== old && ct.delete(e.orig)) flows++;
      } catch (err) { log('warn', 'conntrack clean-up of the old WAN address failed', { err: err as Error }); }
    }
    stats.inc('d|wan_readdressed', calls);
    log('info', 'WAN address changed: entries of the old address removed', { wan: l.name, old, new: l.publicIp, ifindex: l.ifindex, calls, registrations: regs, conntracks: flows });
  };
  /** The packets of one wake-up: each through the pipeline, their verdicts in one sendto (NfQueue.flush). */
  const ids = new Uint32Array(256);
  const freshMark = init.config.freshFlowMark >>> 0;
  const dirs: ('in' | 'out')[] = [];
  const onBatch = timed('batch', (count: number): void => {
    const queue = q!;
    // ctnetlink requests that rode an earlier batch's datagram and failed (their NLMSG_ERRORs; the
    // kernel's answers to failed verdicts come here too, with sequence numbers no request has)
    for (let k = 0, n = queue.failedRequests; k < n; k++) ct.settle(queue.failedSeq(k), queue.failedErrno(k));
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const id = queue.id(i);
      const view = queue.payload(i);
      const inLink = byIndex.get(queue.indev(i));
      const dir = inLink ? 'in' : 'out';
      ids[i] = id;
      dirs[i] = dir;
      resolver.linkIp = (inLink ?? byIndex.get(queue.outdev(i)))?.publicIp;
      // the rules marked a packet whose conntrack entry is not in the table yet (fresh-flow-mark):
      // its binding comes from the kernel, and the mark goes again in the verdict
      const mark = queue.mark(i);
      const fresh = (mark & freshMark) !== 0;
      resolver.fresh = fresh;
      if (isTcp(view)) {
        // the TCP layer may hold a segment past this batch: it gets its own copy
        const payload = Buffer.from(view);
        try {
          applyTcp(tcp.segment(id, payload, dir, Date.now()), Date.now());
        } catch (e) {
          stats.add(stats.counter('p', dir, 'accept', Reason.INTERNAL_ERROR));
          log('error', 'internal error in TCP, segment accepted unchanged', { err: e as Error, stack: (e as Error).stack?.split('\n')[1]?.trim() });
          verdictOf(id, dir, NF_ACCEPT, undefined);
        }
      } else {
        const d = pipeline.datagram(view, dir, Date.now());
        if (taps.size) {
          try { tap(view, dir, d.verdict, d.out, d.reason, d.message, d.fields); } catch (e) { log('warn', 'tap failed', { err: e as Error }); }
        }
        verdictOf(id, dir, d.verdict, d.out, view, fresh ? (mark & ~freshMark) >>> 0 : -1);
      }
      stats.observe((performance.now() - t0) / 1e3);
    }
    const failed = queue.flush();
    if (!failed) return;
    // the batch's datagram and then the verdict alone could not be sent: decide again, the packet's bytes are still here
    for (const id of failed) {
      const i = ids.subarray(0, count).indexOf(id);
      verdictFailed(id, i >= 0 ? dirs[i]! : 'in', i >= 0 ? queue.payload(i) : undefined, 'sendto failed');
    }
  });
  try {
    // queue full while bound: leak-policy drop = the kernel drops (counted in queue_dropped, the
    // sender retransmits); pass = NFQA_CFG_F_FAIL_OPEN, the kernel accepts it unrewritten
    q = new NfQueue(init.queue, { failOpen: init.config.leakPolicy === 'pass', maxLen: init.config.queueMaxlen }, onBatch);
    // ctnetlink requests that need no answer before the packet goes on (a registration's flow timeout,
    // a released call's deletions) ride the verdicts' datagram
    const queue = q;
    ct.attachRider({ request: (m) => queue.request(m), flush: () => queue.sendNow() });
  } catch (e) {
    port.postMessage({ type: 'fatal', message: (e as Error).message } satisfies WorkerMessage);
    return;
  }
  // segments held for the rest of their message are released when it times out
  const tcpTimer = setInterval(timed('tcp sweep', () => {
    if (!tcp.size) return;
    try { applyTcp(tcp.sweep(Date.now()), Date.now()); } catch (e) { log('warn', 'tcp sweep failed', { err: e as Error }); }
  }), 100);
  /**
   * Work done a slice at a time between packets: `step` runs (setImmediate) while it says more waits;
   * the function returned starts a run unless one is going.
   */
  const slices = (name: string, failure: string, step: () => boolean) => {
    let running = false;
    const run = timed(name, () => {
      let more = false;
      try {
        more = step();
      } catch (e) {
        log('warn', failure, { err: e as Error });
      }
      if (more && q && !q.closed) setImmediate(run);
      else running = false;
    });
    return () => {
      if (running) return;
      running = true;
      setImmediate(run);
    };
  };
  // the pinhole checks the sweep found due, a few dialogs at a time
  const startPinChecks = slices('pinhole checks slice', 'pinhole check failed', () => dialogs.checkPinholesSlice(Date.now()));
  // the dialogs are swept in slices: a tenth of the table (at least 500) every 100 ms, so a round
  // takes about a second whatever the size and no tick stalls the packets behind it for long; the
  // media port leases (media-lease-seconds, 10 s at least, 2 h by default) a hundredth (at least
  // 100): a round in about 10 s, a lease freed up to that late
  // (each tick's share walked SWEEP_SLICE dialogs at a time between packets: at 40k calls a tick's
  // 4000 in one go held the packets for up to 4.4 ms)
  let sweepLeft = 0;
  const startSweep = slices('dialog sweep slice', 'dialog sweep failed', () => {
    const n = Math.min(SWEEP_SLICE, sweepLeft);
    sweepLeft -= n;
    // a round that ended ends the tick's share too (a small table is not walked twice a tick)
    if (dialogs.sweep(Date.now(), n)) sweepLeft = 0;
    // what this slice found due, and what earlier ones left for lack of check tokens
    if (dialogs.pinChecksPending) startPinChecks();
    return sweepLeft > 0;
  });
  const sweepTimer = setInterval(timed('dialog sweep', () => {
    try {
      // a tick's share replaces what the last one left undone (a sweep that lags does not pile up)
      sweepLeft = Math.max(500, Math.ceil(dialogs.size / 10));
      startSweep();
      ports.sweep(Date.now(), Math.max(100, Math.ceil(ports.active / 100)));
    } catch (e) {
      log('warn', 'dialog sweep failed', { err: e as Error });
    }
  }), 100);
  // after a conntrack flush, the calls' pinholes and media flows made again, a few calls at a time
  const startRepairs = slices('flush repair slice', 'flush repair failed', () => dialogs.repairSlice(Date.now()));
  // A flush of the kernel's table (`conntrack -F`, a firewall script) takes every call's anchor,
  // pinholes and media flows with it and sends nothing to the daemon: an entry of this worker's own
  // that carries no traffic (a sentinel, re-armed each second) is gone after one
  const sentinel: Tuple = { src: `127.3.${c.nodeId & 255}.${(init.index & 255) + 1}`, sport: 9, dst: `127.3.${c.nodeId & 255}.${(init.index & 255) + 1}`, dport: 9, proto: IPPROTO_UDP };
  let sentinelMade = false;
  const flushWatch = timed('1 s timer: flush watch', () => {
    // there (this daemon's, or a restarted one's predecessor's): re-armed
    if (ct.setTimeout(sentinel, SENTINEL_TIMEOUT_SEC)) {
      sentinelMade = true;
      return;
    }
    ct.createAnchor(sentinel, SENTINEL_TIMEOUT_SEC);
    // the first one of this daemon: nothing was flushed
    if (!sentinelMade) {
      sentinelMade = true;
      return;
    }
    const calls = dialogs.afterFlush();
    stats.inc('d|conntrack_flushed');
    log('warn', 'the kernel\'s conntrack table was flushed: the calls\' pinholes and media flows are made again', { calls });
    if (calls) startRepairs();
  });
  // each step timed on its own too (SIPALG_STALL_MS): which one holds the thread
  const protectionSweep = timed('1 s timer: protection sweep', () => protection.sweep(Date.now()));
  const registrationSweep = timed('1 s timer: registration sweep', () => registrations.sweep(Date.now()));
  const persistStep = timed('1 s timer: state file', () => persist());
  const statsStep = timed('1 s timer: stats', () => {
    port.postMessage({ type: 'stats', stats: stats.flush(ports.active, dialogs.size, registrations.size, dialogs.pinholes) } satisfies WorkerMessage);
  });
  const timer = setInterval(timed('1 s timer', () => {
    protectionSweep();
    try {
      registrationSweep();
    } catch (e) {
      log('warn', 'registration sweep failed', { err: e as Error });
    }
    persistStep();
    statsStep();
    try {
      flushWatch();
    } catch (e) {
      log('warn', 'flush watch failed', { err: e as Error });
    }
  }), 1000);
  port.on('message', (m: ToWorker) => {
    if (m.type === 'query') {
      const now = Date.now();
      const data = m.what === 'calls' ? dialogs.snapshot(now)
        : m.what === 'registrations' ? registrations.snapshot(now)
          : m.what === 'counts' ? [{ dialogs: dialogs.size, registrations: registrations.size, pinholes: dialogs.pinholes }]
            // router pair: this router became master; the peer's calls are adopted at their next SIP message
            : m.what === 'takeover' ? [{ waiting: takeover() }]
            : m.what === 'standby' ? [{ forgotten: standby() }]
            : protection.blockedSources(now);
      port.postMessage({ type: 'reply', id: m.id, data } satisfies WorkerMessage);
      return;
    }
    if (m.type === 'tap') { taps.set(m.id, m.filter); return; }
    if (m.type === 'untap') { taps.delete(m.id); return; }
    if (m.type === 'config') {
      // SIGHUP: timers, limits and policies change in place; dialogs, pinholes and bindings stay
      c = m.config;
      const n = partOptions(c);
      proc.setOptions({ ...n.processor, ipv6: init.publicIp6 !== undefined });
      dialogs.setOptions(n.dialogs);
      protection.setOptions(n.protection);
      registrations.setOptions({ ...n.registrations, worker: init.index });
      tcp.setOptions(n.tcp);
      setLogLevel(c.logLevel);
      pipeline.policy = { leakPolicy: c.leakPolicy, inviteBlockSeconds: c.inviteBlockSeconds, debug: c.logLevel === 'debug' };
      enableAcct();
      log('info', 'config reloaded');
      return;
    }
    if (m.type === 'wan') {
      const was = links;
      links = m.links;
      indexLinks();
      for (const [i, l] of links.entries()) {
        const old = was[i]?.publicIp ?? '';
        if (!old || l.publicIp === old) continue;
        readdress(old, l);
      }
      resolver.setPublicIp(primaryIp());
      return;
    }
    if (m.type !== 'close') return;
    clearInterval(timer);
    clearInterval(sweepTimer);
    clearInterval(tcpTimer);
    try { applyTcp(tcp.releaseAll(), Date.now()); } catch { /* best effort at shutdown */ }
    q?.close();
    try { dialogs.closeAll(); } catch { /* best effort at shutdown */ }
    try { registrations.closeAll(); } catch { /* best effort at shutdown */ }
    persist(true); // a clean stop leaves nothing to adopt
    stateFile?.close();
    ports.releaseAll();
    ct.close();
    port.postMessage({ type: 'stats', stats: stats.flush(0, 0, 0, 0) } satisfies WorkerMessage);
    port.close();
  });
  log('info', 'bound to queue', { publicIp: links.map((l) => l.publicIp || '-').join(',') });
  port.postMessage({ type: 'ready' } satisfies WorkerMessage);
}

main();
