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
  received?: { start: number; end: number };
  rport?: { start: number; end: number };
}

const HOST_END = new Set([':', ';', '?', '>', ',', ' ', '\t', '\r', '\n']);

function hostPortAt(s: string, start: number, limit: number, defaultPort: number): HostPort | undefined {
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
  return { hostStart: start, hostEnd, host, portEnd, port, defaultPort };
}

/** Every sip:/sips: URI's host:port in a header value (lists and name-addr included). */
export function uriHostPorts(s: string): HostPort[] {
  const out: HostPort[] = [];
  const re = /(^|[<\s,])(sips?):/gi;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const schemeEnd = m.index + m[0].length;
    const secure = m[2]!.length === 4;
    const inAngle = m[1] === '<';
    let limit = inAngle ? s.indexOf('>', schemeEnd) : -1;
    if (limit < 0) {
      // addr-spec without brackets: URI ends before header params or the next list element (§20)
      limit = schemeEnd;
      while (limit < s.length && s[limit] !== ',' && s[limit] !== ' ' && s[limit] !== '\t' && s[limit] !== '>') limit++;
    }
    const q = s.indexOf('?', schemeEnd);
    const userLimit = q >= 0 && q < limit ? q : limit;
    const at = s.lastIndexOf('@', userLimit - 1);
    const hostStart = at >= schemeEnd ? at + 1 : schemeEnd;
    const hp = hostPortAt(s, hostStart, limit, secure ? 5061 : 5060);
    if (hp) out.push(hp);
    re.lastIndex = Math.max(limit, schemeEnd);
  }
  return out;
}

/** The via-parms of a Via header value, each with sent-by and received/rport spans. */
export function viaParms(s: string): ViaParm[] {
  const out: ViaParm[] = [];
  const re = /SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+/gi;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const transport = m[1]!.toUpperCase();
    const start = m.index + m[0].length;
    let end = s.indexOf(',', start);
    if (end < 0) end = s.length;
    const hp = hostPortAt(s, start, end, transport === 'TLS' ? 5061 : 5060);
    if (!hp) continue;
    const v: ViaParm = { ...hp, transport };
    const pre = /;\s*(received|rport)\s*(=\s*([^;,\s]*))?/gi;
    pre.lastIndex = hp.portEnd;
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
