/**
 * NFQUEUE statistics of this network namespace, from /proc/net/netfilter/nfnetlink_queue
 * (net/netfilter/nfnetlink_queue.c seq_show): queue number, peer portid, packets waiting, copy
 * mode, copy range, packets dropped because the queue was full, packets dropped because netlink
 * could not deliver them to userspace, last packet id, 1.
 * With fail-open (--queue-bypass and the fail-open queue flag) a full queue accepts instead of
 * dropping: such bypasses are not counted by the kernel.
 */
import { readFileSync } from 'node:fs';

export interface QueueStat {
  queue: number;
  portid: number;
  waiting: number;
  dropped: number;
  userDropped: number;
  idSequence: number;
}

export function parseQueueStats(text: string): QueueStat[] {
  const out: QueueStat[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 8 || f.some((x) => !Number.isFinite(x))) continue;
    out.push({ queue: f[0]!, portid: f[1]!, waiting: f[2]!, dropped: f[5]!, userDropped: f[6]!, idSequence: f[7]! });
  }
  return out;
}

export function readQueueStats(path = '/proc/net/netfilter/nfnetlink_queue'): QueueStat[] {
  try {
    return parseQueueStats(readFileSync(path, 'utf8'));
  } catch {
    return [];
  }
}
