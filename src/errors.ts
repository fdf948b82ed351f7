/**
 * Error classes and stable reason codes. The same codes label metrics
 * (`sipalg_packets_total{outcome,reason}`) and log lines, so an operator can grep one for the other.
 */

/** Why a packet was passed unchanged, dropped, or not rewritten. Stable: used as metric labels. */
export const Reason = {
  // packet layer
  NOT_IP: 'not_ip',
  TRUNCATED_IP: 'truncated_ip',
  BAD_IP_HEADER: 'bad_ip_header',
  FRAGMENT: 'fragment',
  NOT_UDP: 'not_udp',
  TRUNCATED_UDP: 'truncated_udp',
  IPV6_PASSTHROUGH: 'ipv6_passthrough',
  TRUNCATED_TCP: 'truncated_tcp',
  // SIP over TCP (RFC 3261 §18.3 framing) and TLS
  TCP_OUT_OF_ORDER: 'tcp_out_of_order',
  TCP_DUPLICATE: 'tcp_duplicate',
  TCP_UNFRAMED: 'tcp_unframed',
  TCP_INCOMPLETE: 'tcp_incomplete',
  TCP_PREFIX: 'tcp_prefix',
  TLS_PASSTHROUGH: 'tls_passthrough',
  NOT_SIP_PORT: 'not_sip_port',
  // SIP layer (RFC 3261 §7, §18)
  NOT_SIP: 'not_sip',
  KEEPALIVE: 'keepalive',
  TRUNCATED_HEADERS: 'truncated_headers',
  BAD_START_LINE: 'bad_start_line',
  BAD_HEADER: 'bad_header',
  BAD_CONTENT_LENGTH: 'bad_content_length',
  TOO_LARGE: 'too_large',
  BAD_SDP: 'bad_sdp',
  UNKNOWN_METHOD: 'unknown_method',
  RATE_LIMITED: 'rate_limited',
  BLOCKED: 'blocked',
  DIALOG_LIMIT: 'dialog_limit',
  DIRECT_MEDIA_BLOCKED: 'direct_media_blocked',
  VERDICT_ERROR: 'verdict_error',
  // NAT binding
  NO_BINDING: 'no_binding',
  CONNTRACK_ERROR: 'conntrack_error',
  PORTS_EXHAUSTED: 'ports_exhausted',
  /** the flow's entry was NATed to another WAN link's address than it leaves by (a failover): made again; this packet, bound to the old entry, is dropped and SIP's retransmission leaves on the new one */
  LINK_MOVED: 'link_moved',
  // outcome of a good message
  UNCHANGED: 'unchanged',
  REWRITTEN: 'rewritten',
  INTERNAL_ERROR: 'internal_error',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/** Which reasons are errors, and of what kind: labels `sipalg_errors_total{kind,code}`. */
export const REASON_KIND: Partial<Record<Reason, 'parse' | 'policy' | 'internal'>> = {
  truncated_ip: 'parse', bad_ip_header: 'parse', truncated_udp: 'parse', truncated_tcp: 'parse', tcp_unframed: 'parse', tcp_incomplete: 'parse', not_sip: 'parse', truncated_headers: 'parse', bad_start_line: 'parse',
  bad_header: 'parse', bad_content_length: 'parse', too_large: 'parse', bad_sdp: 'parse',
  unknown_method: 'policy', rate_limited: 'policy', blocked: 'policy', dialog_limit: 'policy', direct_media_blocked: 'policy',
  internal_error: 'internal', verdict_error: 'internal', conntrack_error: 'internal', ports_exhausted: 'internal', no_binding: 'internal',
};

export class SipAlgError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A bad configuration value: fails start-up, exit status 2 (see cli/main.ts). */
export class ConfigError extends SipAlgError {
  readonly key: string;
  constructor(key: string, message: string) {
    super('SIPALG_ERR_CONFIG', `config: ${key}: ${message}`);
    this.key = key;
  }
}

/**
 * A netlink request failed; `errno` is the kernel's positive error number. Made without a stack
 * trace: the kernel's answers (EEXIST, ENOENT, a full expectation table) arrive on the per-packet
 * path, where capturing a stack cost ~20 µs each (profiled at 2500 INVITE/s with a full table);
 * the callers log the context (call, flow) instead.
 */
export class NetlinkError extends SipAlgError {
  readonly errno: number;
  constructor(errno: number, what: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super('SIPALG_ERR_NETLINK', `${what}: errno ${errno}${errnoName(errno) ? ` (${errnoName(errno)})` : ''}`);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.errno = errno;
  }
}

/**
 * The NFQUEUE binding failed: opening or binding the queue (`SIPALG_ERR_QUEUE_OPEN`), a verdict
 * the kernel could not be handed (`SIPALG_ERR_QUEUE_VERDICT`), or a use after close
 * (`SIPALG_ERR_QUEUE_CLOSED`). `errno` is the system's error number when there is one.
 */
export class QueueError extends SipAlgError {
  readonly errno: number | undefined;
  constructor(code: 'SIPALG_ERR_QUEUE_OPEN' | 'SIPALG_ERR_QUEUE_VERDICT' | 'SIPALG_ERR_QUEUE_CLOSED', message: string, errno?: number) {
    super(code, message);
    this.errno = errno;
  }
}

const ERRNO: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 11: 'EAGAIN', 12: 'ENOMEM', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 24: 'EMFILE', 95: 'EOPNOTSUPP', 114: 'EALREADY' };
export function errnoName(n: number): string | undefined {
  return ERRNO[n];
}
export const ENOENT = 2;
export const EEXIST = 17;
export const ENOBUFS = 105;
