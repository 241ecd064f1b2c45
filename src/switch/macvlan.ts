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
 * Child bookkeeping, send/flood/drop and the counting are ChildPortSwitch's
 * (child-ports.ts); a flood with nobody else at all counts `filtered`.
 *
 * Hot path: process() allocates nothing; child MACs are found in a MacTable
 * (keyed hash, static entries MAC → child index) probed with the two halves
 * of the MAC as small integers. Time is injected (process(now); nothing
 * here ages).
 */
import { DropReason } from '../dataplane/counters.js';
import type { Element } from '../dataplane/engine.js';
import type { FramePool } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';
import { isMulticastMac, macToString } from '../wire/ethernet.js';
import { ChildPortSwitch, lo32, macIs } from './child-ports.js';
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
const M_PASSTHRU = 3;

const BAD_SRC = DropReason.badSrcMac;
const NOT_FOR_US = DropReason.notForUs;
const FILTERED = DropReason.filtered;
const HAIRPIN = DropReason.hairpin;

const showMac = (mac: number): string => `MAC ${macToString(mac)}`;

export class MacvlanSwitch extends ChildPortSwitch implements Element {
  readonly mode: MacvlanMode;
  private readonly m: number;
  /** child MAC → child index (the index into `kids` / `keys`, which hold the MACs) */
  private readonly table: MacTable;
  /** per child index: MAC split into hi (first 2 octets) and lo (last 4, int32) */
  private kHi: Int32Array;
  private kLo: Int32Array;

  constructor(pool: FramePool, parent: Port, opts: MacvlanOptions) {
    const m = MACVLAN_MODES.indexOf(opts.mode);
    if (m < 0) throw new Error(`unknown macvlan mode "${String(opts.mode)}" (bridge, private, vepa, passthru)`);
    const maxChildren = opts.maxChildren ?? 1024;
    if (!(maxChildren >= 1 && maxChildren <= 0xffff)) throw new Error('maxChildren must be 1..65535');
    super(pool, parent, maxChildren, FILTERED);
    this.m = m;
    this.mode = opts.mode;
    this.table = new MacTable(maxChildren, opts.seed ?? (Math.random() * 0x100000000) >>> 0);
    this.kHi = new Int32Array(maxChildren);
    this.kLo = new Int32Array(maxChildren);
  }

  // ---------------------------------------------------------------- cold

  /** `child` joins with MAC `mac`. Throws on a duplicate MAC, a bad MAC, a full switch or a second passthru child. */
  attach(child: Port, mac: number): void {
    if (this.attached(child, mac, showMac)) return;
    if (this.m === M_PASSTHRU && this.kids.length > 0)
      throw new Error(`macvlan passthru: only one endpoint per parent (${this.parent.name} already has ${this.kids[0].name})`);
    if (!Number.isInteger(mac) || mac <= 0 || mac > 0xffffffffffff || isMulticastMac(mac))
      throw new Error(`bad MAC address for ${child.name}: ${Number.isInteger(mac) && mac >= 0 ? macToString(mac) : String(mac)}`);
    if (this.kids.length >= this.maxChildren) throw new Error(`macvlan: at most ${this.maxChildren} endpoints per parent`);
    const owner = this.keyOwner(mac);
    if (owner !== null) throw new Error(`MAC ${macToString(mac)} is already used by ${owner.name}`);
    this.join(child, mac);
  }

  /** Attached children with their MACs. */
  children(): { port: Port; mac: number }[] {
    return this.kids.map((port, i) => ({ port, mac: this.keys[i] }));
  }

  /** The child owning `mac`, or null. */
  lookup(mac: number): Port | null {
    const i = this.table.lookup(mac);
    return i < 0 ? null : this.kids[i];
  }

  /** Build the MAC table and the per-child arrays anew (attach/detach). */
  protected override rebuild(): void {
    this.table.clear();
    for (let i = 0; i < this.kids.length; i++) {
      const mac = this.keys[i];
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
    const m = this.m;
    const kids = this.kids;
    const rx = this.parent.rx;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = this.admit(h, true);
      if (len < 0) continue;
      if (m === M_PASSTHRU) {
        this.send(h, kids[0], len);
        continue;
      }
      const o = offsets[h];
      // the source: is it one of ours (hairpinned back by the external switch)?
      const src = this.findKid(bytes, o + 6);
      if (src >= 0 && m === M_PRIVATE) {
        this.drop(h, FILTERED);
        continue;
      }
      if ((bytes[o] & 1) !== 0) {
        // broadcast / multicast: every child but the source
        this.flood(h, len, src, false);
        continue;
      }
      const dst = this.findKid(bytes, o);
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
    const m = this.m;
    const parent = this.parent;
    const myHi = this.kHi[i];
    const myLo = this.kLo[i];
    const up = child.up;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = this.admit(h, up);
      if (len < 0) continue;
      if (m === M_PASSTHRU) {
        this.send(h, parent, len);
        continue;
      }
      const o = offsets[h];
      if (!macIs(bytes, o + 6, myHi, myLo)) {
        this.drop(h, BAD_SRC);
        continue;
      }
      if (m === M_BRIDGE) {
        if ((bytes[o] & 1) !== 0) {
          this.flood(h, len, i, true);
          continue;
        }
        const dst = this.findKid(bytes, o);
        if (dst >= 0) {
          if (dst === i) this.drop(h, HAIRPIN);
          else this.send(h, this.kids[dst], len);
          continue;
        }
      }
      this.send(h, parent, len);
    }
  }

  /** Index of the child whose MAC is the six bytes at b[o], or −1 (inline MacTable.findHL + portAt). */
  private findKid(b: Uint8Array, o: number): number {
    const t = this.table;
    const s = t.findHL((b[o] << 8) | b[o + 1], lo32(b, o + 2));
    return s < 0 ? -1 : t.portAt(s);
  }
}
