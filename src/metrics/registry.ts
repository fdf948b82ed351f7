/** Prometheus metrics (prom-client) for the whole worker pool, served at /metrics. */
import { createServer, type Server } from 'node:http';
import client from 'prom-client';
import type { StatsFlush } from './worker-stats';
import { REASON_KIND, type Reason } from '../errors';
import { readQueueStats } from './queue-stats';
import { readSourceLimited } from './source-limit';

export class Metrics {
  readonly registry = new client.Registry();
  readonly packets = new client.Counter({ name: 'sipalg_packets_total', help: 'Queued packets by direction, verdict and reason code', labelNames: ['direction', 'verdict', 'reason'], registers: [this.registry] });
  readonly messages = new client.Counter({ name: 'sipalg_messages_total', help: 'SIP messages by direction, method (requests) or status class (responses), and outcome: rewritten, unchanged or dropped', labelNames: ['direction', 'message', 'outcome'], registers: [this.registry] });
  readonly errors = new client.Counter({ name: 'sipalg_errors_total', help: 'Parse, policy and internal errors by stable code (the reason label of sipalg_packets_total)', labelNames: ['kind', 'code'], registers: [this.registry] });
  readonly rewrites = new client.Counter({ name: 'sipalg_rewrites_total', help: 'Translated fields by direction and header/SDP field', labelNames: ['direction', 'field'], registers: [this.registry] });
  readonly bindings = new client.Counter({ name: 'sipalg_nat_bindings_total', help: 'NAT bindings used for rewriting, by how they were learned', labelNames: ['source'], registers: [this.registry] });
  readonly duration = new client.Histogram({ name: 'sipalg_packet_processing_seconds', help: 'Time from receive to verdict in a worker', buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05], registers: [this.registry] });
  readonly workersUp = new client.Gauge({ name: 'sipalg_workers_up', help: 'Worker threads currently bound to their queue', registers: [this.registry] });
  readonly workerRestarts = new client.Counter({ name: 'sipalg_worker_restarts_total', help: 'Workers restarted after a crash', registers: [this.registry] });
  readonly mediaPorts = new client.Gauge({ name: 'sipalg_media_ports_active', help: 'Public media port pairs leased', labelNames: ['worker'], registers: [this.registry] });
  readonly pinholes = new client.Counter({ name: 'sipalg_pinholes_total', help: 'Media pinholes (conntrack expectations): created, removed, failed (pinholes ride the datagram of the verdict of their packet and count as created when sent; one the kernel refuses then counts as failed too)', labelNames: ['event'], registers: [this.registry] });
  readonly mediaFlows = new client.Counter({ name: 'sipalg_media_flows_total', help: 'Outbound media conntracks pre-created with SNAT to the advertised port (symmetric RTP)', labelNames: ['event'], registers: [this.registry] });
  readonly dialogEvents = new client.Counter({ name: 'sipalg_dialogs_total', help: 'Dialog events: created, restored (after a restart), ended (BYE/CANCEL/failure), expired (idle), provisional_expired, session_expired, max_duration, media_inactive, evicted, limit_*, direct_media_blocked; signaling_kept_alive / signaling_flow_gone for the call\'s signaling binding; conntrack_flushed (the kernel\'s table was flushed under a worker) and repaired_after_flush (a call\'s pinholes and media flows made again after it)', labelNames: ['event'], registers: [this.registry] });
  readonly dialogsActive = new client.Gauge({ name: 'sipalg_dialogs_active', help: 'Dialogs with media state', labelNames: ['worker'], registers: [this.registry] });
  readonly registrationEvents = new client.Counter({ name: 'sipalg_registrations_total', help: 'Registrations created, refreshed, removed (expires=0), expired; signaling flows kept_alive, flow_gone, keepalive_failed', labelNames: ['event'], registers: [this.registry] });
  readonly pinholesActive = new client.Gauge({ name: 'sipalg_pinholes_active', help: 'Media pinholes (RTP + RTCP conntrack expectations) held by live dialogs', labelNames: ['worker'], registers: [this.registry] });
  readonly workerUp = new client.Gauge({ name: 'sipalg_worker_up', help: '1 when the worker is bound to its queue, 0 while it is down (fail-open: SIP bypasses it)', labelNames: ['worker', 'queue'], registers: [this.registry] });
  readonly workerFlushAge = new client.Gauge({
    name: 'sipalg_worker_last_report_age_seconds', help: 'Seconds since the worker last reported (every second when healthy; growing when it is stuck)', labelNames: ['worker'], registers: [this.registry],
    collect: () => { const now = Date.now(); for (const [w, at] of this.lastReport) this.workerFlushAge.set({ worker: String(w) }, (now - at) / 1000); },
  });
  readonly queueWaiting = new client.Gauge({ name: 'sipalg_queue_waiting_packets', help: 'Packets waiting in the NFQUEUE for a verdict (/proc/net/netfilter/nfnetlink_queue)', labelNames: ['queue'], registers: [this.registry], collect: () => this.collectQueues() });
  readonly queueDropped = new client.Counter({ name: 'sipalg_queue_dropped_total', help: 'Packets the kernel dropped because the NFQUEUE was full (leak-policy drop; with pass it accepts them unrewritten, uncounted)', labelNames: ['queue'], registers: [this.registry] });
  readonly sourceLimited = new client.Counter({
    name: 'sipalg_source_limited_total', help: 'SIP packets the per-source limit dropped in the kernel before the queue (iptables hashlimit, chain SIPALG_LIMIT), by direction', labelNames: ['direction'], registers: [this.registry],
    collect: async () => {
      const r = await readSourceLimited();
      this.sourceLimited.reset();
      this.sourceLimited.inc({ direction: 'out' }, r.out);
      this.sourceLimited.inc({ direction: 'in' }, r.in);
    },
  });
  readonly leaksPrevented = new client.Counter({ name: 'sipalg_leaks_prevented_total', help: 'LAN→WAN packets dropped instead of passed unchanged because they carried the sender\'s private address (leak-policy drop), by the reason they could not be translated', labelNames: ['reason'], registers: [this.registry] });
  readonly queueUserDropped = new client.Counter({ name: 'sipalg_queue_user_dropped_total', help: 'Packets the kernel could not hand to the worker (netlink socket buffer full)', labelNames: ['queue'], registers: [this.registry] });
  readonly queueQueued = new client.Counter({ name: 'sipalg_queue_packets_total', help: 'Packets the kernel put into the NFQUEUE since it was bound (id sequence)', labelNames: ['queue'], registers: [this.registry] });
  readonly registrationsActive = new client.Gauge({ name: 'sipalg_registrations_active', help: 'Registrations whose NAT binding the ALG keeps alive', labelNames: ['worker'], registers: [this.registry] });
  private server: Server | undefined;
  private readonly lastReport = new Map<number, number>();
  /** queues this process binds: the /proc file also lists other programs' queues */
  queues: number[] = [];

  private collectQueues(): void {
    this.queueWaiting.reset();
    this.queueDropped.reset();
    this.queueUserDropped.reset();
    this.queueQueued.reset();
    for (const q of readQueueStats()) {
      if (!this.queues.includes(q.queue)) continue;
      const l = { queue: String(q.queue) };
      this.queueWaiting.set(l, q.waiting);
      this.queueDropped.inc(l, q.dropped);
      this.queueUserDropped.inc(l, q.userDropped);
      this.queueQueued.inc(l, q.idSequence);
    }
  }

  constructor() {
    // the event-loop lag histogram samples the main thread's loop with a libuv timer of this period:
    // prom-client's default of 10 ms woke the idle daemon 100 times a second (half its idle CPU);
    // the packets are the workers', the main thread serves the control socket and the scrapes
    client.collectDefaultMetrics({ register: this.registry, prefix: 'sipalg_', eventLoopMonitoringPrecision: 200 });
    // the series alerts and panels watch exist from the start at 0 (increase()/rate() of a series
    // that appears only with its first failure would miss that failure)
    for (const event of ['created', 'removed', 'failed']) {
      this.pinholes.inc({ event }, 0);
      this.mediaFlows.inc({ event }, 0);
    }
  }

  absorb(worker: number, f: StatsFlush): void {
    for (const [key, n] of Object.entries(f.counters)) {
      const [name, a = '', b = '', c = ''] = key.split('|');
      if (name === 'p') {
        this.packets.inc({ direction: a, verdict: b, reason: c }, n);
        const kind = REASON_KIND[c as Reason];
        if (kind) this.errors.inc({ kind, code: c }, n);
      } else if (name === 'o') this.messages.inc({ direction: a, message: b, outcome: c }, n);
      else if (name === 'r') this.rewrites.inc({ direction: a, field: b }, n);
      else if (name === 'b') this.bindings.inc({ source: a }, n);
      else if (name === 'h') this.pinholes.inc({ event: a }, n);
      else if (name === 'f') this.mediaFlows.inc({ event: a }, n);
      else if (name === 'd') this.dialogEvents.inc({ event: a }, n);
      else if (name === 'g') this.registrationEvents.inc({ event: a }, n);
      else if (name === 'k') this.leaksPrevented.inc({ reason: a }, n);
    }
    for (const d of f.durations) this.duration.observe(d);
    this.mediaPorts.set({ worker: String(worker) }, f.mediaLeases);
    this.dialogsActive.set({ worker: String(worker) }, f.dialogs);
    this.registrationsActive.set({ worker: String(worker) }, f.registrations);
    this.pinholesActive.set({ worker: String(worker) }, f.pinholes);
    this.lastReport.set(worker, f.at);
  }

  listen(spec: string): Promise<void> {
    if (spec === 'off') return Promise.resolve();
    const i = spec.lastIndexOf(':');
    const host = spec.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(spec.slice(i + 1));
    this.server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('see /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    });
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
  }

  close(): void {
    this.server?.close();
    this.server = undefined;
  }
}
