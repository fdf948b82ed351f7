/**
 * The thin native boundary (native/sipalg.c): NFQUEUE receive + verdict (used through queue.ts), raw netlink send/receive.
 * Loaded once per thread; the addon is context-aware, so every worker_thread gets its own instance.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';

export interface NativeBinding {
  /** one call of cb per wake-up: `count` packets in rx, described in desc ([id, offset, length, indev, outdev, mark] each); see queue.ts */
  queueOpen(num: number, failOpen: number, maxLen: number, copyRange: number, rx: Buffer, desc: Uint32Array, cb: (count: number) => void): object;
  /** queued during cb for one sendto, sent at once outside it; a mark >= 0 becomes the packet's skb mark (NFQA_MARK) */
  queueVerdict(q: object, id: number, verdict: number, payload?: Buffer | null, mark?: number): void;
  /** sends the queued verdicts; the ids whose verdict could not be sent, or null */
  queueFlush(q: object): Uint32Array | null;
  /** during cb: netlink messages (another nfnetlink subsystem's) join the batch's datagram; false otherwise */
  queueRequest(q: object, msgs: Buffer): boolean;
  queueClose(q: object): void;
  netlinkOpen(protocol: number): number;
  netlinkSend(fd: number, msg: Buffer): number;
  netlinkRecv(fd: number, timeoutMs: number): Buffer | null;
  /** sendto, then every reply already queued (one recvmmsg, MSG_DONTWAIT), back to back; empty when none */
  netlinkTransact(fd: number, msg: Buffer): Buffer;
  netlinkClose(fd: number): void;
  /** the calling thread's scheduling policy (sched_setscheduler(0, policy, priority)): 0 or the errno */
  threadSched(policy: number, priority: number): number;
}

let cached: NativeBinding | undefined;

export function native(): NativeBinding {
  if (cached) return cached;
  // dist/src/native/binding.js -> ../../../build/Release/sipalg.node
  const candidates = [join(__dirname, '../../../build/Release/sipalg.node'), join(__dirname, '../../build/Release/sipalg.node')];
  const path = candidates.find((p) => existsSync(p));
  if (!path) throw new Error(`native addon not built (looked in ${candidates.join(', ')}); run npm run build`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  cached = require(path) as NativeBinding;
  return cached;
}

export const NF_DROP = 0;
export const NF_ACCEPT = 1;
