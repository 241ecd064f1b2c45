/**
 * MacTable — the learning switch's bounded forwarding database.
 *
 * Open addressing with linear probing over preallocated typed arrays, a keyed
 * hash (seeded per daemon, so an attacker on a port cannot aim source MACs at
 * one probe chain without knowing the seed) and backward-shift deletion (no
 * tombstones: a probe chain always ends at the first empty slot).
 *
 * A MAC is 48 bits. Inside the table it is split into `hi` (the first two
 * octets, 0..0xffff) and `lo` (the last four octets as an int32), so the hot
 * path compares two small integers and never builds a float. The public
 * number form is `hi * 2^32 + lo>>>0`, i.e. the MAC read big-endian
 * (aa:bb:cc:dd:ee:ff → 0xaabbccddeeff).
 *
 * Capacity is fixed: `capacity` learned (dynamic) entries in `slots` = next
 * power of two ≥ 2·capacity slots (doubled when that would leave no room
 * for a static entry). When `dynamicSize === capacity`, learning a new MAC
 * is refused (LEARN_FULL; the caller counts macTableFull); refreshing or
 * moving a known MAC still works. Static entries do not count against
 * `capacity`: they use the room the slots keep beyond it (`staticRoom` ≥
 * slots/4 − … ≥ capacity/2; total load ≤ 0.75), so a table full of learned
 * MACs can still pin a newcomer.
 *
 * Port security: with `portLimit` > 0, one port may hold at most that many
 * dynamic entries; learning one more (a new MAC, or a station move onto
 * the port) is refused (LEARN_PORT_LIMIT). Static entries are not counted.
 *
 * Values: the port id (uint16) and the last time the MAC was seen (ms,
 * float64, as given by the caller — time is injected). Key, port and time
 * share one 16-byte record per slot (see `rec`), so a lookup touches one
 * cache line. Static entries (a flag beside the records) never age and are
 * never moved by learning (e.g. the gateway's MAC, a container's MAC):
 * learning one on another port answers LEARN_STATIC (a spoof, the caller
 * decides). Multicast MACs are never stored (they are never a source).
 *
 * The hash is keyed multiply-shift (see hash()): not a cryptographic PRF,
 * but without the seed the slots of chosen MACs are not predictable, and a
 * full table refuses instead of growing, so the worst case stays bounded.
 *
 * Hot methods (`findHL`, `learnHL`) allocate nothing. LearningSwitch probes
 * `rec` inline with the same code; keep the two in step.
 */

/**
 * empty-slot marker in rec[4i + 1] (hi | port << 16): it would be hi 0xffff
 * (a multicast MAC, never stored) with port 0xffff
 */
const EMPTY = -1;
const TWO32 = 4294967296;

/** learnHL results */
export const LEARN_OK = 0;
/** a new MAC and the dynamic table is full */
export const LEARN_FULL = 1;
/** the port already holds portLimit dynamic entries */
export const LEARN_PORT_LIMIT = 2;
/** the MAC is static on another port: left where it is */
export const LEARN_STATIC = 3;
/** a multicast MAC (never a source, never stored) */
export const LEARN_MULTICAST = 4;

export interface MacEntry {
  mac: number;
  port: number;
  seen: number;
  static: boolean;
}

/** Cold helpers, from the wire layer: "aa:bb:…" ↔ 48-bit number. */
export { parseMac as macFromString, macToString } from '../wire/ethernet.js';

export class MacTable {
  /** maximum number of entries */
  readonly capacity: number;
  /** number of slots (power of two, ≥ 2·capacity) */
  readonly slots: number;
  readonly mask: number;
  /** 32 − log2(slots): hash() takes the top bits */
  readonly shift: number;
  /**
   * One 16-byte record per slot, so a probe touches one cache line:
   *   rec[4i]     lo: last four MAC octets (big-endian, as int32)
   *   rec[4i + 1] hi | port << 16 (hi = first two octets); −1 = empty slot
   *   rec[4i + 2..3] = seen[2i + 1]: last seen (ms)
   */
  readonly rec: Int32Array;
  /** Float64 view of rec: seen[2i + 1] is slot i's last-seen time */
  readonly seen: Float64Array;
  /**
   * 1 = static entry (never ages, never moves). Only consulted when a MAC
   * shows up on another port and when aging, so the hot path (a MAC seen
   * again on its own port) reads nothing but its record.
   */
  readonly statics: Uint8Array;
  /** hash keys derived from the seed */
  readonly k0: number;
  readonly k1: number;
  /** entries (dynamic + static) */
  size = 0;
  dynamicSize = 0;
  staticSize = 0;
  /** most entries of both kinds together (load ≤ 0.75) */
  readonly maxEntries: number;
  /** dynamic entries one port may hold (0 = no limit) */
  portLimit = 0;
  /** per port id: dynamic entries it holds */
  readonly portDynamic = new Int32Array(0x10000);
  /** per port id: 1 for a trunk (a VXLAN tunnel port: every remote endpoint behind it), which portLimit does not bound */
  readonly trunk = new Uint8Array(0x10000);

  constructor(capacity = 8192, seed = 0) {
    if (!(capacity >= 1) || capacity > 1 << 24) throw new Error('MAC table capacity must be 1..2^24');
    this.capacity = capacity | 0;
    let slots = 2;
    while (slots < 2 * this.capacity) slots *= 2;
    if (Math.floor(slots * 0.75) - this.capacity < 1) slots *= 2;
    this.maxEntries = Math.floor(slots * 0.75);
    this.slots = slots;
    this.mask = slots - 1;
    this.shift = 32 - Math.log2(slots);
    this.rec = new Int32Array(slots * 4);
    this.seen = new Float64Array(this.rec.buffer);
    this.statics = new Uint8Array(slots);
    for (let i = 0; i < slots; i++) this.rec[4 * i + 1] = EMPTY;
    // derive two independent 32-bit keys from the seed (splitmix-style)
    let s = seed | 0;
    s = Math.imul(s ^ (s >>> 16), 0x7feb352d);
    s = Math.imul(s ^ (s >>> 15), 0x846ca68b);
    this.k0 = (s ^ (s >>> 16)) | 0;
    s = Math.imul((seed | 0) ^ 0x9e3779b9, 0x85ebca6b);
    s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35);
    this.k1 = (s ^ (s >>> 16)) | 0;
  }

  /**
   * Home slot of (hi, lo): keyed multiply-shift. Each half is xored with its
   * key and multiplied by an odd constant; the products are combined and the
   * top log2(slots) bits taken (the high bits of a product depend on every
   * bit of the input, so sequential MACs such as 02:42:ac:11:00:xx spread
   * evenly).
   */
  hash(hi: number, lo: number): number {
    return (Math.imul(lo ^ this.k0, 0x9e3779b1) ^ Math.imul(hi ^ this.k1, 0x85ebca77)) >>> this.shift;
  }

  /** Slot holding (hi, lo), or −1. Hot. */
  findHL(hi: number, lo: number): number {
    const rec = this.rec;
    const mask = this.mask;
    let i = this.hash(hi, lo);
    for (;;) {
      const w = rec[4 * i + 1];
      if (w === EMPTY) return -1;
      if ((w & 0xffff) === hi && rec[4 * i] === lo) return i;
      i = (i + 1) & mask;
    }
  }

  /** Port id held in slot i. */
  portAt(i: number): number {
    return this.rec[4 * i + 1] >>> 16;
  }

  /** Static entries that can still be added (room beyond the dynamic ones). */
  get staticRoom(): number {
    return this.maxEntries - this.size;
  }

  /**
   * Insert, refresh or move (hi, lo) → port, seen at `now`. LEARN_OK, or
   * why not: LEARN_FULL (new MAC, dynamic table full), LEARN_PORT_LIMIT
   * (the port holds portLimit dynamic entries already), LEARN_STATIC (a
   * static entry on another port: left as it is), LEARN_MULTICAST. Hot.
   */
  learnHL(hi: number, lo: number, port: number, now: number): number {
    const rec = this.rec;
    const mask = this.mask;
    let i = this.hash(hi, lo);
    for (;;) {
      const w = rec[4 * i + 1];
      if (w === EMPTY) {
        if ((hi & 0x100) !== 0) return LEARN_MULTICAST;
        if (this.dynamicSize >= this.capacity) return LEARN_FULL;
        if (this.portLimit > 0 && this.portDynamic[port] >= this.portLimit && this.trunk[port] === 0) return LEARN_PORT_LIMIT;
        rec[4 * i] = lo;
        rec[4 * i + 1] = hi | (port << 16);
        this.seen[2 * i + 1] = now;
        this.statics[i] = 0;
        this.size++;
        this.dynamicSize++;
        this.portDynamic[port]++;
        return LEARN_OK;
      }
      if ((w & 0xffff) === hi && rec[4 * i] === lo) {
        const old = w >>> 16;
        if (old !== port) {
          if (this.statics[i] !== 0) return LEARN_STATIC; // a static entry does not move
          if (this.portLimit > 0 && this.portDynamic[port] >= this.portLimit && this.trunk[port] === 0) return LEARN_PORT_LIMIT;
          rec[4 * i + 1] = hi | (port << 16);
          this.portDynamic[old]--;
          this.portDynamic[port]++;
        }
        this.seen[2 * i + 1] = now;
        return LEARN_OK;
      }
      i = (i + 1) & mask;
    }
  }

  /** Port id for `mac`, or −1. */
  lookup(mac: number): number {
    const i = this.findHL(hiOf(mac), loOf(mac));
    return i < 0 ? -1 : this.portAt(i);
  }

  /** Insert/refresh/move a dynamic entry; false when refused (full, port limit, multicast); true for a static one (left as it is). */
  learn(mac: number, port: number, now: number): boolean {
    const r = this.learnHL(hiOf(mac), loOf(mac), port, now);
    return r === LEARN_OK || r === LEARN_STATIC;
  }

  /**
   * A static entry (never ages, never moved by learning), outside
   * `capacity` and any port limit. Replaces a dynamic entry for the same
   * MAC (or repins a static one). False when there is no room left
   * (staticRoom) or `mac` is multicast.
   */
  addStatic(mac: number, port: number): boolean {
    const hi = hiOf(mac);
    const lo = loOf(mac);
    if ((hi & 0x100) !== 0) return false;
    let i = this.findHL(hi, lo);
    if (i >= 0) {
      if (this.statics[i] === 0) {
        this.portDynamic[this.rec[4 * i + 1] >>> 16]--;
        this.dynamicSize--;
        this.staticSize++;
      }
    } else {
      if (this.size >= this.maxEntries) return false;
      i = this.hash(hi, lo);
      while (this.rec[4 * i + 1] !== EMPTY) i = (i + 1) & this.mask;
      this.rec[4 * i] = lo;
      this.size++;
      this.staticSize++;
    }
    this.rec[4 * i + 1] = hi | (port << 16);
    this.seen[2 * i + 1] = 0;
    this.statics[i] = 1;
    return true;
  }

  /** Whether `mac` is a static entry. */
  isStatic(mac: number): boolean {
    const i = this.findHL(hiOf(mac), loOf(mac));
    return i >= 0 && this.statics[i] === 1;
  }

  /** Remove `mac` (static or not); true if it was there. */
  remove(mac: number): boolean {
    const i = this.findHL(hiOf(mac), loOf(mac));
    if (i < 0) return false;
    this.deleteSlot(i);
    return true;
  }

  /** Remove every entry (static included) pointing at `port`; returns how many. */
  flushPort(port: number): number {
    let n = 0;
    const rec = this.rec;
    const slots = this.slots;
    for (let i = 0; i < slots; ) {
      const w = rec[4 * i + 1];
      if (w !== EMPTY && w >>> 16 === port) {
        this.deleteSlot(i); // something may have shifted into i: look again
        n++;
      } else i++;
    }
    return n;
  }

  /** Remove dynamic entries not seen for ≥ maxAgeMs; returns how many. */
  age(now: number, maxAgeMs: number): number {
    let n = 0;
    const rec = this.rec;
    const seen = this.seen;
    const slots = this.slots;
    const statics = this.statics;
    for (let i = 0; i < slots; ) {
      if (rec[4 * i + 1] !== EMPTY && statics[i] === 0 && now - seen[2 * i + 1] >= maxAgeMs) {
        this.deleteSlot(i);
        n++;
      } else i++;
    }
    return n;
  }

  /** Remove everything. */
  clear(): void {
    for (let i = 0; i < this.slots; i++) this.rec[4 * i + 1] = EMPTY;
    this.size = this.dynamicSize = this.staticSize = 0;
    this.portDynamic.fill(0);
  }

  /** Cold: every entry. */
  entries(): MacEntry[] {
    const out: MacEntry[] = [];
    const rec = this.rec;
    for (let i = 0; i < this.slots; i++) {
      const w = rec[4 * i + 1];
      if (w === EMPTY) continue;
      out.push({
        mac: (w & 0xffff) * TWO32 + (rec[4 * i] >>> 0),
        port: w >>> 16,
        seen: this.seen[2 * i + 1],
        static: this.statics[i] === 1,
      });
    }
    return out;
  }

  /**
   * Backward-shift deletion: empty slot i, then walk the probe chain after it
   * and move back every entry whose home slot is not in (hole, j], so no
   * chain is broken and no tombstone is needed.
   */
  private deleteSlot(i: number): void {
    const rec = this.rec;
    const mask = this.mask;
    if (this.statics[i] !== 0) this.staticSize--;
    else {
      this.dynamicSize--;
      this.portDynamic[rec[4 * i + 1] >>> 16]--;
    }
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const w = rec[4 * j + 1];
      if (w === EMPTY) break;
      const home = this.hash(w & 0xffff, rec[4 * j]);
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        rec.copyWithin(4 * hole, 4 * j, 4 * j + 4); // the whole record, seen included
        this.statics[hole] = this.statics[j];
        hole = j;
      }
    }
    rec[4 * hole + 1] = EMPTY;
    this.size--;
  }
}

/** First two octets of a MAC number. */
export function hiOf(mac: number): number {
  return Math.floor(mac / TWO32) & 0xffff;
}
/** Last four octets of a MAC number, as int32. */
export function loOf(mac: number): number {
  return mac | 0;
}
