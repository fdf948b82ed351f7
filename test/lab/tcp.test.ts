/**
 * Integration, SIP over TCP (issue 7): the project's rules and the real daemon in the router
 * namespace; SIPp over TCP (-t t1: one connection for all calls) with SDP and RTP through media
 * pinholes, and a lab peer that packs several messages in one segment and spreads one message
 * over several. What crossed the WAN is read back with tshark (TCP stream reassembly and TCP
 * analysis are tshark's, not ours).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { metricSum, phoneIp, phoneIp6, PROVIDER_IP, PROVIDER_IP6, ROOT, ROUTER_WAN_IP6, SRC_LAB } from '../../src/lab/lab';
import { count, expectations, prepare } from '../../src/lab/media';

before(() => {
  assert.equal(process.getuid?.(), 0, 'the lab tests need root (namespaces, iptables, NFQUEUE)');
  for (const tool of ['sipp', 'tshark', 'tcpdump', 'conntrack', 'iptables'])
    assert.equal(spawnSync('sh', ['-c', `command -v ${tool}`]).status, 0, `${tool} is not installed (bash .ci/run installs it)`);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Frames of a capture that tshark's TCP analysis flags with `filter`. */
function tcpFlagged(pcap: string, filter: string): string[] {
  const r = spawnSync('tshark', ['-r', pcap, '-Y', filter, '-T', 'fields', '-e', 'frame.number', '-e', '_ws.expert.message'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim());
}
/** What wrong sequence or ACK numbers show as: a gap before a segment, an ACK of data never seen, reordering, a zero window. */
const BROKEN = 'tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment || tcp.analysis.out_of_order || tcp.analysis.zero_window';
const RESENT = 'tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission || tcp.analysis.duplicate_ack';

/** Both directions of every TCP stream in the capture, as tshark reassembles them. */
function tcpStreams(pcap: string): { client: string; server: string }[] {
  const ids = new Set(spawnSync('tshark', ['-r', pcap, '-T', 'fields', '-e', 'tcp.stream'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean));
  return [...ids].map((id) => {
    const out = spawnSync('tshark', ['-r', pcap, '-q', '-z', `follow,tcp,raw,${id}`], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout;
    let client = '', server = '';
    for (const line of out.split('\n')) {
      const m = /^(\t?)([0-9a-f]+)$/.exec(line);
      if (!m) continue;
      const text = Buffer.from(m[2]!, 'hex').toString('latin1');
      if (m[1]) server += text; else client += text;
    }
    return { client, server };
  });
}

/** Messages of a reassembled stream framed by Content-Length; problems where framing breaks. */
function frame(stream: string): { messages: string[]; problems: string[] } {
  const messages: string[] = [], problems: string[] = [];
  let s = stream;
  while (s.length) {
    s = s.replace(/^(\r\n)+/, '');
    if (!s.length) break;
    const h = s.indexOf('\r\n\r\n');
    if (h < 0 || !/^([A-Z]+ \S+ SIP\/2\.0|SIP\/2\.0 \d{3} )/.test(s)) { problems.push(`unframed: ${JSON.stringify(s.slice(0, 80))}`); break; }
    const cl = /^(?:Content-Length|l)\s*:\s*(\d+)\s*$/im.exec(s.slice(0, h));
    const len = h + 4 + Number(cl?.[1] ?? 0);
    if (!cl) problems.push('no Content-Length');
    if (s.length < len) { problems.push(`truncated message: ${JSON.stringify(s.slice(0, 80))}`); break; }
    messages.push(s.slice(0, len));
    s = s.slice(len);
  }
  return { messages, problems };
}

const leaks = (msgs: string[]) => msgs.filter((m) => /10\.77\.0\.\d+/.test(m.replace(/^(Call-ID|i)\s*:.*$/gim, '')));

test('SIP over TCP through the ALG: SIPp calls with RTP over one long-lived connection, packed and split messages; WAN streams clean, no TCP errors', { timeout: 240000 }, async () => {
  const { lab, log } = await prepare('stcp', 1, 'alg');
  try {
    const wan = await lab.capture(lab.router, 'wan0', 'wan', 'tcp or (udp and not port 5060)');
    const lan = await lab.capture(lab.phone(1), 'eth0', 'lan', 'tcp');
    const m0 = lab.metrics();

    // 1. SIPp over TCP, one connection (-t t1): one call with RTP from its pcap, then 30 calls
    // (a TCP phone's source port is ephemeral: the SIP port the rules match is the provider's 5060)
    const stopped = (p: ReturnType<typeof lab.start>) => new Promise((r) => { if (p.exitCode !== null) return r(0); p.once('exit', r); p.kill('SIGTERM'); setTimeout(r, 5000); });
    const uasRtp = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-rtp.xml'), '-t', 't1', '-i', PROVIDER_IP, '-p', '5060', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
    await lab.waitListening(lab.provider, [5060], 10000, 'tcp');
    const rtpCall = lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-t', 't1', '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5060`, '-nostdin', '-nr', '-timeout', '40s', '-timeout_error'], 60000);
    await sleep(4000);
    const during = expectations(lab);
    const rtp = await rtpCall;
    assert.equal(rtp.code, 0, `SIPp RTP call over TCP failed:\n${rtp.stdout.slice(-1500)}\n${rtp.stderr.slice(-1500)}\n${log().slice(-2000)}`);
    await stopped(uasRtp);

    const uas = lab.start(lab.provider, 'sipp', ['-sn', 'uas', '-t', 't1', '-i', PROVIDER_IP, '-p', '5060', '-nostdin', '-nr']);
    await lab.waitListening(lab.provider, [5060], 10000, 'tcp');
    const many = await lab.runAsync(lab.phone(1), 'sipp', ['-sn', 'uac', '-t', 't1', '-i', phoneIp(1), '-p', '5062', '-m', '30', '-r', '10', '-s', 'svc', `${PROVIDER_IP}:5060`, '-nostdin', '-nr', '-timeout', '40s', '-timeout_error'], 60000);
    assert.equal(many.code, 0, `30 SIPp calls over one TCP connection failed:\n${many.stdout.slice(-1500)}\n${log().slice(-2000)}`);
    await stopped(uas);

    // 2. packed and split messages, then 150 requests over one connection
    const peer = join(ROOT, 'dist/src/lab/tcp-peer.js');
    const srv = lab.start(lab.provider, process.execPath, [peer, 'server', PROVIDER_IP, '5060', '155']);
    let srvOut = '';
    srv.stdout!.on('data', (d: Buffer) => { srvOut += d.toString(); });
    await lab.waitListening(lab.provider, [5060], 10000, 'tcp');
    const cl = await lab.runAsync(lab.phone(1), process.execPath, [peer, 'client', phoneIp(1), PROVIDER_IP, '5060', '155'], 90000);
    await new Promise((r) => { if (srv.exitCode !== null) r(0); srv.once('exit', r); setTimeout(r, 5000); });
    const client = JSON.parse(cl.stdout.trim().split('\n').pop() || '{}');
    const server = JSON.parse(srvOut.trim().split('\n').pop() || '{}');
    assert.equal(server.received, 155, `server: ${srvOut} client: ${cl.stdout} ${cl.stderr}\n${log().slice(-2000)}`);
    assert.deepEqual(server.leaks, [], 'LAN addresses reached the WAN peer');
    assert.deepEqual(server.bad, [], 'the WAN peer saw broken framing');
    assert.equal(client.responses, 155, 'every request answered through the ALG');
    assert.deepEqual(client.badVia, [], 'responses name the phone as it wrote itself');
    assert.deepEqual(client.bad, []);

    await sleep(1500); // workers flush counters every second
    const m1 = lab.metrics();
    const [wanPcap, lanPcap] = [await wan.stop(), await lan.stop()];

    // the WAN's reassembled streams: framed by Content-Length, no LAN address outside Call-ID
    const streams = tcpStreams(wanPcap);
    assert.ok(streams.length >= 3, `${streams.length} TCP streams on the WAN`);
    let messages = 0;
    for (const st of streams) {
      for (const side of [st.client, st.server]) {
        const f = frame(side);
        assert.deepEqual(f.problems, [], 'WAN stream framing');
        assert.deepEqual(leaks(f.messages).map((m) => m.slice(0, 200)), [], 'LAN addresses on the WAN');
        messages += f.messages.length;
      }
    }
    assert.ok(messages >= 2 * 155 + 30 * 5, `${messages} SIP messages in the WAN streams`);
    // the split message really was spread over segments, and the packed ones shared one
    const segs = spawnSync('tshark', ['-r', wanPcap, '-Y', 'tcp.dstport==5060 && tcp.len>0', '-T', 'fields', '-e', 'tcp.len'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
    assert.ok(segs.filter((l) => l < 200).length >= 2, 'small segments of the split message crossed the WAN');
    // no TCP errors on either side of the router; the WAN carries no retransmission the phone did not send
    assert.deepEqual(tcpFlagged(wanPcap, BROKEN), [], 'tshark TCP analysis on the WAN');
    assert.deepEqual(tcpFlagged(lanPcap, BROKEN), [], 'tshark TCP analysis on the LAN');
    const resentWan = tcpFlagged(wanPcap, RESENT), resentLan = tcpFlagged(lanPcap, RESENT);
    assert.ok(resentWan.length <= resentLan.length, `retransmissions: WAN ${resentWan.length} (${resentWan.join('; ')}), LAN ${resentLan.length}`);
    // media: pinholes were open during the RTP call and the phone received the provider's audio
    assert.ok(during >= 1, `pinholes during the TCP call: ${during}`);
    const rx = count(wanPcap, `ip.src==${PROVIDER_IP} && udp.srcport==7000`);
    assert.ok(rx >= 200, `audio from the provider crossed the WAN: ${rx}`);
    const d = (name: string, labels: Record<string, string>) => metricSum(m1, name, labels) - metricSum(m0, name, labels);
    assert.ok(d('sipalg_messages_total', { direction: 'out', message: 'INVITE', outcome: 'rewritten' }) >= 30, 'INVITEs over TCP rewritten');
    assert.ok(d('sipalg_messages_total', { direction: 'in', message: '2xx', outcome: 'rewritten' }) >= 150, 'responses over TCP rewritten');
    assert.equal(d('sipalg_packets_total', { reason: 'tcp_incomplete' }), 0, 'no message given up');
    assert.equal(d('sipalg_packets_total', { reason: 'internal_error' }), 0);
  } finally {
    await lab.close();
  }
});

test('SIP over TCP with 10% loss on both sides of the router: every retransmission crosses the WAN rewritten exactly as the first time', { timeout: 180000 }, async (t) => {
  const { lab, log } = await prepare('stcl', 1, 'alg', [], '0:0');
  try {
    const m0 = lab.metrics();
    // loss past the ALG: the far end drops what the router sent it, the phone drops what reached it
    for (const [ns, port] of [[lab.provider, '--dport'], [lab.phone(1), '--sport']] as const) {
      const r = lab.run(ns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', port, '5060', '-m', 'statistic', '--mode', 'random', '--probability', '0.1', '-j', 'DROP']);
      assert.equal(r.code, 0, r.stderr);
    }
    const wan = await lab.capture(lab.router, 'wan0', 'wan', 'tcp port 5060');
    const peer = join(ROOT, 'dist/src/lab/tcp-peer.js');
    const srv = lab.start(lab.provider, process.execPath, [peer, 'server', PROVIDER_IP, '5060', '80']);
    let srvOut = '';
    srv.stdout!.on('data', (d: Buffer) => { srvOut += d.toString(); });
    await lab.waitListening(lab.provider, [5060], 10000, 'tcp');
    const cl = await lab.runAsync(lab.phone(1), process.execPath, [peer, 'client', phoneIp(1), PROVIDER_IP, '5060', '80'], 120000);
    await new Promise((r) => { if (srv.exitCode !== null) r(0); srv.once('exit', r); setTimeout(r, 8000); });
    const client = JSON.parse(cl.stdout.trim().split('\n').pop() || '{}');
    const server = JSON.parse(srvOut.trim().split('\n').pop() || '{}');
    assert.equal(server.received, 80, `server: ${srvOut} client: ${cl.stdout}\n${log().slice(-2000)}`);
    assert.deepEqual(server.leaks, []);
    assert.deepEqual(server.bad, []);
    assert.equal(client.responses, 80);
    assert.deepEqual(client.badVia, []);
    const pcap = await wan.stop();
    // every byte position sent twice or more on the WAN carried the same byte each time
    const rows = spawnSync('tshark', ['-r', pcap, '-Y', 'tcp.len>0', '-T', 'fields', '-E', 'separator=|', '-e', 'tcp.srcport', '-e', 'tcp.seq_raw', '-e', 'tcp.payload'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout.split('\n').filter(Boolean);
    const bytes = new Map<string, number>();
    let resent = 0, mismatched = 0;
    for (const row of rows) {
      const [sport, seq, hex] = row.split('|');
      const data = Buffer.from(hex!.replace(/:/g, ''), 'hex');
      let again = false;
      for (let i = 0; i < data.length; i++) {
        const k = `${sport}:${(Number(seq) + i) >>> 0}`;
        const prev = bytes.get(k);
        if (prev === undefined) bytes.set(k, data[i]!);
        else { again = true; if (prev !== data[i]) mismatched++; }
      }
      if (again) resent++;
    }
    const d = (reason: string) => metricSum(lab.metrics(), 'sipalg_packets_total', { reason }) - metricSum(m0, 'sipalg_packets_total', { reason });
    // a sender whose window fell to one segment resends the first held segment of a message: its
    // start line goes ahead (tcp_prefix); held segments still incomplete after tcp-hold-ms are
    // dropped (leak-policy drop), never passed unchanged with the phone's address in them
    t.diagnostic(`segments that crossed the WAN again: ${resent}; start lines sent ahead: ${d('tcp_prefix')}; held segments dropped at tcp-hold-ms: ${d('tcp_incomplete')}`);
    assert.ok(resent >= 3, `the loss made segments cross again (${resent})`);
    assert.equal(mismatched, 0, `${mismatched} bytes differ between a segment and its retransmission`);
    // and the streams tshark reassembles are clean SIP
    for (const st of tcpStreams(pcap)) for (const side of [st.client, st.server]) {
      const f = frame(side);
      assert.deepEqual(f.problems, []);
      assert.deepEqual(leaks(f.messages).map((m) => m.slice(0, 200)), []);
    }
  } finally {
    await lab.close();
  }
});

test('SIP over TCP over IPv6 through NAT66: packed and split messages and many requests; clean WAN streams, no TCP errors', { timeout: 120000 }, async () => {
  const { lab, log } = await prepare('stc6', 1, 'alg', [], '0:0');
  try {
    const wan = await lab.capture(lab.router, 'wan0', 'wan', 'ip6 and tcp port 5060');
    const peer = join(ROOT, 'dist/src/lab/tcp-peer.js');
    const srv = lab.start(lab.provider, process.execPath, [peer, 'server', PROVIDER_IP6, '5060', '40']);
    let srvOut = '';
    srv.stdout!.on('data', (d: Buffer) => { srvOut += d.toString(); });
    await lab.waitListening(lab.provider, [5060], 10000, 'tcp');
    const cl = await lab.runAsync(lab.phone(1), process.execPath, [peer, 'client', phoneIp6(1), PROVIDER_IP6, '5060', '40'], 60000);
    await new Promise((r) => { if (srv.exitCode !== null) r(0); srv.once('exit', r); setTimeout(r, 5000); });
    const client = JSON.parse(cl.stdout.trim().split('\n').pop() || '{}');
    const server = JSON.parse(srvOut.trim().split('\n').pop() || '{}');
    assert.equal(server.received, 40, `server: ${srvOut} client: ${cl.stdout} ${cl.stderr}\n${log().slice(-2000)}`);
    assert.deepEqual(server.leaks, [], 'LAN addresses reached the WAN peer');
    assert.deepEqual(server.bad, []);
    assert.equal(client.responses, 40);
    assert.deepEqual(client.badVia, [], 'responses name the phone as it wrote itself');
    const pcap = await wan.stop();
    const streams = tcpStreams(pcap);
    assert.equal(streams.length, 1);
    for (const side of [streams[0]!.client, streams[0]!.server]) {
      const f = frame(side);
      assert.deepEqual(f.problems, []);
      assert.deepEqual(leaks(f.messages), []);
      assert.ok(f.messages.every((m) => !/fd00:77:/.test(m.replace(/^Call-ID:.*$/gm, ''))));
    }
    assert.ok(frame(streams[0]!.client).messages.some((m) => m.includes(`[${ROUTER_WAN_IP6}]`)), 'the public IPv6 address in the messages');
    // checksums: a payload changed in NFQUEUE leaves the router with CHECKSUM_NONE, so the far end's
    // stack verified every rewritten segment it delivered (tshark cannot judge them on veth: the
    // unchanged ones still carry offloaded, unfinished checksums)
    assert.deepEqual(tcpFlagged(pcap, BROKEN), []);
  } finally {
    await lab.close();
  }
});

test('SIP over TLS (5061) crosses the router untouched and is counted: a real TLS session, the same bytes on both sides of the NAT', { timeout: 90000 }, async () => {
  const { lab, log } = await prepare('stls', 1, 'alg', [], '0:0');
  try {
    const dir = lab.dir;
    const gen = lab.run(lab.provider, 'openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=provider.test', '-days', '1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')]);
    assert.equal(gen.code, 0, gen.stderr);
    const m0 = lab.metrics();
    const lan = await lab.capture(lab.phone(1), 'eth0', 'tls-lan', 'tcp port 5061');
    const wan = await lab.capture(lab.router, 'wan0', 'tls-wan', 'tcp port 5061');
    // s_server ends at EOF on its stdin: keep it open for the test's length
    const srv = lab.start(lab.provider, 'sh', ['-c', `sleep 30 | exec openssl s_server -accept ${PROVIDER_IP}:5061 -cert ${join(dir, 'c.pem')} -key ${join(dir, 'k.pem')} -naccept 1 -quiet`]);
    let got = '';
    srv.stdout!.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    await lab.waitListening(lab.provider, [5061], 10000, 'tcp');
    // a SIPS INVITE naming the phone's private address: inside TLS the router cannot see it
    const invite = `INVITE sips:bob@${PROVIDER_IP} SIP/2.0\r\nVia: SIP/2.0/TLS ${phoneIp(1)}:5061;branch=z9hG4bK-tls1\r\nContact: <sips:alice@${phoneIp(1)}:5061>\r\nContent-Length: 0\r\n\r\n`;
    writeFileSync(join(dir, 'invite.txt'), invite);
    const cl = await lab.runAsync(lab.phone(1), 'sh', ['-c', `(cat ${join(dir, 'invite.txt')}; sleep 1) | openssl s_client -connect ${PROVIDER_IP}:5061 -quiet -no_ign_eof -verify_quiet`], 20000);
    await new Promise((r) => { if (srv.exitCode !== null) r(0); srv.once('exit', r); setTimeout(r, 3000); });
    assert.ok(got.includes(invite), `the far end read the INVITE as sent (${JSON.stringify(got.slice(0, 200))}); client ${cl.code} ${cl.stderr.slice(-300)}\n${log().slice(-1500)}`);
    const [lanPcap, wanPcap] = [await lan.stop(), await wan.stop()];
    // a real TLS handshake crossed the WAN, and the client's TLS bytes are the same on both sides of the NAT
    const hello = spawnSync('tshark', ['-r', wanPcap, '-d', 'tcp.port==5061,tls', '-Y', 'tls.handshake.type==1', '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8' }).stdout.trim();
    assert.ok(hello.length > 0, 'a TLS ClientHello on the WAN');
    const stream = (pcap: string, filter: string) => spawnSync('tshark', ['-r', pcap, '-Y', `${filter} && tcp.len>0`, '-T', 'fields', '-e', 'tcp.payload'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout.replace(/[\s:]/g, '');
    const sent = stream(lanPcap, 'tcp.dstport==5061');
    assert.ok(sent.length > 400, 'the client sent TLS records');
    assert.equal(stream(wanPcap, 'tcp.dstport==5061'), sent, 'LAN->WAN TLS bytes unchanged');
    assert.equal(stream(wanPcap, 'tcp.srcport==5061'), stream(lanPcap, 'tcp.srcport==5061'), 'WAN->LAN TLS bytes unchanged');
    // the source address was still translated by the kernel's NAT, and the connection was counted
    assert.equal(spawnSync('tshark', ['-r', wanPcap, '-Y', `ip.addr==${phoneIp(1)}`], { encoding: 'utf8' }).stdout.trim(), '');
    await sleep(1500); // one stats flush
    const tls = metricSum(lab.metrics(), 'sipalg_packets_total', { reason: 'tls_passthrough' }) - metricSum(m0, 'sipalg_packets_total', { reason: 'tls_passthrough' });
    assert.ok(tls >= 1, `tls_passthrough counted (${tls})`);
  } finally {
    await lab.close();
  }
});
