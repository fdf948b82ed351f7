/**
 * Where a sip-alg latency trial's slow packets come from: the router bench's latency trial (1 worker,
 * INVITE with SDP at a steady rate, 1 s of the same load first) with the daemon run under node's
 * --trace-gc, then the trial's one-way latency percentiles beside the daemon's GC pauses in that time.
 *
 *   node dist/bench/latency-probe.js [rate/s] [seconds] [daemon flags...]      (root)
 *   SIPALG_PROBE_WARMUP=S   seconds of the same load before the measured ones (default 1, as the bench)
 *   SIPALG_PROBE_KERNEL_LIMITS=1   the conntrack limits left as they are (the kernel's 4096 expectations: the table fills, pins are refused)
 *   SIPALG_PROBE_LOG=FILE   the daemon's whole output (its log, and what SIPALG_NODE_FLAGS such as --trace-deopt print) into FILE
 */
import { writeFileSync } from 'node:fs';
import { CANDIDATE_IPS, Setup, latencyTrial, raiseConntrackLimits } from './router';

async function main(): Promise<void> {
  const rate = Number(process.argv[2] ?? 1000), seconds = Number(process.argv[3] ?? 3);
  process.env.SIPALG_NODE_FLAGS = [process.env.SIPALG_NODE_FLAGS ?? '', '--trace-gc'].join(' ').trim();
  process.env.SIPALG_STALL_MS ??= '1'; // the worker logs each timer, slice or batch that held it this long
  // the router bench's limits: with the kernel's 4096 expectations the pinholes are refused within
  // 3 s at 1k INVITE/s, and what the probe would measure is their retries (stop 38)
  const limits = process.env.SIPALG_PROBE_KERNEL_LIMITS ? { restore() { /* left as found */ } } : raiseConntrackLimits((x) => console.log(x));
  const s = await Setup.create('alg1', 'blp').catch((e: Error) => {
    limits.restore();
    throw e;
  });
  const extra = process.argv.slice(4);
  const reset = s.reset.bind(s);
  s.reset = (x: string[] = []) => reset([...x, ...extra]);
  try {
    const t = await latencyTrial(s, rate, seconds, CANDIDATE_IPS.slice(0, 8), Number(process.env.SIPALG_PROBE_WARMUP ?? 1));
    console.log(JSON.stringify(t.latency));
    const log = s.daemon?.log() ?? '';
    if (process.env.SIPALG_PROBE_LOG) writeFileSync(process.env.SIPALG_PROBE_LOG, log);
    const pauses = [...log.matchAll(/(Scavenge|Mark-Compact|Mark-sweep)[^\n]*?([\d.]+) \/ ([\d.]+) ms/g)].map((m) => `${m[1]} ${m[2]} ms`);
    console.log(`GC pauses in the daemon (whole life, ${pauses.length}): ${pauses.join(', ')}`);
    const stalls = log.split('\n').filter((l) => l.includes('worker stall') || l.includes('slow datagram')).map((l) => l.replace(/^.*?msg=/, ''));
    console.log(`worker stalls ≥ ${process.env.SIPALG_STALL_MS} ms (whole life, ${stalls.length}):\n${stalls.join('\n')}`);
  } finally {
    await s.close();
    limits.restore();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
