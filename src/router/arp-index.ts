/**
 * ArpIndex — the ARP cache's hash index: (iface, IPv4) → entry id (owned by
 * ArpCache, see arp-cache.ts; the keys live in the cache's entry arrays).
 *
 * Storage: one Int32Array of slots (entry id, −1 empty), slots = next power
 * of two ≥ 2·entries (load ≤ 0.5), open addressing with linear probing, a
 * keyed multiply-shift hash (seeded per daemon) and backward-shift
 * deletion (no tombstones). Allocates nothing after construction.
 */

export class ArpIndex {
  private readonly mask: number;
  private readonly shift: number;
  private readonly k0: number;
  private readonly k1: number;
  /** slot → entry id, −1 empty */
  private readonly index: Int32Array;
  /** the cache's entry keys */
  private readonly eIface: Uint16Array;
  private readonly eIp: Int32Array;

  constructor(entries: number, seed: number, eIface: Uint16Array, eIp: Int32Array) {
    let slots = 2;
    while (slots < 2 * entries) slots *= 2;
    this.mask = slots - 1;
    this.shift = 32 - Math.log2(slots);
    this.index = new Int32Array(slots).fill(-1);
    this.eIface = eIface;
    this.eIp = eIp;
    let s = Math.imul((seed | 0) ^ 0x51ed27, 0x7feb352d);
    s = Math.imul(s ^ (s >>> 15), 0x846ca68b);
    this.k0 = (s ^ (s >>> 16)) | 0;
    s = Math.imul((seed | 0) ^ 0x2545f491, 0x85ebca6b);
    s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35);
    this.k1 = (s ^ (s >>> 16)) | 0;
  }

  private hash(iface: number, ip: number): number {
    return (Math.imul((ip | 0) ^ this.k0, 0x9e3779b1) ^ Math.imul(iface ^ this.k1, 0x85ebca77)) >>> this.shift;
  }

  /** Entry id of (iface, ip), or −1. */
  find(iface: number, ip: number): number {
    const index = this.index;
    const key = ip | 0;
    let i = this.hash(iface, key);
    for (;;) {
      const e = index[i];
      if (e < 0) return -1;
      if (this.eIp[e] === key && this.eIface[e] === iface) return e;
      i = (i + 1) & this.mask;
    }
  }

  /** Index entry e under (iface, ip) (not present yet; the cache has set its keys). */
  insert(e: number, iface: number, ip: number): void {
    let i = this.hash(iface, ip | 0);
    while (this.index[i] >= 0) i = (i + 1) & this.mask;
    this.index[i] = e;
  }

  /** Take entry e (indexed under its keys) out of the index. */
  remove(e: number): void {
    const index = this.index;
    const mask = this.mask;
    let hole = this.hash(this.eIface[e], this.eIp[e]);
    while (index[hole] !== e) hole = (hole + 1) & mask;
    let j = hole;
    for (;;) {
      j = (j + 1) & mask;
      const x = index[j];
      if (x < 0) break;
      const home = this.hash(this.eIface[x], this.eIp[x]);
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        index[hole] = x;
        hole = j;
      }
    }
    index[hole] = -1;
  }
}
