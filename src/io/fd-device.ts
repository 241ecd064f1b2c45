/**
 * FdDevice — the common part of every Port backed by one file descriptor
 * the addon reads and writes in batches (TapDevice, PacketDevice).
 *
 * pull(): one native call reads up to `batch` frames straight into pool
 * slots kept ready in `spare`, tags them with the port id and queues them on
 * port.rx (full ring → freed, counted ringFull). push(): one native call
 * writes what port.tx holds; frames written or refused are freed, frames
 * left after EAGAIN go back to the front of the ring.
 *
 * Counters (port.counters): rx = frames read from the fd (the far side sent
 * them), tx = frames written to it; drops with reasons.
 * `captureSink` (null = off) sees every frame read and written.
 *
 * The subclass opens the fd and hands it over: from the constructor on, the
 * device owns it (close() closes it; a failing constructor closes it too).
 *
 * Super-frames (issue 12, see pool.ts): a device whose fd delivers them
 * (`superFrames`: a TAP with offloads, a packet socket) keeps a few large
 * slots ready beside its small spares; the addon moves a frame there only
 * when it does not fit a small slot. A device whose fd cannot take them
 * (`takesGso` false: a TAP without offloads, QEMU's unix sockets) has
 * every super-frame segmented in software on the way out (segmentFrame);
 * one that takes them gets consecutive segments of one TCP flow coalesced
 * into a super-frame first (groMerge: software GRO, e.g. what the overlay
 * decapsulates or a parent without GRO delivers);
 * the addon completes partial checksums for such fds. Every super-frame
 * read is checked against its header (checkSuperFrame): a malformed one is
 * dropped at its port (badGso) and reaches no element.
 */
import { DropReason } from '../dataplane/counters.js';
import type { Device } from '../dataplane/engine.js';
import { META_BYTES, type FramePool } from '../dataplane/pool.js';
import type { FrameSink, Port } from '../dataplane/port.js';
import type { NativeAddon } from './native.js';
import { checkSuperFrame, segmentFrame } from '../dataplane/segment.js';
import { groMerge } from '../dataplane/gro.js';
import { GSO_MAX_SEGS, GsoError } from '../wire/gso.js';
import { segmentsOf } from '../dataplane/segments-count.js';

export interface FdCaps {
  /** the fd delivers super-frames: keep large spares (needs pool large slots) */
  superFrames?: boolean;
  /** the fd takes super-frames on write (else they are segmented first) */
  takesGso?: boolean;
}

/** large spares a super-frame device keeps ready */
const LARGE_SPARES = 4;

export abstract class FdDevice implements Device {
  ready = true;
  batchFull = false;
  captureSink: FrameSink | null = null;
  readonly fd: number;
  private watcher = -1;
  private readonly spare: Uint32Array;
  private spareCount = 0;
  private readonly out: Uint32Array;
  /** the addon's ids for spare/out (pointers captured once) */
  private readonly spareId: number;
  private readonly outId: number;
  private closed = false;
  /** hard read errors (a TAP whose device is gone; a packet socket whose link went down) */
  readErrors = 0;
  /** super-frames segmented in software on the way out, and the segments made */
  gsoSegmented = 0;
  gsoSegments = 0;
  readonly takesGso: boolean;
  private readonly large: Uint32Array | null;
  private largeCount = 0;
  private readonly largeId: number;
  /** popped from port.tx before segmentation (devices that do not take super-frames) */
  private readonly pending: Uint32Array | null;
  private readonly segs: Uint32Array | null;

  protected constructor(
    protected readonly native: NativeAddon,
    protected readonly pool: FramePool,
    readonly port: Port,
    fd: number,
    private readonly batch = 64,
    caps: FdCaps = {},
  ) {
    this.fd = fd;
    this.takesGso = caps.takesGso === true;
    const superFrames = caps.superFrames === true && pool.largeCapacity > 0;
    this.spare = new Uint32Array(batch);
    // a device that segments needs room for a batch of segments
    this.out = new Uint32Array(this.takesGso ? batch : batch + GSO_MAX_SEGS);
    this.pending = this.takesGso ? null : new Uint32Array(batch);
    this.segs = this.takesGso ? null : new Uint32Array(GSO_MAX_SEGS);
    this.large = superFrames ? new Uint32Array(LARGE_SPARES) : null;
    let spareId = 0;
    let outId = 0;
    try {
      spareId = native.bindHandles(this.spare);
      outId = native.bindHandles(this.out);
      this.largeId = this.large !== null ? native.bindHandles(this.large) : 0;
    } catch (e) {
      if (spareId > 0) native.unbindHandles(spareId);
      if (outId > 0) native.unbindHandles(outId);
      native.close(fd);
      throw e;
    }
    this.outId = outId;
    this.spareId = spareId;
    this.refill();
  }

  get hasOutput(): boolean {
    return !this.port.tx.empty;
  }

  /** Start readiness watching; `onReady` is called (after marking ready) each time the fd is readable. */
  watch(onReady: () => void): void {
    if (this.watcher >= 0 || this.closed) return;
    this.watcher = this.native.pollStart(this.fd, () => {
      this.ready = true;
      onReady();
    });
  }

  private refill(): void {
    while (this.spareCount < this.batch) {
      const h = this.pool.alloc();
      if (h < 0) break;
      this.spare[this.spareCount++] = h;
    }
    const large = this.large;
    if (large !== null) {
      while (this.largeCount < large.length) {
        const h = this.pool.allocLarge();
        if (h < 0) break;
        large[this.largeCount++] = h;
      }
    }
  }

  pull(): number {
    if (this.closed || this.spareCount === 0) {
      this.batchFull = false;
      if (!this.closed) this.refill();
      return 0;
    }
    let n: number;
    let largeUsed = 0;
    const large = this.large;
    try {
      if (large === null) {
        n = this.native.readBatch(this.fd, this.spareId, this.spareCount);
      } else {
        const r = this.native.readBatch(this.fd, this.spareId, this.spareCount, this.largeId, this.largeCount);
        n = r & 0xffff;
        largeUsed = r >>> 16;
      }
    } catch {
      this.readErrors++;
      this.batchFull = false;
      return 0;
    }
    const pool = this.pool;
    // the addon stops when the large spares run out: more may be waiting
    this.batchFull = n === this.spareCount || (largeUsed > 0 && largeUsed === this.largeCount);
    if (largeUsed > 0 && large !== null) {
      // large[0..largeUsed) now hold the small handles the super-frames left
      for (let i = 0; i < largeUsed; i++) pool.free(large[i]);
      large.copyWithin(0, largeUsed, this.largeCount);
      this.largeCount -= largeUsed;
    }
    const port = this.port;
    const c = port.counters;
    const rx = port.rx;
    const id = port.id;
    const sink = this.captureSink;
    for (let i = 0; i < n; i++) {
      const h = this.spare[i];
      pool.inPort[h] = id;
      c.rxPackets++;
      c.rxBytes += pool.lengths[h];
      if (pool.meta8[h * META_BYTES + 1] !== 0) {
        // a super-frame whose bytes do not match its header (lengths, offsets, protocol): dropped here
        if (checkSuperFrame(pool, h) !== 0) {
          pool.free(h);
          c.drop(DropReason.badGso);
          continue;
        }
        c.rxSegments += segmentsOf(pool, h);
      } else c.rxSegments++;
      if (sink !== null) sink.frame(h);
      if (!rx.push(h)) {
        pool.free(h);
        c.drop(DropReason.ringFull);
      }
    }
    // refill the consumed slots: move the unused tail down, then allocate
    if (n > 0) {
      this.spare.copyWithin(0, n, this.spareCount);
      this.spareCount -= n;
      this.refill();
    } else if (largeUsed > 0) {
      this.refill();
    }
    return n;
  }

  push(): void {
    const tx = this.port.tx;
    if (this.closed) {
      this.drainTx();
      return;
    }
    const pool = this.pool;
    const c = this.port.counters;
    const out = this.out;
    const sink = this.captureSink;
    while (!tx.empty) {
      // a device that takes super-frames gets runs of one flow's segments coalesced (software GRO)
      const n = this.pending === null ? groMerge(pool, out, tx.popInto(out, out.length)) : this.popSegmented();
      if (n === 0) continue;
      const r = this.native.writeBatch(this.fd, this.outId, n);
      const consumed = r & 0xffff;
      const failed = r >>> 16;
      for (let i = 0; i < consumed; i++) {
        const h = out[i];
        if (sink !== null) sink.frame(h);
        c.txBytes += pool.lengths[h];
        c.txSegments += segmentsOf(pool, h);
        pool.free(h);
      }
      c.txPackets += consumed - failed;
      for (let i = 0; i < failed; i++) c.drop(DropReason.txError);
      if (consumed < n) {
        tx.unshiftFrom(out, consumed, n);
        return;
      }
    }
  }

  /**
   * For an fd that cannot take super-frames: pops up to a batch from
   * port.tx into `out`, each super-frame replaced by its segments. Frames
   * whose segments no longer fit go back to the front of the ring. A
   * super-frame that cannot be segmented (malformed, pool empty) is dropped
   * and counted. Returns the frames in out.
   */
  private popSegmented(): number {
    const pending = this.pending!;
    const segs = this.segs!;
    const out = this.out;
    const pool = this.pool;
    const tx = this.port.tx;
    const c = this.port.counters;
    const n = tx.popInto(pending, pending.length);
    let m = 0;
    for (let i = 0; i < n; i++) {
      const h = pending[i];
      if (pool.meta8[h * META_BYTES + 1] === 0) {
        out[m++] = h;
        continue;
      }
      if (m + segs.length > out.length) {
        tx.unshiftFrom(pending, i, n);
        break;
      }
      const k = segmentFrame(pool, h, 0, segs);
      if (k < 0) {
        c.drop(k === -GsoError.POOL_EMPTY ? DropReason.poolEmpty : DropReason.badGso);
      } else {
        for (let j = 0; j < k; j++) out[m++] = segs[j];
        this.gsoSegmented++;
        this.gsoSegments += k;
      }
      pool.free(h);
    }
    return m;
  }

  private drainTx(): void {
    for (let h = this.port.tx.pop(); h >= 0; h = this.port.tx.pop()) {
      this.pool.free(h);
      this.port.counters.drop(DropReason.portDown);
    }
  }

  /** Stop watching, close the fd, give back every frame held. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watcher >= 0) this.native.pollStop(this.watcher);
    this.watcher = -1;
    this.native.close(this.fd);
    this.native.unbindHandles(this.spareId);
    this.native.unbindHandles(this.outId);
    if (this.largeId > 0) this.native.unbindHandles(this.largeId);
    for (let i = 0; i < this.spareCount; i++) this.pool.free(this.spare[i]);
    this.spareCount = 0;
    if (this.large !== null) for (let i = 0; i < this.largeCount; i++) this.pool.free(this.large[i]);
    this.largeCount = 0;
    this.drainTx();
    for (let h = this.port.rx.pop(); h >= 0; h = this.port.rx.pop()) this.pool.free(h);
  }
}
