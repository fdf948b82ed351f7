/**
 * `sip-alg demo`: builds the namespace lab, runs the real daemon on real NFQUEUE, places real
 * calls with SIPp through it (outbound to a provider, registration and inbound via Kamailio) and
 * prints what crossed the WAN link. Needs root and the Debian packages that .ci/run installs.
 */
import { join } from 'node:path';
import { Lab, ROOT } from './lab';
import { runScenario } from './scenario';
import { describe } from './wire-check';

export async function runDemo(argv: string[]): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('sip-alg demo: needs root (network namespaces, iptables, NFQUEUE)\n');
    return 1;
  }
  const calls = Number(argv[argv.indexOf('--calls') + 1]) || 3;
  const lab = new Lab('sademo', 2);
  const cleanup = () => void lab.close().then(() => process.exit(130));
  process.once('SIGINT', cleanup);
  process.once('SIGTERM', cleanup);
  try {
    const say = (s: string) => process.stdout.write(`== ${s}\n`);
    const r = await runScenario(lab, { prefix: 'sademo', phones: 2, callsPerPhone: calls, alg: true, onStep: say });
    say('what crossed the WAN link (captured on the router\'s wan0, read with tshark):');
    for (const m of r.wan.slice(0, 60)) process.stdout.write(`   ${describe(m)}\n`);
    if (r.wan.length > 60) process.stdout.write(`   ... ${r.wan.length - 60} more\n`);
    say('NAT bindings of the phones\' signaling flows (conntrack -L in the router):');
    for (const b of r.bindings) process.stdout.write(`   ${b.replace(/\s+/g, ' ')}\n`);
    say('results');
    for (const c of r.outbound) process.stdout.write(`   phone${c.phone} outbound ${c.calls} calls: ${c.detail}\n`);
    for (const c of r.registrations) process.stdout.write(`   phone${c.phone} REGISTER: ${c.detail}\n`);
    for (const c of r.inbound) process.stdout.write(`   phone${c.phone} inbound call via registrar: ${c.detail}\n`);
    process.stdout.write(`   WAN messages checked: ${r.wan.length}; problems: ${r.problems.length}; tshark warnings: ${r.tsharkProblems.length}\n`);
    for (const p of [...r.problems, ...r.tsharkProblems].slice(0, 20)) process.stdout.write(`   ! ${p}\n`);
    const rewritten = r.metrics.split('\n').filter((l) => /^sipalg_(rewrites|packets|pinholes|media_flows|dialogs)_total/.test(l));
    say('sip-alg metrics (from /metrics):');
    for (const l of rewritten) process.stdout.write(`   ${l}\n`);
    const ok = [...r.outbound, ...r.registrations, ...r.inbound].every((c) => c.ok) && r.problems.length === 0 && r.tsharkProblems.length === 0;
    say('sip-alg doctor, run in the router (what an operator runs on a real one):');
    const doctor = lab.run(lab.router, process.execPath, [join(ROOT, 'bin/sip-alg'), 'doctor', '--wan', 'wan0', '--queues', '0:1', '--control-socket', lab.controlSocket, '--state-dir', lab.dir]);
    for (const l of doctor.stdout.trimEnd().split('\n')) process.stdout.write(`   ${l}\n`);
    say(ok ? 'demo OK: every call completed and every message on the WAN carried the real public binding' : 'demo FAILED (see above)');
    if (argv.includes('--keep')) process.stdout.write(`pcap kept: ${r.pcap}\n`);
    return ok ? 0 : 1;
  } finally {
    if (argv.includes('--keep')) process.env.SIPALG_KEEP_LAB = '1';
    await lab.close();
  }
}
