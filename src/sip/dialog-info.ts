/**
 * Dialog identifiers of a message (RFC 3261 §12: Call-ID, From/To tags, CSeq), read from its bytes:
 * only the Call-ID and the tags become strings (no header value, no regular expression match).
 * test/unit/sip/dialog-info.test.ts holds the regular expressions this follows as its oracle.
 */
import { isDigitLatin1 as isDigit, isLetterLatin1 as isLetter, isSpaceLatin1 } from '../packet/latin1';
import { findField as field, headerValue, methodName, type SipMessage } from './message';

export interface DialogInfo {
  callId: string;
  fromTag: string;
  toTag: string;
  cseqMethod: string;
  cseq: number;
}

const TAG = [0x74, 0x61, 0x67]; // "tag", compared with 0x20 set

/**
 * The tag parameter of a From/To value b[s, e) (RFC 3261 §20.20, §20.39): after the URI's closing
 * '>' when there is one, the first `;` followed by `tag`, `=` (whitespace around each, any case) and
 * one or more octets that are not `;`, `,` or whitespace, as /;\s*tag\s*=\s*([^;,\s]+)/i finds it.
 */
function tagAt(b: Buffer, s: number, e: number): string {
  const gt = b.lastIndexOf(0x3e, e - 1);
  if (gt >= s) s = gt;
  for (let i = b.indexOf(0x3b, s); i >= 0 && i < e; i = b.indexOf(0x3b, i + 1)) {
    let k = i + 1;
    while (k < e && isSpaceLatin1(b[k]!)) k++;
    if (k + 3 > e || (b[k]! | 0x20) !== TAG[0] || (b[k + 1]! | 0x20) !== TAG[1] || (b[k + 2]! | 0x20) !== TAG[2]) continue;
    k += 3;
    while (k < e && isSpaceLatin1(b[k]!)) k++;
    if (k >= e || b[k] !== 0x3d) continue;
    k++;
    while (k < e && isSpaceLatin1(b[k]!)) k++;
    let t = k;
    while (t < e && b[t] !== 0x3b && b[t] !== 0x2c && !isSpaceLatin1(b[t]!)) t++;
    if (t > k) return b.toString('latin1', k, t);
  }
  return '';
}

export function dialogInfo(b: Buffer, msg: SipMessage): DialogInfo | undefined {
  const callId = field(msg, 'call-id');
  const cseq = field(msg, 'cseq');
  // an empty value is no Call-ID or CSeq
  if (!callId || callId.valueEnd <= callId.valueStart || !cseq) return undefined;
  // CSeq: /^(\d+)\s+([A-Za-z]+)/ (RFC 3261 §20.16)
  let i = cseq.valueStart;
  const e = cseq.valueEnd;
  let n = 0;
  while (i < e && isDigit(b[i]!)) n = n * 10 + (b[i++]! - 48);
  if (i === cseq.valueStart) return undefined;
  // more digits than a double holds exactly: as Number() reads the text
  if (i - cseq.valueStart > 15) n = Number(b.toString('latin1', cseq.valueStart, i));
  const sp = i;
  while (i < e && isSpaceLatin1(b[i]!)) i++;
  if (i === sp) return undefined;
  const m0 = i;
  while (i < e && isLetter(b[i]!)) i++;
  if (i === m0) return undefined;
  const from = field(msg, 'from'), to = field(msg, 'to');
  return {
    callId: headerValue(b, callId),
    fromTag: from ? tagAt(b, from.valueStart, from.valueEnd) : '',
    toTag: to ? tagAt(b, to.valueStart, to.valueEnd) : '',
    cseq: n,
    cseqMethod: methodName(b, m0, i, true),
  };
}
