/**
 * Interleaved A/B of the daemon's CPU per message (one worker), for a change that is a flag of node
 * or of the daemon: variant A, B (, C ...) take turns trial after trial on the same lab, so that the
 * box's drift (this VM's speed moves by 20-30% between runs minutes apart: the load generator's own
 * CPU per message moves with it) falls on every variant alike. bench/router.ts measures each set-up
 * in a block of its own; a difference between two of its runs is not a result (BENCHMARKS.md, stop 30).
 *
 *   node dist/bench/ab.js [invite|register|mix] [rounds] 'NAME=node flags|daemon flags[|build[|K=V ...]]' ...
 *   e.g. node dist/bench/ab.js invite 4 'default=--interrupt-budget=67584|' 'budget16k=--interrupt-budget=16384|'
 * A change of code: `build` is the root of another built checkout (a git worktree of the commit to
 * compare, with `npm run build` run in it) whose daemon the variant runs:
 *   git worktree add /tmp/wt-base <commit> && (cd /tmp/wt-base && ln -s /work/main/node_modules && npm run build)
 *   node dist/bench/ab.js invite 6 'base=||/tmp/wt-base' 'new=|'
 *
 * `K=V ...`: environment variables the variant's daemon starts with (e.g. SIPALG_YOUNG_MB=8).
 * Prints each trial and the median of each variant. Root; sets the conntrack limits as router.ts does.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CANDIDATE_IPS, cpuTrial, raiseConntrackLimits, Setup } from './router';

interface Variant { name: string; nodeFlags: string; daemonFlags: string[]; root: string; env: [string, string][] }

function parseVariant(s: string): Variant {
  const eq = s.indexOf('=');
  if (eq <= 0) throw new Error(`variant '${s}': expected NAME=node flags|daemon flags`);
  const [nodeFlags = '', daemonFlags = '', root = '', env = ''] = s.slice(eq + 1).split('|');
  if (root && !existsSync(join(root, 'bin/sip-alg'))) throw new Error(`variant '${s}': no bin/sip-alg under ${root}`);
  const vars = env.split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]);
  if (vars.some(([k]) => !/^[A-Z_][A-Z0-9_]*$/.test(k))) throw new Error(`variant '${s}': environment as K=V K2=V2`);
  return { name: s.slice(0, eq), nodeFlags: nodeFlags.trim(), daemonFlags: daemonFlags.split(' ').filter(Boolean), root: root.trim(), env: vars };
}

async function main(): Promise<void> {
  const kind = (['invite', 'register', 'mix'] as const).find((k) => k === process.argv[2]) ?? 'invite';
  const rounds = Number(process.argv[3] ?? 4);
  const variants = process.argv.slice(4).map(parseVariant);
  if (variants.length < 2) throw new Error('give at least two variants');
  // refused pinholes and their retries would double the daemon's CPU (raiseConntrackLimits)
  const limits = raiseConntrackLimits((s) => console.log(s));
  const s = await Setup.create('alg1', 'abb').catch((e: Error) => {
    limits.restore();
    throw e;
  });
  const got = new Map<string, number[]>();
  try {
    for (let r = 0; r < rounds; r++) {
      // the order turns each round (the first trial of a round ran slower in stop 31's runs: a fixed
      // order would put that on one variant)
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(r + k) % variants.length]!;
        process.env.SIPALG_NODE_FLAGS = v.nodeFlags;
        process.env.SIPALG_DAEMON_ROOT = v.root;
        for (const [k, x] of v.env) process.env[k] = x;
        const t = await cpuTrial(s, kind, 1500, 6, CANDIDATE_IPS.slice(0, 8), 0, v.daemonFlags).finally(() => { for (const [k] of v.env) delete process.env[k]; });
        got.set(v.name, [...(got.get(v.name) ?? []), t.daemon]);
        console.log(`round ${r + 1} ${v.name}: daemon ${t.daemon.toFixed(1)} µs/msg, senders ${t.senders.toFixed(1)}, ratio ${(t.daemon / t.senders).toFixed(2)}`);
      }
    }
  } finally {
    await s.close();
    limits.restore();
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const v of variants) console.log(`${v.name}: median ${med(got.get(v.name)!).toFixed(1)} µs per ${kind} (${got.get(v.name)!.map((x) => x.toFixed(0)).join(', ')})`);
}

main().catch((e) => { console.error(e); process.exit(1); });
