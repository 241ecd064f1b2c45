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
 */
import { DropReason } from '../dataplane/counters.js';
import type { Device } from '../dataplane/engine.js';
import type { FramePool } from '../dataplane/pool.js';
import type { FrameSink, Port } from '../dataplane/port.js';
import type { NativeAddon } from './native.js';

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

  protected constructor(
    protected readonly native: NativeAddon,
    protected readonly pool: FramePool,
    readonly port: Port,
    fd: number,
    private readonly batch = 64,
  ) {
    this.fd = fd;
    this.spare = new Uint32Array(batch);
    this.out = new Uint32Array(batch);
    let spareId = 0;
    try {
      spareId = native.bindHandles(this.spare);
      this.outId = native.bindHandles(this.out);
    } catch (e) {
      if (spareId > 0) native.unbindHandles(spareId);
      native.close(fd);
      throw e;
    }
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
  }

  pull(): number {
    if (this.closed || this.spareCount === 0) {
      this.batchFull = false;
      if (!this.closed) this.refill();
      return 0;
    }
    let n: number;
    try {
      n = this.native.readBatch(this.fd, this.spareId, this.spareCount);
    } catch {
      this.readErrors++;
      this.batchFull = false;
      return 0;
    }
    this.batchFull = n === this.spareCount;
    const pool = this.pool;
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
      const n = tx.popInto(out, out.length);
      const r = this.native.writeBatch(this.fd, this.outId, n);
      const consumed = r & 0xffff;
      const failed = r >>> 16;
      for (let i = 0; i < consumed; i++) {
        const h = out[i];
        if (sink !== null) sink.frame(h);
        c.txBytes += pool.lengths[h];
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
    for (let i = 0; i < this.spareCount; i++) this.pool.free(this.spare[i]);
    this.spareCount = 0;
    this.drainTx();
    for (let h = this.port.rx.pop(); h >= 0; h = this.port.rx.pop()) this.pool.free(h);
  }
}
