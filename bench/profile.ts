/**
 * A perf profile of the daemon in situ (how ../shared/design/hot-path-observations.md was taken):
 * the lab with one queue, the daemon under `node --perf-basic-prof --interpreted-frames-native-stack`,
 * bench/loadgen.c sending INVITEs with SDP (or REGISTERs, or the call mix) at a steady rate, `perf record -g` on the daemon
 * (cpu-clock: these machines have no hardware PMU), then the report by symbol, children included.
 *
 *   node dist/bench/profile.js [invite|register|mix] [rate/s] [seconds]      (root; writes /tmp/sipalg-profile.txt)
 *   SIPALG_PROFILE_WARMUP=15 …   records after 15 s of load instead of 2 (steady state, JIT compiles done)
 *   SIPALG_PROFILE_STRACE=1 …    counts the daemon's system calls (strace -c -f) instead (/tmp/sipalg-strace.txt)
 *   SIPALG_PROFILE_STRACE=seq …  the daemon's system calls in order, timed (strace -f -tt: /tmp/sipalg-strace-seq.txt)
 *   SIPALG_PROFILE_FLAGS='--media-port-max 1999' …   more daemon flags (after the bench's: a later value wins)
 *   SIPALG_PROFILE_NODE_FLAGS='--trace-deopt' …   more node flags for the daemon (its output: /tmp/sipalg-profile-daemon.log)
 *   SIPALG_PROFILE_QUEUES=0:1 …  two workers (the load then comes from 8 phone addresses, which the queues' hash spreads)
 *   SIPALG_PROFILE_NO_ANSWER=1 … the UAS does not answer (INVITE, REGISTER: what the router bench's CPU trials send)
 *   SIPALG_PROFILE_KERNEL_LIMITS=1 … the conntrack limits left as they are; by default the router bench's
 *     (raiseConntrackLimits): with the kernel's 4096 expectations the table is full after ~2000 calls and
 *     a profile of unanswered INVITEs measures refused pinholes, their errors and retries (stop 39)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepare } from '../src/lab/media';
import { Lab, PROVIDER_IP, phoneIp, ROOT } from '../src/lab/lab';
import { ALG_FLAGS, CANDIDATE_IPS, raiseConntrackLimits } from './router';

const LOADGEN = '/tmp/sipalg-bench/loadgen';

async function main(): Promise<void> {
  const kind = ['register', 'mix'].includes(process.argv[2] ?? '') ? process.argv[2]! : 'invite';
  const rate = Number(process.argv[3] ?? 1500), seconds = Number(process.argv[4] ?? 8);
  process.env.SIPALG_NODE_FLAGS = `--perf-basic-prof --interpreted-frames-native-stack ${process.env.SIPALG_PROFILE_NODE_FLAGS ?? ''}`.trim();
  const limits = process.env.SIPALG_PROFILE_KERNEL_LIMITS ? { restore() { /* left as found */ } } : raiseConntrackLimits((x) => console.log(x));
  try {
    await profile(kind, rate, seconds);
  } finally {
    limits.restore();
  }
}

async function profile(kind: string, rate: number, seconds: number): Promise<void> {
  // the router bench's daemon flags (per-source limits off: the load comes from one address)
  const { lab, daemon } = await prepare('sprof', 1, 'alg', [...ALG_FLAGS, ...(process.env.SIPALG_PROFILE_STATE ? [] : ['--state-dir', 'off']), ...(process.env.SIPALG_PROFILE_FLAGS ?? '').split(' ').filter(Boolean)], process.env.SIPALG_PROFILE_QUEUES ?? '0:0', ['--source-rate', '0']);
  const ips = process.env.SIPALG_PROFILE_QUEUES ? CANDIDATE_IPS.slice(0, 8) : [phoneIp(1)];
  if (process.env.SIPALG_PROFILE_QUEUES) for (const ip of ips) lab.run(lab.phone(1), 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  try {
    // bench/loadgen.c, as bench/router.ts runs it: unique Call-IDs and media ports, the UAS answers
    mkdirSync('/tmp/sipalg-bench', { recursive: true });
    const cc = spawnSync('cc', ['-O2', '-pthread', '-o', LOADGEN, join(ROOT, 'bench/loadgen.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`cannot compile bench/loadgen.c: ${cc.stderr}`);
    const uas = lab.start(lab.provider, LOADGEN, ['uas', '--bind', `${PROVIDER_IP}:5080`, '--run', '7', ...(process.env.SIPALG_PROFILE_NO_ANSWER ? [] : ['--respond'])]);
    await Lab.waitFor(uas, /ready/, 10000, 'loadgen uas');
    const load = lab.runAsync(lab.phone(1), LOADGEN, ['uac', '--ips', ips.join(','), '--dst', `${PROVIDER_IP}:5080`, '--kind', kind, '--rate', String(rate), '--duration', String(seconds + 4 + Number(process.env.SIPALG_PROFILE_WARMUP ?? 2)), '--run', '7'], (seconds + 30) * 1000);
    const warm = Number(process.env.SIPALG_PROFILE_WARMUP ?? 2); // seconds of load before recording (JIT compiles happen in the first ~10)
    await new Promise((r) => setTimeout(r, warm * 1000));
    if (process.env.SIPALG_PROFILE_STRACE) {
      // system calls instead of samples: `strace -c -f` of the daemon's threads for the same window
      const st = spawnSync('timeout', ['-s', 'INT', String(seconds), 'strace', ...(process.env.SIPALG_PROFILE_STRACE === 'seq' ? ['-f', '-tt', '-o', '/tmp/sipalg-strace-seq.txt'] : ['-c', '-f']), '-p', String(daemon!.pid)], { encoding: 'utf8', maxBuffer: 64 << 20 });
      writeFileSync('/tmp/sipalg-strace.txt', st.stderr);
      await load;
      console.log(`${kind} at ${rate}/s for ${seconds} s: ${rate * seconds} messages sent (mix: and as many responses); /tmp/sipalg-strace.txt`);
      return;
    }
    const data = '/tmp/sipalg-perf.data';
    const before = threadCpu(daemon!.pid!);
    const rec = spawnSync('perf', ['record', '-F', '1999', '-g', '-o', data, '-p', String(daemon!.pid), '--', 'sleep', String(seconds)], { encoding: 'utf8' });
    if (rec.status !== 0) throw new Error(`perf record: ${rec.stderr}`);
    // each thread's on-CPU time in the recorded window (schedstat), beside perf's samples of it
    const after = threadCpu(daemon!.pid!);
    const perThread = [...after].map(([tid, ns]) => [tid, (ns - (before.get(tid) ?? 0)) / 1e6] as const).filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1]);
    const total = perThread.reduce((s, [, ms]) => s + ms, 0);
    console.log(`daemon threads' CPU in the ${seconds} s recorded (schedstat): ${total.toFixed(0)} ms in all, ${(total * 1000 / (rate * seconds)).toFixed(1)} µs per message sent; by thread (ms): ${perThread.map(([t, ms]) => `${t} ${ms.toFixed(0)}`).join(', ')}`);
    const rep = spawnSync('perf', ['report', '-i', data, '--children', '--sort', 'sym', '-g', 'none', '--stdio'], { encoding: 'utf8', maxBuffer: 256 << 20 });
    const flat = spawnSync('perf', ['report', '-i', data, '--no-children', '--sort', 'sym', '-g', 'none', '--stdio'], { encoding: 'utf8', maxBuffer: 256 << 20 });
    writeFileSync('/tmp/sipalg-profile.txt', `${rep.stdout}\n\n==== flat ====\n${flat.stdout}`);
    if (process.env.SIPALG_PROFILE_NODE_FLAGS) writeFileSync('/tmp/sipalg-profile-daemon.log', daemon!.log());
    await load;
    console.log(`${kind} at ${rate}/s for ${seconds} s: /tmp/sipalg-profile.txt`);
  } finally {
    await lab.close();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });

/** On-CPU time of each thread of `pid`, ns (/proc/<pid>/task/<tid>/schedstat, first field). */
function threadCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(t), Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]));
    } catch { /* the thread ended */ }
  }
  return out;
}
