/**
 * What the per-source limit in the kernel dropped before the queue (iptables/sip-alg-rules.sh: chain
 * mangle SIPALG_LIMIT, one hashlimit rule per direction, counted by the rules' own packet counters).
 * Read from `iptables -nvxL` of that chain, IPv4 and IPv6 together; a missing chain reads as 0.
 */
import { execFile } from 'node:child_process';
import { basename, dirname, join } from 'node:path';

export interface SourceLimited {
  /** LAN→WAN packets dropped (LAN sources) */
  out: number;
  /** WAN→LAN packets dropped (WAN sources) */
  in: number;
}

/** Packet counts of `iptables -nvxL SIPALG_LIMIT` output, by the direction its rule comments name. */
export function parseSourceLimit(text: string): SourceLimited {
  const r: SourceLimited = { out: 0, in: 0 };
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+\d+\s+DROP\b.*source-limit (out|in)\b/.exec(line);
    if (m) r[m[2] as 'out' | 'in'] += Number(m[1]);
  }
  return r;
}

function run(cmd: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, ['-w', '-t', 'mangle', '-nvxL', 'SIPALG_LIMIT'], { timeout: 3000 }, (err, stdout) => resolve(err ? '' : stdout));
  });
}

/** The iptables command the rules were installed with (IPTABLES, as for the rules script) and its IPv6 twin. */
export function iptablesCommands(ipt = process.env.IPTABLES || 'iptables'): string[] {
  const six = join(dirname(ipt), basename(ipt).replace(/^iptables/, 'ip6tables'));
  return [ipt, dirname(ipt) === '.' ? basename(six) : six];
}

export async function readSourceLimited(): Promise<SourceLimited> {
  const texts = await Promise.all(iptablesCommands().map(run));
  const sum: SourceLimited = { out: 0, in: 0 };
  for (const t of texts) {
    const r = parseSourceLimit(t);
    sum.out += r.out;
    sum.in += r.in;
  }
  return sum;
}
