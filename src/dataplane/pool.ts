/**
 * FramePool — every frame lives in one ArrayBuffer cut into fixed slots.
 *
 * A frame is an integer handle h (0 ≤ h < capacity). Its bytes are
 * `bytes[offsets[h] .. offsets[h] + lengths[h])`. Each slot starts with
 * `headroom` spare bytes so encapsulation can prepend headers in place
 * (move offsets[h] back, grow lengths[h]) without copying.
 *
 * Ownership: alloc() hands out a handle, and whoever holds it must transmit
 * it (hand it to a ring/port) or free() it exactly once. clone() makes an
 * independent copy (used by flooding: n−1 clones, the original goes last).
 *
 * `inPort[h]` records the ingress port id of the frame (set by whoever
 * received it); elements may use it, e.g. to avoid hairpinning.
 *
 * The native addon is bound to `buffer`, `offsets` and `lengths` once (see
 * src/io/native.ts) and reads/writes frames straight into the slots.
 */
export interface PoolOptions {
  /** number of slots (default 16384) */
  capacity?: number;
  /** bytes per slot including headroom (default 2048) */
  slotSize?: number;
  /** bytes kept free in front of each frame (default 128) */
  headroom?: number;
}

export class FramePool {
  readonly capacity: number;
  readonly slotSize: number;
  readonly headroom: number;
  /** largest frame a slot holds (slotSize − headroom) */
  readonly maxFrame: number;
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly inPort: Uint16Array;
  private readonly freeStack: Uint32Array;
  private freeTop: number;
  /** debug aid: 1 when the slot is handed out */
  private readonly live: Uint8Array;
  /** alloc() failures (pool exhausted) */
  exhausted = 0;

  constructor(opts: PoolOptions = {}) {
    this.capacity = opts.capacity ?? 16384;
    this.slotSize = opts.slotSize ?? 2048;
    this.headroom = opts.headroom ?? 128;
    if (this.headroom >= this.slotSize) throw new Error('headroom must be smaller than slotSize');
    this.maxFrame = this.slotSize - this.headroom;
    this.buffer = new ArrayBuffer(this.capacity * this.slotSize);
    this.bytes = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
    this.offsets = new Uint32Array(this.capacity);
    this.lengths = new Uint32Array(this.capacity);
    this.inPort = new Uint16Array(this.capacity);
    this.freeStack = new Uint32Array(this.capacity);
    this.live = new Uint8Array(this.capacity);
    for (let i = 0; i < this.capacity; i++) this.freeStack[i] = this.capacity - 1 - i;
    this.freeTop = this.capacity;
  }

  /** A fresh frame (offset reset to slot start + headroom, length 0), or −1 when the pool is empty. */
  alloc(): number {
    if (this.freeTop === 0) {
      this.exhausted++;
      return -1;
    }
    const h = this.freeStack[--this.freeTop];
    this.offsets[h] = h * this.slotSize + this.headroom;
    this.lengths[h] = 0;
    this.live[h] = 1;
    return h;
  }

  free(h: number): void {
    // a handle out of range (−1 from a failed alloc) would corrupt the free stack: live[h] is undefined there
    if (this.live[h] !== 1) throw new Error(this.live[h] === 0 ? `double free of frame ${h}` : `free of a bad frame handle ${h}`);
    this.live[h] = 0;
    this.freeStack[this.freeTop++] = h;
  }

  /** Copy of frame h (same bytes, same inPort) or −1 when the pool is empty. */
  clone(h: number): number {
    const c = this.alloc();
    if (c < 0) return -1;
    const len = this.lengths[h];
    const src = this.offsets[h];
    this.bytes.copyWithin(this.offsets[c], src, src + len);
    this.lengths[c] = len;
    this.inPort[c] = this.inPort[h];
    return c;
  }

  /** Move the frame start back by n bytes (prepend room). False if headroom is exhausted. */
  prepend(h: number, n: number): boolean {
    const start = h * this.slotSize;
    if (this.offsets[h] - n < start) return false;
    this.offsets[h] -= n;
    this.lengths[h] += n;
    return true;
  }

  /** Drop n bytes from the front of the frame (decapsulation). */
  consume(h: number, n: number): void {
    this.offsets[h] += n;
    this.lengths[h] -= n;
  }

  /** Frames currently free. */
  get available(): number {
    return this.freeTop;
  }

  /** Frames currently handed out (for leak checks in tests). */
  get inUse(): number {
    return this.capacity - this.freeTop;
  }

  /** Cold path: copy bytes into a fresh frame (tests, generated replies). */
  fromBytes(data: Uint8Array, inPort = 0): number {
    const h = this.alloc();
    if (h < 0) return -1;
    if (data.length > this.maxFrame) {
      this.free(h);
      throw new Error(`frame of ${data.length} bytes exceeds slot (${this.maxFrame})`);
    }
    this.bytes.set(data, this.offsets[h]);
    this.lengths[h] = data.length;
    this.inPort[h] = inPort;
    return h;
  }

  /** Cold path: a copy of the frame's bytes. */
  toBytes(h: number): Uint8Array {
    return this.bytes.slice(this.offsets[h], this.offsets[h] + this.lengths[h]);
  }
}
