/**
 * What a 2xx to REGISTER says about one contact (RFC 3261 §10.3 step 8: the response lists every
 * current binding of the AOR with its expires).
 */
import { hostIs, uriHostPorts } from './hostport';
import { findHeader, headerValue, type SipMessage } from './message';

/** The AOR (To URI) of a REGISTER or its response. */
export function registrationAor(b: Buffer, msg: SipMessage): string {
  const to = findHeader(b, msg, 'to') ?? '';
  const m = /<([^>]*)>/.exec(to) ?? /^\s*([^;\s]+)/.exec(to);
  return (m?.[1] ?? '').toLowerCase();
}

/**
 * Seconds the binding of contact host:port lives according to this 2xx: its `expires` parameter,
 * else the Expires header (RFC 3261 §10.2.1.1), else 3600; 0 when the contact is not listed.
 * An IPv6 `host` matches a contact's `[...]` host by value (hostIs).
 */
export function contactExpiry(b: Buffer, msg: SipMessage, host: string, port: number): number {
  const expiresHeader = findHeader(b, msg, 'expires');
  let best = 0;
  for (const h of msg.headers) {
    if (h.name !== 'contact') continue;
    const v = headerValue(b, h);
    // contact-params follow the URI's '>' (RFC 3261 §20.10); split the list on commas outside <...>
    for (const part of v.split(/,(?![^<]*>)/)) {
      const hp = uriHostPorts(part)[0];
      if (!hp || !hostIs(hp.host, host) || (hp.port ?? hp.defaultPort) !== port) continue;
      const gt = part.lastIndexOf('>');
      const e = /;\s*expires\s*=\s*(\d+)/i.exec(gt >= 0 ? part.slice(gt) : part);
      const secs = e ? Number(e[1]) : expiresHeader && /^\d+$/.test(expiresHeader) ? Number(expiresHeader) : 3600;
      best = Math.max(best, secs);
    }
  }
  return best;
}
