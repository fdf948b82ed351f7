/**
 * Media pinholes in the lab: conntrack expectations created by the daemon over ctnetlink, RTP
 * from SIPp's pcap play (g711a.pcap, 236 packets) through a FORWARD policy of DROP, counted at
 * both ends with tcpdump; `conntrack -L expect` during and after. Scenarios: src/lab/media.ts.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { forked, prepare, redialAndStranger, reinvite, singleCall, trunk, twoPhonesRtp } from '../../src/lab/media';
import { PROVIDER_IP } from '../../src/lab/lab';

before(() => assert.equal(process.getuid?.(), 0, 'the lab tests need root'));

test('two phones offering the same RTP port, far end sends first: each gets its own public port and only its own audio, both ways; pinholes during, none after', { timeout: 180000 }, async () => {
  const { lab, log } = await prepare('sam1', 2, 'alg');
  try {
    const r = await twoPhonesRtp(lab);
    assert.ok(r.callsOk, log().slice(-2000));
    for (const n of r.phoneRx) assert.ok(n >= 230 && n <= 236, `a phone received ${n} RTP packets (its own stream only: at most 236)`);
    for (const n of r.phoneTx) assert.ok(n >= 230, `a phone sent ${n}`);
    assert.equal(r.providerRxByPort.size, 2, `the provider sees two public media ports: ${JSON.stringify([...r.providerRxByPort])}`);
    for (const n of r.providerRxByPort.values()) assert.ok(n >= 230, `provider received ${n} packets from one phone`);
    assert.deepEqual(new Set(r.advertised), new Set(r.providerRxByPort.keys()), 'each phone\'s RTP left from the public port its SDP advertised');
    assert.ok(r.during.exp >= 2 && r.during.anchors === 2, `during the calls: ${JSON.stringify(r.during)}`);
    assert.deepEqual(r.after, { exp: 0, anchors: 0, flows: 0 }, 'after the calls: no pinhole, no anchor, no media conntrack');
  } finally {
    await lab.close();
  }
});

test('200 concurrent calls on one signaling flow (a PBX trunk): 400 pinholes at once, each delivers to its own call, none left after', { timeout: 180000 }, async () => {
  const { lab, log } = await prepare('sam2', 1, 'alg');
  try {
    const r = await trunk(lab, 200);
    assert.ok(r.callsOk, log().slice(-1500));
    assert.equal(r.invitesOnWan, 200, 'all 200 INVITEs crossed the WAN');
    assert.ok(r.during >= 400, `pinholes during the calls: ${r.during}`);
    assert.equal(r.delivered, 200, `probes delivered to their own call's private media port: ${r.delivered}/200`);
    assert.deepEqual(r.after, { exp: 0, anchors: 0 });
  } finally {
    await lab.close();
  }
});

test('a re-INVITE from the provider whose answer moves the phone\'s media port (seed 000, compressed): audio continues on the new port', { timeout: 180000 }, async () => {
  const { lab, log } = await prepare('sam3', 1, 'alg');
  try {
    const r = await reinvite(lab);
    assert.ok(r.callsOk, log().slice(-1500));
    assert.ok(r.rxBefore >= 230, `audio before the re-INVITE: ${r.rxBefore}`);
    assert.ok(r.rxAfter >= 230, `audio after the re-INVITE, on the new port: ${r.rxAfter}`);
    assert.equal(r.answerPorts.length, 2, 'the offer and the re-INVITE answer crossed the WAN with SDP');
    assert.notEqual(r.answerPorts[0], r.answerPorts[1], 'the answer advertises a new public port');
  } finally {
    await lab.close();
  }
});

test('early media: the far end\'s audio in the 183 phase reaches the phone, and the call goes on after the 200', { timeout: 180000 }, async () => {
  const { lab, log } = await prepare('sam4', 1, 'alg');
  try {
    const r = await singleCall(lab, 'uas-early.xml', 'uac-rtp.xml', 3000);
    assert.ok(r.callsOk, log().slice(-1500));
    assert.ok(r.phoneRx >= 230, `early media reaching the phone: ${r.phoneRx}`);
    assert.ok(r.providerRx >= 230, `the phone's audio after the answer: ${r.providerRx}`);
    assert.ok(r.sampled >= 1, 'pinholes during the early phase');
    assert.deepEqual(r.after, { exp: 0, anchors: 0 });
  } finally {
    await lab.close();
  }
});

test('hold (c=0.0.0.0, a=sendonly) keeps the pinholes (retain-on-hold) and audio flows again after the resume', { timeout: 180000 }, async () => {
  const { lab, log } = await prepare('sam5', 1, 'alg');
  try {
    const r = await singleCall(lab, 'uas-hold.xml', 'uac-hold.xml', 3000);
    assert.ok(r.callsOk, log().slice(-1500));
    assert.ok(r.sampled >= 1, `pinholes while on hold: ${r.sampled}`);
    assert.ok(r.phoneRx >= 230, `audio after the resume: ${r.phoneRx}`);
    assert.deepEqual(r.after, { exp: 0, anchors: 0 });
  } finally {
    await lab.close();
  }
});

test('a forked call (Kamailio forks to two UAS): the first 2xx wins, the other fork\'s media state goes, audio from the winner arrives', { timeout: 180000 }, async () => {
  const { lab, log } = await prepare('sam6', 1, 'alg');
  try {
    const r = await forked(lab);
    assert.ok(r.callsOk, log().slice(-2000));
    assert.ok(r.phoneRx >= 230, `audio from the winning fork: ${r.phoneRx}`);
    assert.ok(r.winnerFlows >= 1, 'media flow toward the winner');
    assert.equal(r.loserFlows, 0, 'no media flow left toward the cancelled fork');
    assert.deepEqual(r.after, { exp: 0, anchors: 0 });
  } finally {
    await lab.close();
  }
});

test('issue 19: a redial within the teardown grace from the same RTP port keeps every far-end packet; a WAN host that is not the far end reaches the phone with none; pinholes name the far end with a full mask; counts match the kernel', { timeout: 240000 }, async (t) => {
  const { lab, log } = await prepare('sam7', 1, 'alg', ['--teardown-grace-seconds', '5'], '0:0');
  try {
    const r = await redialAndStranger(lab, 'alg');
    t.diagnostic(`sip-alg: ${JSON.stringify(r)}`);
    assert.ok(r.callsOk, log().slice(-3000));
    assert.equal(r.advertised[0], r.advertised[1], 'the redial advertises the same public port (the lease is kept)');
    assert.deepEqual(r.farReceived, r.farSent, 'every far-end packet of both calls reached the phone (call 1 from another port of its SDP address, call 2 from its SDP ports)');
    assert.ok(r.lastPhaseSent > 0 && r.lastPhaseReceived === r.lastPhaseSent, `far-end audio well after the old call's grace ended: ${r.lastPhaseReceived}/${r.lastPhaseSent}`);
    for (const [phase, n] of Object.entries(r.strangerSent)) {
      assert.ok(n > 0, `the stranger sent while ${phase}`);
      assert.equal(r.strangerReceived[phase], 0, `the stranger's datagrams that reached the phone while ${phase}`);
    }
    for (const lines of r.expectRinging) {
      assert.ok(lines.length >= 2, `pinholes while the call rings: ${lines.join(' | ')}`);
      for (const l of lines) assert.match(l, new RegExp(`src=${PROVIDER_IP.replace(/\./g, '\\.')} dst=203\\.0\\.113\\.1 .*mask-src=255\\.255\\.255\\.255 `), 'a pinhole names the far end with a full source mask');
    }
    assert.deepEqual(r.pinholesReported, r.pinholesInKernel, '`sip-alg calls` counts the pinholes the kernel holds');
    assert.equal(r.failedPinholes, 0, 'no failed pinhole');
    assert.deepEqual(r.after, { exp: 0, anchors: 0 }, 'no pinhole or anchor after the calls');
  } finally {
    await lab.close();
  }
});

test('issue 19, the same scenario through the kernel\'s SIP helper (reported beside sip-alg\'s figures)', { timeout: 240000 }, async (t) => {
  const { lab } = await prepare('sam8', 1, 'kernel');
  try {
    const r = await redialAndStranger(lab, 'kernel');
    t.diagnostic(`kernel helper: ${JSON.stringify(r)}`);
    assert.ok(r.callsOk);
    assert.ok(r.advertised[1]! > 0, 'the redial crossed the WAN');
  } finally {
    await lab.close();
  }
});
