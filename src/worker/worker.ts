/**
 * A worker thread: owns one NFQUEUE and one ctnetlink socket, runs the processor on each packet
 * and sets the verdict. Flushes stats to the main thread every second.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Ctnetlink } from '../conntrack/ctnetlink';
import { NF_ACCEPT, NF_DROP, native } from '../native/binding';
import { BindingResolver } from '../nat/binding-resolver';
import { PortAllocator } from '../nat/port-allocator';
import { Processor, type Outcome } from '../alg/processor';
import { TcpAlg, type TcpResult } from '../tcp/tcp-alg';
import { isTcp } from '../packet/tcp';
import { anchorAddresses, anchorKey, DialogTable, isAnchorSource, SIGNALING_TIMEOUT_SEC } from '../dialog/dialog-table';
import { instanceKey, StateFile } from '../state/state-file';
import type { Tuple } from '../conntrack/ctnetlink';
import { RegistrationTable } from '../registration/registration-table';
import { Protection } from '../policy/protection';
import { carriesSourceAddress, mayLeak } from '../policy/leak-guard';
import { writeFileSync } from 'node:fs';
import { Reason } from '../errors';
import { WorkerStats } from '../metrics/worker-stats';
import { log, setLogContext, setLogLevel } from '../log';
import { tapMatches, viewPacket, type TapFilter, type TapRecord } from '../capture/tap';
import { signalingSources, type Config } from '../config/schema';

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
  const resolver = new BindingResolver(ct, { publicIp: primaryIp(), publicIp6: init.publicIp6, firstPacket: init.config.firstPacket });
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
  const nb = native();
  let debug = c.logLevel === 'debug';

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
  // the state file is written in slices between packets (StateFile.begin/step); a clean stop writes it whole
  const persist = (force = false) => {
    if (!stateFile) return;
    const now = Date.now();
    const key = `${dialogs.version}|${registrations.version}`;
    const build = () => ({ version: 1 as const, savedAt: now, dialogs: dialogs.export(), registrations: [...registrations.entries.values()] });
    try {
      if (force) stateFile.maybeSave(key, now, build, true);
      else if (stateFile.begin(key, now, build)) setImmediate(slice);
    } catch (e) {
      log('warn', 'cannot save state', { path: stateFile.path, err: e as Error });
    }
  };
  const slice = () => {
    try {
      if (!stateFile!.step()) setImmediate(slice);
    } catch (e) {
      log('warn', 'cannot save state', { path: stateFile!.path, err: e as Error });
    }
  };

  let q: object | undefined;
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
  const verdictOf = (id: number, dir: string, verdict: number, out: Buffer | undefined, orig?: Buffer) => {
    try {
      nb.queueVerdict(q!, id, verdict, out ?? null);
    } catch (e) {
      // the kernel refused the verdict (e.g. a rewritten packet it cannot take): accept unchanged,
      // unless that sends the phone's private address to the WAN (leak-policy)
      const fallback = dir === 'out' && orig && leakGuard(Reason.VERDICT_ERROR, orig) ? NF_DROP : NF_ACCEPT;
      stats.inc(`p|${dir}|${fallback === NF_DROP ? 'drop' : 'accept'}|${Reason.VERDICT_ERROR}`);
      log('warn', `verdict failed, packet ${fallback === NF_DROP ? 'dropped' : 'accepted unchanged'}`, { err: e as Error });
      try { nb.queueVerdict(q!, id, fallback, null); } catch { /* the queue is gone: the kernel bypasses */ }
    }
  };
  /** SIP over TCP: the messages framed so far, then the segments whose verdict is due. */
  const applyTcp = (r: TcpResult, now: number) => {
    for (const { dir, outcome: o } of r.messages) {
      try {
        // a message inside a stream cannot be dropped without breaking the stream: policy is
        // observed (pinholes, registrations) but not enforced by dropping; counted
        if (o.event && !dialogs.observe(o.event, now)) stats.inc('d|tcp_policy_not_enforced');
      } catch (e) {
        stats.inc('h|failed');
        log('warn', 'pinhole setup failed, message passed', { err: e as Error, callId: o.event?.info.callId });
      }
      if (o.registration) registrations.confirmed(o.registration.aor, o.registration.flow, o.registration.publicIp, o.registration.publicPort, o.registration.expires, now);
      countMessage(dir, o, o.reason === Reason.REWRITTEN);
    }
    for (const x of r.releases) {
      stats.inc(stats.key('p', x.dir, x.verdict === NF_DROP ? 'drop' : 'accept', x.reason));
      if (taps.size) {
        try { tap(x.original, x.dir, x.verdict, x.packet, x.reason, '', NO_FIELDS); } catch (e) { log('warn', 'tap failed', { err: e as Error }); }
      }
      verdictOf(x.id, x.dir, x.verdict, x.packet);
    }
  };
  const countMessage = (dir: string, o: Outcome, rewritten: boolean) => {
    if (o.message) stats.inc(stats.key('o', dir, o.message, rewritten ? 'rewritten' : 'unchanged'));
    if (rewritten) for (const f of o.fields) stats.inc(stats.key('r', dir, f));
    if (o.bindingSource && rewritten) stats.inc(`b|${o.bindingSource}`);
    if (o.refusedThirdParty) stats.inc('h|refused_third_party', o.refusedThirdParty);
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
  /** leak-policy=drop: a LAN→WAN packet about to pass unchanged with the sender's address in it */
  const leakGuard = (reason: Reason, payload: Buffer): boolean => {
    if (c.leakPolicy !== 'drop' || !mayLeak(reason) || !carriesSourceAddress(payload)) return false;
    stats.inc(`k|${reason}`);
    return true;
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
  const onPacket = (id: number, payload: Buffer, indev: number, outdev: number): void => {
    const t0 = process.hrtime.bigint();
    // what a tap reports of this packet (an internal error leaves the defaults)
    let reason: Reason = Reason.INTERNAL_ERROR, message = '', fields = NO_FIELDS;
    const inLink = byIndex.get(indev);
    const dir = inLink ? 'in' : 'out';
    const link = inLink ?? byIndex.get(outdev);
    resolver.linkIp = link?.publicIp;
    if (isTcp(payload)) {
      try {
        applyTcp(tcp.segment(id, payload, dir, Date.now()), Date.now());
      } catch (e) {
        stats.inc(`p|${dir}|accept|${Reason.INTERNAL_ERROR}`);
        log('error', 'internal error in TCP, segment accepted unchanged', { err: e as Error, stack: (e as Error).stack?.split('\n')[1]?.trim() });
        verdictOf(id, dir, NF_ACCEPT, undefined);
      }
      stats.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      return;
    }
    let verdict = NF_ACCEPT;
    let out: Buffer | undefined;
    try {
      const moved = resolver.stats.moved;
      const o = proc.process(payload, dir, Date.now());
      out = o.packet;
      if (!o.accept) verdict = NF_DROP;
      reason = o.reason;
      message = o.message;
      const now = Date.now();
      // its flow moved to another WAN link: the packet is still bound to the old entry in the kernel
      // and would leave with the old link's address; the retransmission uses the new entry
      if (resolver.stats.moved !== moved && dir === 'out') {
        verdict = NF_DROP;
        out = undefined;
        reason = Reason.LINK_MOVED;
        o.event = undefined;
        o.registration = undefined;
      }
      // per-source protection: new INVITEs and REGISTERs (rate, blocking), INVITE failures
      if (o.initial && o.event && o.src) {
        const v = protection.request(o.event.method, o.src, now);
        if (v !== 'ok') {
          verdict = NF_DROP;
          out = undefined;
          reason = v;
          o.event = undefined;
          o.registration = undefined;
        }
      }
      if (o.event && !o.event.isRequest && o.event.info.cseqMethod === 'INVITE' && o.event.status >= 300 && o.dst && protection.inviteFinal(o.event.status, o.dst, now)) {
        stats.inc('d|source_blocked');
        log('warn', 'source blocked after repeated INVITE failures', { source: o.dst, seconds: c.inviteBlockSeconds });
      }
      // pinholes are in place before the message that announces them leaves the router
      if (o.event) {
        try {
          if (!dialogs.observe(o.event, now)) {
            verdict = NF_DROP;
            out = undefined;
            reason = o.event.isRequest && o.event.method === 'INVITE' && !o.event.info.toTag ? Reason.DIALOG_LIMIT : Reason.DIRECT_MEDIA_BLOCKED;
          }
        } catch (e) {
          stats.inc('h|failed');
          log('warn', 'pinhole setup failed, message passed', { err: e as Error, callId: o.event.info.callId });
        }
      }
      if (o.registration && verdict === NF_ACCEPT) {
        const g = o.registration;
        registrations.confirmed(g.aor, g.flow, g.publicIp, g.publicPort, g.expires, now);
      }
      if (dir === 'out' && verdict === NF_ACCEPT && !out && leakGuard(reason, payload)) verdict = NF_DROP;
      stats.inc(stats.key('p', dir, verdict === NF_DROP ? 'drop' : 'accept', reason));
      if (verdict === NF_DROP) {
        if (o.message) stats.inc(stats.key('o', dir, o.message, 'dropped'));
        if (o.refusedThirdParty) stats.inc('h|refused_third_party', o.refusedThirdParty);
      } else countMessage(dir, o, out !== undefined);
      if (out) fields = o.fields;
      if (debug) log('debug', 'packet', { dir, id, message: o.message, reason: o.reason, fields: o.fields.join(',') || undefined, binding: o.bindingSource, len: payload.length, newLen: out?.length });
    } catch (e) {
      // a helper must not break traffic: accept unchanged (conntrack-tools cthelper habit), unless
      // that would send the phone's private address to the WAN (leak-policy)
      reason = Reason.INTERNAL_ERROR;
      out = undefined;
      verdict = dir === 'out' && leakGuard(reason, payload) ? NF_DROP : NF_ACCEPT;
      stats.inc(`p|${dir}|${verdict === NF_DROP ? 'drop' : 'accept'}|${reason}`);
      log('error', `internal error, packet ${verdict === NF_DROP ? 'dropped (it carries a private address)' : 'accepted unchanged'}`, { err: e as Error, stack: (e as Error).stack?.split('\n')[1]?.trim() });
    }
    if (taps.size) {
      try { tap(payload, dir, verdict, out, reason, message, fields); } catch (e) { log('warn', 'tap failed', { err: e as Error }); }
    }
    verdictOf(id, dir, verdict, out, payload);
    stats.observe(Number(process.hrtime.bigint() - t0) / 1e9);
  };
  try {
    // queue full while bound: leak-policy drop = the kernel drops (counted in queue_dropped, the
    // sender retransmits); pass = NFQA_CFG_F_FAIL_OPEN, the kernel accepts it unrewritten
    q = nb.queueOpen(init.queue, init.config.leakPolicy === 'pass' ? 1 : 0, init.config.queueMaxlen, 0xffff, onPacket);
  } catch (e) {
    port.postMessage({ type: 'fatal', message: `cannot bind NFQUEUE ${init.queue}: ${(e as Error).message}` } satisfies WorkerMessage);
    return;
  }
  // segments held for the rest of their message are released when it times out
  const tcpTimer = setInterval(() => {
    if (!tcp.size) return;
    try { applyTcp(tcp.sweep(Date.now()), Date.now()); } catch (e) { log('warn', 'tcp sweep failed', { err: e as Error }); }
  }, 100);
  // the dialogs are swept in slices: a tenth of the table (at least 500) every 100 ms, so a round
  // takes about a second whatever the size and no tick stalls the packets behind it for long
  const sweepTimer = setInterval(() => {
    try {
      dialogs.sweep(Date.now(), Math.max(500, Math.ceil(dialogs.size / 10)));
    } catch (e) {
      log('warn', 'dialog sweep failed', { err: e as Error });
    }
  }, 100);
  const timer = setInterval(() => {
    protection.sweep(Date.now());
    try {
      registrations.sweep(Date.now());
    } catch (e) {
      log('warn', 'registration sweep failed', { err: e as Error });
    }
    ports.sweep(Date.now());
    persist();
    port.postMessage({ type: 'stats', stats: stats.flush(ports.active, dialogs.size, registrations.size, dialogs.pinholes) } satisfies WorkerMessage);
  }, 1000);
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
      debug = c.logLevel === 'debug';
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
    if (q) nb.queueClose(q);
    q = undefined;
    try { dialogs.closeAll(); } catch { /* best effort at shutdown */ }
    try { registrations.closeAll(); } catch { /* best effort at shutdown */ }
    persist(true); // a clean stop leaves nothing to adopt
    ports.releaseAll();
    ct.close();
    port.postMessage({ type: 'stats', stats: stats.flush(0, 0, 0, 0) } satisfies WorkerMessage);
    port.close();
  });
  log('info', 'bound to queue', { publicIp: links.map((l) => l.publicIp || '-').join(',') });
  port.postMessage({ type: 'ready' } satisfies WorkerMessage);
}

main();
