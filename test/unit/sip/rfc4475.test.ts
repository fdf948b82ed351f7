/**
 * RFC 4475 (SIP torture test messages) through the per-message path, as a phone behind the router
 * sends them: test/fixtures/rfc4475/ holds the 49 messages byte for byte. Each valid one (§3.1.1) gets the
 * phone's address in its top Via sent-by and Contact (its README's recipe) and must come out with
 * that address translated and every other byte as sent. None of the invalid ones (§3.1.2) or the
 * others may throw, and none may leave rewritten with the phone's address in it; one that is passed
 * unchanged with the address is what the worker's leak guard drops (leak-policy drop).
 * The NAT binding is fixed here (no kernel in a unit test): public 198.51.1.1, the same length as
 * the phone's 10.77.0.11, and the same port, so the translation changes no length.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Processor } from '../../../src/alg/processor';
import { PortAllocator } from '../../../src/nat/port-allocator';
import type { BindingResolver, Binding } from '../../../src/nat/binding-resolver';
import { mayLeak } from '../../../src/policy/leak-guard';
import { udpPacket, payloadOf } from '../../helpers/packet';
import { asFromPhone, CORPUS, INVALID, PHONE, VALID } from '../../../src/lab/rfc4475';

const PUBLIC = '198.51.1.1', FAR = '203.0.113.10';

const binding: Binding = { privateIp: PHONE, privatePort: 5060, publicIp: PUBLIC, publicPort: 5060, source: 'conntrack' };
const resolver = { outbound: () => binding, inbound: () => binding } as unknown as BindingResolver;
const proc = () => new Processor(resolver, new PortAllocator(PortAllocator.createShared(), 1, 10000, 60999, 60000), { maxMessageSize: 65507, malformedPolicy: 'pass', ports: [5060] });

test('RFC 4475 §3.1.1: every valid message from a phone leaves with the phone\'s address translated and every other byte as sent', () => {
  assert.equal(readdirSync(CORPUS).filter((f) => f.endsWith('.dat')).length, 49, 'the 49 messages');
  const p = proc();
  for (const [name, hosts] of Object.entries(VALID)) {
    const sent = asFromPhone(name, hosts);
    const o = p.process(udpPacket(PHONE, FAR, 5060, 5060, sent), 'out', 0);
    assert.equal(o.reason, 'rewritten', `${name}: rewritten (${o.reason})`);
    assert.ok(o.accept && o.packet, name);
    // RFC 3261 §8.1.1.4: Call-ID is never changed (lwsdisp's names the host its Via does)
    const text = sent.toString('latin1'), split = text.indexOf('\r\n\r\n');
    const expected = text.slice(0, split).split('\r\n').map((l) => (/^(call-id|i)\s*:/i.test(l) ? l : l.split(PHONE).join(PUBLIC))).join('\r\n') + text.slice(split);
    assert.equal(payloadOf(o.packet!), expected, `${name}: the phone's address translated, every other byte as sent`);
  }
});

test('RFC 4475: no message of the 49 throws; of §3.1.2 (invalid) none leaves rewritten with the phone\'s address, and one passed unchanged with it is a leak the guard drops', (t) => {
  const p = proc();
  const all = readdirSync(CORPUS).filter((f) => f.endsWith('.dat')).map((f) => f.slice(0, -4));
  const outcomes: string[] = [];
  for (const name of all) {
    // the phone's address in place of the top Via's host, where there is one
    const raw = readFileSync(join(CORPUS, `${name}.dat`));
    const via = /^(?:Via|v)[ \t]*:[ \t]*SIP[ \t]*\/[ \t]*2\.0[ \t]*\/[ \t]*[A-Z]+[ \t]+([^;\s,]+)/im.exec(raw.toString('latin1'));
    const sent = via ? asFromPhone(name, [via[1]!]) : raw;
    const o = p.process(udpPacket(PHONE, FAR, 5060, 5060, sent), 'out', 0);
    outcomes.push(`${name}:${o.reason}`);
    const out = o.packet ? payloadOf(o.packet) : undefined;
    if (out !== undefined) {
      const leaked = out.split('\r\n').filter((l) => l.includes(PHONE) && !/^(call-id|i)\s*:/i.test(l));
      assert.deepEqual(leaked, [], `${name}: rewritten, and the phone's address left in it`);
    } else if (o.accept && sent.includes(PHONE) && INVALID.includes(name)) {
      assert.ok(mayLeak(o.reason), `${name}: passed unchanged (${o.reason}) with the phone's address, and the leak guard must treat it as a leak`);
    }
  }
  assert.equal(outcomes.length, 49);
  t.diagnostic(outcomes.join(' '));
});
