/** Dialog identifiers of a message (RFC 3261 §12: Call-ID, From/To tags, CSeq), read lazily. */
import { findHeader, type SipMessage } from './message';

export interface DialogInfo {
  callId: string;
  fromTag: string;
  toTag: string;
  cseqMethod: string;
  cseq: number;
}

function tag(v: string | undefined): string {
  if (!v) return '';
  // the tag is a header parameter, after the URI's closing '>' when there is one (RFC 3261 §20.20)
  const gt = v.lastIndexOf('>');
  const m = /;\s*tag\s*=\s*([^;,\s]+)/i.exec(gt >= 0 ? v.slice(gt) : v);
  return m?.[1] ?? '';
}

export function dialogInfo(b: Buffer, msg: SipMessage): DialogInfo | undefined {
  const callId = findHeader(b, msg, 'call-id');
  const cseq = findHeader(b, msg, 'cseq');
  if (!callId || !cseq) return undefined;
  const m = /^(\d+)\s+([A-Za-z]+)/.exec(cseq);
  if (!m) return undefined;
  return { callId, fromTag: tag(findHeader(b, msg, 'from')), toTag: tag(findHeader(b, msg, 'to')), cseq: Number(m[1]), cseqMethod: m[2]!.toUpperCase() };
}
