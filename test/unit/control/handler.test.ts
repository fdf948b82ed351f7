import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pinholeRows, tapFilter } from '../../../src/control/handler';
import type { Expectation } from '../../../src/conntrack/ctnetlink';
import type { DialogSnapshot } from '../../../src/dialog/dialog-table';

const t = (src: string, sport: number, dst: string, dport: number) => ({ src, sport, dst, dport, proto: 17 });

test('pinholes: only expectations hanging off our anchors, joined to their call', () => {
  const exps: Expectation[] = [
    { master: t('127.0.0.1', 1024, '127.1.0.1', 1024), tuple: t('0.0.0.0', 0, '203.0.113.1', 10001), timeout: 170, nat: t('10.0.0.5', 6001, '0.0.0.0', 0), cls: 1 },
    { master: t('127.0.0.1', 1025, '127.1.1.1', 1024), tuple: t('198.51.100.7', 0, '203.0.113.1', 10000), timeout: 100, nat: t('10.0.0.6', 6000, '0.0.0.0', 0), cls: 1 },
    { master: t('10.0.0.9', 5060, '198.51.100.7', 5060), tuple: t('198.51.100.7', 0, '203.0.113.1', 30000), timeout: 100, nat: undefined, cls: 0 }, // the kernel helper's own
    { master: t('::1', 1024, '::1:1', 1024), tuple: t('::', 0, '2001:db8:113::1', 20000), timeout: 170, nat: t('fd00:77::11', 20000, '::', 0), cls: 1 }, // an IPv6 anchor
  ];
  const calls = [{ callId: 'abc', anchor: '127.0.0.1:1024>127.1.0.1:1024' }, { callId: 'v6', anchor: '::1:1024>::1:1:1024' }] as DialogSnapshot[];
  const rows = pinholeRows(exps, calls);
  assert.deepEqual(rows.map((r) => [r.public, r.from, r.to, r.callId]), [
    ['[2001:db8:113::1]:20000', 'any', '[fd00:77::11]:20000', 'v6'],
    ['203.0.113.1:10000', '198.51.100.7', '10.0.0.6:6000', '(no live dialog)'],
    ['203.0.113.1:10001', 'any', '10.0.0.5:6001', 'abc'],
  ]);
});

test('tap filters from a request take only strings', () => {
  assert.deepEqual(tapFilter({ cmd: 'tap', callId: 'x', host: 5 }), { callId: 'x' });
  assert.deepEqual(tapFilter({ cmd: 'tap' }), {});
});
