/**
 * A worker thread: owns one NFQUEUE and one ctnetlink socket, runs the processor on each packet
 * and sets the verdict. Flushes stats to the main thread every second.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Ctnetlink } from '../conntrack/ctnetlink';
import { NF_ACCEPT, NF_DROP, native } from '../native/binding';
import { BindingResolver } from '../nat/binding-resolver';
import { PortAllocator } from '../nat/port-allocator';
import { Processor } from '../alg/processor';
import { DialogTable } from '../dialog/dialog-table';
import { RegistrationTable } from '../registration/registration-table';
import { Protection } from '../policy/protection';
import { writeFileSync } from 'node:fs';
import { Reason } from '../errors';
import { WorkerStats } from '../metrics/worker-stats';
import { log, setLogContext, setLogLevel } from '../log';
import type { Config } from '../config/schema';

export interface WorkerInit {
  config: Config;
  queue: number;
  index: number;
  publicIp: string;
  wanIfindex: number;
  ports: SharedArrayBuffer;
  dialogCount: SharedArrayBuffer;
}

export type WorkerMessage = { type: 'ready' } | { type: 'stats'; stats: ReturnType<WorkerStats['flush']> } | { type: 'fatal'; message: string };

function main(): void {
  const init = workerData as WorkerInit;
  const port = parentPort!;
  setLogLevel(init.config.logLevel);
  setLogContext(`worker=${init.index} queue=${init.queue}`);
  const stats = new WorkerStats();
  const ct = new Ctnetlink();
  const resolver = new BindingResolver(ct, { publicIp: init.publicIp, firstPacket: init.config.firstPacket });
  const ports = new PortAllocator(init.ports, init.index + 1, init.config.mediaPortMin, init.config.mediaPortMax, init.config.mediaLeaseSeconds * 1000);
  const proc = new Processor(resolver, ports, { ...init.config, unknownMethod: init.config.unknownMethodPolicy });
  const c = init.config;
  const dialogs = new DialogTable(ct, ports, init.index, {
    retainOnHold: c.retainOnHold, directMedia: c.directMedia, graceMs: c.teardownGraceSeconds * 1000, idleMs: c.dialogIdleSeconds * 1000,
    provisionalMs: c.provisionalInviteExpirySeconds * 1000, maxCallMs: c.maxCallSeconds * 1000, mediaInactivityMs: c.callKeepaliveSeconds * 1000,
    maxIdleDialogs: c.maxIdleDialogs, maxDialogs: c.maxDialogs, maxDialogsPerSource: c.maxDialogsPerSource, allowLowMediaPorts: c.allowLowMediaPorts,
  }, stats, init.dialogCount);
  const protection = new Protection({ inviteRate: c.inviteRatePerSource, registerRate: c.registerRatePerSource, failureThreshold: c.inviteFailureThreshold, failureWindowMs: 60000, blockMs: c.inviteBlockSeconds * 1000 });
  if (c.callKeepaliveSeconds > 0) {
    // media inactivity is read from conntrack packet counters
    try { writeFileSync('/proc/sys/net/netfilter/nf_conntrack_acct', '1'); } catch (e) { log('warn', 'cannot enable nf_conntrack_acct; call-keepalive sees no counters', { err: e as Error }); }
  }
  const registrations = new RegistrationTable(ct, { marginSec: init.config.registrationMarginSeconds, refreshMs: 20000 }, stats);
  const nb = native();
  const debug = init.config.logLevel === 'debug';

  // a previous run of this worker (kill -9, crash) may have left anchors: deleting one deletes its pinholes
  try {
    const mine = `127.1.${init.index & 255}.1`;
    let removed = 0;
    for (const c of ct.dump()) if (c.orig.src === '127.0.0.1' && c.orig.dst === mine && ct.delete(c.orig)) removed++;
    if (removed) log('info', 'removed anchors left by a previous run', { anchors: removed });
    stats.inc('h|orphans_removed', removed);
  } catch (e) {
    log('warn', 'start-up cleanup failed', { err: e as Error });
  }

  let q: object | undefined;
  const onPacket = (id: number, payload: Buffer, indev: number, _outdev: number): void => {
    const t0 = process.hrtime.bigint();
    const dir = indev === init.wanIfindex ? 'in' : 'out';
    let verdict = NF_ACCEPT;
    let out: Buffer | undefined;
    try {
      const o = proc.process(payload, dir, Date.now());
      out = o.packet;
      if (!o.accept) verdict = NF_DROP;
      let reason: Reason = o.reason;
      const now = Date.now();
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
      stats.inc(`p|${dir}|${verdict === NF_DROP ? 'drop' : 'accept'}|${reason}`);
      if (o.message) stats.inc(`m|${dir}|${o.message}`);
      if (out) for (const f of o.fields) stats.inc(`r|${dir}|${f}`);
      if (o.bindingSource && out) stats.inc(`b|${o.bindingSource}`);
      if (debug) log('debug', 'packet', { dir, id, message: o.message, reason: o.reason, fields: o.fields.join(',') || undefined, binding: o.bindingSource, len: payload.length, newLen: out?.length });
    } catch (e) {
      // a helper must not break traffic: accept unchanged (conntrack-tools cthelper habit)
      stats.inc(`p|${dir}|accept|${Reason.INTERNAL_ERROR}`);
      log('error', 'internal error, packet accepted unchanged', { err: e as Error, stack: (e as Error).stack?.split('\n')[1]?.trim() });
    }
    try {
      nb.queueVerdict(q!, id, verdict, out ?? null);
    } catch (e) {
      // the kernel refused the verdict (e.g. a rewritten packet it cannot take): accept unchanged
      stats.inc(`p|${dir}|accept|${Reason.VERDICT_ERROR}`);
      log('warn', 'verdict failed, packet accepted unchanged', { err: e as Error });
      try { nb.queueVerdict(q!, id, NF_ACCEPT, null); } catch { /* the queue is gone: the kernel bypasses */ }
    }
    stats.observe(Number(process.hrtime.bigint() - t0) / 1e9);
  };
  try {
    q = nb.queueOpen(init.queue, init.config.failClosed ? 0 : 1, 4096, 0xffff, onPacket);
  } catch (e) {
    port.postMessage({ type: 'fatal', message: `cannot bind NFQUEUE ${init.queue}: ${(e as Error).message}` } satisfies WorkerMessage);
    return;
  }
  const timer = setInterval(() => {
    try {
      dialogs.sweep(Date.now());
    } catch (e) {
      log('warn', 'dialog sweep failed', { err: e as Error });
    }
    protection.sweep(Date.now());
    try {
      registrations.sweep(Date.now());
    } catch (e) {
      log('warn', 'registration sweep failed', { err: e as Error });
    }
    ports.sweep(Date.now());
    port.postMessage({ type: 'stats', stats: stats.flush(ports.active, dialogs.size, registrations.size) } satisfies WorkerMessage);
  }, 1000);
  port.on('message', (m: { type: string }) => {
    if (m.type !== 'close') return;
    clearInterval(timer);
    if (q) nb.queueClose(q);
    q = undefined;
    try { dialogs.closeAll(); } catch { /* best effort at shutdown */ }
    ports.releaseAll();
    ct.close();
    port.postMessage({ type: 'stats', stats: stats.flush(0, 0, 0) } satisfies WorkerMessage);
    port.close();
  });
  log('info', 'bound to queue', { publicIp: init.publicIp });
  port.postMessage({ type: 'ready' } satisfies WorkerMessage);
}

main();
