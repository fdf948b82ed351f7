import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapWriter } from '../../../src/capture/pcap';
import { tapMatches, viewPacket } from '../../../src/capture/tap';
import { changedLines } from '../../../src/cli/inspect';
import { udpPacket } from '../../helpers/packet';
import { INVITE } from '../../helpers/fixtures';

const pkt = udpPacket('10.0.0.5', '198.51.100.7', 5060, 5060, INVITE);

test('pcap files: libpcap header, one record per packet, read back by tshark as SIP', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-pcap-'));
  try {
    const w = new PcapWriter(join(dir, 'x.pcap'));
    w.write(1_700_000_000_123_456, pkt);
    w.write(1_700_000_001_000_000, pkt);
    w.close();
    const b = readFileSync(join(dir, 'x.pcap'));
    assert.equal(b.readUInt32LE(0), 0xa1b2c3d4);
    assert.equal(b.readUInt32LE(20), 101);
    assert.equal(b.length, 24 + 2 * (16 + pkt.length));
    assert.equal(b.readUInt32LE(24), 1_700_000_000);
    assert.equal(b.readUInt32LE(28), 123_456);
    const t = spawnSync('tshark', ['-r', join(dir, 'x.pcap'), '-T', 'fields', '-e', 'ip.src', '-e', 'sip.Method'], { encoding: 'utf8' });
    if (t.error) return; // tshark is installed by setup; without it the byte checks above still ran
    assert.equal(t.stdout.trim().split('\n')[0], '10.0.0.5\tINVITE');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tap filters: by Call-ID and by host, before or after translation', () => {
  const v = viewPacket(pkt);
  assert.equal(v.src, '10.0.0.5');
  assert.ok(v.callId.length > 0);
  const after = viewPacket(udpPacket('203.0.113.1', '198.51.100.7', 5060, 5060, INVITE));
  assert.ok(tapMatches({}, v, after));
  assert.ok(tapMatches({ callId: v.callId }, v, after));
  assert.ok(!tapMatches({ callId: 'other' }, v, after));
  assert.ok(tapMatches({ host: '203.0.113.1' }, v, after));
  assert.ok(tapMatches({ host: '10.0.0.5' }, v, undefined));
  assert.ok(!tapMatches({ host: '10.0.0.6' }, v, after));
  assert.equal(viewPacket(Buffer.from('junk')).callId, '');
});

test('changedLines shows exactly the lines that differ', () => {
  const b = udpPacket('10.0.0.5', '198.51.100.7', 5060, 5060, 'OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060\r\nX: same\r\n\r\n');
  const a = udpPacket('203.0.113.1', '198.51.100.7', 5060, 5060, 'OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.1:5060\r\nX: same\r\n\r\n');
  assert.deepEqual(changedLines(b, a), ['    - Via: SIP/2.0/UDP 10.0.0.5:5060', '    + Via: SIP/2.0/UDP 203.0.113.1:5060']);
  assert.deepEqual(changedLines(b, b), []);
});
