/**
 * NeighbourTable — IpvlanSwitch's l3 neighbour table: the IPv4 address →
 * MAC of hosts on the parent's segment (next hops), bounded, in the manner
 * of an ARP cache. An entry is
 *   reachable   MAC known; `seen` = when it was last confirmed (learn,
 *               refresh); forgotten by expire() after `agingMs`;
 *   incomplete  MAC 0: a request went out at `seen` (ask) and has no
 *               answer yet; repeated at most once per `retransMs`,
 *               forgotten by expire() after 3 × retransMs.
 * A full table refuses new addresses (learn → false, ask → ASK_UNTRACKED)
 * and keeps what it has; the element counts that as macTableFull.
 *
 * Hot path (macOf, learn, refresh, ask) allocates nothing: one IpTable
 * (below) over typed arrays. Time is the caller's clock (ms). Which
 * addresses may be learned at all (not a child's) is the element's call.
 */
import { isMulticastMac } from '../wire/ethernet.js';

/** A neighbour, as NeighbourTable.list() shows it. */
export interface Neighbour {
  ip: number;
  /** 0 while the request is unanswered */
  mac: number;
  state: 'reachable' | 'incomplete';
  ageMs: number;
}

/** ask(): a request for this address went out less than retransMs ago; send none. */
export const ASK_WAIT = 0;
/** ask(): send a request (noted as pending in the table). */
export const ASK = 1;
/** ask(): send a request; the table is full, so it is not noted. */
export const ASK_UNTRACKED = 2;

export class NeighbourTable {
  readonly agingMs: number;
  readonly retransMs: number;
  private readonly t: IpTable;

  constructor(capacity: number, seed: number, agingMs: number, retransMs: number) {
    this.t = new IpTable(capacity, seed);
    this.agingMs = agingMs;
    this.retransMs = retransMs;
  }

  get capacity(): number {
    return this.t.capacity;
  }

  get size(): number {
    return this.t.size;
  }

  /** The MAC of `ip`, or 0 (unknown, or the request pending). Hot. */
  macOf(ip: number): number {
    const s = this.t.find(ip);
    return s < 0 ? 0 : this.t.mac[s];
  }

  /**
   * ip is at mac, confirmed now: noted, made when new. An address or MAC
   * that can be no neighbour's (0, multicast/broadcast) is ignored. False
   * only when the table is full (nothing noted). Hot.
   */
  learn(ip: number, mac: number, now: number): boolean {
    if (ip === 0 || ip >= 0xe0000000 || mac === 0 || isMulticastMac(mac)) return true;
    const t = this.t;
    const s = t.insert(ip);
    if (s < 0) return false;
    t.mac[s] = mac;
    t.seen[s] = now;
    return true;
  }

  /** Like learn(), but only for an address already in the table (ARP not addressed to us, as Linux with arp_accept=0). Hot. */
  refresh(ip: number, mac: number, now: number): void {
    const t = this.t;
    const s = t.find(ip);
    if (s < 0 || mac === 0 || isMulticastMac(mac)) return;
    t.mac[s] = mac;
    t.seen[s] = now;
  }

  /**
   * A next-hop miss for `ip` at `now`: ASK_WAIT while the last request for
   * it is younger than retransMs; else the request is noted (a new entry
   * when there is none) and ASK, or ASK_UNTRACKED when the table is full.
   */
  ask(ip: number, now: number): number {
    const t = this.t;
    let s = t.find(ip);
    if (s >= 0) {
      if (now - t.seen[s] < this.retransMs) return ASK_WAIT;
    } else {
      s = t.insert(ip);
      if (s < 0) return ASK_UNTRACKED;
    }
    t.seen[s] = now;
    return ASK;
  }

  /** Forget `ip` (if known). */
  forget(ip: number): void {
    const s = this.t.find(ip);
    if (s >= 0) this.t.deleteSlot(s);
  }

  /** Forget what is too old at `now` (see the header); returns how many entries went. */
  expire(now: number): number {
    const t = this.t;
    const incompleteMs = 3 * this.retransMs;
    const agingMs = this.agingMs;
    let n = 0;
    for (let i = 0; i <= t.mask; ) {
      if (t.used[i] !== 0 && now - t.seen[i] >= (t.mac[i] === 0 ? incompleteMs : agingMs)) {
        t.deleteSlot(i); // something may have shifted into i: look again
        n++;
      } else i++;
    }
    return n;
  }

  /** Every entry, by address, aged relative to `now`. Cold. */
  list(now: number): Neighbour[] {
    const t = this.t;
    const out: Neighbour[] = [];
    for (let i = 0; i <= t.mask; i++) {
      if (t.used[i] === 0) continue;
      const mac = t.mac[i];
      out.push({ ip: t.key[i] >>> 0, mac, state: mac === 0 ? 'incomplete' : 'reachable', ageMs: Math.max(0, now - t.seen[i]) });
    }
    return out.sort((a, b) => a.ip - b.ip);
  }
}

/**
 * IpTable — uint32 address → (value, MAC, time), bounded: open addressing
 * with linear probing over typed arrays (slots = power of two ≥ 2·capacity),
 * keyed hash, backward-shift deletion. A full table refuses (insert → −1).
 * Under NeighbourTable, and IpvlanSwitch's child table (address → index).
 */
export class IpTable {
  readonly capacity: number;
  readonly mask: number;
  private readonly shift: number;
  private readonly k0: number;
  private readonly k1: number;
  size = 0;
  /** the address (as int32) */
  readonly key: Int32Array;
  /** 1 = slot in use */
  readonly used: Uint8Array;
  readonly val: Int32Array;
  readonly mac: Float64Array;
  readonly seen: Float64Array;

  constructor(capacity: number, seed: number) {
    this.capacity = Math.max(1, capacity | 0);
    let slots = 2;
    while (slots < 2 * this.capacity) slots *= 2;
    this.mask = slots - 1;
    this.shift = 32 - Math.log2(slots);
    this.key = new Int32Array(slots);
    this.used = new Uint8Array(slots);
    this.val = new Int32Array(slots);
    this.mac = new Float64Array(slots);
    this.seen = new Float64Array(slots);
    let s = Math.imul((seed | 0) ^ 0x5bd1e995, 0x7feb352d);
    this.k0 = (s ^ (s >>> 15)) | 0;
    s = Math.imul(this.k0 ^ 0x27d4eb2f, 0x846ca68b);
    this.k1 = (s ^ (s >>> 16)) | 0;
  }

  private hash(k: number): number {
    let x = Math.imul(k ^ this.k0, 0x9e3779b1);
    x = Math.imul(x ^ (x >>> 16) ^ this.k1, 0x85ebca77);
    return x >>> this.shift;
  }

  /** The slot holding key k (an int32 address), or else the free slot where its probe ends. */
  private probe(k: number): number {
    const used = this.used;
    const key = this.key;
    const mask = this.mask;
    let i = this.hash(k);
    while (used[i] !== 0 && key[i] !== k) i = (i + 1) & mask;
    return i;
  }

  /** Slot of address `ip`, or −1. Hot. */
  find(ip: number): number {
    const i = this.probe(ip | 0);
    return this.used[i] !== 0 ? i : -1;
  }

  /** Slot of `ip`, made (value 0, MAC 0, seen 0) when new; −1 when the table is full. Hot. */
  insert(ip: number): number {
    const k = ip | 0;
    const used = this.used;
    const i = this.probe(k);
    if (used[i] !== 0) return i;
    if (this.size >= this.capacity) return -1;
    used[i] = 1;
    this.key[i] = k;
    this.val[i] = 0;
    this.mac[i] = 0;
    this.seen[i] = 0;
    this.size++;
    return i;
  }

  clear(): void {
    this.used.fill(0);
    this.size = 0;
  }

  /** Backward-shift deletion of slot i (no tombstones). */
  deleteSlot(i: number): void {
    const mask = this.mask;
    const used = this.used;
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (used[j] === 0) break;
      const home = this.hash(this.key[j]);
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        this.key[hole] = this.key[j];
        this.val[hole] = this.val[j];
        this.mac[hole] = this.mac[j];
        this.seen[hole] = this.seen[j];
        hole = j;
      }
    }
    used[hole] = 0;
    this.size--;
  }
}
