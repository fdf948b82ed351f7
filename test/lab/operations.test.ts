/**
 * Operations (issue 5) against the real daemon in the lab: /metrics moves during a call, the
 * inspection commands list the live call, its pinholes and a registration, a capture's before /
 * after / wire files parse with tshark and differ exactly in the translated fields, and a config
 * reload (SIGHUP and `sip-alg reload`) keeps the call and its audio up.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, metricSum, phoneIp, PROVIDER_IP, ROUTER_WAN_IP, SRC_LAB } from '../../src/lab/lab';
import { count, prepare } from '../../src/lab/media';
import { readSip, tsharkProblems } from '../../src/lab/wire-check';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sippArgs = ['-nostdin', '-nr', '-timeout', '30s', '-timeout_error'];

/** Header (or SDP line type) of a SIP/SDP line. */
const lineKey = (l: string) => (/^([A-Za-z-]+)\s*:/.exec(l)?.[1]?.toLowerCase() ?? /^([a-z])=/.exec(l)?.[1] ?? (/^[A-Z]+ \S+ SIP\/2\.0$/.test(l) ? 'request-line' : l));
/** A line with its addresses and numbers blanked: a translation changes nothing else. */
const shape = (l: string) => l.replace(/\d{1,3}(\.\d{1,3}){3}/g, 'IP').replace(/\d+/g, 'N');
const TRANSLATED = new Set(['via', 'v', 'contact', 'm', 'from', 'f', 'to', 't', 'route', 'record-route', 'request-line', 'content-length', 'l', 'c', 'o', 'a']);

test('during a call: metrics move, calls/pinholes/registrations/stats show it, capture before/after/wire, reload keeps it up', { timeout: 180000 }, async () => {
  const cfgDir = mkdtempSync(join(tmpdir(), 'sipalg-cfg-'));
  const cfg = join(cfgDir, 'sip-alg.json');
  writeFileSync(cfg, JSON.stringify({ 'log-level': 'info', 'worker-scheduling': 'batch' }));
  const { lab, log, daemon } = await prepare('sop1', 1, 'alg', ['--config', cfg]);
  try {
    const m0 = lab.metrics();
    // config worker-scheduling batch (the file above): the two workers' threads, and they alone, run
    // as SCHED_BATCH (policy 3: field 41 of /proc/<pid>/task/<tid>/stat, proc(5))
    const policies = readdirSync(`/proc/${daemon!.pid}/task`).map((t) => {
      const st = readFileSync(`/proc/${daemon!.pid}/task/${t}/stat`, 'utf8');
      return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[38]);
    });
    assert.equal(policies.filter((p) => p === 3).length, 2, `thread policies: ${policies.join(',')}`);
    await lab.startKamailio();
    const dir = lab.dir;
    const cap = lab.start(lab.router, process.execPath, [join(__dirname, '../../../bin/sip-alg'), 'capture', '--before', join(dir, 'before.pcap'), '--after', join(dir, 'after.pcap'), '--wire', join(dir, 'wire.pcap'), '--iface', 'wan0', '--ports', '5060,5080', '--host', phoneIp(1), '--seconds', '25', '--socket', lab.controlSocket]);
    const trace = lab.start(lab.router, process.execPath, [join(__dirname, '../../../bin/sip-alg'), 'trace', '--host', phoneIp(1), '--seconds', '25', '--socket', lab.controlSocket]);
    let traceOut = '';
    trace.stdout!.on('data', (d: Buffer) => (traceOut += d.toString()));
    await Lab.waitFor(cap, /capturing for up to/, 10000, 'sip-alg capture');
    await sleep(300);

    const reg = await lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/register.xml'), '-i', phoneIp(1), '-p', '5060', '-m', '1', '-s', 'phone1', `${PROVIDER_IP}:5060`, ...sippArgs]);
    assert.equal(reg.code, 0, reg.stdout.slice(-800));

    const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp and not port 5060');
    const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-rtp.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
    const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 30000); });
    await lab.waitListening(lab.provider, [5080]);
    const call = lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`, ...sippArgs]);
    await lab.waitConntrack(/dport=7000 /); // answered: media flows

    // sip-alg calls: the live call, its media mapping and pinholes
    const calls = lab.cli(['calls', '--json']);
    assert.equal(calls.code, 0, calls.stderr);
    const rows = JSON.parse(calls.stdout) as { callId: string; phone: string; state: string; pinholes: number; media: { rtp: string }[] }[];
    assert.equal(rows.length, 1, calls.stdout);
    const live = rows[0]!;
    assert.equal(live.phone, phoneIp(1));
    assert.equal(live.state, 'confirmed');
    assert.equal(live.pinholes, 2);
    assert.match(live.media[0]!.rtp, new RegExp(`^${phoneIp(1)}:6000<-${ROUTER_WAN_IP}:\\d+$`));
    const table = lab.cli(['calls']);
    assert.ok(table.stdout.includes(live.callId) && table.stdout.includes('CALL-ID'), table.stdout);

    // sip-alg pinholes: read from the kernel's expectation table, joined to the call
    const ph = JSON.parse(lab.cli(['pinholes', '--json']).stdout) as { public: string; to: string; callId: string }[];
    assert.ok(ph.length >= 1, 'at least the RTCP pinhole is still pending');
    for (const p of ph) {
      assert.equal(p.callId, live.callId);
      assert.match(p.to, new RegExp(`^${phoneIp(1).replace(/\./g, '\\.')}:600[01]$`));
    }
    const kernelExp = lab.conntrack(['-L', 'expect']).split('\n').filter((l) => /^\d+ proto=17/.test(l.trim())).length;
    assert.equal(ph.length, kernelExp, 'the same count as conntrack -L expect');

    const regs = JSON.parse(lab.cli(['registrations', '--json']).stdout) as { aor: string; phone: string; public: string }[];
    assert.equal(regs.length, 1);
    assert.match(regs[0]!.aor, /phone1@/);
    assert.equal(regs[0]!.phone, `${phoneIp(1)}:5060`);

    const stats = JSON.parse(lab.cli(['stats', '--json']).stdout) as { workersUp: number; dialogsActive: number; registrationsActive: number; queues: unknown[] };
    assert.equal(stats.workersUp, 2);
    assert.equal(stats.dialogsActive, 1);
    assert.equal(stats.registrationsActive, 1);
    assert.equal(stats.queues.length, 2);

    // reload mid-call: SIGHUP, then the command; a restart-only key is reported, not applied
    writeFileSync(cfg, JSON.stringify({ 'max-call-seconds': 3600, 'log-level': 'debug', 'worker-scheduling': 'batch' }));
    daemon!.kill('SIGHUP');
    await sleep(500);
    assert.match(log(), /msg="config reloaded" changed=max-call-seconds,log-level/);
    writeFileSync(cfg, JSON.stringify({ 'max-call-seconds': 3600, 'log-level': 'info', 'media-port-min': 20000, 'worker-scheduling': 'batch' }));
    const rl = lab.cli(['reload']);
    assert.equal(rl.code, 0, rl.stderr);
    assert.match(rl.stdout, /reloaded: log-level; not applied until restart: media-port-min/);

    const r = await call;
    await uasDone;
    assert.equal(r.code, 0, `the call completed across both reloads: ${r.stdout.slice(-600)}`);
    const rx = count(await phone.stop(), `ip.dst==${phoneIp(1)} && udp.dstport==6000 && udp.srcport==7000`);
    assert.ok(rx >= 230, `audio kept flowing: ${rx}/236`);

    // /metrics moved
    await sleep(1500); // one stats flush
    const m1 = lab.metrics();
    const delta = (name: string, labels: Record<string, string>) => metricSum(m1, name, labels) - metricSum(m0, name, labels);
    assert.equal(delta('sipalg_messages_total', { direction: 'out', message: 'INVITE', outcome: 'rewritten' }), 1);
    assert.ok(delta('sipalg_messages_total', { direction: 'in', message: '2xx', outcome: 'rewritten' }) >= 3, '200 to REGISTER, INVITE and BYE');
    assert.equal(delta('sipalg_messages_total', { direction: 'out', message: 'REGISTER', outcome: 'rewritten' }), 1);
    assert.ok(delta('sipalg_rewrites_total', { direction: 'out', field: 'sdp_m' }) >= 1, m1.split('\n').filter((l) => l.startsWith('sipalg_rewrites_total')).join('\n'));
    assert.equal(delta('sipalg_pinholes_total', { event: 'created' }), 2);
    assert.equal(delta('sipalg_dialogs_total', { event: 'created' }), 1);
    assert.equal(delta('sipalg_registrations_total', { event: 'created' }), 1);
    assert.ok(delta('sipalg_packet_processing_seconds_count', {}) >= 8);
    assert.ok(metricSum(m1, 'sipalg_queue_packets_total', { queue: '0' }) + metricSum(m1, 'sipalg_queue_packets_total', { queue: '1' }) >= 8);
    assert.equal(metricSum(m1, 'sipalg_worker_up', {}), 2);
    assert.equal(metricSum(m1, 'sipalg_errors_total', {}), 0, 'no parse, policy or internal error');

    // the capture: both files parse, one record per packet, and they differ only in translated fields
    cap.kill('SIGINT');
    trace.kill('SIGINT');
    await Promise.all([cap, trace].map((p) => new Promise((res) => (p.exitCode !== null ? res(0) : p.once('exit', res)))));
    const b = readSip(join(dir, 'before.pcap')), a = readSip(join(dir, 'after.pcap'));
    assert.ok(b.length >= 7, `SIP messages captured: ${b.length}`);
    assert.equal(a.length, b.length, 'nothing was dropped');
    assert.deepEqual(tsharkProblems(join(dir, 'before.pcap')), []);
    assert.deepEqual(tsharkProblems(join(dir, 'after.pcap')), []);
    let changed = 0;
    for (let i = 0; i < b.length; i++) {
      const lb = b[i]!.text.split('\r\n'), la = a[i]!.text.split('\r\n');
      assert.equal(la.length, lb.length, `frame ${i}: same lines`);
      for (let k = 0; k < lb.length; k++) {
        if (lb[k] === la[k]) continue;
        changed++;
        assert.ok(TRANSLATED.has(lineKey(lb[k]!)), `frame ${i}: only translated fields change, not: ${lb[k]} -> ${la[k]}`);
        assert.equal(shape(la[k]!), shape(lb[k]!), `frame ${i}: only addresses/ports/lengths change: ${lb[k]} -> ${la[k]}`);
      }
      if (b[i]!.src === phoneIp(1)) assert.ok(!a[i]!.text.replace(/^Call-ID:.*$/im, '').includes(phoneIp(1)), `frame ${i}: no LAN address left after the ALG`);
    }
    assert.ok(changed >= 10, `translated lines: ${changed}`);
    // what left the ALG is what crossed the WAN (cap, after the kernel's SNAT): same SIP bytes
    const wire = readSip(join(dir, 'wire.pcap')).filter((m) => m.src === ROUTER_WAN_IP);
    const outAfter = a.filter((m, i) => b[i]!.src === phoneIp(1));
    assert.equal(wire.length, outAfter.length, 'every LAN->WAN message is on the wire once');
    for (let i = 0; i < wire.length; i++) assert.equal(wire[i]!.text, outAfter[i]!.text);
    // the trace named the rewrites and showed the changed lines
    assert.match(traceOut, /LAN->WAN INVITE .* verdict=accept reason=rewritten rewrote=.*sdp/);
    assert.match(traceOut, /^ {4}- Contact: .*10\.77\.0\.11/m);
    assert.match(traceOut, /^ {4}\+ Contact: .*203\.0\.113\.1/m);
  } finally {
    await lab.close();
    rmSync(cfgDir, { recursive: true, force: true });
  }
});
