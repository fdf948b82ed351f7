/** Real SIP messages (from shared/seeds and SIPp's built-in scenarios) used as fixtures. */
export const crlf = (lines: string[]) => lines.join('\r\n');

/** shared/seeds/004: a Cisco SPA504G REGISTER before the MikroTik ALG ... */
export const SEED_REGISTER_BEFORE = crlf([
  'REGISTER sip:207.252.1.148 SIP/2.0',
  'Via: SIP/2.0/UDP 192.168.20.100:5060;branch=z9hG4bK-eefddbff',
  'From: "100" <sip:100@207.252.1.148>;tag=36d71bb09199558301',
  'To: "100" <sip:100@207.252.1.148>',
  'Call-ID: 6593bf0b-e1cc0d64@192.168.20.100',
  'CSeq: 60159 REGISTER',
  'Max-Forwards: 70',
  'Contact: "100" <sip:100@192.168.20.100:5060>;expires=3600',
  'User-Agent: Cisco/SPA504G-7.6.2b',
  'Content-Length: 0',
  'Allow: ACK, BYE, CANCEL, INFO, INVITE, NOTIFY, OPTIONS, REFER, UPDATE',
  'Supported: replaces',
  '',
  '',
]);
/** ... and after it, as captured on the WAN (binding 207.252.1.145:1024); Call-ID untouched. */
export const SEED_REGISTER_AFTER = SEED_REGISTER_BEFORE.replace('Via: SIP/2.0/UDP 192.168.20.100:5060;', 'Via: SIP/2.0/UDP 207.252.1.145:1024;').replace('<sip:100@192.168.20.100:5060>', '<sip:100@207.252.1.145:1024>');

/** SIPp's built-in uac INVITE as sent by phone 10.77.0.12:5060 (SDP body of 134 bytes). */
export const SDP_OFFER = crlf([
  'v=0',
  'o=user1 53655765 2353687637 IN IP4 10.77.0.12',
  's=-',
  'c=IN IP4 10.77.0.12',
  't=0 0',
  'm=audio 6000 RTP/AVP 0',
  'a=rtpmap:0 PCMU/8000',
  '',
]);
export const INVITE = crlf([
  'INVITE sip:pbx@203.0.113.10:5080 SIP/2.0',
  'Via: SIP/2.0/UDP 10.77.0.12:5060;branch=z9hG4bK-3865-1-0;rport',
  'From: sipp <sip:sipp@10.77.0.12:5060>;tag=3865SIPpTag001',
  'To: <sip:pbx@203.0.113.10:5080>',
  'Call-ID: 1-3865@10.77.0.12',
  'CSeq: 1 INVITE',
  'Contact: sip:sipp@10.77.0.12:5060',
  'Max-Forwards: 70',
  'Subject: Performance Test',
  'Content-Type: application/sdp',
  `Content-Length: ${Buffer.byteLength(SDP_OFFER)}`,
  '',
  SDP_OFFER,
]);

/** The 200 OK to a REGISTER as Kamailio sends it to the public binding 203.0.113.1:38699. */
export const REGISTER_200_IN = crlf([
  'SIP/2.0 200 OK',
  'Via: SIP/2.0/UDP 203.0.113.1:38699;branch=z9hG4bK-1-0;rport=38699;received=203.0.113.1',
  'From: <sip:phone2@203.0.113.1:38699>;tag=12SIPpTag001',
  'To: <sip:phone2@203.0.113.1:38699>;tag=e0b3a2c1',
  'Call-ID: 1-12@10.77.0.12',
  'CSeq: 1 REGISTER',
  'Contact: <sip:phone2@203.0.113.1:38699>;expires=300',
  'Server: kamailio',
  'Content-Length: 0',
  '',
  '',
]);
