/**
 * RFC 4475's valid torture messages (§3.1.1) sent by a phone through the router, on the real
 * NFQUEUE path: each arrives at the far end with the phone's address translated and every other
 * byte as sent (read back with tshark on the provider's interface, IP reassembly on for longreq).
 * The invalid ones (§3.1.2) are sent too: the daemon stays up and none reaches the WAN with the
 * phone's address (leak-policy drop, the default).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepare } from '../../src/lab/media';
import { PROVIDER_IP, ROUTER_WAN_IP } from '../../src/lab/lab';
import { asFromPhone, CORPUS, INVALID, PHONE, VALID } from '../../src/lab/rfc4475';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));

/** Sends each file of `msgs` as one datagram from the phone's 5060 to the provider's 5060, 100 ms apart. */
const SENDER = `const d=require('node:dgram').createSocket('udp4');const m=JSON.parse(process.argv[1]).map((h)=>Buffer.from(h,'hex'));d.bind(5060,'${PHONE}',async()=>{for(const b of m){await new Promise((r)=>d.send(b,5060,'${PROVIDER_IP}',r));await new Promise((r)=>setTimeout(r,100));}d.close();});`;

test('RFC 4475 through the router: the 13 valid messages arrive translated and otherwise byte for byte; the 19 invalid ones never carry the phone\'s address onto the WAN and the daemon stays up', { timeout: 120000 }, async (t) => {
  const { lab, log } = await prepare('s4475', 1, 'alg', [], '0:0');
  try {
    const cap = await lab.capture(lab.provider, 'eth0', 'w', 'udp port 5060 or (ip[6:2] & 0x1fff != 0)');
    const valid = Object.entries(VALID).map(([name, hosts]) => ({ name, sent: asFromPhone(name, hosts) }));
    const invalid = INVALID.map((name) => {
      const raw = readFileSync(join(CORPUS, `${name}.dat`));
      const via = /^(?:Via|v)[ \t]*:[ \t]*SIP[ \t]*\/[ \t]*2\.0[ \t]*\/[ \t]*[A-Z]+[ \t]+([^;\s,]+)/im.exec(raw.toString('latin1'));
      return { name, sent: via ? asFromPhone(name, [via[1]!]) : raw };
    });
    const all = [...valid, ...invalid];
    const r = lab.run(lab.phone(1), process.execPath, ['-e', SENDER, JSON.stringify(all.map((m) => m.sent.toString('hex')))], 60000);
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 500));
    const pcap = await cap.stop();
    const got = spawnSync('tshark', ['-r', pcap, '-o', 'ip.defragment:TRUE', '-Y', `ip.src==${ROUTER_WAN_IP} && udp.dstport==5060`, '-T', 'fields', '-e', 'udp.payload'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout.split('\n').filter(Boolean).map((h) => Buffer.from(h.replace(/:/g, ''), 'hex'));
    const matched: string[] = [];
    for (const { name, sent } of valid) {
      const text = sent.toString('latin1'), split = text.indexOf('\r\n\r\n');
      const expected = Buffer.from(text.slice(0, split).split('\r\n').map((l) => (/^(call-id|i)\s*:/i.test(l) ? l : l.split(PHONE).join(ROUTER_WAN_IP))).join('\r\n') + text.slice(split), 'latin1');
      if (got.some((g) => g.equals(expected))) matched.push(name);
    }
    const leaked = got.filter((g) => g.toString('latin1').split('\r\n').some((l) => l.includes(PHONE) && !/^(call-id|i)\s*:/i.test(l)));
    t.diagnostic(`datagrams at the far end: ${got.length} of ${all.length} sent; valid ones byte for byte (translated): ${matched.length}/${valid.length}; with the phone's address: ${leaked.length}`);
    assert.deepEqual(Object.keys(VALID).filter((n) => !matched.includes(n)), [], 'every valid message arrived translated and otherwise as sent');
    assert.equal(leaked.length, 0, `none with the phone's address outside Call-ID: ${leaked.map((g) => g.toString('latin1').split('\r\n')[0]).join(' | ')}`);
    assert.equal(lab.cli(['stats', '--json']).code, 0, `the daemon still answers: ${log().slice(-500)}`);
  } finally {
    await lab.close();
  }
});
