import { test } from 'node:test';
import assert from 'node:assert/strict';
import { iptablesCommands, parseSourceLimit } from '../../../src/metrics/source-limit';

test('source-limit counters are read from the SIPALG_LIMIT rules\' own packet counts, by direction', () => {
  // `iptables -w -t mangle -nvxL SIPALG_LIMIT`, as iptables-nft 1.8.9 prints it
  const text = [
    'Chain SIPALG_LIMIT (1 references)',
    '    pkts      bytes target     prot opt in     out     source               destination         ',
    '   19560 10927364 DROP       0    --  *      wan0    0.0.0.0/0            0.0.0.0/0            limit: above 200/sec burst 400 mode srcip htable-expire 10000 /* sip-alg source-limit out */',
    '      12     7200 DROP       0    --  *      !wan0   0.0.0.0/0            0.0.0.0/0            limit: above 200/sec burst 400 mode srcip htable-expire 10000 /* sip-alg source-limit in */',
  ].join('\n');
  assert.deepEqual(parseSourceLimit(text), { out: 19560, in: 12 });
  assert.deepEqual(parseSourceLimit(''), { out: 0, in: 0 }, 'no chain (limit off, rules not installed): nothing counted');
  assert.deepEqual(iptablesCommands('iptables-legacy'), ['iptables-legacy', 'ip6tables-legacy']);
  assert.deepEqual(iptablesCommands('/usr/sbin/iptables-nft'), ['/usr/sbin/iptables-nft', '/usr/sbin/ip6tables-nft']);
});
