/**
 * The RFC 4475 torture messages (test/fixtures/rfc4475/: the 49 messages byte for byte, copied from ../shared/rfc4475/) as a phone
 * behind the router sends them: the unit test (test/unit/sip/rfc4475.test.ts) and the lab test
 * (test/lab/rfc4475.test.ts) share the corpus and how a message is given the phone's address.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lab';

export const CORPUS = join(ROOT, 'test/fixtures/rfc4475');
/** the lab's first phone: the address the messages are given */
export const PHONE = '10.77.0.11';

/** RFC 4475 §3.1.1, and per message the hosts its top Via and Contact name (replaced by the phone's address). */
export const VALID: Record<string, string[]> = {
  wsinv: ['192.0.2.2;', 'jdrosen@example.com'],
  intmeth: ['host1.example.com'],
  esc01: ['host5.example.net'],
  escnull: ['host5.example.com'],
  esc02: ['host.example.com;', 'alias1@host1.example.com'],
  lwsdisp: ['funky.example.com'],
  longreq: ['sip33.example.com', 'host5.example.net'],
  dblreq: ['192.0.2.125', 'j.user@host.example.com'],
  semiuri: ['UDP 192.0.2.1;'],
  transports: ['t1.example.com'],
  mpart01: ['127.0.0.1:5070'],
  unreason: ['host198.example.com'],
  noreason: ['host105.example.com'],
};
export const INVALID = ['badinv01', 'clerr', 'ncl', 'scalar02', 'scalarlg', 'quotbal', 'ltgtruri', 'lwsruri', 'lwsstart', 'trws', 'escruri', 'baddate', 'regbadct', 'badaspec', 'baddn', 'badvers', 'mismatch01', 'mismatch02', 'bigcode'];

/** The message with the phone's address where `hosts` were, in its header block only (a host given with a port gets the phone's 5060). */
export function asFromPhone(name: string, hosts: string[], phone = PHONE): Buffer {
  const b = readFileSync(join(CORPUS, `${name}.dat`));
  const split = b.indexOf('\r\n\r\n');
  let head = b.subarray(0, split < 0 ? b.length : split).toString('latin1');
  for (const h of hosts) {
    const to = h.replace(/^(UDP )?[^;:@]*(@)?[^;:]*(:\d+)?(;)?$/, (_m, udp: string | undefined, at: string | undefined, _p, semi: string | undefined) => `${udp ?? ''}${at ? h.slice(0, h.indexOf('@') + 1) : ''}${phone}${h.includes(':') && !h.startsWith('UDP') ? ':5060' : ''}${semi ?? ''}`);
    if (!head.includes(h)) throw new Error(`${name}: ${h} is not in its headers`);
    head = head.split(h).join(to);
  }
  return Buffer.concat([Buffer.from(head, 'latin1'), split < 0 ? Buffer.alloc(0) : b.subarray(split)]);
}

