/**
 * Ring — a single-producer single-consumer queue of frame handles, the link
 * between two elements. Size is a power of two; a push onto a full ring
 * returns false and the caller frees the frame and counts the drop.
 */
export class Ring {
  readonly size: number;
  private readonly mask: number;
  private readonly slots: Uint32Array;
  private head = 0; // next to read
  private tail = 0; // next to write

  constructor(size = 1024) {
    if (size < 2 || (size & (size - 1)) !== 0) throw new Error('ring size must be a power of two ≥ 2');
    this.size = size;
    this.mask = size - 1;
    this.slots = new Uint32Array(size);
  }

  get length(): number {
    return (this.tail - this.head) >>> 0;
  }

  get empty(): boolean {
    return this.head === this.tail;
  }

  get full(): boolean {
    return ((this.tail - this.head) >>> 0) === this.size;
  }

  /** Free places left. */
  get room(): number {
    return this.size - ((this.tail - this.head) >>> 0);
  }

  push(h: number): boolean {
    if (((this.tail - this.head) >>> 0) === this.size) return false;
    this.slots[this.tail & this.mask] = h;
    this.tail = (this.tail + 1) >>> 0;
    return true;
  }

  /** Next handle, or −1 when empty. */
  pop(): number {
    if (this.head === this.tail) return -1;
    const h = this.slots[this.head & this.mask];
    this.head = (this.head + 1) >>> 0;
    return h;
  }

  /** Copy up to `max` handles into out[0..n) and remove them; returns n. */
  popInto(out: Uint32Array, max: number): number {
    let n = (this.tail - this.head) >>> 0;
    if (n > max) n = max;
    for (let i = 0; i < n; i++) out[i] = this.slots[(this.head + i) & this.mask];
    this.head = (this.head + n) >>> 0;
    return n;
  }

  /** Put handles back at the front (used when a device write stops short). */
  unshiftFrom(src: Uint32Array, start: number, end: number): void {
    for (let i = end - 1; i >= start; i--) {
      this.head = (this.head - 1) >>> 0;
      this.slots[this.head & this.mask] = src[i];
    }
  }
}
