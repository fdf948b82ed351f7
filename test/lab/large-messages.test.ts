/**
 * Integration: SIP messages larger than the path MTU over UDP (a busy-lamp-field NOTIFY, seed 002:
 * "some ALGs only support 3000-byte SIP messages") through the real router and daemon. Conntrack
 * reassembles the fragments before the queue, the ALG rewrites the whole datagram (its length
 * changes), and the kernel fragments it again on the way out; both ends must get the complete,
 * translated message.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { metricSum, phoneIp, PROVIDER_IP, ROOT, ROUTER_WAN_IP } from '../../src/lab/lab';
import { prepare } from '../../src/lab/media';
import { tsharkProblems } from '../../src/lab/wire-check';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PEER = join(ROOT, 'dist/src/lab/udp-peer.js');
type Got = { received: { from: string; len: number; text: string }[] };
const parse = (out: string): Got => JSON.parse(out.trim().split('\n').pop() || '{"received":[]}') as Got;
/** Content-Length agrees with the body that arrived (RFC 3261 §18.3). */
const framed = (m: string) => {
  const h = m.indexOf('\r\n\r\n');
  const cl = /^Content-Length\s*:\s*(\d+)/im.exec(m.slice(0, h));
  return h > 0 && cl !== null && m.length - h - 4 === Number(cl[1]);
};
const leaks = (m: string) => /10\.77\.0\.\d+/.test(m.replace(/^(Call-ID|i)\s*:.*$/gim, ''));

test('a 6 KB NOTIFY over UDP both ways: fragmented on the wire, reassembled, rewritten, fragmented again; complete and translated at both ends', { timeout: 90000 }, async () => {
  const { lab, log } = await prepare('sbig', 1, 'alg');
  try {
    const m0 = lab.metrics();
    const wan = await lab.capture(lab.router, 'wan0', 'big-wan', 'udp or (ip[6:2] & 0x1fff != 0)');
    // LAN -> WAN: the phone's NOTIFY to the provider, answered with a 200
    const prov = lab.start(lab.provider, process.execPath, [PEER, 'recv', PROVIDER_IP, '5080', '1', '8000']);
    let provOut = '';
    prov.stdout!.on('data', (d: Buffer) => { provOut += d.toString(); });
    await lab.waitListening(lab.provider, [5080]);
    const a = await lab.runAsync(lab.phone(1), process.execPath, [PEER, 'send', phoneIp(1), '5060', PROVIDER_IP, '5080', '6000', '', '1500'], 20000);
    await new Promise((r) => { if (prov.exitCode !== null) r(0); prov.once('exit', r); setTimeout(r, 3000); });
    const atProvider = parse(provOut).received;
    assert.equal(atProvider.length, 1, `the provider got the NOTIFY: ${provOut} ${a.stderr}\n${log().slice(-1500)}`);
    const n = atProvider[0]!;
    assert.ok(n.len > 6000, `the whole message arrived (${n.len} bytes)`);
    assert.ok(framed(n.text), 'Content-Length matches the body');
    assert.match(n.text, new RegExp(`^Via: SIP/2\\.0/UDP ${ROUTER_WAN_IP.replace(/\./g, '\\.')}:5060;`, 'm'));
    assert.match(n.text, new RegExp(`^Contact: <sip:blf@${ROUTER_WAN_IP.replace(/\./g, '\\.')}:5060>`, 'm'));
    assert.ok(!leaks(n.text), 'no LAN address outside Call-ID');
    const ok = parse(a.stdout).received;
    assert.equal(ok.length, 1, `the phone got the 200: ${a.stdout}`);
    assert.match(ok[0]!.text, new RegExp(`^Via: SIP/2\\.0/UDP ${phoneIp(1).replace(/\./g, '\\.')}:5060;`, 'm'), 'the 200 names the phone as it wrote itself');

    // WAN -> LAN: the provider's NOTIFY to the phone's public binding
    const phone = lab.start(lab.phone(1), process.execPath, [PEER, 'recv', phoneIp(1), '5060', '1', '8000']);
    let phoneOut = '';
    phone.stdout!.on('data', (d: Buffer) => { phoneOut += d.toString(); });
    await lab.waitListening(lab.phone(1), [5060]);
    const b = await lab.runAsync(lab.provider, process.execPath, [PEER, 'send', PROVIDER_IP, '5080', ROUTER_WAN_IP, '5060', '6000', `sip:phone1@${ROUTER_WAN_IP}:5060`, '1500'], 20000);
    await new Promise((r) => { if (phone.exitCode !== null) r(0); phone.once('exit', r); setTimeout(r, 3000); });
    const atPhone = parse(phoneOut).received;
    assert.equal(atPhone.length, 1, `the phone got the NOTIFY: ${phoneOut} ${b.stderr}\n${log().slice(-1500)}`);
    assert.ok(framed(atPhone[0]!.text), 'Content-Length matches the body');
    assert.match(atPhone[0]!.text, new RegExp(`^NOTIFY sip:phone1@${phoneIp(1).replace(/\./g, '\\.')}:5060 SIP/2\\.0`), 'the Request-URI names the phone');
    assert.equal(parse(b.stdout).received.length, 1, 'the provider got the phone\'s 200');

    // on the wire: fragments both ways, and tshark reassembles clean SIP
    const pcap = await wan.stop();
    const frags = (filter: string) => spawnSync('tshark', ['-r', pcap, '-Y', filter], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.trim()).length;
    assert.ok(frags(`ip.flags.mf==1 && ip.src==${ROUTER_WAN_IP}`) >= 1, 'the rewritten NOTIFY left the router in fragments');
    assert.ok(frags(`ip.flags.mf==1 && ip.src==${PROVIDER_IP}`) >= 1, 'the provider\'s NOTIFY arrived in fragments');
    assert.deepEqual(tsharkProblems(pcap), []);
    assert.equal(frags('sip.Method=="NOTIFY"'), 2, 'tshark reassembles both NOTIFYs');
    await sleep(1500); // one stats flush
    const m1 = lab.metrics();
    for (const direction of ['out', 'in']) {
      const d = metricSum(m1, 'sipalg_messages_total', { direction, message: 'NOTIFY', outcome: 'rewritten' }) - metricSum(m0, 'sipalg_messages_total', { direction, message: 'NOTIFY', outcome: 'rewritten' });
      assert.equal(d, 1, `NOTIFY ${direction} rewritten`);
    }
  } finally {
    await lab.close();
  }
});
