import { test } from 'node:test';
import { mutations } from '../../helpers/mutate';
import assert from 'node:assert/strict';
import { hostIs, sipHost, uriHostPorts, viaParms } from '../../../src/sip/hostport';

const hp = (s: string) => uriHostPorts(s).map((h) => [h.host, h.port, h.defaultPort, s.slice(h.hostStart, h.portEnd)]);

test('IPv6references in SIP URIs (RFC 3261 §25.1; RFC 5118 §4.1, §4.3, §4.4)', () => {
  assert.deepEqual(hp('sip:[2001:db8::10]:5070'), [['2001:db8::10', 5070, 5060, '[2001:db8::10]:5070']], '§4.4 port unambiguous');
  assert.deepEqual(hp('<sip:user@[2001:db8::10]>;tag=1'), [['2001:db8::10', undefined, 5060, '[2001:db8::10]']], 'no port: the default applies');
  assert.deepEqual(hp('sips:[2001:db8::10]'), [['2001:db8::10', undefined, 5061, '[2001:db8::10]']]);
  assert.deepEqual(hp('sip:[2001:db8::10:5070]'), [['2001:db8::10:5070', undefined, 5060, '[2001:db8::10:5070]']], '§4.3: the "port" is inside the address');
  assert.deepEqual(hp('<sip:[2001:db8::10];lr>, <sip:u@[::ffff:192.0.2.1]:5080;transport=udp>'), [['2001:db8::10', undefined, 5060, '[2001:db8::10]'], ['::ffff:192.0.2.1', 5080, 5060, '[::ffff:192.0.2.1]:5080']]);
});

test('RFC 5118 §4.2: an IPv6 address without brackets is not a host[:port]; an unclosed bracket neither', () => {
  assert.deepEqual(hp('sip:user@2001:db8::10'), []);
  assert.deepEqual(hp('<sip:user@[2001:db8::10>'), []);
});

test('Via sent-by as an IPv6reference; received= with and without brackets (RFC 3261 §18.2.1, RFC 5118 §4.5)', () => {
  const v = 'SIP/2.0/UDP [2001:db8::9:1]:5070;received=[2001:db8::9:255];branch=z9hG4bKas3-111, SIP/2.0/TCP [2001:db8::9:1];received=2001:db8::9:255;rport=5070';
  const vps = viaParms(v);
  assert.deepEqual(vps.map((p) => [p.transport, p.host, p.port, p.defaultPort, p.received && v.slice(p.received.start, p.received.end), p.rport && v.slice(p.rport.start, p.rport.end)]), [
    ['UDP', '2001:db8::9:1', 5070, 5060, '[2001:db8::9:255]', undefined],
    ['TCP', '2001:db8::9:1', undefined, 5060, '2001:db8::9:255', '5070'],
  ]);
});

test('hostIs: IPv6 by value, IPv4 by text; sipHost brackets IPv6 in RFC 5952 form', () => {
  assert.ok(hostIs('FD00:77::0011', 'fd00:77::11'));
  assert.ok(hostIs('[fd00:77::11]', 'fd00:77:0:0::11'), 'a received= value may keep its brackets');
  assert.ok(!hostIs('fd00:77::12', 'fd00:77::11'));
  assert.ok(!hostIs('pbx.example', 'fd00:77::11'));
  assert.ok(hostIs('10.77.0.12', '10.77.0.12'));
  assert.ok(!hostIs('10.77.0.12', '10.77.0.13'));
  assert.equal(sipHost('2001:DB8:0::1'), '[2001:db8::1]');
  assert.equal(sipHost('203.0.113.1'), '203.0.113.1');
});

function hostPortAtAsItWas(s: string, start: number, limit: number): { hostStart: number; portEnd: number; host: string; port: number | undefined } | undefined {
  const HOST_END = new Set([':', ';', '?', '>', ',', ' ', '\t', '\r', '\n']);
  let hostEnd: number;
  let host: string;
  if (s[start] === '[') {
    const close = s.indexOf(']', start);
    if (close < 0 || close >= limit) return undefined;
    hostEnd = close + 1;
    host = s.slice(start + 1, close);
  } else {
    hostEnd = start;
    while (hostEnd < limit && !HOST_END.has(s[hostEnd]!)) hostEnd++;
    host = s.slice(start, hostEnd);
  }
  if (host.length === 0) return undefined;
  let portEnd = hostEnd;
  let port: number | undefined;
  if (s[hostEnd] === ':') {
    let i = hostEnd + 1;
    while (i < limit && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
    if (i === hostEnd + 1 || i - hostEnd > 6) return undefined;
    port = Number(s.slice(hostEnd + 1, i));
    if (port > 65535) return undefined;
    portEnd = i;
  }
  return { hostStart: start, portEnd, host, port };
}

/** viaParms as it was written with regular expressions (until issue 21): the oracle of the character scan */
function viaParmsByRegExp(s: string): { hostStart: number; portEnd: number; host: string; port: number | undefined; defaultPort: number; transport: string; received?: { start: number; end: number }; rport?: { start: number; end: number } }[] {
  const out: ReturnType<typeof viaParmsByRegExp> = [];
  const re = /SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+/gi;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const transport = m[1]!.toUpperCase();
    const start = m.index + m[0].length;
    let end = s.indexOf(',', start);
    if (end < 0) end = s.length;
    const hp = hostPortAtAsItWas(s, start, end);
    if (!hp) continue;
    const v: ReturnType<typeof viaParmsByRegExp>[number] = { ...hp, defaultPort: transport === 'TLS' ? 5061 : 5060, transport };
    const pre = /;\s*(received|rport)\s*(=\s*([^;,\s]*))?/gi;
    pre.lastIndex = v.portEnd;
    let p: RegExpExecArray | null;
    while ((p = pre.exec(s)) !== null && p.index < end) {
      const vs = p[3] !== undefined ? p.index + p[0].length - p[3].length : p.index + p[0].length;
      const span = { start: vs, end: p.index + p[0].length };
      if (p[1]!.toLowerCase() === 'received') v.received = span;
      else v.rport = span;
    }
    out.push(v);
    re.lastIndex = end;
  }
  return out;
}

test('viaParms (a scan of characters) finds what the regular expressions found, over 30000 mutated Via values', () => {
  const seeds = [
    'SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK776asdhds;rport;received=10.0.0.1',
    'SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74b76;received=192.0.2.101, SIP / 2.0 / UDP 10.1.1.1 ;rport = 5062 ; received= 203.0.113.9',
    'SIP/2.0/TLS [2001:db8::9:1]:5061;received=[2001:db8::9:255];branch=z9hG4bKas3-111,sip/2.0/udp x;RPORT;Received=1.2.3.4',
    ' SIP/2.0/UDP 10.77.0.11:6000;branch=z9;rport=6000;received=10.77.0.11 , SIP/2.0/SCTP 10.0.0.2',
  ];
  const alphabet = 'SIP/2.0UDPudp@?> ;,=:[]\t\r\n\u00a0rportreceived0123456789.xX';
  const norm = (l: ReturnType<typeof viaParmsByRegExp>) => l.map((v) => [v.hostStart, v.portEnd, v.host, v.port, v.defaultPort, v.transport, v.received?.start, v.received?.end, v.rport?.start, v.rport?.end]);
  for (const s of mutations(seeds, alphabet, 30000, 7)) {
    assert.deepEqual(norm(viaParms(s)), norm(viaParmsByRegExp(s)), JSON.stringify(s));
  }
});

/** uriHostPorts as it was written with a regular expression (until issue 21): the oracle of the character scan */
function uriHostPortsByRegExp(s: string): { hostStart: number; portEnd: number; host: string; port: number | undefined }[] {
  const out: ReturnType<typeof uriHostPortsByRegExp> = [];
  const re = /(^|[<\s,])(sips?):/gi;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const schemeEnd = m.index + m[0].length;
    const inAngle = m[1] === '<';
    let limit = inAngle ? s.indexOf('>', schemeEnd) : -1;
    if (limit < 0) {
      limit = schemeEnd;
      while (limit < s.length && s[limit] !== ',' && s[limit] !== ' ' && s[limit] !== '\t' && s[limit] !== '>') limit++;
    }
    const q = s.indexOf('?', schemeEnd);
    const userLimit = q >= 0 && q < limit ? q : limit;
    const at = s.lastIndexOf('@', userLimit - 1);
    const hp = hostPortAtAsItWas(s, at >= schemeEnd ? at + 1 : schemeEnd, limit);
    if (hp) out.push({ ...hp, port: hp.port ?? (m[2]!.length === 4 ? -5061 : -5060) });
    re.lastIndex = Math.max(limit, schemeEnd);
  }
  return out;
}

test('uriHostPorts (a scan of characters) finds what the regular expression found, over 30000 mutated header values', () => {
  const seeds = [
    '"Alice" <sip:alice@10.77.0.11:5060;transport=udp>;tag=1928301774',
    '<sip:10.0.0.1;lr>, <sips:proxy.example.com:5061;lr>,sip:bob@[2001:db8::1]:5070',
    'sip:user@10.77.0.12 ;expires=3600, <SIP:x@10.77.0.13?Subject=a@b>',
    ' <sip:carol@chicago.com?hdr=x@y>,\t<sips:[fd00::5]>;q=0.7',
  ];
  const alphabet = 'sipSIP:<>,@?; \t\u00a0[]0123456789.x';
  const norm = (l: { hostStart: number; portEnd: number; host: string; port: number | undefined }[]) => l.map((h) => [h.hostStart, h.portEnd, h.host, h.port]);
  for (const s of mutations(seeds, alphabet, 30000, 5)) {
    const got = uriHostPorts(s).map((h) => ({ ...h, port: h.port ?? -h.defaultPort }));
    assert.deepEqual(norm(got), norm(uriHostPortsByRegExp(s)), JSON.stringify(s));
  }
});
