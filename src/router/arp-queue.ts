/**
 * ArpQueue — the frames waiting for an ARP cache entry to resolve (owned by
 * ArpCache, see arp-cache.ts; entry ids are the cache's).
 *
 * Each entry has a small FIFO of `len` frames (pool handles, owned by the
 * cache until released or dropped): enqueue() on a full queue hands back
 * the oldest frame for the caller to free, as Linux's unres_qlen does.
 *
 * Storage: one Int32Array of entries·len handles (entry e's ring at
 * e·len), head and count per entry in Uint8Arrays. Allocates nothing after
 * construction.
 */

export class ArpQueue {
  /** frames per entry (1..255) */
  readonly len: number;
  private readonly qHead: Uint8Array;
  private readonly qCount: Uint8Array;
  private readonly queue: Int32Array;

  constructor(entries: number, len: number) {
    this.len = len;
    this.qHead = new Uint8Array(entries);
    this.qCount = new Uint8Array(entries);
    this.queue = new Int32Array(entries * len);
  }

  /** Entry e starts with an empty queue. */
  reset(e: number): void {
    this.qHead[e] = 0;
    this.qCount[e] = 0;
  }

  /** Queue frame h on entry e; returns −1, or the oldest frame pushed out (the caller frees it). */
  enqueue(e: number, h: number): number {
    const q = this.len;
    const base = e * q;
    const n = this.qCount[e];
    if (n < q) {
      this.queue[base + ((this.qHead[e] + n) % q)] = h;
      this.qCount[e] = n + 1;
      return -1;
    }
    const head = this.qHead[e];
    const old = this.queue[base + head];
    this.queue[base + head] = h;
    this.qHead[e] = (head + 1) % q;
    return old;
  }

  /** Frames queued on e. */
  pending(e: number): number {
    return this.qCount[e];
  }

  /** Take the oldest queued frame of e (−1 when none). */
  dequeue(e: number): number {
    const n = this.qCount[e];
    if (n === 0) return -1;
    const head = this.qHead[e];
    const h = this.queue[e * this.len + head];
    this.qHead[e] = (head + 1) % this.len;
    this.qCount[e] = n - 1;
    return h;
  }
}
