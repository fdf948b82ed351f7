/**
 * Real phones (issue 14): baresip behind the router, Kamailio and SIPp on the WAN; audio counted on
 * the wire at both ends. Each scenario runs with sip-alg (asserted) and, for the README's matrix,
 * with the kernel's SIP helper and with plain NAT (reported).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { describeResult, phoneScenario, SCENARIO_LABEL, type PhoneResult, type PhoneScenario } from '../../src/lab/phones';
import type { Mode } from '../../src/lab/media';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));

/** What sip-alg must deliver: [min RTP at the phone(s) side A, at side B]. */
const NEEDED: Record<PhoneScenario, [number, number]> = {
  out: [230, 300], // SIPp plays 236 to the phone; baresip sends ~50/s for ~9 s
  in: [230, 300],
  hairpin: [300, 300], // 7 s of ~50/s each way
  'hairpin-late': [300, 300], // the same once the held answer has reached phone 1
  reinvite: [460, 300], // 236 before and 236 after the far end's re-INVITE
  hold: [150, 150], // ~4.5 s of ~50/s each way after the resume
  transfer: [150, 150], // ~4 s each way between the phone and B
  silence: [230, 300],
  linphone: [230, 300],
};

async function matrix(t: { diagnostic: (s: string) => void }, scenario: PhoneScenario, modes: Mode[], sequential = false): Promise<Record<string, PhoneResult>> {
  const res: Record<string, PhoneResult> = {};
  // the modes side by side, each in a lab of its own (one after the other where the phone cannot run twice on a host)
  const rs: PhoneResult[] = [];
  if (sequential) for (const [i, m] of modes.entries()) rs.push(await phoneScenario(`bp${scenario[0]}${i}`, scenario, m));
  else rs.push(...await Promise.all(modes.map((m, i) => phoneScenario(`bp${scenario[0]}${i}`, scenario, m))));
  modes.forEach((m, i) => { res[m] = rs[i]!; });
  for (const m of modes) t.diagnostic(`${SCENARIO_LABEL[scenario]} | ${m === 'alg' ? 'sip-alg' : m === 'kernel' ? 'kernel helper' : 'plain NAT'} | ${describeResult(res[m]!)} | ${res[m]!.what}`);
  const a = res.alg!;
  assert.ok(a.callOk, `sip-alg: the call works: ${describeResult(a)}`);
  assert.ok(a.rxA >= NEEDED[scenario][0] && a.rxB >= NEEDED[scenario][1], `sip-alg: audio both ways (${a.what}): ${a.rxA} / ${a.rxB}`);
  return res;
}

for (const scenario of ['out', 'in', 'hairpin', 'hairpin-late', 'reinvite', 'hold', 'transfer'] as const) {
  test(`real phones (baresip): ${SCENARIO_LABEL[scenario]}, with sip-alg, the kernel helper and plain NAT`, { timeout: 180000 }, async (t) => {
    const res = await matrix(t, scenario, ['alg', 'kernel', 'none']);
    // the race is real: phone 2's audio was on its way before phone 1's pinhole could know it (the test can tell)
    if (scenario === 'hairpin-late') assert.ok((res.alg!.early ?? 0) >= 5, `phone 2's RTP reached the router before its answer reached phone 1: ${res.alg!.note}`);
    // the control: without an ALG the registrar learns a private Contact and cannot reach the phone
    if (scenario === 'in') assert.ok(!res.none!.callOk, `plain NAT: the inbound call must fail (the test can tell): ${describeResult(res.none!)}`);
  });
}

test('real phones (baresip): registered once, 3 min of silence with 30 s UDP timeouts, then an inbound call: sip-alg keeps the binding', { timeout: 300000 }, async (t) => {
  const res = await matrix(t, 'silence', ['alg', 'kernel', 'none']);
  // plain NAT fails here already for its private Contact (the 'in' scenario); reported, not a control for the silence
  t.diagnostic(`plain NAT: ${describeResult(res.none!)}`);
});

test('real phones (linphone): registered through the router, an inbound call with audio both ways, with sip-alg, the kernel helper and plain NAT', { timeout: 240000 }, async (t) => {
  const res = await matrix(t, 'linphone', ['alg', 'kernel', 'none'], true);
  assert.ok(!res.none!.callOk, `plain NAT: the inbound call must fail (private Contact): ${describeResult(res.none!)}`);
});
