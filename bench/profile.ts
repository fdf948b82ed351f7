/**
 * A perf profile of the daemon in situ (how ../shared/design/hot-path-observations.md was taken):
 * the lab with one queue, the daemon under `node --perf-basic-prof --interpreted-frames-native-stack`,
 * SIPp sending INVITEs with SDP (or REGISTERs) at a steady rate, `perf record -g` on the daemon
 * (cpu-clock: these machines have no hardware PMU), then the report by symbol, children included.
 *
 *   node dist/bench/profile.js [invite|register] [rate/s] [seconds]      (root; writes /tmp/sipalg-profile.txt)
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepare } from '../src/lab/media';
import { PROVIDER_IP, phoneIp, SRC_LAB } from '../src/lab/lab';

async function main(): Promise<void> {
  const kind = process.argv[2] === 'register' ? 'register' : 'invite';
  const rate = Number(process.argv[3] ?? 1500), seconds = Number(process.argv[4] ?? 8);
  process.env.SIPALG_NODE_FLAGS = '--perf-basic-prof --interpreted-frames-native-stack';
  const { lab, daemon } = await prepare('sprof', 1, 'alg', ['--state-dir', 'off'], '0:0', ['--source-rate', '0']);
  try {
    lab.start(lab.provider, 'sipp', ['-sn', 'uas', '-i', PROVIDER_IP, '-p', '5080', '-nostdin', '-nr']);
    await lab.waitListening(lab.provider, [5080]);
    const scenario = kind === 'register' ? ['-sf', join(SRC_LAB, 'scenarios/register.xml')] : ['-sn', 'uac'];
    const total = rate * (seconds + 4);
    const load = lab.runAsync(lab.phone(1), 'sipp', [...scenario, '-i', phoneIp(1), '-p', '5060', '-r', String(rate), '-m', String(total), '-d', '0', '-s', 'pbx', `${PROVIDER_IP}:5080`, '-nostdin', '-nr', '-timeout', `${seconds + 20}s`], (seconds + 30) * 1000);
    await new Promise((r) => setTimeout(r, 2000)); // warm up
    const data = '/tmp/sipalg-perf.data';
    const rec = spawnSync('perf', ['record', '-F', '1999', '-g', '-o', data, '-p', String(daemon!.pid), '--', 'sleep', String(seconds)], { encoding: 'utf8' });
    if (rec.status !== 0) throw new Error(`perf record: ${rec.stderr}`);
    const rep = spawnSync('perf', ['report', '-i', data, '--children', '--sort', 'sym', '-g', 'none', '--stdio'], { encoding: 'utf8', maxBuffer: 256 << 20 });
    const flat = spawnSync('perf', ['report', '-i', data, '--no-children', '--sort', 'sym', '-g', 'none', '--stdio'], { encoding: 'utf8', maxBuffer: 256 << 20 });
    writeFileSync('/tmp/sipalg-profile.txt', `${rep.stdout}\n\n==== flat ====\n${flat.stdout}`);
    await load;
    console.log(`${kind} at ${rate}/s for ${seconds} s: /tmp/sipalg-profile.txt`);
  } finally {
    await lab.close();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
