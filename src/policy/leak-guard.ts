/**
 * The leak guard: a LAN→WAN packet the ALG is about to pass unchanged (malformed SIP, no binding,
 * a conntrack or internal error) must not carry the sender's private address to the WAN. With
 * leak-policy=drop such a packet is dropped instead, counted with its own reason: SIP over UDP
 * retransmits (RFC 3261 §17.1.1.2, §17.2.1), so a transient failure costs a retransmission, where an
 * unrewritten INVITE or 200 can cost the call (one-way audio, a BYE sent to a private address).
 * It costs nothing on the normal path: it runs only on packets that are already failures.
 */
import { Reason } from '../errors';
import { formatIpv6 } from '../packet/addr';

/**
 * Reasons under which a packet leaves unchanged without a leak to guard: the binding says there is
 * nothing to translate, the packet carries no message, or it is not SIP traffic of ours, or policy
 * was configured to pass it (IPv6 without a public IPv6 address).
 */
const NOT_A_LEAK = new Set<string>([Reason.UNCHANGED, Reason.REWRITTEN, Reason.KEEPALIVE, Reason.NOT_SIP_PORT, Reason.IPV6_PASSTHROUGH, Reason.TLS_PASSTHROUGH]);

export function mayLeak(reason: string): boolean {
  return !NOT_A_LEAK.has(reason);
}

/**
 * True when the IP packet's payload names its own source address as text: what a phone writes into
 * Via, Contact, From, o= and c=. IPv4: the first three octets and a dot ("10.77.0."), which also
 * catches an address a truncated datagram cut short ("10.77.0.1" of 10.77.0.11) and the sender's
 * neighbours (SDP naming a media gateway); IPv6: the address in RFC 5952 form.
 */
export function carriesSourceAddress(pkt: Buffer): boolean {
  if (pkt.length < 20) return false;
  const v = pkt[0]! >> 4;
  if (v === 4) {
    const hl = (pkt[0]! & 15) * 4;
    return pkt.indexOf(`${pkt[12]}.${pkt[13]}.${pkt[14]}.`, hl, 'latin1') >= 0;
  }
  if (v === 6 && pkt.length >= 40) return pkt.indexOf(formatIpv6(pkt, 8), 40, 'latin1') >= 0;
  return false;
}
