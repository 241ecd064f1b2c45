/**
 * MacvlanSwitch — the endpoints of one macvlan network on one parent
 * interface, each with its own MAC on the parent's segment, as the Linux
 * kernel's macvlan driver (drivers/net/macvlan.c) forwards them.
 *
 * Ports:
 * - `parent`: the parent interface (a PacketDevice's port, or a VLAN port
 *   of a ParentDemux for `parent=eth0.100`). Its rx ring holds frames from
 *   the segment; frames for the segment go onto its tx ring.
 * - children: container TAP ports, attach(child, mac) / detach(child).
 *   child.rx holds what the container sent, child.tx takes frames for it.
 *
 * From the parent (kernel: macvlan_handle_frame):
 * - unicast to a child's MAC → that child; other unicast → dropped
 *   (notForUs: the parent host's own traffic or, with a promiscuous
 *   socket, somebody else's);
 * - broadcast/multicast → every child (n−1 clones), except the child whose
 *   MAC is the frame's source (a vepa/bridge broadcast hairpinned back by
 *   the external switch is not echoed to its sender);
 * - private mode: any frame whose source MAC is one of our children is
 *   dropped (filtered): private forbids child-to-child traffic even through
 *   a hairpinning external switch. (Stricter than the kernel for unicast,
 *   which only guards the broadcast path; this is what the mode promises.)
 *
 * From a child (kernel: macvlan_queue_xmit):
 * - bridge: to another child's MAC → that child only (never on the wire);
 *   broadcast/multicast → the parent and every other child; else → parent.
 * - private, vepa: everything → the parent only. In vepa the external
 *   switch hairpins child-to-child frames back, and they are then
 *   delivered by the rules above.
 * - passthru: exactly one child (a second attach() throws). Every frame
 *   from the parent, whatever its MAC, goes to it; every frame from it goes
 *   to the parent unchanged (no source check).
 *
 * Checks (each failure frees the frame and counts the reason):
 *   runt       shorter than an Ethernet header (14 bytes)
 *   badSrcMac  a child's frame whose source MAC is not its own (not in passthru)
 *   notForUs   unicast from the parent to no child's MAC
 *   filtered   private mode: from the parent with a child's source MAC;
 *              a parent broadcast whose only child is its source
 *   hairpin    a bridge-mode child's frame to its own MAC
 *   portDown   the destination (or ingress) port is down
 *   ringFull   the destination tx ring is full
 *   poolEmpty  no frame left for a flood clone (that copy only)
 * No MTU checks: the devices enforce them (an oversized write fails and is
 * counted as txError by the device).
 *
 * Configuration: constructor(pool, parent, { mode, seed?, maxChildren? }).
 * mode is fixed for the life of the switch (as `macvlan_mode` is for a
 * Docker network). seed keys the child-MAC hash; maxChildren bounds it
 * (default 1024).
 *
 * Counters (element): rxPackets/rxBytes = frames taken in (parent and
 * children), txPackets/txBytes = frames (clones included) handed to tx
 * rings, drops by reason. Port counters belong to the devices.
 *
 * Hot path: process() allocates nothing; child MACs are found in a MacTable
 * (keyed hash, static entries MAC → child index) probed with the two halves
 * of the MAC as small integers. Time is injected (process(now); nothing
 * here ages).
 */
import { Counters, DropReason } from '../dataplane/counters.js';
import type { Element } from '../dataplane/engine.js';
import type { FramePool } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';
import { isMulticastMac, macToString } from '../wire/ethernet.js';
import { MacTable } from './mac-table.js';

export type MacvlanMode = 'bridge' | 'private' | 'vepa' | 'passthru';
export const MACVLAN_MODES: readonly MacvlanMode[] = ['bridge', 'private', 'vepa', 'passthru'];

export interface MacvlanOptions {
  mode: MacvlanMode;
  /** child-MAC hash key (default: random) */
  seed?: number;
  /** at most this many children (default 1024) */
  maxChildren?: number;
}

const M_BRIDGE = 0;
const M_PRIVATE = 1;
const M_VEPA = 2;
const M_PASSTHRU = 3;

const RUNT = DropReason.runt;
const BAD_SRC = DropReason.badSrcMac;
const NOT_FOR_US = DropReason.notForUs;
const FILTERED = DropReason.filtered;
const HAIRPIN = DropReason.hairpin;
const PORT_DOWN = DropReason.portDown;
const RING_FULL = DropReason.ringFull;
const POOL_EMPTY = DropReason.poolEmpty;

export class MacvlanSwitch implements Element {
  readonly counters = new Counters();
  readonly mode: MacvlanMode;
  readonly parent: Port;
  private readonly m: number;
  private readonly pool: FramePool;
  private readonly maxChildren: number;
  private readonly table: MacTable;
  /** attached children, dense, in attach order; index = value in `table` */
  private kids: Port[] = [];
  /** per child index: MAC split into hi (first 2 octets) and lo (last 4, int32) */
  private kHi: Int32Array;
  private kLo: Int32Array;
  private kMac: number[] = [];

  constructor(pool: FramePool, parent: Port, opts: MacvlanOptions) {
    const m = MACVLAN_MODES.indexOf(opts.mode);
    if (m < 0) throw new Error(`unknown macvlan mode "${String(opts.mode)}" (bridge, private, vepa, passthru)`);
    this.m = m;
    this.mode = opts.mode;
    this.pool = pool;
    this.parent = parent;
    this.maxChildren = opts.maxChildren ?? 1024;
    if (!(this.maxChildren >= 1 && this.maxChildren <= 0xffff)) throw new Error('maxChildren must be 1..65535');
    this.table = new MacTable(this.maxChildren, opts.seed ?? (Math.random() * 0x100000000) >>> 0);
    this.kHi = new Int32Array(this.maxChildren);
    this.kLo = new Int32Array(this.maxChildren);
  }

  // ---------------------------------------------------------------- cold

  /** `child` joins with MAC `mac`. Throws on a duplicate MAC, a bad MAC, a full switch or a second passthru child. */
  attach(child: Port, mac: number): void {
    const i = this.kids.indexOf(child);
    if (i >= 0) {
      if (this.kMac[i] === mac) return;
      throw new Error(`port ${child.name} is already attached with MAC ${macToString(this.kMac[i])}`);
    }
    if (child === this.parent) throw new Error('the parent port cannot be a child');
    if (this.m === M_PASSTHRU && this.kids.length > 0)
      throw new Error(`macvlan passthru: only one endpoint per parent (${this.parent.name} already has ${this.kids[0].name})`);
    if (!Number.isInteger(mac) || mac <= 0 || mac > 0xffffffffffff || isMulticastMac(mac))
      throw new Error(`bad MAC address for ${child.name}: ${Number.isInteger(mac) && mac >= 0 ? macToString(mac) : String(mac)}`);
    if (this.kids.length >= this.maxChildren) throw new Error(`macvlan: at most ${this.maxChildren} endpoints per parent`);
    const j = this.kMac.indexOf(mac);
    if (j >= 0) throw new Error(`MAC ${macToString(mac)} is already used by ${this.kids[j].name}`);
    this.kids = [...this.kids, child];
    this.kMac = [...this.kMac, mac];
    this.rebuild();
  }

  /** `child` leaves; the frames in its rings are freed. */
  detach(child: Port): void {
    const i = this.kids.indexOf(child);
    if (i < 0) return;
    this.kids = this.kids.filter((_, j) => j !== i);
    this.kMac = this.kMac.filter((_, j) => j !== i);
    this.rebuild();
    const pool = this.pool;
    for (let h = child.rx.pop(); h >= 0; h = child.rx.pop()) pool.free(h);
    for (let h = child.tx.pop(); h >= 0; h = child.tx.pop()) pool.free(h);
  }

  /** Attached children with their MACs. */
  children(): { port: Port; mac: number }[] {
    return this.kids.map((port, i) => ({ port, mac: this.kMac[i] }));
  }

  /** The child owning `mac`, or null. */
  lookup(mac: number): Port | null {
    const i = this.table.lookup(mac);
    return i < 0 ? null : this.kids[i];
  }

  /** Build the MAC table and the per-child arrays anew (attach/detach). */
  private rebuild(): void {
    this.table.clear();
    for (let i = 0; i < this.kids.length; i++) {
      const mac = this.kMac[i];
      this.kHi[i] = Math.floor(mac / 0x100000000) & 0xffff;
      this.kLo[i] = mac | 0;
      this.table.addStatic(mac, i);
    }
  }

  // ----------------------------------------------------------------- hot

  process(_now: number): void {
    if (this.kids.length === 0) {
      // nothing attached: what waits on the parent is for nobody
      this.fromParentNone();
      return;
    }
    this.fromParent();
    const kids = this.kids;
    for (let i = 0; i < kids.length; i++) this.fromChild(i);
  }

  private fromParentNone(): void {
    const rx = this.parent.rx;
    const c = this.counters;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      c.rxPackets++;
      c.rxBytes += this.pool.lengths[h];
      this.drop(h, NOT_FOR_US);
    }
  }

  /** parent.rx → children. */
  private fromParent(): void {
    const pool = this.pool;
    const bytes = pool.bytes;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const m = this.m;
    const kids = this.kids;
    const c = this.counters;
    const rx = this.parent.rx;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = lengths[h];
      c.rxPackets++;
      c.rxBytes += len;
      if (len < 14) {
        this.drop(h, RUNT);
        continue;
      }
      if (m === M_PASSTHRU) {
        this.send(h, kids[0], len);
        continue;
      }
      const o = offsets[h];
      // the source: is it one of ours (hairpinned back by the external switch)?
      const sHi = (bytes[o + 6] << 8) | bytes[o + 7];
      const sLo = (bytes[o + 8] << 24) | (bytes[o + 9] << 16) | (bytes[o + 10] << 8) | bytes[o + 11];
      const src = this.findKid(sHi, sLo);
      if (src >= 0 && m === M_PRIVATE) {
        this.drop(h, FILTERED);
        continue;
      }
      const dHi = (bytes[o] << 8) | bytes[o + 1];
      if ((dHi & 0x100) !== 0) {
        // broadcast / multicast: every child but the source
        this.flood(h, len, src, false);
        continue;
      }
      const dLo = (bytes[o + 2] << 24) | (bytes[o + 3] << 16) | (bytes[o + 4] << 8) | bytes[o + 5];
      const dst = this.findKid(dHi, dLo);
      if (dst < 0) {
        this.drop(h, NOT_FOR_US);
        continue;
      }
      this.send(h, kids[dst], len);
    }
  }

  /** child i's rx → parent (and, in bridge mode, other children). */
  private fromChild(i: number): void {
    const child = this.kids[i];
    const rx = child.rx;
    if (rx.empty) return;
    const pool = this.pool;
    const bytes = pool.bytes;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const m = this.m;
    const c = this.counters;
    const parent = this.parent;
    const myHi = this.kHi[i];
    const myLo = this.kLo[i];
    const up = child.up;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = lengths[h];
      c.rxPackets++;
      c.rxBytes += len;
      if (!up) {
        this.drop(h, PORT_DOWN);
        continue;
      }
      if (len < 14) {
        this.drop(h, RUNT);
        continue;
      }
      if (m === M_PASSTHRU) {
        this.send(h, parent, len);
        continue;
      }
      const o = offsets[h];
      const sHi = (bytes[o + 6] << 8) | bytes[o + 7];
      const sLo = (bytes[o + 8] << 24) | (bytes[o + 9] << 16) | (bytes[o + 10] << 8) | bytes[o + 11];
      if (sHi !== myHi || sLo !== myLo) {
        this.drop(h, BAD_SRC);
        continue;
      }
      if (m === M_BRIDGE) {
        const dHi = (bytes[o] << 8) | bytes[o + 1];
        if ((dHi & 0x100) !== 0) {
          this.flood(h, len, i, true);
          continue;
        }
        const dLo = (bytes[o + 2] << 24) | (bytes[o + 3] << 16) | (bytes[o + 4] << 8) | bytes[o + 5];
        const dst = this.findKid(dHi, dLo);
        if (dst >= 0) {
          if (dst === i) this.drop(h, HAIRPIN);
          else this.send(h, this.kids[dst], len);
          continue;
        }
      }
      this.send(h, parent, len);
    }
  }

  /** Child index owning (hi, lo), or −1 (inline MacTable.findHL + portAt). */
  private findKid(hi: number, lo: number): number {
    const t = this.table;
    const s = t.findHL(hi, lo);
    return s < 0 ? -1 : t.portAt(s);
  }

  /** Hand h to `p`'s tx ring (or drop it: down, ring full). */
  private send(h: number, p: Port, len: number): void {
    if (!p.up) {
      this.drop(h, PORT_DOWN);
      return;
    }
    if (p.tx.push(h)) {
      this.counters.txPackets++;
      this.counters.txBytes += len;
    } else this.drop(h, RING_FULL);
  }

  /**
   * Copies of h to every child but `skip` (−1 = none) that is up, and to
   * the parent when `toParent`: n−1 clones, the original to the last.
   */
  private flood(h: number, len: number, skip: number, toParent: boolean): void {
    const kids = this.kids;
    const nk = kids.length;
    // count the targets first, so the original can go to the last one
    let n = toParent && this.parent.up ? 1 : 0;
    for (let j = 0; j < nk; j++) if (j !== skip && kids[j].up) n++;
    if (n === 0) {
      // nobody else at all (a parent broadcast whose only child is its
      // source): filtered; only down ports: portDown
      const others = nk - (skip >= 0 ? 1 : 0) + (toParent ? 1 : 0);
      this.drop(h, others === 0 ? FILTERED : PORT_DOWN);
      return;
    }
    const pool = this.pool;
    let left = n;
    if (toParent && this.parent.up) {
      left--;
      this.copyTo(left === 0 ? h : pool.clone(h), this.parent, len);
    }
    for (let j = 0; j < nk && left > 0; j++) {
      if (j === skip || !kids[j].up) continue;
      left--;
      this.copyTo(left === 0 ? h : pool.clone(h), kids[j], len);
    }
  }

  /** Hand copy x (−1 = the clone failed) to p's tx ring. */
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

  private drop(h: number, reason: number): void {
    this.pool.free(h);
    this.counters.drop(reason);
  }
}
