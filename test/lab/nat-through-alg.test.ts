/**
 * Integration: real namespaces, the project's own iptables rules, the real daemon on real NFQUEUE,
 * SIPp phones and provider, Kamailio as registrar, tcpdump on the WAN link, tshark to read it,
 * conntrack to see the bindings. Needs root and the Debian packages .ci/run installs.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Lab, metricSum, phoneIp, PROVIDER_IP } from '../../src/lab/lab';
import { runScenario } from '../../src/lab/scenario';
import { prepare } from '../../src/lab/media';
import { readSip } from '../../src/lab/wire-check';

before(() => {
  assert.equal(process.getuid?.(), 0, 'the lab tests need root (namespaces, iptables, NFQUEUE)');
  for (const tool of ['sipp', 'kamailio', 'tshark', 'tcpdump', 'conntrack', 'iptables'])
    assert.equal(spawnSync('sh', ['-c', `command -v ${tool}`]).status, 0, `${tool} is not installed (bash .ci/run installs it)`);
});


test('two phones on local port 5060 behind one address: calls, registrations and inbound calls through the ALG, and the WAN carries only real bindings', { timeout: 180000 }, async () => {
  const lab = new Lab('sat1', 2);
  try {
    const r = await runScenario(lab, { prefix: 'sat1', phones: 2, callsPerPhone: 5, alg: true });
    for (const c of [...r.outbound, ...r.registrations, ...r.inbound]) assert.ok(c.ok, `${JSON.stringify(c)}\n${r.daemonLog.slice(-3000)}`);
    assert.deepEqual(r.problems, [], 'wire problems on the WAN');
    assert.deepEqual(r.tsharkProblems, [], 'tshark expert warnings or malformed frames');
    // every message of the scenario crossed: 2 phones x 5 calls x 6 messages + 2 x REGISTER/200 + 2 inbound calls x >= 6
    assert.ok(r.wan.length >= 2 * 5 * 6 + 2 * 2 + 2 * 6, `only ${r.wan.length} SIP messages on the WAN`);
    // the clash: phone 2's signaling flows were given another public port than 5060, and the same one for both flows
    const ports = (ip: string) => new Set(r.bindings.filter((b) => b.includes(`src=${ip} `)).map((b) => /dport=(\d+)\s+(\[|mark)/.exec(b)?.[1]));
    const p1 = ports(phoneIp(1)), p2 = ports(phoneIp(2));
    assert.equal(p1.size, 1);
    assert.equal(p2.size, 1);
    assert.notDeepEqual([...p1], [...p2], 'two phones must not share a public port');
    const phone2Port = Number([...p2][0]);
    // what the WAN saw from phone 2 names that port (Via/Contact were checked against the source port above)
    assert.ok(r.wan.some((m) => m.src === '203.0.113.1' && m.sport === phone2Port && m.text.includes(`203.0.113.1:${phone2Port}`)));
    // the registrar stored the public binding, and the inbound INVITE reached the phone through it
    assert.ok(r.wan.some((m) => m.text.startsWith('REGISTER') && m.text.includes(`<sip:phone2@203.0.113.1:${phone2Port}>`)));
    assert.ok(r.wan.some((m) => m.text.startsWith(`INVITE sip:phone2@203.0.113.1:${phone2Port}`)));
    // metrics moved (what the operator sees)
    assert.ok(metricSum(r.metrics, 'sipalg_packets_total', { verdict: 'accept', reason: 'rewritten' }) >= r.wan.length - 4);
    assert.ok(metricSum(r.metrics, 'sipalg_rewrites_total', { direction: 'out', field: 'sdp_c' }) >= 10);
    assert.ok(metricSum(r.metrics, 'sipalg_rewrites_total', { direction: 'in', field: 'request_uri' }) >= 2);
    assert.ok(metricSum(r.metrics, 'sipalg_nat_bindings_total', { source: 'created' }) >= 2, 'first packets used the pre-created binding');
  } finally {
    await lab.close();
  }
});

test('control: the same scenario without the ALG leaks LAN addresses and loses the inbound call', { timeout: 180000 }, async () => {
  const lab = new Lab('sat2', 2);
  try {
    const r = await runScenario(lab, { prefix: 'sat2', phones: 2, callsPerPhone: 1, alg: false });
    assert.ok(r.problems.some((p) => p.includes('LAN address')), 'the wire check must see the leak');
    assert.ok(r.inbound.some((c) => !c.ok), 'without the ALG the registrar cannot reach the phones');
  } finally {
    await lab.close();
  }
});

test('malformed SIP: dropped when it names the phone\'s private address (leak-policy drop), else passed unchanged, counted either way; SIGTERM stops cleanly; with no daemon SIP bypasses the queue', { timeout: 180000 }, async () => {
  const { lab, daemon: started } = await prepare('sat3', 1, 'alg');
  const daemon = started!;
  try {
    const cap = await lab.capture(lab.router, 'wan0', 'wan', 'udp port 5060');
    const bad = [
      'INVITE sip:a@203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.0.11:5060;branch=z9hG4bK1\r\nContent-Length: 900\r\n\r\nv=0\r\n',
      'INVITE sip:a@203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.0.11:5060;branch=z9hG4bK2\r\nTo: <sip:a@b',
      '\x16\x03\x01\x00\x05hello',
      'OPTIONS sip:a@203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.0.11:5060;branch=z9hG4bK3\r\nX-Nul: a\0b\r\nContent-Length: 0\r\n\r\n',
      'INVITE sip:a@203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK4\r\nContent-Length: 900\r\n\r\nv=0\r\n',
    ];
    // what would carry the phone's address to the WAN unrewritten is dropped; the rest passes as it is
    const leaky = bad.filter((m) => m.includes(phoneIp(1)));
    const harmless = bad.filter((m) => !m.includes(phoneIp(1)));
    const send = (msgs: string[]) => {
      const js = `const d=require('dgram').createSocket('udp4');const m=${JSON.stringify(msgs)};d.bind(5060,'${phoneIp(1)}',async()=>{for(const x of m){await new Promise(r=>d.send(Buffer.from(x,'latin1'),5060,'${PROVIDER_IP}',r));}d.close();});`;
      const r = lab.run(lab.phone(1), process.execPath, ['-e', js]);
      assert.equal(r.code, 0, r.stderr);
    };
    send(bad);
    await new Promise((r) => setTimeout(r, 1600)); // workers flush their counters every second
    const metrics = lab.metrics();
    // SIGTERM: clean exit
    const exited = new Promise<number | null>((res) => daemon.once('exit', (c) => res(c)));
    daemon.kill('SIGTERM');
    assert.equal(await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 5000))]), 0);
    // no daemon bound: --queue-bypass lets SIP through unchanged (fail-open)
    send(['OPTIONS sip:a@203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.0.11:5060;branch=z9hG4bKbypass\r\nContent-Length: 0\r\n\r\n']);
    await new Promise((r) => setTimeout(r, 300));
    const pcap = await cap.stop();
    const seen = spawnSync('tshark', ['-r', pcap, '-T', 'fields', '-e', 'udp.payload'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map((h) => Buffer.from(h.replace(/:/g, ''), 'hex').toString('latin1'));
    for (const m of harmless) assert.ok(seen.includes(m), `not passed unchanged: ${JSON.stringify(m.slice(0, 60))}`);
    for (const m of leaky) {
      const branch = /branch=(\w+)/.exec(m)![1]!;
      assert.ok(!seen.some((x) => x.includes(branch)), `a private address reached the WAN: ${JSON.stringify(m.slice(0, 70))}`);
    }
    assert.ok(seen.some((m) => m.includes('z9hG4bKbypass')), 'with no daemon, SIP must bypass the queue');
    for (const [verdict, reason] of [['drop', 'bad_content_length'], ['accept', 'bad_content_length'], ['drop', 'truncated_headers'], ['accept', 'not_sip'], ['drop', 'bad_header']])
      assert.equal(metricSum(metrics, 'sipalg_packets_total', { verdict: verdict!, reason: reason! }), 1, `${verdict} ${reason} counted once`);
    assert.equal(metricSum(metrics, 'sipalg_leaks_prevented_total', {}), leaky.length, 'each dropped one counted as a leak prevented');
    assert.equal(readSip(pcap).length >= 2, true);
  } finally {
    await lab.close();
  }
});

test('rules script: idempotent install, status, and remove leaves the firewall as it was (iptables-nft and iptables-legacy)', { timeout: 180000 }, () => {
  const lab = new Lab('sat4', 1);
  try {
    lab.up();
    for (const ipt of ['iptables-nft', 'iptables-legacy']) {
      if (spawnSync('sh', ['-c', `command -v ${ipt}`]).status !== 0) continue;
      // iptables-save without counters; a table holding nothing but empty ACCEPT chains is inert
      // (iptables-nft creates the mangle table on first use and leaves it) and is left out
      const save = () =>
        lab.run(lab.router, `${ipt}-save`, []).stdout.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n')
          .split(/(?=^\*)/m).filter((t) => !/^\*\w+\n(:\w+ ACCEPT \n)*COMMIT\n?$/.test(t)).join('');
      const before = save();
      const args = ['--wan', 'wan0', '--ports', '5060,5070', '--queues', '2:3', '--iptables', ipt];
      assert.equal(lab.rules('install', args).code, 0);
      assert.equal(lab.rules('install', args).code, 0, 'second install');
      const installed = save();
      assert.equal(installed.split('\n').filter((l) => /-[AI] (POSTROUTING|FORWARD) .*-j SIPALG$/.test(l)).length, 4, `${ipt}: one UDP and one TCP jump per direction after two installs`);
      // the per-source limit before the queue (issue 13), once
      assert.equal(installed.split('\n').filter((l) => /-A SIPALG_LIMIT .*hashlimit.*-j DROP$/.test(l)).length, 2, `${ipt}: one limit per direction`);
      // the jumps match the SIP ports, so RTP never walks the chain (issue 6)
      assert.match(installed, /-A POSTROUTING -o wan0 -p udp -m multiport --ports 5060,5070 .*-j SIPALG/);
      assert.match(installed, /-A FORWARD -i wan0 -p tcp -m multiport --ports 5060,5070,5061 .*-j SIPALG/);
      assert.match(installed, /-A SIPALG -p udp .*-j NFQUEUE --queue-balance 2:3 --queue-bypass/);
      // TCP to the first queue only; of TLS only connection openings
      assert.match(installed, /-A SIPALG -p tcp -m multiport --ports 5061 .*--tcp-flags FIN,SYN,RST,ACK SYN .*-j NFQUEUE --queue-num 2 --queue-bypass/);
      assert.match(installed, /-A SIPALG -p tcp -m comment --comment sip-alg -j NFQUEUE --queue-num 2 --queue-bypass/);
      // the same rules for IPv6 (NAT66) from the matching ip6tables
      const save6 = () => lab.run(lab.router, `${ipt.replace('iptables', 'ip6tables')}-save`, ['-t', 'mangle']).stdout;
      assert.match(save6(), /-A SIPALG -p udp .*-j NFQUEUE --queue-balance 2:3 --queue-bypass/);
      assert.match(save6(), /-A POSTROUTING -o wan0 -p udp -m multiport --ports 5060,5070 .*-j SIPALG/);
      const st = lab.rules('status', ['--iptables', ipt]);
      assert.equal(st.code, 0);
      assert.equal(lab.rules('install', [...args, '--fail-closed']).code, 0);
      assert.doesNotMatch(save(), /queue-bypass/, 'fail-closed installs no bypass');
      assert.equal(lab.rules('remove', ['--iptables', ipt]).code, 0);
      assert.equal(lab.rules('remove', ['--iptables', ipt]).code, 0, 'second remove');
      assert.equal(save(), before, `${ipt}: remove restores the firewall`);
      assert.doesNotMatch(save6(), /SIPALG/, `${ipt}: remove takes the IPv6 rules out too`);
      assert.equal(lab.rules('status', ['--iptables', ipt]).code, 3);
      assert.equal(lab.rules('install', ['--queues', '9:1', '--iptables', ipt]).code, 2, 'bad --queues is refused');
    }
  } finally {
    void lab.close();
  }
});
