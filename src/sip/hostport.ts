/**
 * Finds the host[:port] parts that carry addresses inside header values: SIP URIs
 * (RFC 3261 §19.1.1, in name-addr or addr-spec, §20.10) and Via sent-by (§20.42) with its
 * received/rport parameters (§18.2.1, RFC 3581 §4). Offsets are relative to the string given.
 * IPv6 hosts are IPv6references in brackets (RFC 3261 §25.1 host; RFC 5118 §4.2: a bare IPv6
 * address in a URI is invalid and is not recognised as a host:port).
 */
import { canonicalIpv6, sameAddress } from '../packet/addr';

/**
 * Whether the host of a HostPort (brackets removed) is the address `ip`: an IPv6 `ip` by value
 * (`[FD00:77::0011]` is fd00:77::11), an IPv4 one by its text as before.
 */
export function hostIs(host: string, ip: string): boolean {
  return ip.indexOf(':') >= 0 ? sameAddress(host, ip) : host === ip;
}

/** An address as a SIP host: IPv6 as an IPv6reference `[...]` in RFC 5952 form (RFC 3261 §25.1), IPv4 as it is. */
export function sipHost(ip: string): string {
  return ip.indexOf(':') >= 0 ? `[${canonicalIpv6(ip) ?? ip}]` : ip;
}

export interface HostPort {
  hostStart: number;
  hostEnd: number;
  host: string; // as written, brackets removed for IPv6
  portEnd: number; // === hostEnd when there is no port
  port: number | undefined;
  defaultPort: number;
}

export interface ViaParm extends HostPort {
  transport: string;
  /** value spans of ;received= and ;rport= when present (rport with no value: start === end) */
  received: { start: number; end: number } | undefined;
  rport: { start: number; end: number } | undefined;
}

/** what ends a host: ':' ';' '?' '>' ',' SP HTAB CR LF */
function endsHost(c: number): boolean {
  return c === 58 || c === 59 || c === 63 || c === 62 || c === 44 || c === 32 || c === 9 || c === 13 || c === 10;
}

function hostPortAt(s: string, start: number, limit: number, defaultPort: number): HostPort | undefined {
  let hostEnd: number;
  let host: string;
  if (s.charCodeAt(start) === 91 /* [ */) {
    const close = s.indexOf(']', start);
    if (close < 0 || close >= limit) return undefined;
    hostEnd = close + 1;
    host = s.slice(start + 1, close);
  } else {
    hostEnd = start;
    while (hostEnd < limit && !endsHost(s.charCodeAt(hostEnd))) hostEnd++;
    host = s.slice(start, hostEnd);
  }
  if (host.length === 0) return undefined;
  let portEnd = hostEnd;
  let port: number | undefined;
  if (s.charCodeAt(hostEnd) === 58 /* : */) {
    let i = hostEnd + 1;
    let n = 0;
    for (let c = s.charCodeAt(i); i < limit && c >= 48 && c <= 57; c = s.charCodeAt(++i)) n = n * 10 + (c - 48);
    if (i === hostEnd + 1 || i - hostEnd > 6) return undefined;
    port = n;
    if (port > 65535) return undefined;
    portEnd = i;
  }
  return { hostStart: start, hostEnd, host, portEnd, port, defaultPort };
}

/**
 * "sip:" or "sips:" (any case) at i: the length of the scheme with its colon (4 or 5), or 0.
 */
function schemeAt(s: string, i: number): number {
  if (!letterIs(s.charCodeAt(i), 115) || !letterIs(s.charCodeAt(i + 1), 105) || !letterIs(s.charCodeAt(i + 2), 112)) return 0;
  if (letterIs(s.charCodeAt(i + 3), 115) && s.charCodeAt(i + 4) === 58) return 5;
  return s.charCodeAt(i + 3) === 58 ? 4 : 0;
}

/**
 * Every sip:/sips: URI's host:port in a header value (lists and name-addr included). A scan of the
 * characters (issue 21): a scheme counts at the start of the value or after '<', ',' or white space,
 * as the regular expression `(^|[<\s,])(sips?):` (case-insensitive) found it (the unit test holds both).
 */
export function uriHostPorts(s: string): HostPort[] {
  const out: HostPort[] = [];
  let from = 0;
  while (from <= s.length) {
    // the next scheme at or after `from`: [matchStart, schemeEnd)
    let matchStart = -1, schemeEnd = -1, inAngle = false, secure = false;
    for (let p = from; p < s.length; p++) {
      let n = p === 0 ? schemeAt(s, 0) : 0;
      if (n) {
        matchStart = 0;
        schemeEnd = n;
      } else {
        const c = s.charCodeAt(p);
        if (c !== 60 && c !== 44 && !isSpace(c)) continue;
        n = schemeAt(s, p + 1);
        if (!n) continue;
        matchStart = p;
        schemeEnd = p + 1 + n;
        inAngle = c === 60;
      }
      secure = n === 5;
      break;
    }
    if (matchStart < 0) break;
    let limit = inAngle ? s.indexOf('>', schemeEnd) : -1;
    if (limit < 0) {
      // addr-spec without brackets: URI ends before header params or the next list element (§20)
      limit = schemeEnd;
      for (let c = s.charCodeAt(limit); limit < s.length && c !== 44 && c !== 32 && c !== 9 && c !== 62; c = s.charCodeAt(++limit)) { /* URI */ }
    }
    const q = s.indexOf('?', schemeEnd);
    const userLimit = q >= 0 && q < limit ? q : limit;
    const at = s.lastIndexOf('@', userLimit - 1);
    const hostStart = at >= schemeEnd ? at + 1 : schemeEnd;
    const hp = hostPortAt(s, hostStart, limit, secure ? 5061 : 5060);
    if (hp) out.push(hp);
    from = Math.max(limit, schemeEnd);
  }
  return out;
}

/** JavaScript's \s over the characters a latin1 string can hold: HTAB LF VT FF CR SP NBSP */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 160;
}

function skipSpace(s: string, i: number): number {
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  return i;
}

/** ASCII letter c case-insensitively equal to the lower-case letter `lower` */
function letterIs(c: number, lower: number): boolean {
  return (c | 0x20) === lower && ((c >= 65 && c <= 90) || (c >= 97 && c <= 122));
}

/** s at i holds `word` (lower-case ASCII letters) in any case */
function wordAt(s: string, i: number, word: string): boolean {
  if (i + word.length > s.length) return false;
  for (let k = 0; k < word.length; k++) if (!letterIs(s.charCodeAt(i + k), word.charCodeAt(k))) return false;
  return true;
}

/**
 * `SIP / 2.0 / transport LWS` at i (sent-protocol, RFC 3261 §20.42; the spaces are SWS/LWS):
 * the index after it, the transport in [tStart, tEnd) via `span`; -1 when not there.
 */
function sentProtocolAt(s: string, i: number, span: { tStart: number; tEnd: number }): number {
  if (!wordAt(s, i, 'sip')) return -1;
  i = skipSpace(s, i + 3);
  if (s.charCodeAt(i) !== 47) return -1;
  i = skipSpace(s, i + 1);
  if (s.charCodeAt(i) !== 50 || s.charCodeAt(i + 1) !== 46 || s.charCodeAt(i + 2) !== 48) return -1;
  i = skipSpace(s, i + 3);
  if (s.charCodeAt(i) !== 47) return -1;
  i = skipSpace(s, i + 1);
  const t = i;
  for (let c = s.charCodeAt(i); i < s.length && ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)); c = s.charCodeAt(++i)) { /* letters */ }
  if (i === t || i >= s.length || !isSpace(s.charCodeAt(i))) return -1;
  span.tStart = t;
  span.tEnd = i;
  return skipSpace(s, i);
}

/**
 * The via-parms of a Via header value, each with sent-by and received/rport spans. A scan of the
 * characters, no regular expression (issue 21: this ran on every message that names the phone in a
 * Via): the same matches as `SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+` for the sent-protocol and
 * `;\s*(received|rport)\s*(=\s*([^;,\s]*))?` for the parameters (the unit test holds both).
 */
export function viaParms(s: string): ViaParm[] {
  const out: ViaParm[] = [];
  const span = { tStart: 0, tEnd: 0 };
  let from = 0;
  while (from < s.length) {
    // the next sent-protocol at or after `from`
    let start = -1, at = from;
    for (; at < s.length; at++) {
      if (!letterIs(s.charCodeAt(at), 115 /* s */)) continue;
      start = sentProtocolAt(s, at, span);
      if (start >= 0) break;
    }
    if (start < 0) break;
    const transport = s.slice(span.tStart, span.tEnd).toUpperCase();
    let end = s.indexOf(',', start);
    if (end < 0) end = s.length;
    const hp = hostPortAt(s, start, end, transport === 'TLS' ? 5061 : 5060);
    if (!hp) {
      from = start;
      continue;
    }
    const v: ViaParm = { hostStart: hp.hostStart, hostEnd: hp.hostEnd, host: hp.host, portEnd: hp.portEnd, port: hp.port, defaultPort: hp.defaultPort, transport, received: undefined, rport: undefined };
    // ;received= and ;rport (RFC 3581 §4) up to the next via-parm
    for (let i = s.indexOf(';', hp.portEnd); i >= 0 && i < end; i = s.indexOf(';', i + 1)) {
      const n = skipSpace(s, i + 1);
      const received = wordAt(s, n, 'received');
      if (!received && !wordAt(s, n, 'rport')) continue;
      let e = skipSpace(s, n + (received ? 8 : 5));
      let vs = e;
      if (s.charCodeAt(e) === 61 /* = */) {
        vs = skipSpace(s, e + 1);
        e = vs;
        for (let c = s.charCodeAt(e); e < s.length && c !== 59 && c !== 44 && !isSpace(c); c = s.charCodeAt(++e)) { /* value */ }
      }
      if (received) v.received = { start: vs, end: e };
      else v.rport = { start: vs, end: e };
      i = e - 1;
    }
    out.push(v);
    from = end;
  }
  return out;
}
