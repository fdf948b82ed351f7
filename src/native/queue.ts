/**
 * One NFQUEUE, owned by one worker thread: the native binding's queue handle behind a class with
 * the project's error codes and a close() that is safe to call twice.
 *
 * Packets arrive in batches: at each wake-up the addon copies every packet that is ready into one
 * reused receive buffer and calls `onBatch(count)` once; packet i is read with id(i), payload(i),
 * indev(i), outdev(i) and mark(i), valid only during that call (payload(i) is a view of the receive buffer:
 * whoever keeps bytes past the call copies them). Verdicts given during the call are sent together
 * in one sendto when flush() runs (or when the call returns); verdicts given outside it (timers)
 * leave at once.
 */
import { QueueError } from '../errors';
import { native, type NativeBinding } from './binding';

/** packets one call can carry (native RX_BATCH) and the fields of each (native DESC_FIELDS) */
const RX_BATCH = 256;
const FIELDS = 6;
/** after the descriptors (native ERR_WORDS): [count, seq, errno, ...] of the failed requests read this wake-up */
const ERR_MAX = 64;

export interface QueueOptions {
  /** NFQA_CFG_F_FAIL_OPEN: the kernel accepts packets unrewritten when the queue is full */
  failOpen: boolean;
  /** NFQA_CFG_QUEUE_MAXLEN (0: the kernel's default) */
  maxLen: number;
  /** bytes of each packet copied to userspace */
  copyRange?: number;
}

export class NfQueue {
  private handle: object | undefined;
  private readonly nb: NativeBinding;
  /** every packet of a batch, back to back (8-byte aligned) */
  private readonly rx = Buffer.allocUnsafeSlow(1 << 20);
  /** [id, offset, length, indev, outdev, mark] per packet of the batch */
  private readonly desc = new Uint32Array(RX_BATCH * FIELDS + 1 + 2 * ERR_MAX);

  constructor(readonly num: number, opts: QueueOptions, onBatch: (count: number) => void) {
    this.nb = native();
    try {
      this.handle = this.nb.queueOpen(num, opts.failOpen ? 1 : 0, opts.maxLen, opts.copyRange ?? 0xffff, this.rx, this.desc, onBatch);
    } catch (e) {
      throw new QueueError('SIPALG_ERR_QUEUE_OPEN', `cannot bind NFQUEUE ${num}: ${(e as Error).message}`, (e as { errno?: number }).errno);
    }
  }

  get closed(): boolean {
    return this.handle === undefined;
  }

  id(i: number): number {
    return this.desc[i * FIELDS]!;
  }

  /** packet i of the current batch: a view, valid until onBatch returns */
  payload(i: number): Buffer {
    const off = this.desc[i * FIELDS + 1]!;
    return this.rx.subarray(off, off + this.desc[i * FIELDS + 2]!);
  }

  indev(i: number): number {
    return this.desc[i * FIELDS + 3]!;
  }

  outdev(i: number): number {
    return this.desc[i * FIELDS + 4]!;
  }

  /** the skb mark packet i carries (NFQA_MARK; 0 when none) */
  mark(i: number): number {
    return this.desc[i * FIELDS + 5]!;
  }

  /**
   * NF_ACCEPT / NF_DROP, with the packet's new bytes when it was rewritten; `mark` (0..2^32-1) sets
   * the packet's skb mark (NFQA_MARK), -1 leaves it as it came
   */
  verdict(id: number, verdict: number, payload?: Buffer, mark = -1): void {
    if (!this.handle) throw new QueueError('SIPALG_ERR_QUEUE_CLOSED', `NFQUEUE ${this.num} is closed`);
    try {
      this.nb.queueVerdict(this.handle, id, verdict, payload ?? null, mark);
    } catch (e) {
      throw new QueueError('SIPALG_ERR_QUEUE_VERDICT', `verdict for packet ${id} on NFQUEUE ${this.num}: ${(e as Error).message}`, (e as { errno?: number }).errno);
    }
  }

  /**
   * During onBatch: netlink requests of another nfnetlink subsystem (ctnetlink) that need no answer
   * before the packet goes on join this batch's datagram, in order among its verdicts; false when
   * they cannot (outside a batch, closed): the caller sends them itself. Their failures are read
   * with failedRequests() in a later onBatch.
   */
  request(msgs: Buffer): boolean {
    if (!this.handle) return false;
    return this.nb.queueRequest(this.handle, msgs);
  }

  /** During onBatch: how many failed requests (NLMSG_ERRORs) this wake-up read; failedSeq(k), failedErrno(k) each. */
  get failedRequests(): number {
    return this.desc[RX_BATCH * FIELDS]!;
  }

  failedSeq(k: number): number {
    return this.desc[RX_BATCH * FIELDS + 1 + 2 * k]!;
  }

  failedErrno(k: number): number {
    return this.desc[RX_BATCH * FIELDS + 2 + 2 * k]!;
  }

  /**
   * Sends the verdicts given so far in this batch, in one datagram; the ids of packets whose verdict
   * could not be handed to the kernel (tried again one by one first), or undefined.
   */
  flush(): Uint32Array | undefined {
    if (!this.handle) return undefined;
    const failed = this.nb.queueFlush(this.handle) ?? undefined;
    const early = this.early;
    if (!early) return failed;
    this.early = undefined;
    return failed ? Uint32Array.from([...early, ...failed]) : early;
  }

  /**
   * During onBatch: sends what the batch's datagram holds so far now (verdicts given, requests that
   * rode), e.g. before a synchronous ctnetlink request that must not overtake them; ids whose verdict
   * could not be sent are kept for flush() to return.
   */
  sendNow(): void {
    if (!this.handle) return;
    const failed = this.nb.queueFlush(this.handle);
    if (failed) this.early = this.early ? Uint32Array.from([...this.early, ...failed]) : failed;
  }

  /** verdicts sendNow() could not hand over, for flush() */
  private early: Uint32Array | undefined;

  /** Unbinds the queue (its packets go to the kernel's default); a second call does nothing. */
  close(): void {
    const h = this.handle;
    if (!h) return;
    this.handle = undefined;
    this.nb.queueClose(h);
  }
}
