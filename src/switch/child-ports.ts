/**
 * ChildPortSwitch — what MacvlanSwitch and IpvlanSwitch share: one parent
 * port, a dense list of child ports each known by a numeric key (its MAC,
 * or its IPv4 address), and the ways a frame leaves.
 *
 * Not an element by itself. A subclass checks and admits children
 * (attach(): its own checks, then attached() / keyOwner() / join()),
 * builds its lookup table from `kids` and `keys` (rebuild(), called on
 * every join and detach) and implements process().
 *
 * Ports: `parent` (rx = frames from the segment, tx = frames to it) and
 * the children (rx = what the container sent, tx = frames for it).
 *
 * Counters (the element's): admit() counts rxPackets/rxBytes; send() and
 * flood() count txPackets/txBytes per frame (clone) handed to a tx ring;
 * drop() counts a drop with its reason: portDown, ringFull, poolEmpty (a
 * flood clone not made: that copy only), runt (admit), and for a flood
 * that finds nobody to send to at all, the subclass's `floodAlone` reason
 * (−1: the frame is freed without counting a drop).
 *
 * Hot path: admit/send/flood/drop allocate nothing. They are methods of
 * this one class, so each call site sees the two subclasses at most.
 * Reconfiguration (join/detach) builds new `kids`/`keys` arrays and swaps
 * them in whole. lo32() and macIs() read MACs from frame bytes as the two
 * small integers both elements compare them by.
 */
import { Counters, DropReason } from '../dataplane/counters.js';
import type { FramePool } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';

const RUNT = DropReason.runt;
const PORT_DOWN = DropReason.portDown;
const RING_FULL = DropReason.ringFull;
const POOL_EMPTY = DropReason.poolEmpty;

export abstract class ChildPortSwitch {
  readonly counters = new Counters();
  readonly parent: Port;
  protected readonly pool: FramePool;
  protected readonly maxChildren: number;
  /** attached children, dense, in attach order; index = the value in the subclass's lookup table */
  protected kids: Port[] = [];
  /** per child index: its key (MAC or IPv4 address) */
  protected keys: number[] = [];
  /** drop reason of a flood with no other port at all (−1: freed, not counted) */
  private readonly floodAlone: number;

  constructor(pool: FramePool, parent: Port, maxChildren: number, floodAlone: number) {
    this.pool = pool;
    this.parent = parent;
    this.maxChildren = maxChildren;
    this.floodAlone = floodAlone;
  }

  // ---------------------------------------------------------------- cold

  /** `child` leaves; the frames in its rings are freed. */
  detach(child: Port): void {
    const i = this.kids.indexOf(child);
    if (i < 0) return;
    this.kids = this.kids.filter((_, j) => j !== i);
    this.keys = this.keys.filter((_, j) => j !== i);
    this.rebuild();
    const pool = this.pool;
    for (let h = child.rx.pop(); h >= 0; h = child.rx.pop()) pool.free(h);
    for (let h = child.tx.pop(); h >= 0; h = child.tx.pop()) pool.free(h);
  }

  /** Rebuild the subclass's lookup table (and per-child arrays) from `kids` and `keys`. */
  protected abstract rebuild(): void;

  /**
   * attach() prologue: true when `child` is attached with `key` already
   * (nothing to do); throws when it is attached with another key (`show`
   * names it) or is the parent.
   */
  protected attached(child: Port, key: number, show: (key: number) => string): boolean {
    const i = this.kids.indexOf(child);
    if (i >= 0) {
      if (this.keys[i] === key) return true;
      throw new Error(`port ${child.name} is already attached with ${show(this.keys[i])}`);
    }
    if (child === this.parent) throw new Error('the parent port cannot be a child');
    return false;
  }

  /** The child attached with `key`, or null. */
  protected keyOwner(key: number): Port | null {
    const j = this.keys.indexOf(key);
    return j < 0 ? null : this.kids[j];
  }

  /** `child` joins with `key` (checked by the caller), as the last index. */
  protected join(child: Port, key: number): void {
    this.kids = [...this.kids, child];
    this.keys = [...this.keys, key];
    this.rebuild();
  }

  // ----------------------------------------------------------------- hot

  /**
   * Count frame h as taken in; drop it when its ingress port is not `up`
   * (portDown) or it is shorter than an Ethernet header (runt). Returns
   * its length, or −1 when it was dropped.
   */
  protected admit(h: number, up: boolean): number {
    const len = this.pool.lengths[h];
    const c = this.counters;
    c.rxPackets++;
    c.rxBytes += len;
    if (!up) {
      this.drop(h, PORT_DOWN);
      return -1;
    }
    if (len < 14) {
      this.drop(h, RUNT);
      return -1;
    }
    return len;
  }

  /** Hand h to `p`'s tx ring (or drop it: down, ring full). */
  protected send(h: number, p: Port, len: number): void {
    if (!p.up) {
      this.drop(h, PORT_DOWN);
      return;
    }
    this.copyTo(h, p, len);
  }

  /**
   * Copies of h to every child but `skip` (−1 = none) that is up, and to
   * the parent when `toParent`: n−1 clones, the original to the last.
   */
  protected flood(h: number, len: number, skip: number, toParent: boolean): void {
    const kids = this.kids;
    const nk = kids.length;
    const parentUp = toParent && this.parent.up;
    // count the targets first, so the original can go to the last one
    let n = parentUp ? 1 : 0;
    for (let j = 0; j < nk; j++) if (j !== skip && kids[j].up) n++;
    if (n === 0) {
      // nobody else at all: floodAlone; only down ports: portDown
      const others = nk - (skip >= 0 ? 1 : 0) + (toParent ? 1 : 0);
      if (others !== 0) this.drop(h, PORT_DOWN);
      else if (this.floodAlone >= 0) this.drop(h, this.floodAlone);
      else this.pool.free(h);
      return;
    }
    const pool = this.pool;
    let left = n;
    if (parentUp) {
      left--;
      this.copyTo(left === 0 ? h : pool.clone(h), this.parent, len);
    }
    for (let j = 0; j < nk && left > 0; j++) {
      if (j === skip || !kids[j].up) continue;
      left--;
      this.copyTo(left === 0 ? h : pool.clone(h), kids[j], len);
    }
  }

  /** Hand copy x (−1 = the clone failed: poolEmpty) to p's tx ring, or drop it (ringFull). */
  private copyTo(x: number, p: Port, len: number): void {
    if (x < 0) {
      this.counters.drop(POOL_EMPTY);
      return;
    }
    if (p.tx.push(x)) {
      this.counters.txPackets++;
      this.counters.txBytes += len;
    } else this.drop(x, RING_FULL);
  }

  /** Free h and count a drop for `reason`. */
  protected drop(h: number, reason: number): void {
    this.pool.free(h);
    this.counters.drop(reason);
  }
}

/** Four bytes at b[o] as int32 (the low part of a MAC). */
export function lo32(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

/** The six bytes at b[o] are the MAC whose first two octets are `hi` and last four, as int32, `lo`. */
export function macIs(b: Uint8Array, o: number, hi: number, lo: number): boolean {
  return ((b[o] << 8) | b[o + 1]) === hi && lo32(b, o + 2) === lo;
}
