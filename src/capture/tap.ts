/**
 * Taps: on demand, a worker hands the main thread every SIP packet matching a filter as it entered
 * the ALG and as it left (the rewritten packet, or the same bytes when passed unchanged, or none
 * when dropped), with the outcome. `sip-alg capture` writes them to two pcap files; `sip-alg trace`
 * prints them as one line each. Nothing is copied while no tap is on.
 */
import { parseIpUdp } from '../packet/ip';
import { findHeader, parseSip } from '../sip/message';

export interface TapFilter {
  /** only this dialog's messages (exact Call-ID) */
  callId?: string;
  /** only packets with this address as source or destination, before or after translation */
  host?: string;
}

export interface TapRecord {
  tsUs: number;
  worker: number;
  dir: 'in' | 'out';
  before: Uint8Array;
  /** what left the ALG: null when the packet was dropped */
  after: Uint8Array | null;
  verdict: 'accept' | 'drop';
  reason: string;
  message: string;
  fields: string[];
  callId: string;
}

export interface PacketView {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  callId: string;
}

/** Addresses and Call-ID of a packet; empty strings where there is none (not SIP, truncated). */
export function viewPacket(pkt: Buffer): PacketView {
  const ip = parseIpUdp(pkt);
  if (!ip.ok) return { src: '', dst: '', sport: 0, dport: 0, callId: '' };
  const p = ip.packet;
  const sip = parseSip(pkt, p.payloadOffset, p.payloadOffset + p.payloadLength);
  const callId = sip.ok ? (findHeader(pkt, sip.msg, 'call-id') ?? '') : '';
  return { src: p.src, dst: p.dst, sport: p.srcPort, dport: p.dstPort, callId };
}

export function tapMatches(f: TapFilter, before: PacketView, after: PacketView | undefined): boolean {
  if (f.callId && before.callId !== f.callId && after?.callId !== f.callId) return false;
  if (f.host && ![before.src, before.dst, after?.src, after?.dst].includes(f.host)) return false;
  return true;
}
