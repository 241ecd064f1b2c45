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
 * Annotations (as Click's packet annotations): beside offset and length each
 * frame has 12 bytes of metadata in `meta` (6 × u16, host order), laid out
 * as a virtio-net header (struct virtio_net_hdr_mrg_rxbuf), so a TAP or
 * packet socket with offloads on reads them straight in and writes them
 * straight out:
 *   byte 0  flags    (META_NEEDS_CSUM: checksum partial, from csumStart,
 *                     field at csumStart + csumOffset holds the
 *                     pseudo-header sum; META_DATA_VALID: verified)
 *   byte 1  gsoType  (GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4,
 *                     | GSO_ECN): a super-frame the far side segments
 *   u16 1   hdrLen   (Ethernet + IP + L4 header bytes of a super-frame)
 *   u16 2   gsoSize  (payload bytes per segment)
 *   u16 3   csumStart, u16 4 csumOffset (from the frame's first byte)
 *   u16 5   spare (num_buffers in virtio; 0)
 * alloc() zeroes them, clone() copies them. Everything that moves a
 * frame's start (prepend/consume) keeps csumStart relative to it.
 *
 * Two slot sizes, one handle space. Handles [0, capacity) are small slots
 * (slotSize, for frames up to one MTU); handles [capacity, capacity +
 * largeCapacity) are large slots (largeSlotSize, default 66 KiB: a 64 KiB
 * super-frame, its Ethernet/VLAN header and encapsulation headroom). Why not
 * variable slots: the free lists stay two stacks of integers (alloc and
 * free are O(1), nothing fragments), the addon finds a slot by arithmetic,
 * and the memory a 16K-frame pool needs stays 32 MiB plus the large slots
 * (touched only when super-frames flow). Why not one size: 64 KiB × 16K
 * slots is 1 GiB. A device reading super-frames reads into a small slot
 * whose overflow lands in a spare large slot (see src/io/native.ts), so
 * large slots are only held by frames that need them.
 *
 * Click-style header annotations, set by the router's input parse, valid
 * only inside the router (as Click's network_header/transport_header, set
 * once by the element that parses so later code takes the frame only):
 *   l3[h]     network header offset (from the frame's first byte)
 *   l4[h]     transport header offset (from the frame's first byte)
 *   ipLen[h]  the IP total length
 * alloc() does not reset them (stale until the next parse), clone() copies
 * them; prepend/consume do not adjust them.
 *
 * The native addon is bound to `buffer`, `offsets`, `lengths` and `meta`
 * once (see src/io/native.ts) and reads/writes frames straight into the slots.
 */
/** u16 per frame in `meta` */
export const META_STRIDE = 6;
/** bytes per frame in `meta8` */
export const META_BYTES = 12;
export const META_NEEDS_CSUM = 1;
export const META_DATA_VALID = 2;
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
export const GSO_UDP = 3;
export const GSO_TCPV6 = 4;
export const GSO_UDP_L4 = 5;
export const GSO_ECN = 0x80;
/** u16 indexes inside one frame's meta */
export const M_HDR_LEN = 1;
export const M_GSO_SIZE = 2;
export const M_CSUM_START = 3;
export const M_CSUM_OFFSET = 4;

export interface PoolOptions {
  /** number of slots (default 16384) */
  capacity?: number;
  /** bytes per slot including headroom (default 2048) */
  slotSize?: number;
  /** bytes kept free in front of each frame (default 128) */
  headroom?: number;
  /** number of large slots for super-frames (default 0) */
  largeCapacity?: number;
  /** bytes per large slot including headroom (default 66 KiB) */
  largeSlotSize?: number;
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
  /** annotations: META_STRIDE u16 per frame (see above) */
  readonly meta: Uint16Array;
  /** the same bytes, META_BYTES per frame: meta8[h*12] = flags, meta8[h*12+1] = gsoType */
  readonly meta8: Uint8Array;
  /** header annotations (see above): network / transport header offsets from the frame's first byte, IP total length */
  readonly l3: Uint16Array;
  readonly l4: Uint16Array;
  readonly ipLen: Uint16Array;
  readonly largeCapacity: number;
  readonly largeSlotSize: number;
  /** largest frame a large slot holds */
  readonly maxLargeFrame: number;
  /** byte offset of the first large slot */
  readonly largeBase: number;
  /** all handles: capacity + largeCapacity */
  readonly handles: number;
  private readonly freeStack: Uint32Array;
  private freeTop: number;
  private readonly largeStack: Uint32Array;
  private largeTop: number;
  /** debug aid: 1 when the slot is handed out */
  private readonly live: Uint8Array;
  /** alloc() failures (pool exhausted) */
  exhausted = 0;
  /** allocLarge() failures */
  largeExhausted = 0;

  constructor(opts: PoolOptions = {}) {
    this.capacity = opts.capacity ?? 16384;
    this.slotSize = opts.slotSize ?? 2048;
    this.headroom = opts.headroom ?? 128;
    if (this.headroom >= this.slotSize) throw new Error('headroom must be smaller than slotSize');
    this.maxFrame = this.slotSize - this.headroom;
    this.largeCapacity = opts.largeCapacity ?? 0;
    this.largeSlotSize = opts.largeSlotSize ?? 66 * 1024;
    if (this.largeSlotSize < this.slotSize) throw new Error('largeSlotSize must be at least slotSize');
    this.maxLargeFrame = this.largeSlotSize - this.headroom;
    this.largeBase = this.capacity * this.slotSize;
    const total = this.largeBase + this.largeCapacity * this.largeSlotSize;
    if (total > 0xffffffff) throw new Error('pool larger than 4 GiB');
    this.handles = this.capacity + this.largeCapacity;
    this.buffer = new ArrayBuffer(total);
    this.bytes = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
    this.offsets = new Uint32Array(this.handles);
    this.lengths = new Uint32Array(this.handles);
    this.inPort = new Uint16Array(this.handles);
    this.meta = new Uint16Array(this.handles * META_STRIDE);
    this.meta8 = new Uint8Array(this.meta.buffer);
    this.l3 = new Uint16Array(this.handles);
    this.l4 = new Uint16Array(this.handles);
    this.ipLen = new Uint16Array(this.handles);
    this.freeStack = new Uint32Array(this.capacity);
    this.live = new Uint8Array(this.handles);
    for (let i = 0; i < this.capacity; i++) this.freeStack[i] = this.capacity - 1 - i;
    this.freeTop = this.capacity;
    this.largeStack = new Uint32Array(this.largeCapacity);
    for (let i = 0; i < this.largeCapacity; i++) this.largeStack[i] = this.handles - 1 - i;
    this.largeTop = this.largeCapacity;
  }

  /** First byte of h's slot. */
  slotStart(h: number): number {
    return h < this.capacity ? h * this.slotSize : this.largeBase + (h - this.capacity) * this.largeSlotSize;
  }

  /** One past the last byte of h's slot. */
  slotEnd(h: number): number {
    return h < this.capacity ? (h + 1) * this.slotSize : this.largeBase + (h + 1 - this.capacity) * this.largeSlotSize;
  }

  /** True for a large slot. */
  isLarge(h: number): boolean {
    return h >= this.capacity;
  }

  /** The largest frame h's slot holds from its default start. */
  maxFrameOf(h: number): number {
    return h < this.capacity ? this.maxFrame : this.maxLargeFrame;
  }

  private reset(h: number): void {
    this.offsets[h] = this.slotStart(h) + this.headroom;
    this.lengths[h] = 0;
    this.live[h] = 1;
    const m = h * META_STRIDE;
    const meta = this.meta;
    meta[m] = 0;
    meta[m + 1] = 0;
    meta[m + 2] = 0;
    meta[m + 3] = 0;
    meta[m + 4] = 0;
    meta[m + 5] = 0;
  }

  /** A fresh frame (offset reset to slot start + headroom, length 0), or −1 when the pool is empty. */
  alloc(): number {
    if (this.freeTop === 0) {
      this.exhausted++;
      return -1;
    }
    const h = this.freeStack[--this.freeTop];
    this.reset(h);
    return h;
  }

  /** A fresh large frame, or −1 when none is left. */
  allocLarge(): number {
    if (this.largeTop === 0) {
      this.largeExhausted++;
      return -1;
    }
    const h = this.largeStack[--this.largeTop];
    this.reset(h);
    return h;
  }

  /** A fresh frame that holds `len` bytes from its default start (a large one when needed), or −1. */
  allocFor(len: number): number {
    return len <= this.maxFrame ? this.alloc() : len <= this.maxLargeFrame ? this.allocLarge() : -1;
  }

  free(h: number): void {
    // a handle out of range (−1 from a failed alloc) would corrupt the free stack: live[h] is undefined there
    if (this.live[h] !== 1) throw new Error(this.live[h] === 0 ? `double free of frame ${h}` : `free of a bad frame handle ${h}`);
    this.live[h] = 0;
    if (h < this.capacity) this.freeStack[this.freeTop++] = h;
    else this.largeStack[this.largeTop++] = h;
  }

  /** Copy h's annotations onto c. */
  copyMeta(c: number, h: number): void {
    const meta = this.meta;
    const d = c * META_STRIDE;
    const s = h * META_STRIDE;
    meta[d] = meta[s];
    meta[d + 1] = meta[s + 1];
    meta[d + 2] = meta[s + 2];
    meta[d + 3] = meta[s + 3];
    meta[d + 4] = meta[s + 4];
    meta[d + 5] = meta[s + 5];
  }

  /** Copy of frame h (same bytes, inPort and annotations; a large slot for a frame that needs one) or −1 when the pool is empty. */
  clone(h: number): number {
    const len = this.lengths[h];
    const c = this.allocFor(len);
    if (c < 0) return -1;
    const src = this.offsets[h];
    this.bytes.copyWithin(this.offsets[c], src, src + len);
    this.lengths[c] = len;
    this.inPort[c] = this.inPort[h];
    this.copyMeta(c, h);
    this.l3[c] = this.l3[h];
    this.l4[c] = this.l4[h];
    this.ipLen[c] = this.ipLen[h];
    return c;
  }

  /** Move the frame start back by n bytes (prepend room). False if headroom is exhausted. */
  prepend(h: number, n: number): boolean {
    if (this.offsets[h] - n < this.slotStart(h)) return false;
    this.offsets[h] -= n;
    this.lengths[h] += n;
    this.shiftMeta(h, n);
    return true;
  }

  /** Drop n bytes from the front of the frame (decapsulation). */
  consume(h: number, n: number): void {
    this.offsets[h] += n;
    this.lengths[h] -= n;
    this.shiftMeta(h, -n);
  }

  /** The frame's start moved by −n bytes: header length and checksum start are relative to it. */
  private shiftMeta(h: number, n: number): void {
    const m = h * META_STRIDE;
    const meta = this.meta;
    const flagsType = meta[m];
    if ((flagsType & META_NEEDS_CSUM) !== 0) meta[m + M_CSUM_START] += n;
    if (flagsType >>> 8 !== 0) meta[m + M_HDR_LEN] += n;
  }

  /** Frames currently free. */
  get available(): number {
    return this.freeTop;
  }

  /** Large frames currently free. */
  get largeAvailable(): number {
    return this.largeTop;
  }

  /** Frames currently handed out, small and large (for leak checks in tests). */
  get inUse(): number {
    return this.capacity - this.freeTop + this.largeCapacity - this.largeTop;
  }

  /** Cold path: copy bytes into a fresh frame (tests, generated replies). */
  fromBytes(data: Uint8Array, inPort = 0): number {
    if (data.length > (this.largeCapacity > 0 ? this.maxLargeFrame : this.maxFrame)) {
      throw new Error(`frame of ${data.length} bytes exceeds slot (${this.largeCapacity > 0 ? this.maxLargeFrame : this.maxFrame})`);
    }
    const h = this.allocFor(data.length);
    if (h < 0) return -1;
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
