/**
 * SIP message framing over a Buffer (RFC 3261 §7): start line, header fields with offsets (values
 * are kept raw and parsed lazily by the rewriter), body located by Content-Length. Never throws:
 * returns a result with a stable reason code.
 */
import { Reason } from '../errors';

export interface HeaderField {
  /** canonical lower-case long name (compact forms expanded, RFC 3261 §7.3.3) */
  name: string;
  /** offset of the first value byte (after the colon and leading whitespace) */
  valueStart: number;
  /** offset just past the value (before the line's CRLF; folded lines included) */
  valueEnd: number;
}

export interface SipMessage {
  isRequest: boolean;
  method: string; // requests; '' for responses
  status: number; // responses; 0 for requests
  /** Request-URI span, requests only */
  uriStart: number;
  uriEnd: number;
  headers: HeaderField[];
  /** offset of the first body byte (after the empty line) */
  bodyStart: number;
  /** body end: bodyStart + Content-Length, or the end of the datagram without one */
  bodyEnd: number;
  contentLength: number | undefined;
}

export type SipParse = { ok: true; msg: SipMessage } | { ok: false; reason: Reason };

// RFC 3261 §7.3.3 compact forms (and RFC 3515, 3265, 4028 ones seen on trunks)
const COMPACT: Record<string, string> = {
  v: 'via', m: 'contact', f: 'from', t: 'to', i: 'call-id', l: 'content-length', c: 'content-type',
  k: 'supported', s: 'subject', e: 'content-encoding', o: 'event', r: 'refer-to', u: 'allow-events',
  b: 'referred-by', x: 'session-expires', a: 'accept-contact', j: 'reject-contact', d: 'request-disposition', y: 'identity', n: 'identity-info',
};

const CR = 13, LF = 10, SP = 32, HT = 9, COLON = 58;
const MAX_HEADERS = 256;

function isTokenChar(c: number): boolean {
  // RFC 3261 §25.1 token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 46 || c === 33 || c === 37 || c === 42 || c === 95 || c === 43 || c === 96 || c === 39 || c === 126;
}

/** End of the line starting at `o` (index of CR or LF), or -1 when there is no line end. */
function lineEnd(b: Buffer, o: number, end: number): number {
  // a loop, not Buffer.indexOf: a header line is short, and the call into C++ cost more than the scan
  let i = o;
  while (i < end && b[i] !== LF) i++;
  if (i >= end) return -1;
  return i > o && b[i - 1] === CR ? i - 1 : i;
}
function nextLine(b: Buffer, le: number): number {
  return b[le] === CR ? le + 2 : le + 1;
}

export function isKeepalive(b: Buffer, start: number, end: number): boolean {
  // RFC 5626 §3.5.1 CRLF keep-alives (and stray whitespace) carry no message
  for (let i = start; i < end; i++) if (b[i] !== CR && b[i] !== LF && b[i] !== SP) return false;
  return true;
}

/**
 * The screen: what can be judged from a few bytes, before any header is parsed, so that junk and
 * floods cost little (a few µs): a start line that begins like one (RFC 3261 §7.1: Method SP or
 * "SIP/2.0 "), an end of the header block inside the datagram (§7: the empty line; without it the
 * message is truncated), no NUL in the header block (§25.1: no CTL in any header). undefined = go on.
 */
export function screenSip(b: Buffer, start: number, end: number): Reason | undefined {
  const c0 = b[start]!;
  if (c0 === 83 /* S */ && end - start >= 8 && b.compare(SIP20, 0, 8, start, start + 8) === 0) {
    // a status line
  } else {
    let i = start;
    // RFC 3261 §25.1: a method is any token (RFC 4475 §3.1.1.2 sends one of 33 characters); a start
    // line whose first 64 octets hold no token and SP is not taken for one
    const max = Math.min(end, start + 64);
    while (i < max && isTokenChar(b[i]!)) i++;
    if (i === start || i >= max || b[i] !== SP) return Reason.NOT_SIP;
  }
  let he = b.indexOf(CRLFCRLF, start);
  if (he < 0 || he >= end) {
    he = b.indexOf(LFLF, start); // bare LF line ends are tolerated (RFC 3261 §7.5 robustness)
    if (he < 0 || he >= end) return b.indexOf(LF, start) >= 0 && b.indexOf(LF, start) < end ? Reason.TRUNCATED_HEADERS : undefined;
  }
  if (bareNul(b, start, he)) return Reason.BAD_HEADER;
  return undefined;
}

/**
 * Whether b[from, to) holds a NUL outside a quoted-pair. RFC 3261 §25.1: no header admits a CTL,
 * except escaped in a quoted string (quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F); RFC 4475
 * §3.1.1.2 puts "\" NUL in a display name).
 */
export function bareNul(b: Buffer, from: number, to: number): boolean {
  for (let i = b.indexOf(0, from); i >= 0 && i < to; i = b.indexOf(0, i + 1)) if (i === from || b[i - 1] !== 0x5c) return true;
  return false;
}
/**
 * Header names a phone's messages carry, found from their bytes without building a string (RFC 3261
 * §7.3.1: names are case-insensitive; §7.3.3: compact forms). Keyed by length and the first and last
 * octets, lower-cased; the candidates are then compared octet by octet.
 */
const NAME_TABLE = new Map<number, [Buffer, string][]>();
for (const name of ['via', 'contact', 'from', 'to', 'call-id', 'cseq', 'content-length', 'content-type', 'max-forwards', 'route', 'record-route', 'session-expires', 'min-se', 'supported', 'require', 'proxy-require', 'allow', 'allow-events', 'user-agent', 'server', 'expires', 'event', 'subscription-state', 'authorization', 'proxy-authorization', 'www-authenticate', 'proxy-authenticate', 'accept', 'subject', 'date', 'p-asserted-identity', 'privacy', 'refer-to', 'referred-by', 'rseq', 'rack', 'reason', 'warning', 'organization', 'timestamp', ...Object.keys(COMPACT)]) {
  const bytes = Buffer.from(name, 'latin1');
  const k = nameKey(bytes, 0, bytes.length);
  const list = NAME_TABLE.get(k) ?? [];
  list.push([bytes, COMPACT[name] ?? name]);
  NAME_TABLE.set(k, list);
}
function nameKey(b: Buffer, s: number, e: number): number {
  return (e - s) * 65536 + ((b[s]! | 0x20) << 8) + (b[e - 1]! | 0x20);
}

/** The header name in b[s, e) in lower case, compact forms expanded: a known name without allocating, others as a new string. */
export function headerName(b: Buffer, s: number, e: number): string {
  const list = NAME_TABLE.get(nameKey(b, s, e));
  if (list) {
    for (const [bytes, name] of list) {
      let i = 0;
      // ASCII letters compare with 0x20 set; '-' and digits are equal to themselves either way
      while (i < bytes.length && (b[s + i]! | 0x20) === bytes[i]!) i++;
      if (i === bytes.length) return name;
    }
  }
  const raw = b.toString('latin1', s, e).toLowerCase();
  return COMPACT[raw] ?? raw;
}

/** RFC 3261 §27.4 methods and the common extensions: one string each, not one per message */
export const METHOD_NAMES = ['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO', 'REFER', 'MESSAGE', 'UPDATE'];

/**
 * The method token b[s, e): a known method's constant when the bytes are exactly its name (method
 * names are case-sensitive, RFC 3261 §7.1), a new string otherwise. `upper`: letters b[s, e) read in
 * upper case (as CSeq's method is read, dialog-info.ts).
 */
export function methodName(b: Buffer, s: number, e: number, upper = false): string {
  const fold = upper ? 0xdf : 0xff;
  for (const m of METHOD_NAMES) {
    if (m.length !== e - s) continue;
    let i = 0;
    while (i < m.length && (b[s + i]! & fold) === m.charCodeAt(i)) i++;
    if (i === m.length) return m;
  }
  const text = b.toString('latin1', s, e);
  return upper ? text.toUpperCase() : text;
}

const SIP20 = Buffer.from('SIP/2.0 ');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const LFLF = Buffer.from('\n\n');

export function parseSip(b: Buffer, start: number, end: number): SipParse {
  if (isKeepalive(b, start, end)) return { ok: false, reason: Reason.KEEPALIVE };
  const screened = screenSip(b, start, end);
  if (screened) return { ok: false, reason: screened };
  // --- start line (RFC 3261 §7.1, §7.2)
  const le = lineEnd(b, start, end);
  if (le < 0) return { ok: false, reason: b.subarray(start, Math.min(end, start + 8)).includes('SIP/2.0') || /^[A-Z]+ /.test(b.toString('latin1', start, Math.min(end, start + 16))) ? Reason.TRUNCATED_HEADERS : Reason.NOT_SIP };
  let isRequest: boolean, method = '', status = 0, uriStart = 0, uriEnd = 0;
  if (le - start >= 12 && b.compare(SIP20, 0, 8, start, start + 8) === 0) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    const c0 = b[start + 8]! - 48, c1 = b[start + 9]! - 48, c2 = b[start + 10]! - 48;
    if (c0 < 1 || c0 > 6 || c1 < 0 || c1 > 9 || c2 < 0 || c2 > 9 || (le > start + 11 && b[start + 11] !== SP)) return { ok: false, reason: Reason.BAD_START_LINE };
    isRequest = false;
    status = c0 * 100 + c1 * 10 + c2;
  } else {
    // Request-Line = Method SP Request-URI SP SIP-Version
    let i = start;
    while (i < le && isTokenChar(b[i]!)) i++;
    if (i === start || i >= le || b[i] !== SP) return { ok: false, reason: Reason.NOT_SIP };
    method = methodName(b, start, i);
    let lastSp = le - 1;
    while (lastSp > i && b[lastSp] !== SP) lastSp--;
    if (lastSp <= i || le - lastSp - 1 !== 7 || b.compare(SIP20, 0, 7, lastSp + 1, le) !== 0) {
      const version = lastSp > i ? b.toString('latin1', lastSp + 1, le) : '';
      return { ok: false, reason: version.startsWith('SIP/') ? Reason.BAD_START_LINE : Reason.NOT_SIP };
    }
    uriStart = i + 1;
    uriEnd = lastSp;
    if (uriEnd <= uriStart || b.indexOf(SP, uriStart) !== uriEnd) return { ok: false, reason: Reason.BAD_START_LINE };
    isRequest = true;
  }
  // --- header fields (RFC 3261 §7.3), with line folding (§7.3.1)
  const headers: HeaderField[] = [];
  let o = nextLine(b, le);
  let bodyStart = -1;
  while (o < end) {
    const e = lineEnd(b, o, end);
    if (e < 0) return { ok: false, reason: Reason.TRUNCATED_HEADERS };
    if (e === o) {
      bodyStart = nextLine(b, e);
      break;
    }
    const c0 = b[o]!;
    if (c0 === SP || c0 === HT) {
      const last = headers[headers.length - 1];
      if (!last) return { ok: false, reason: Reason.BAD_HEADER };
      last.valueEnd = trimEnd(b, o, e);
      o = nextLine(b, e);
      continue;
    }
    let n = o;
    while (n < e && isTokenChar(b[n]!)) n++;
    const nameEnd = n;
    while (n < e && (b[n] === SP || b[n] === HT)) n++;
    if (nameEnd === o || n >= e || b[n] !== COLON) return { ok: false, reason: Reason.BAD_HEADER };
    n++;
    while (n < e && (b[n] === SP || b[n] === HT)) n++;
    if (headers.length >= MAX_HEADERS) return { ok: false, reason: Reason.BAD_HEADER };
    headers.push({ name: headerName(b, o, nameEnd), valueStart: n, valueEnd: trimEnd(b, n, e) });
    o = nextLine(b, e);
  }
  if (bodyStart < 0) return { ok: false, reason: Reason.TRUNCATED_HEADERS };
  // RFC 3261 §25.1: no header value admits a NUL (a CTL): the screen refused a header block with one
  // (its block ends at the first empty line, as this one does, or later)
  // --- body (RFC 3261 §18.3: UDP may omit Content-Length; a larger one than the datagram is an error)
  let contentLength: number | undefined;
  for (const h of headers) {
    if (h.name !== 'content-length') continue;
    // 1*9DIGIT (RFC 3261 §20.14; more digits than any datagram needs are refused)
    const len = h.valueEnd - h.valueStart;
    let n = 0;
    for (let i = h.valueStart; i < h.valueEnd; i++) {
      const d = b[i]! - 48;
      if (d < 0 || d > 9) { n = -1; break; }
      n = n * 10 + d;
    }
    if (len < 1 || len > 9 || n < 0) return { ok: false, reason: Reason.BAD_CONTENT_LENGTH };
    if (contentLength !== undefined && contentLength !== n) return { ok: false, reason: Reason.BAD_CONTENT_LENGTH };
    contentLength = n;
  }
  const avail = end - Math.min(bodyStart, end);
  if (contentLength !== undefined && contentLength > avail) return { ok: false, reason: Reason.BAD_CONTENT_LENGTH };
  const bodyEnd = Math.min(bodyStart, end) + (contentLength ?? avail);
  return { ok: true, msg: { isRequest, method, status, uriStart, uriEnd, headers, bodyStart: Math.min(bodyStart, end), bodyEnd, contentLength } };
}

function trimEnd(b: Buffer, s: number, e: number): number {
  while (e > s && (b[e - 1] === SP || b[e - 1] === HT)) e--;
  return e;
}

export function headerValue(b: Buffer, h: HeaderField): string {
  return b.toString('latin1', h.valueStart, h.valueEnd);
}

/** The first header field named `name` (lower-case long form). */
export function findField(msg: SipMessage, name: string): HeaderField | undefined {
  for (const h of msg.headers) if (h.name === name) return h;
  return undefined;
}

export function findHeader(b: Buffer, msg: SipMessage, name: string): string | undefined {
  const h = findField(msg, name);
  return h && headerValue(b, h);
}
