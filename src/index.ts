/**
 * Library entry (`require('sip-alg')`): the pure parts of the ALG, usable without root, the
 * native addon or a queue — SIP framing and rewriting, SDP translation, packet parsing, config.
 * The daemon itself is `sip-alg run` (src/cli/main.ts).
 */
export { parseSip, findHeader, type SipMessage } from './sip/message';
export { rewriteSip, type Direction } from './sip/rewrite';
export { rewriteSdp } from './sdp/rewrite';
export { parseIpUdp, rebuildV4, rebuildV6, rebuildUdp } from './packet/ip';
export { canonicalIpv6, sameAddress } from './packet/addr';
export { loadConfig, defaults } from './config/load';
export { SCHEMA, type Config } from './config/schema';
export { Reason, REASON_KIND, ConfigError, SipAlgError } from './errors';
export { PcapWriter } from './capture/pcap';
