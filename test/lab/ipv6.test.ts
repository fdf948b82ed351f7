/**
 * Integration, IPv6 (issue 7): dual-stack phones behind a NAT66 (ip6tables MASQUERADE) router with
 * the project's rules (iptables and ip6tables from the same script) and the real daemon. SIPp calls
 * over IPv6 with SDP `IN IP6`, two phones on the same local port, an IPv4 call at the same time;
 * the WAN read back with tshark, the pinholes with `conntrack -L expect -f ipv6`, and one probe per
 * call from the provider to each advertised public media port.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { phoneIp, phoneIp6, PROVIDER_IP, PROVIDER_IP6, ROUTER_WAN_IP6, SRC_LAB, type Lab } from '../../src/lab/lab';
import { prepare } from '../../src/lab/media';

before(() => {
  assert.equal(process.getuid?.(), 0, 'the lab tests need root (namespaces, iptables, NFQUEUE)');
  for (const tool of ['sipp', 'tshark', 'tcpdump', 'conntrack', 'ip6tables'])
    assert.equal(spawnSync('sh', ['-c', `command -v ${tool}`]).status, 0, `${tool} is not installed (bash .ci/run installs it)`);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Msg { src: string; sport: number; text: string }
/** SIP datagrams of a capture, IPv4 or IPv6, read by tshark. */
function sip(pcap: string): Msg[] {
  const out = spawnSync('tshark', ['-r', pcap, '-Y', 'udp && !icmp && !icmpv6', '-T', 'fields', '-E', 'separator=|', '-e', 'ip.src', '-e', 'ipv6.src', '-e', 'udp.srcport', '-e', 'udp.payload'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout;
  return out.split('\n').filter(Boolean).map((l) => {
    const [v4, v6, sport, hex] = l.split('|');
    return { src: v4 || v6 || '', sport: Number(sport), text: Buffer.from((hex ?? '').replace(/:/g, ''), 'hex').toString('latin1') };
  }).filter((m) => /^(SIP\/2\.0 \d{3}|[A-Z]+ \S+ SIP\/2\.0)/.test(m.text));
}
const callId = (t: string) => /^Call-ID: (\S+)/m.exec(t)?.[1] ?? '';
const audioPort = (t: string) => Number(/^m=audio (\d+)/m.exec(t)?.[1] ?? 0);
const expectations = (lab: Lab, family: 'ipv4' | 'ipv6') => lab.conntrack(['-L', 'expect', '-f', family]).split('\n').filter((l) => /^\d+ proto=17/.test(l.trim())).length;

test('IPv6 through NAT66: dual-stack phones, two on one local port, calls with IN IP6 SDP, media pinholes reach the right phone; an IPv4 call alongside', { timeout: 180000 }, async () => {
  const { lab, log } = await prepare('sip6', 2, 'alg');
  try {
    const wan = await lab.capture(lab.router, 'wan0', 'wan', 'udp');
    const lans = await Promise.all([1, 2].map((i) => lab.capture(lab.phone(i), 'eth0', `lan${i}`, 'udp')));
    const uas6 = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-quiet.xml'), '-i', PROVIDER_IP6, '-p', '5080', '-nostdin', '-nr']);
    const uas4 = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-quiet.xml'), '-i', PROVIDER_IP, '-p', '5080', '-nostdin', '-nr']);
    await sleep(800);
    const uac = (i: number, ip: string, target: string, calls: number, port: string) => lab.runAsync(lab.phone(i), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-trunk.xml'), '-i', ip, '-p', port, '-mp', '20000', '-m', String(calls), '-l', String(calls), '-r', '20', '-s', 'trunk', target, '-nostdin', '-nr', '-timeout', '40s', '-timeout_error'], 60000);
    // both phones send IPv6 from local port 5060 (a NAT66 port clash) and phone 2 also calls over IPv4
    const runs = [uac(1, phoneIp6(1), `[${PROVIDER_IP6}]:5080`, 10, '5060'), uac(2, phoneIp6(2), `[${PROVIDER_IP6}]:5080`, 5, '5060'), uac(2, phoneIp(2), `${PROVIDER_IP}:5080`, 3, '5060')];
    await sleep(4000);
    const during = { v6: expectations(lab, 'ipv6'), v4: expectations(lab, 'ipv4') };
    // one probe per IPv6 call from the provider to the public media port its INVITE advertised
    const wanNow = sip(join(lab.dir, 'wan.pcap'));
    const invites6 = wanNow.filter((m) => m.src === ROUTER_WAN_IP6 && m.text.startsWith('INVITE'));
    const probes = invites6.map((m) => ({ id: callId(m.text), port: audioPort(m.text) })).filter((p) => p.port > 0);
    const js = `const d=require('dgram').createSocket('udp6');const p=${JSON.stringify(probes)};d.bind(9999,'${PROVIDER_IP6}',async()=>{for(const x of p){await new Promise(r=>d.send(x.id,x.port,'${ROUTER_WAN_IP6}',r));}setTimeout(()=>d.close(),200);});`;
    const sent = lab.run(lab.provider, process.execPath, ['-e', js]);
    assert.equal(sent.code, 0, sent.stderr);
    const results = await Promise.all(runs);
    for (const r of results) assert.equal(r.code, 0, `SIPp failed:\n${r.stdout.slice(-1200)}\n${r.stderr.slice(-600)}\n${log().slice(-1500)}`);
    uas6.kill(); uas4.kill();
    await sleep(3500); // teardown grace (2 s) + sweep
    const after = { v6: expectations(lab, 'ipv6'), v4: expectations(lab, 'ipv4') };
    const wanPcap = await wan.stop();
    const lanPcaps = await Promise.all(lans.map((c) => c.stop()));

    // the WAN: no ULA outside Call-ID; IPv6 messages from the router name its public address and real port
    const msgs = sip(wanPcap);
    const fromRouter6 = msgs.filter((m) => m.src === ROUTER_WAN_IP6); // INVITE, ACK, BYE per call
    assert.ok(fromRouter6.length >= 15 * 3, `${fromRouter6.length} IPv6 SIP messages from the router`);
    for (const m of msgs) assert.doesNotMatch(m.text.replace(/^Call-ID:.*$/gm, ''), /fd00:77:|10\.77\.0\./, `LAN address on the WAN:\n${m.text.slice(0, 300)}`);
    for (const m of fromRouter6) {
      const via = /^Via: SIP\/2\.0\/UDP \[([0-9a-f:]+)\]:(\d+)/m.exec(m.text);
      assert.ok(via, `top Via: ${m.text.slice(0, 200)}`);
      assert.deepEqual([via[1], Number(via[2])], [ROUTER_WAN_IP6, m.sport], 'Via sent-by is the public IPv6 binding');
      if (m.text.startsWith('INVITE')) assert.match(m.text, new RegExp(`^c=IN IP6 ${ROUTER_WAN_IP6}\\r$`, 'm'));
    }
    const ports = new Set(fromRouter6.map((m) => m.sport));
    assert.equal(ports.size, 2, `two phones on local port 5060 got two public IPv6 ports: ${[...ports]}`);
    assert.ok(msgs.some((m) => m.src === '203.0.113.1' && m.text.startsWith('INVITE')), 'the IPv4 call crossed too');

    // pinholes: IPv6 and IPv4 both open during the calls, none left after
    assert.ok(during.v6 >= 2 * 15, `IPv6 pinholes during the calls: ${during.v6}`);
    assert.ok(during.v4 >= 2 * 3, `IPv4 pinholes during the calls: ${during.v4}`);
    assert.deepEqual(after, { v6: 0, v4: 0 });
    // each probe reached the phone and private port of its own call
    const privatePort = new Map<string, number>();
    for (const p of lanPcaps) for (const m of sip(p)) if (m.text.startsWith('INVITE')) privatePort.set(callId(m.text), audioPort(m.text));
    let delivered = 0;
    for (const [k, p] of lanPcaps.entries()) {
      const rows = spawnSync('tshark', ['-r', p, '-Y', `udp.srcport==9999 && ipv6.dst==${phoneIp6(k + 1)}`, '-T', 'fields', '-e', 'udp.dstport', '-e', 'udp.payload'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      for (const row of rows) {
        const [port, hex] = row.split('\t');
        if (privatePort.get(Buffer.from((hex ?? '').replace(/:/g, ''), 'hex').toString()) === Number(port)) delivered++;
      }
    }
    assert.ok(probes.length >= 15, `${probes.length} IPv6 calls probed`);
    assert.equal(delivered, probes.length, 'every probe reached its own call');
  } finally {
    await lab.close();
  }
});
