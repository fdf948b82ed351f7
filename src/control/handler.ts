/**
 * What the daemon answers on its control socket: live calls, registrations, pinholes (read from
 * the kernel's expectation table and joined to the calls by their anchor), statistics, taps for
 * capture and trace, and config reload.
 */
import { Ctnetlink, type Expectation } from '../conntrack/ctnetlink';
import { type DialogSnapshot, isAnchorSource } from '../dialog/dialog-table';
import type { Metrics } from '../metrics/registry';
import { readQueueStats } from '../metrics/queue-stats';
import { readSourceLimited } from '../metrics/source-limit';
import type { WorkerPool } from '../worker/pool';
import type { TapFilter, TapRecord } from '../capture/tap';
import type { ControlRequest, Handler, StreamSink } from './server';

export interface PinholeRow {
  public: string;
  from: string;
  to: string;
  timeoutSec: number;
  callId: string;
  anchor: string;
}

const hostPort = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
const tupleKey = (t: Expectation['master']) => `${t.src}:${t.sport}>${t.dst}:${t.dport}`;
/** anchors (dialog-table.ts anchorAddresses): 127.0.<node>.1 -> 127.1.<w>.1, or ::1 / ::2:<node> -> ::1:<w> */
const isAnchor = (t: Expectation['master']) => isAnchorSource(t.src) && (/^127\.1\.\d+\.1$/.test(t.dst) || /^::1:[0-9a-f]{1,2}$/.test(t.dst));
const MAX_TAP_SECONDS = 3600;

export function pinholeRows(exps: Expectation[], calls: DialogSnapshot[]): PinholeRow[] {
  const byAnchor = new Map(calls.filter((c) => c.anchor).map((c) => [c.anchor, c.callId]));
  return exps
    .filter((e) => isAnchor(e.master))
    .map((e) => ({
      public: hostPort(e.tuple.dst, e.tuple.dport),
      from: e.tuple.src === '0.0.0.0' || e.tuple.src === '::' ? 'any' : e.tuple.src,
      to: e.nat ? hostPort(e.nat.src, e.nat.sport) : '',
      timeoutSec: e.timeout,
      callId: byAnchor.get(tupleKey(e.master)) ?? '(no live dialog)',
      anchor: tupleKey(e.master),
    }))
    .sort((a, b) => a.public.localeCompare(b.public));
}

export function tapFilter(req: ControlRequest): TapFilter {
  const f: TapFilter = {};
  if (typeof req.callId === 'string' && req.callId) f.callId = req.callId;
  if (typeof req.host === 'string' && req.host) f.host = req.host;
  return f;
}

export function encodeRecord(r: TapRecord): Record<string, unknown> {
  return { ...r, before: Buffer.from(r.before).toString('base64'), after: r.after ? Buffer.from(r.after).toString('base64') : null };
}

export function controlHandler(pool: WorkerPool, metrics: Metrics, reload: () => { changed: string[]; needRestart: string[] }, started: number): Handler {
  let ct: Ctnetlink | undefined;
  return async (req: ControlRequest, sink: StreamSink) => {
    switch (req.cmd) {
      case 'calls':
        return sink.end({ rows: await pool.query('calls') });
      case 'registrations':
        return sink.end({ rows: await pool.query('registrations') });
      case 'pinholes': {
        ct ??= new Ctnetlink(1000);
        const calls = (await pool.query('calls')) as DialogSnapshot[];
        return sink.end({ rows: pinholeRows(ct.dumpExpectations(), calls) });
      }
      case 'stats': {
        const m = await metrics.registry.getMetricsAsJSON();
        const sum = (name: string, pred: (l: Record<string, string | number>) => boolean = () => true) =>
          (m.find((x) => x.name === name)?.values ?? []).filter((v) => pred(v.labels as Record<string, string | number>)).reduce((a, v) => a + v.value, 0);
        const reasons: Record<string, number> = {};
        for (const v of m.find((x) => x.name === 'sipalg_packets_total')?.values ?? []) {
          const k = `${v.labels.direction} ${v.labels.verdict} ${v.labels.reason}`;
          reasons[k] = (reasons[k] ?? 0) + v.value;
        }
        // live from the workers (the gauges lag by up to one stats flush)
        const counts = (await pool.query('counts')) as { dialogs: number; registrations: number; pinholes: number }[];
        const live = (k: 'dialogs' | 'registrations' | 'pinholes') => counts.reduce((a, c) => a + c[k], 0);
        return sink.end({
          uptimeSec: Math.round((Date.now() - started) / 1000),
          workersUp: sum('sipalg_workers_up'),
          dialogsActive: live('dialogs'),
          registrationsActive: live('registrations'),
          pinholesActive: live('pinholes'),
          mediaPortsActive: sum('sipalg_media_ports_active'),
          packets: reasons,
          queues: readQueueStats().filter((q) => metrics.queues.includes(q.queue)),
          sourceLimited: await readSourceLimited(),
          blocked: await pool.query('blocked'),
        });
      }
      case 'tap': {
        const seconds = Math.min(MAX_TAP_SECONDS, Math.max(1, Number(req.seconds) || 60));
        let stop: (() => void) | undefined;
        const timer = setTimeout(() => sink.end({ end: true, reason: 'time' }), seconds * 1000);
        sink.onClose(() => { clearTimeout(timer); stop?.(); });
        sink.send({ started: true, filter: tapFilter(req), seconds });
        stop = pool.tap(tapFilter(req), (r) => { sink.send(encodeRecord(r)); });
        return;
      }
      case 'takeover': {
        const r = (await pool.query('takeover')) as { waiting: number }[];
        return sink.end({ waiting: r.reduce((a, x) => a + x.waiting, 0) });
      }
      case 'standby': {
        const r = (await pool.query('standby')) as { forgotten: number }[];
        return sink.end({ forgotten: r.reduce((a, x) => a + x.forgotten, 0) });
      }
      case 'reload':
        return sink.end(reload());
      default:
        return sink.end({ error: `unknown command ${JSON.stringify(req.cmd)}; known: calls, registrations, pinholes, stats, tap, takeover, standby, reload`, code: 'SIPALG_ERR_CONTROL' });
    }
  };
}
