/**
 * Overload and floods (issue 13): no private address ever leaves the router unrewritten, and the
 * other phones keep working. Real SIPp calls, the project's rules and daemon, the WAN link captured
 * with tcpdump and every SIP message read back with tshark.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { metricSum, phoneIp, PROVIDER_IP, ROUTER_WAN_IP, ROOT, type Lab } from '../../src/lab/lab';
import { prepare, type Daemon } from '../../src/lab/media';
import { checkWan, readSip } from '../../src/lab/wire-check';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const JUNK_HOST = '203.0.113.20';
const JUNK = join(ROOT, 'dist/src/lab/junk.js');

const rssKb = (d: Daemon) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))?.[1] ?? NaN);

/** WAN capture of SIP, IP fragments included (a giant header crosses fragmented). */
const wanCapture = (lab: Lab) => lab.capture(lab.router, 'wan0', 'wan', 'udp port 5060 or udp port 5080 or (ip[6:2] & 0x1fff != 0)');

/** Phone 2 places `n` calls to the provider's UAS, retransmitting as SIP over UDP does (no -nr). */
async function calls(lab: Lab, n: number) {
  lab.start(lab.provider, 'sipp', ['-sn', 'uas', '-i', PROVIDER_IP, '-p', '5080', '-nostdin']);
  await lab.waitListening(lab.provider, [5080]);
  return lab.runAsync(lab.phone(2), 'sipp', ['-sn', 'uac', '-i', phoneIp(2), '-p', '5060', '-m', String(n), '-r', '10', '-d', '1000', '-s', 'pbx', `${PROVIDER_IP}:5080`, '-nostdin', '-timeout', '90s', '-timeout_error'], 120000);
}

/**
 * The WAN check over every SIP message seen (tshark): no LAN address in any header but Call-ID or
 * SDP line, whoever sent it; the calls' messages (provider port 5080) also well formed, their Via
 * the real source. Junk that passes (no private address in it) need not be well formed.
 */
function wanProblems(pcap: string): { messages: number; fromRouter: number; problems: string[] } {
  const msgs = readSip(pcap);
  const o = { lanPrefix: '10.77.0.', publicIp: ROUTER_WAN_IP };
  const leaks = checkWan(msgs, o).filter((p) => p.includes('LAN address'));
  const calls = checkWan(msgs.filter((m) => m.dport === 5080 || m.sport === 5080), o);
  return { messages: msgs.length, fromRouter: msgs.filter((m) => m.src === ROUTER_WAN_IP).length, problems: [...new Set([...leaks, ...calls])] };
}

async function junkFloodWithCalls(t: { diagnostic: (s: string) => void }, prefix: string, queues: string, daemonArgs: string[], ruleArgs: string[], minCalls = 20) {
  const { lab, daemon, log } = await prepare(prefix, 2, 'alg', daemonArgs, queues, ruleArgs);
  try {
    assert.equal(lab.run(lab.provider, 'ip', ['addr', 'add', `${JUNK_HOST}/24`, 'dev', 'eth0']).code, 0);
    const wan = await wanCapture(lab);
    const rss0 = rssKb(daemon!);
    const placing = calls(lab, 20);
    await sleep(500);
    // phone 1 sends 20,000 hostile datagrams to port 5060 of another WAN host, as fast as it can
    const flood = await lab.runAsync(lab.phone(1), process.execPath, [JUNK, phoneIp(1), JUNK_HOST, '5060', '20000'], 120000);
    assert.equal(flood.code, 0, flood.stderr);
    const f = JSON.parse(flood.stdout) as { sent: number; ms: number };
    const rss1 = rssKb(daemon!);
    const r = await placing;
    await sleep(1500); // counters flush every second
    const m = lab.metrics();
    const w = wanProblems(await wan.stop());
    const ok = Number(/Successful call\s*\|\s*\d+\s*\|\s*(\d+)/.exec(r.stdout)?.[1] ?? (r.code === 0 ? 20 : 0));
    const q = {
      sourceLimited: metricSum(m, 'sipalg_source_limited_total', { direction: 'out' }),
      queueDropped: metricSum(m, 'sipalg_queue_dropped_total', {}),
      userDropped: metricSum(m, 'sipalg_queue_user_dropped_total', {}),
      leaksPrevented: metricSum(m, 'sipalg_leaks_prevented_total', {}),
      dropped: metricSum(m, 'sipalg_packets_total', { verdict: 'drop' }),
      accepted: metricSum(m, 'sipalg_packets_total', { verdict: 'accept' }),
    };
    t.diagnostic(`flood: ${f.sent} datagrams in ${f.ms} ms; WAN: ${w.messages} SIP messages checked (${w.fromRouter} from the router), ${w.problems.length} with a private address or wrong Via; calls ${ok}/20; ` +
      `kernel source-limited ${q.sourceLimited}, queue dropped ${q.queueDropped} (user ${q.userDropped}); daemon accepted ${q.accepted}, dropped ${q.dropped} (leaks prevented ${q.leaksPrevented}); RSS ${rss0} -> ${rss1} kB`);
    assert.equal(f.sent, 20000, 'the whole flood was sent');
    assert.deepEqual(w.problems.slice(0, 5), [], `no private address on the WAN\n${log().slice(-1500)}`);
    assert.ok(w.fromRouter >= 20 * 5, `the calls' messages crossed the WAN (${w.fromRouter})`);
    assert.ok(ok >= minCalls && (minCalls < 20 || r.code === 0), `${minCalls}/20 calls complete during the flood (${ok}): ${r.stdout.slice(-1500)}`);
    assert.ok(rss1 - rss0 < 64 * 1024, `the daemon's RSS stays bounded: ${rss0} -> ${rss1} kB`);
    return { lab, q, flood: f };
  } catch (e) {
    await lab.close();
    throw e;
  }
}

test('a 20k-datagram junk flood from one LAN host at full speed: another phone\'s 20 calls complete, no private address on the WAN, the kernel\'s per-source limit takes the flood', { timeout: 300000 }, async (t) => {
  const { lab, q } = await junkFloodWithCalls(t, 'sao1', '0:1', [], ['--source-rate', '200', '--source-burst', '400']);
  try {
    // at 200/s with a burst of 400, most of the flood never reaches a queue
    assert.ok(q.sourceLimited >= 10000, `the per-source limit dropped the bulk of the flood in the kernel: ${q.sourceLimited}`);
    assert.ok(q.leaksPrevented > 0, 'malformed datagrams naming the phone\'s address were dropped, not passed');
    assert.match(lab.cli(['stats']).stdout, /source-limited \(kernel, before the queue\)\s+out \d+/);
  } finally {
    await lab.close();
  }
});

test('the same flood into one tiny queue (16 packets, no per-source limit): the full queue drops, never passes unrewritten; the calls complete by retransmission', { timeout: 300000 }, async (t) => {
  // with no limit and 16 places, the other phone's messages are dropped with the junk and come back
  // by retransmission; one call in ~4 runs on a loaded 2-core box runs into SIPp's 32 s transaction
  // timeout (64*T1) instead: at least 19 of 20 must complete
  const { lab, q } = await junkFloodWithCalls(t, 'sao2', '0:0', ['--queue-maxlen', '16'], ['--source-rate', '0'], 19);
  try {
    assert.equal(q.sourceLimited, 0, 'no per-source limit installed');
    assert.ok(q.queueDropped + q.userDropped > 0, `the queue overflowed and the kernel dropped (counted): ${q.queueDropped} + ${q.userDropped}`);
  } finally {
    await lab.close();
  }
});

test('an INVITE flood at 10x the per-source limit from one phone: the other phone\'s calls all complete, nothing unrewritten on the WAN, every flood INVITE accounted for', { timeout: 180000 }, async (t) => {
  const { lab, daemon } = await prepare('sao3', 2, 'alg', ['--invite-rate-per-source', '100'], '0:1', ['--source-rate', '100', '--source-burst', '200']);
  try {
    const wan = await wanCapture(lab);
    const rss0 = rssKb(daemon!);
    lab.start(lab.provider, 'sipp', ['-sn', 'uas', '-i', PROVIDER_IP, '-p', '5080', '-nostdin']);
    await lab.waitListening(lab.provider, [5080]);
    // phone 1: 3000 INVITEs in ~3 s (1000/s: 10x the limit) toward a provider port; phone 2: 10 real calls meanwhile
    const flood = `const d=require('dgram').createSocket('udp4');d.bind(5060,'${phoneIp(1)}',async()=>{const t0=Date.now();for(let i=0;i<3000;i++){const m='INVITE sip:x@${PROVIDER_IP}:5099 SIP/2.0\\r\\nVia: SIP/2.0/UDP ${phoneIp(1)}:5060;branch=z9hG4bKf'+i+'\\r\\nFrom: <sip:f@${phoneIp(1)}>;tag='+i+'\\r\\nTo: <sip:x@${PROVIDER_IP}>\\r\\nCall-ID: flood'+i+'\\r\\nContact: <sip:f@${phoneIp(1)}:5060>\\r\\nCSeq: 1 INVITE\\r\\nContent-Length: 0\\r\\n\\r\\n';await new Promise(r=>d.send(m,5099,'${PROVIDER_IP}',r));if(i%10===9){const due=t0+i+1-Date.now();if(due>0)await new Promise(r=>setTimeout(r,due));}}console.log(Date.now()-t0);d.close();});`;
    const [f, c] = await Promise.all([
      lab.runAsync(lab.phone(1), process.execPath, ['-e', flood], 60000),
      lab.runAsync(lab.phone(2), 'sipp', ['-sn', 'uac', '-i', phoneIp(2), '-p', '5060', '-m', '10', '-r', '5', '-s', 'pbx', `${PROVIDER_IP}:5080`, '-nostdin', '-timeout', '60s', '-timeout_error'], 90000),
    ]);
    assert.equal(f.code, 0, f.stderr);
    await sleep(1500);
    const m = lab.metrics();
    const rss1 = rssKb(daemon!);
    const pcap = await wan.stop();
    const w = wanProblems(pcap);
    const passed = readSip(pcap).filter((x) => x.dport === 5099).length;
    const kernel = metricSum(m, 'sipalg_source_limited_total', { direction: 'out' });
    const limited = metricSum(m, 'sipalg_packets_total', { reason: 'rate_limited' });
    t.diagnostic(`INVITE flood: 3000 sent in ${f.stdout.trim()} ms; ${kernel} dropped by the kernel's per-source limit, ${limited} by the daemon's INVITE rate limit, ${passed} crossed the WAN (rewritten); ${w.messages} SIP messages checked, ${w.problems.length} problems; 10/10 calls; RSS ${rss0} -> ${rss1} kB`);
    assert.equal(c.code, 0, `the other phone's calls during the flood: ${c.stdout.slice(-800)}`);
    assert.deepEqual(w.problems.slice(0, 5), [], 'no private address on the WAN');
    assert.ok(kernel >= 1500, `the kernel's limit took most of the flood: ${kernel}`);
    assert.equal(passed + limited + kernel, 3000, `every flood INVITE was passed, limited in the kernel or limited by the daemon (${passed} + ${kernel} + ${limited})`);
    const seconds = Number(f.stdout.trim()) / 1000;
    assert.ok(passed <= 200 + 100 * seconds + 50, `no more than the burst and the rate crossed: ${passed} in ${seconds} s`);
    assert.ok(rss1 - rss0 < 64 * 1024, `RSS bounded: ${rss0} -> ${rss1} kB`);
  } finally {
    await lab.close();
  }
});
