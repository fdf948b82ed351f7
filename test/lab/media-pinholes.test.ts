/**
 * Media pinholes in the lab: conntrack expectations created by the daemon over ctnetlink, RTP
 * from SIPp's pcap play (g711a.pcap, 236 packets) through a FORWARD policy of DROP, counted at
 * both ends with tcpdump; `conntrack -L expect` during and after.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Lab, phoneIp, PROVIDER_IP, SRC_LAB } from '../../src/lab/lab';
import { readSip } from '../../src/lab/wire-check';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function count(pcap: string, filter: string): number {
  const r = spawnSync('tshark', ['-r', pcap, '-Y', filter, '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return r.stdout.split('\n').filter(Boolean).length;
}
const expectations = (lab: Lab) => lab.conntrack(['-L', 'expect']).split('\n').filter((l) => l.includes('helper=sip')).length;
const anchors = (lab: Lab) => lab.conntrack(['-L']).split('\n').filter((l) => /dst=127\.1\.\d+\.1 /.test(l)).length;

async function setup(prefix: string, phones: number) {
  const lab = new Lab(prefix, phones);
  lab.up();
  assert.equal(lab.rules('install', ['--wan', 'wan0', '--queues', '0:1']).code, 0);
  const daemon = await lab.startDaemon(['--queues', '0:1', '--teardown-grace-seconds', '2']);
  return { lab, daemon };
}

test('two phones offering the same RTP port, far end sends first: each gets its own public port and only its own audio, both ways; pinholes during, none after', { timeout: 180000 }, async () => {
  const { lab, daemon } = await setup('sam1', 2);
  try {
    const caps = await Promise.all([
      lab.capture(lab.phone(1), 'eth0', 'p1', 'udp and not port 5060'),
      lab.capture(lab.phone(2), 'eth0', 'p2', 'udp and not port 5060'),
      lab.capture(lab.provider, 'eth0', 'w', 'udp'),
    ]);
    const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-rtp.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '2', '-nostdin', '-nr']);
    const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 15000); });
    await sleep(300);
    const calls = [1, 2].map((i) => lab.runAsync(lab.phone(i), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-rtp.xml'), '-i', phoneIp(i), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`, '-timeout', '30s', '-timeout_error', '-nostdin', '-nr'], 40000));
    await sleep(4000);
    const during = { exp: expectations(lab), anchors: anchors(lab), flows: lab.conntrack(['-L', '-p', 'udp']).split('\n').filter((l) => /port=700[01] /.test(l)).length };
    const results = await Promise.all(calls);
    for (const r of results) assert.equal(r.code, 0, r.stdout.slice(-1500) + daemon.log().slice(-2000));
    await uasDone;
    await sleep(3500); // teardown grace (2 s) + sweep
    const after = { exp: expectations(lab), anchors: anchors(lab), flows: lab.conntrack(['-L', '-p', 'udp']).split('\n').filter((l) => /port=700[01] /.test(l)).length };
    const [p1, p2, w] = await Promise.all(caps.map((c) => c.stop()));
    // RTP counted at both ends: 236 packets per stream in the pcap
    for (const [pcap, ip] of [[p1!, phoneIp(1)], [p2!, phoneIp(2)]] as const) {
      const got = count(pcap, `ip.dst==${ip} && udp.dstport==6000 && udp.srcport==7000`);
      assert.ok(got >= 230 && got <= 236, `${ip} received ${got} RTP packets (its own stream only: at most 236)`);
      assert.ok(count(pcap, `ip.src==${ip} && udp.srcport==6000`) >= 230);
    }
    const srcPorts = spawnSync('tshark', ['-r', w!, '-Y', `ip.dst==${PROVIDER_IP} && udp.dstport==7000`, '-T', 'fields', '-e', 'udp.srcport'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    const perPort = new Map<string, number>();
    for (const p of srcPorts) perPort.set(p, (perPort.get(p) ?? 0) + 1);
    assert.equal(perPort.size, 2, `the provider sees two public media ports: ${JSON.stringify([...perPort])}`);
    for (const n of perPort.values()) assert.ok(n >= 230, `provider received ${n} packets from one phone`);
    // the public port each phone's RTP left from is the one its SDP advertised on the WAN (symmetric RTP)
    const advertised = readSip(w!).filter((m) => m.text.startsWith('INVITE')).map((m) => /^m=audio (\d+)/m.exec(m.text)?.[1]);
    assert.deepEqual(new Set(advertised), new Set(perPort.keys()));
    assert.ok(during.exp >= 2 && during.anchors === 2, `during the calls: ${JSON.stringify(during)}`);
    assert.deepEqual(after, { exp: 0, anchors: 0, flows: 0 }, 'after the calls: no pinhole, no anchor, no media conntrack');
  } finally {
    await lab.close();
  }
});

test('200 concurrent calls on one signaling flow (a PBX trunk): 400 pinholes at once, each delivers to its own call, none left after', { timeout: 180000 }, async () => {
  const { lab, daemon } = await setup('sam2', 1);
  try {
    const wan = await lab.capture(lab.router, 'wan0', 'wan', 'udp port 5060 or udp port 5080');
    const lan = await lab.capture(lab.phone(1), 'eth0', 'lan', 'udp');
    const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-quiet.xml'), '-i', PROVIDER_IP, '-p', '5080', '-m', '200', '-nostdin', '-nr']);
    await sleep(300);
    const pbx = lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-trunk.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '20000', '-m', '200', '-l', '200', '-r', '200', '-s', 'trunk', `${PROVIDER_IP}:5080`, '-timeout', '40s', '-timeout_error', '-nostdin', '-nr'], 60000);
    await sleep(4500);
    const during = expectations(lab);
    // probe every pinhole from the provider with the Call-ID as payload, while the calls are up
    const wanPcap = lab.dir + '/wan.pcap';
    const invites = readSip(wanPcap).filter((m) => m.text.startsWith('INVITE'));
    const probes = invites.map((m) => ({ callId: /^Call-ID: (\S+)/m.exec(m.text)![1]!, port: Number(/^m=audio (\d+)/m.exec(m.text)![1]) }));
    const js = `const d=require('dgram').createSocket('udp4');const p=${JSON.stringify(probes)};d.bind(9999,'${PROVIDER_IP}',async()=>{for(const x of p){await new Promise(r=>d.send(x.callId,x.port,'203.0.113.1',r));}setTimeout(()=>d.close(),200);});`;
    assert.equal(lab.run(lab.provider, process.execPath, ['-e', js]).code, 0);
    const r = await pbx;
    assert.equal(r.code, 0, r.stdout.slice(-1500) + daemon.log().slice(-1500));
    uas.kill();
    await sleep(3500);
    const after = { exp: expectations(lab), anchors: anchors(lab) };
    await wan.stop();
    const lanPcap = await lan.stop();
    const privatePort = new Map(readSip(lanPcap).filter((m) => m.text.startsWith('INVITE')).map((m) => [/^Call-ID: (\S+)/m.exec(m.text)![1]!, Number(/^m=audio (\d+)/m.exec(m.text)![1])]));
    const arrived = spawnSync('tshark', ['-r', lanPcap, '-Y', `udp.srcport==9999 && ip.dst==${phoneIp(1)}`, '-T', 'fields', '-e', 'udp.dstport', '-e', 'udp.payload'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout.split('\n').filter(Boolean);
    let right = 0;
    for (const line of arrived) {
      const [port, hex] = line.split('\t');
      const callId = Buffer.from(hex!.replace(/:/g, ''), 'hex').toString();
      if (privatePort.get(callId) === Number(port)) right++;
    }
    assert.equal(probes.length, 200, 'all 200 INVITEs crossed the WAN');
    assert.ok(during >= 400, `pinholes during the calls: ${during}`);
    assert.equal(right, 200, `probes delivered to their own call's private media port: ${right}/200 (${arrived.length} arrived)`);
    assert.deepEqual(after, { exp: 0, anchors: 0 });
  } finally {
    await lab.close();
  }
});

test('a re-INVITE from the provider whose answer moves the phone\'s media port (seed 000, compressed): audio continues on the new port', { timeout: 180000 }, async () => {
  const { lab, daemon } = await setup('sam3', 1);
  try {
    const phone = await lab.capture(lab.phone(1), 'eth0', 'p1', 'udp');
    const wan = await lab.capture(lab.router, 'wan0', 'wan', 'udp');
    const uas = lab.start(lab.provider, 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uas-reinvite.xml'), '-i', PROVIDER_IP, '-p', '5080', '-mp', '7000', '-m', '1', '-nostdin', '-nr']);
    const uasDone = new Promise((r) => { uas.once('exit', r); setTimeout(r, 40000); });
    await sleep(300);
    const r = await lab.runAsync(lab.phone(1), 'sipp', ['-sf', join(SRC_LAB, 'scenarios/uac-reinvited.xml'), '-i', phoneIp(1), '-p', '5060', '-mp', '6000', '-m', '1', '-s', 'pbx', `${PROVIDER_IP}:5080`, '-timeout', '40s', '-timeout_error', '-nostdin', '-nr'], 60000);
    assert.equal(r.code, 0, r.stdout.slice(-1500) + daemon.log().slice(-1500));
    await uasDone;
    const p = await phone.stop();
    const w = await wan.stop();
    const before = count(p, `ip.dst==${phoneIp(1)} && udp.dstport==6000 && udp.srcport==7000`);
    const after = count(p, `ip.dst==${phoneIp(1)} && udp.dstport==6010 && udp.srcport==7000`);
    assert.ok(before >= 230, `audio before the re-INVITE: ${before}`);
    assert.ok(after >= 230, `audio after the re-INVITE, on the new port: ${after}`);
    const fromPhone = readSip(w).filter((m) => m.src === '203.0.113.1' && /^m=audio/m.test(m.text)).map((m) => Number(/^m=audio (\d+)/m.exec(m.text)![1]));
    assert.equal(fromPhone.length, 2, 'the offer and the re-INVITE answer crossed the WAN with SDP');
    assert.notEqual(fromPhone[0], fromPhone[1], 'the answer advertises a new public port');
  } finally {
    await lab.close();
  }
});
