/**
 * Operator commands over the daemon's control socket:
 *   sip-alg calls|registrations|pinholes|stats [--json]
 *   sip-alg capture --before FILE --after FILE [--wire FILE --iface IF] [--call-id ID] [--host IP] [--seconds N]
 *   sip-alg trace [--call-id ID] [--host IP] [--seconds N]
 *   sip-alg reload
 * Every command takes --socket PATH (default: the control-socket default).
 */
import { ConfigError } from '../errors';
import { controlSocketPath, SCHEMA } from '../config/schema';
import { ask, request } from '../control/client';
import { table } from '../control/table';
import { PcapWriter } from '../capture/pcap';
import { viewPacket } from '../capture/tap';
import { parseIpUdp } from '../packet/ip';

// 'auto': this network namespace's daemon (`ip netns exec R sip-alg calls` reaches R's)
const DEFAULT_SOCKET = controlSocketPath(String(SCHEMA.find((s) => s.key === 'control-socket')!.default));

interface Args {
  socket: string;
  json: boolean;
  opts: Map<string, string>;
}

const VALUE_FLAGS: Record<string, string[]> = {
  calls: [], registrations: [], pinholes: [], stats: [], reload: [],
  capture: ['before', 'after', 'wire', 'iface', 'call-id', 'host', 'seconds', 'ports'],
  trace: ['call-id', 'host', 'seconds'],
};

export function parseArgs(cmd: string, argv: string[]): Args {
  const a: Args = { socket: DEFAULT_SOCKET, json: false, opts: new Map() };
  const allowed = VALUE_FLAGS[cmd] ?? [];
  for (let i = 0; i < argv.length; i++) {
    const [k, inline] = argv[i]!.replace(/^--/, '').split(/=(.*)/s, 2) as [string, string | undefined];
    if (!argv[i]!.startsWith('--')) throw new ConfigError(argv[i]!, `unexpected argument to ${cmd}`);
    if (k === 'json') { a.json = true; continue; }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new ConfigError(k, 'needs a value');
    if (k === 'socket') a.socket = v;
    else if (allowed.includes(k)) a.opts.set(k, v);
    else throw new ConfigError(k, `unknown flag for ${cmd}; allowed: --socket${cmd === 'capture' || cmd === 'trace' || cmd === 'reload' ? '' : ', --json'}${allowed.map((x) => ', --' + x).join('')}`);
  }
  if (a.opts.has('seconds') && !/^\d{1,4}$/.test(a.opts.get('seconds')!)) throw new ConfigError('seconds', 'allowed: an integer from 1 to 3600');
  return a;
}

const out = (s: string) => process.stdout.write(s + '\n');

export async function inspect(cmd: string, argv: string[]): Promise<number> {
  const a = parseArgs(cmd, argv);
  switch (cmd) {
    case 'calls': {
      const { rows } = await ask<{ rows: Record<string, unknown>[] }>(a.socket, { cmd });
      if (a.json) return out(JSON.stringify(rows, null, 2)), 0;
      out(table(['WORKER', 'CALL-ID', 'PHONE', 'STATE', 'AGE', 'IDLE', 'MEDIA (private<-public, remote, pinholes admit)', 'PINHOLES', 'FLOWS'], rows.map((r) => [
        String(r.worker), String(r.callId), String(r.phone), String(r.state), `${r.ageSec}s`, `${r.idleSec}s`,
        (r.media as { rtp: string; remote: string; from?: string }[]).map((m) => `${m.rtp}${m.remote ? ` remote ${m.remote}` : ''}${m.from ? ` from ${m.from}` : ''}`).join('; ') || '-',
        `${String(r.pinholes)}${r.pinholesFailed ? ` (${String(r.pinholesFailed)} refused)` : ''}`, String(r.mediaFlows),
      ])));
      out(`${rows.length} call(s)`);
      return 0;
    }
    case 'registrations': {
      const { rows } = await ask<{ rows: Record<string, unknown>[] }>(a.socket, { cmd });
      if (a.json) return out(JSON.stringify(rows, null, 2)), 0;
      out(table(['WORKER', 'AOR', 'PHONE', 'PUBLIC', 'EXPIRES IN', 'KEPT ALIVE', 'REGISTER PINHOLE'], rows.map((r) => [String(r.worker), String(r.aor), String(r.phone), String(r.public), `${r.expiresInSec}s`, `${r.keptAliveSecAgo}s ago`, String(r.pinhole ?? '') || '-'])));
      out(`${rows.length} registration(s)`);
      return 0;
    }
    case 'pinholes': {
      const { rows } = await ask<{ rows: Record<string, unknown>[] }>(a.socket, { cmd });
      if (a.json) return out(JSON.stringify(rows, null, 2)), 0;
      out(table(['PUBLIC', 'FROM', 'TO (private)', 'TIMEOUT', 'CALL-ID'], rows.map((r) => [String(r.public), String(r.from), String(r.to), `${r.timeoutSec}s`, String(r.callId)])));
      out(`${rows.length} pinhole(s)`);
      return 0;
    }
    case 'stats': {
      const s = await ask<Record<string, unknown>>(a.socket, { cmd });
      if (a.json) return out(JSON.stringify(s, null, 2)), 0;
      const rows: (string | number)[][] = [];
      for (const k of ['uptimeSec', 'workersUp', 'dialogsActive', 'registrationsActive', 'pinholesActive', 'mediaPortsActive']) rows.push([k, String(s[k])]);
      for (const q of s.queues as Record<string, number>[]) rows.push([`queue ${q.queue}`, `waiting ${q.waiting}, queued ${q.idSequence}, dropped ${q.dropped}, user_dropped ${q.userDropped}`]);
      const sl = s.sourceLimited as { out: number; in: number } | undefined;
      if (sl) rows.push(['source-limited (kernel, before the queue)', `out ${sl.out}, in ${sl.in}`]);
      for (const [k, v] of Object.entries(s.packets as Record<string, number>).sort()) rows.push([`packets ${k}`, v]);
      for (const b of s.blocked as { source: string; seconds: number }[]) rows.push([`blocked ${b.source}`, `${b.seconds}s left`]);
      out(table(['WHAT', 'VALUE'], rows));
      return 0;
    }
    case 'takeover': {
      const r = await ask<{ waiting: number }>(a.socket, { cmd });
      out(`takeover: ${r.waiting} call(s) of the peer router, adopted at their next SIP message`);
      return 0;
    }
    case 'standby': {
      const r = await ask<{ forgotten: number }>(a.socket, { cmd });
      out(`standby: ${r.forgotten} call(s) left to the peer router (kernel entries untouched)`);
      return 0;
    }
    case 'reload': {
      const r = await ask<{ changed: string[]; needRestart: string[] }>(a.socket, { cmd });
      out(`reloaded: ${r.changed.length ? r.changed.join(', ') : 'no changes'}${r.needRestart.length ? `; not applied until restart: ${r.needRestart.join(', ')}` : ''}`);
      return 0;
    }
    case 'capture':
      return capture(a);
    case 'trace':
      return trace(a);
    default:
      throw new ConfigError(cmd, 'unknown command');
  }
}

interface Rec {
  tsUs: number;
  worker: number;
  dir: string;
  before: string;
  after: string | null;
  verdict: string;
  reason: string;
  message: string;
  fields: string[];
  callId: string;
}

function stopOnSignal(): AbortController {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return ac;
}

async function capture(a: Args): Promise<number> {
  const beforePath = a.opts.get('before'), afterPath = a.opts.get('after');
  if (!beforePath || !afterPath) throw new ConfigError('before', 'capture needs --before FILE and --after FILE');
  const before = new PcapWriter(beforePath), after = new PcapWriter(afterPath);
  let wire: { stop: () => number } | undefined;
  const wirePath = a.opts.get('wire');
  if (wirePath) {
    const { captureInterface } = await import('../capture/wire');
    // the whole SIP traffic of the interface: after the kernel's NAT the LAN host's address is not on it
    wire = captureInterface(wirePath, a.opts.get('iface') ?? 'wan0', a.opts.get('ports') ?? '5060');
  }
  const ac = stopOnSignal();
  let rewritten = 0, dropped = 0;
  const seconds = Number(a.opts.get('seconds') ?? 60);
  try {
    await request(a.socket, { cmd: 'tap', callId: a.opts.get('call-id'), host: a.opts.get('host'), seconds }, (o) => {
      if (o.started) return void process.stderr.write(`capturing for up to ${seconds} s (Ctrl-C stops)\n`);
      if (o.end) return;
      const r = o as unknown as Rec;
      before.write(r.tsUs, Buffer.from(r.before, 'base64'));
      if (r.after !== null) after.write(r.tsUs, Buffer.from(r.after, 'base64'));
      if (r.verdict === 'drop') dropped++;
      else if (r.fields.length) rewritten++;
    }, ac.signal);
  } finally {
    before.close();
    after.close();
  }
  const w = wire ? `; ${wire.stop()} frames on ${a.opts.get('iface') ?? 'wan0'} -> ${wirePath}` : '';
  out(`captured ${before.count} packets (${rewritten} rewritten, ${dropped} dropped): before -> ${beforePath}, after -> ${afterPath}${w}`);
  return 0;
}

/** The lines that differ between two SIP payloads (same line count: the ALG rewrites in place). */
export function changedLines(b: Buffer, a: Buffer): string[] {
  const pl = (x: Buffer) => {
    const p = parseIpUdp(x);
    return p.ok ? x.subarray(p.packet.payloadOffset, p.packet.payloadOffset + p.packet.payloadLength).toString('latin1').split(/\r?\n/) : [];
  };
  const lb = pl(b), la = pl(a);
  const outl: string[] = [];
  for (let i = 0; i < Math.max(lb.length, la.length); i++) {
    if (lb[i] === la[i]) continue;
    if (lb[i] !== undefined) outl.push(`    - ${lb[i]}`);
    if (la[i] !== undefined) outl.push(`    + ${la[i]}`);
  }
  return outl;
}

async function trace(a: Args): Promise<number> {
  const ac = stopOnSignal();
  const seconds = Number(a.opts.get('seconds') ?? 60);
  await request(a.socket, { cmd: 'tap', callId: a.opts.get('call-id'), host: a.opts.get('host'), seconds }, (o) => {
    if (o.started || o.end) return;
    const r = o as unknown as Rec;
    const b = Buffer.from(r.before, 'base64');
    const vb = viewPacket(b);
    const af = r.after ? Buffer.from(r.after, 'base64') : undefined;
    const va = af ? viewPacket(af) : undefined;
    const ts = new Date(r.tsUs / 1000).toISOString();
    out(`${ts} worker=${r.worker} ${r.dir === 'out' ? 'LAN->WAN' : 'WAN->LAN'} ${r.message || '-'} ${vb.src}:${vb.sport} > ${vb.dst}:${vb.dport} verdict=${r.verdict} reason=${r.reason}${r.fields.length ? ` rewrote=${r.fields.join(',')}` : ''}${va && (va.src !== vb.src || va.dst !== vb.dst) ? ` now ${va.src}:${va.sport} > ${va.dst}:${va.dport}` : ''} call-id=${r.callId}`);
    if (af && r.fields.length) for (const l of changedLines(b, af)) out(l);
  }, ac.signal);
  return 0;
}
