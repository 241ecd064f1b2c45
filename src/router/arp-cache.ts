/**
 * ArpCache — the router's neighbour table: (iface, IPv4) → MAC, bounded.
 *
 * Storage: `capacity` entries in preallocated typed arrays (entry ids are
 * stable while the entry lives), indexed by an open-addressing hash (slots =
 * next power of two ≥ 2·capacity, load ≤ 0.5) with a keyed multiply-shift
 * hash (seeded per daemon) and backward-shift deletion (no tombstones). A
 * full table refuses new entries (the caller counts it); it never grows.
 *
 * Each entry has a small FIFO of frames waiting for resolution (`queueLen`,
 * default 4, frames are pool handles owned by the cache until released or
 * dropped: enqueue() on a full queue hands back the oldest frame for the
 * caller to free, as Linux's unres_qlen does).
 *
 * States (a reduced RFC 4861 / Linux neighbour machine):
 *   INCOMPLETE  created on demand; the caller broadcasts a request at once,
 *               tick() repeats it every `retransMs` until `maxProbes`
 *               requests went unanswered: then the entry is deleted and
 *               its queued frames dropped (ArpHost.unresolved).
 *   REACHABLE   confirmed (a reply, or a request from it addressed to us)
 *               less than `reachableMs` ago; used as is.
 *   STALE       older than that; still used, and the first use starts
 *               PROBE (a unicast request to the known MAC).
 *   PROBE       like STALE, retried every `retransMs`; after `maxProbes`
 *               unanswered requests the entry is deleted.
 * tick() also deletes STALE entries unused for `gcMs`.
 *
 * Hot methods (find, lookup, enqueue, markUsed) allocate nothing. Time is
 * injected (ms).
 */

export const ArpState = { INCOMPLETE: 1, REACHABLE: 2, STALE: 3, PROBE: 4 } as const;
const STATE_NAMES = ['none', 'incomplete', 'reachable', 'stale', 'probe'];

export interface ArpCacheOptions {
  capacity?: number;
  seed?: number;
  /** frames queued per unresolved entry (default 4) */
  queueLen?: number;
  /** confirmation lifetime (default 30 000 ms, Linux base_reachable_time) */
  reachableMs?: number;
  /** request retransmit interval (default 1 000 ms) */
  retransMs?: number;
  /** requests before giving up (default 3) */
  maxProbes?: number;
  /** STALE entries unused this long are removed (default 60 000 ms) */
  gcMs?: number;
}

/** What the cache asks of its owner from tick(). */
export interface ArpHost {
  /** send an ARP request for `ip` on `iface`; `mac` = 0: broadcast, else unicast to it */
  arpRequest(iface: number, ip: number, mac: number): void;
  /** a frame queued for an entry that failed to resolve: the host frees it (and may report it) */
  arpUnresolved(h: number, iface: number): void;
}

export interface ArpRow {
  iface: number;
  ip: number;
  mac: number;
  state: string;
}

export class ArpCache {
  readonly capacity: number;
  readonly queueLen: number;
  readonly reachableMs: number;
  readonly retransMs: number;
  readonly maxProbes: number;
  readonly gcMs: number;
  size = 0;
  private readonly mask: number;
  private readonly shift: number;
  private readonly k0: number;
  private readonly k1: number;
  /** slot → entry id, −1 empty */
  private readonly index: Int32Array;
  readonly eIface: Uint16Array;
  readonly eIp: Int32Array;
  /** the MAC (cold form) and split as hi (first two octets) / lo (last four, int32) */
  readonly eMac: Float64Array;
  readonly eHi: Int32Array;
  readonly eLo: Int32Array;
  readonly eState: Uint8Array;
  /** last confirmation */
  private readonly eConfirmed: Float64Array;
  /** last use for output */
  private readonly eUsed: Float64Array;
  /** when the next request is due (INCOMPLETE/PROBE) */
  private readonly eNext: Float64Array;
  private readonly eProbes: Uint8Array;
  private readonly qHead: Uint8Array;
  private readonly qCount: Uint8Array;
  private readonly queue: Int32Array;
  private readonly freeIds: Int32Array;
  private freeTop: number;

  constructor(opts: ArpCacheOptions = {}) {
    const cap = opts.capacity ?? 1024;
    if (!(cap >= 1) || cap > 1 << 20) throw new Error('ARP cache capacity must be 1..2^20');
    this.capacity = cap;
    this.queueLen = Math.max(1, Math.min(255, opts.queueLen ?? 4));
    this.reachableMs = opts.reachableMs ?? 30_000;
    this.retransMs = opts.retransMs ?? 1_000;
    this.maxProbes = opts.maxProbes ?? 3;
    this.gcMs = opts.gcMs ?? 60_000;
    let slots = 2;
    while (slots < 2 * cap) slots *= 2;
    this.mask = slots - 1;
    this.shift = 32 - Math.log2(slots);
    this.index = new Int32Array(slots).fill(-1);
    this.eIface = new Uint16Array(cap);
    this.eIp = new Int32Array(cap);
    this.eMac = new Float64Array(cap);
    this.eHi = new Int32Array(cap);
    this.eLo = new Int32Array(cap);
    this.eState = new Uint8Array(cap);
    this.eConfirmed = new Float64Array(cap);
    this.eUsed = new Float64Array(cap);
    this.eNext = new Float64Array(cap);
    this.eProbes = new Uint8Array(cap);
    this.qHead = new Uint8Array(cap);
    this.qCount = new Uint8Array(cap);
    this.queue = new Int32Array(cap * this.queueLen);
    this.freeIds = new Int32Array(cap);
    for (let i = 0; i < cap; i++) this.freeIds[i] = cap - 1 - i;
    this.freeTop = cap;
    const seed = opts.seed ?? 0;
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

  /**
   * For output: the entry to send to (its MAC is eHi[e]/eLo[e]), or −1 when
   * missing or INCOMPLETE. A STALE entry starts probing (`host.arpRequest`
   * unicast).
   */
  lookup(iface: number, ip: number, now: number, host: ArpHost): number {
    const e = this.find(iface, ip);
    if (e < 0) return -1;
    const st = this.eState[e];
    if (st === ArpState.INCOMPLETE) return -1;
    this.eUsed[e] = now;
    if (st === ArpState.REACHABLE) {
      if (now - this.eConfirmed[e] < this.reachableMs) return e;
      this.eState[e] = ArpState.STALE;
    }
    if (this.eState[e] === ArpState.STALE) {
      this.eState[e] = ArpState.PROBE;
      this.eProbes[e] = 1;
      this.eNext[e] = now + this.retransMs;
      host.arpRequest(iface, ip, this.eMac[e]);
    }
    return e;
  }

  /** A new INCOMPLETE entry (the caller sends the first request), or −1 when full. */
  create(iface: number, ip: number, now: number): number {
    if (this.freeTop === 0) return -1;
    const e = this.freeIds[--this.freeTop];
    this.eIface[e] = iface;
    this.eIp[e] = ip | 0;
    this.eMac[e] = 0;
    this.eHi[e] = 0;
    this.eLo[e] = 0;
    this.eState[e] = ArpState.INCOMPLETE;
    this.eConfirmed[e] = 0;
    this.eUsed[e] = now;
    this.eNext[e] = now + this.retransMs;
    this.eProbes[e] = 1;
    this.qHead[e] = 0;
    this.qCount[e] = 0;
    let i = this.hash(iface, ip | 0);
    while (this.index[i] >= 0) i = (i + 1) & this.mask;
    this.index[i] = e;
    this.size++;
    return e;
  }

  /** Queue frame h on entry e; returns −1, or the oldest frame pushed out (the caller frees it). */
  enqueue(e: number, h: number): number {
    const q = this.queueLen;
    const base = e * q;
    const n = this.qCount[e];
    if (n < q) {
      this.queue[base + ((this.qHead[e] + n) % q)] = h;
      this.qCount[e] = n + 1;
      return -1;
    }
    const head = this.qHead[e];
    const old = this.queue[base + head];
    this.queue[base + head] = h;
    this.qHead[e] = (head + 1) % q;
    return old;
  }

  /** Frames queued on e. */
  pending(e: number): number {
    return this.qCount[e];
  }

  /** Take the oldest queued frame of e (−1 when none). */
  dequeue(e: number): number {
    const n = this.qCount[e];
    if (n === 0) return -1;
    const head = this.qHead[e];
    const h = this.queue[e * this.queueLen + head];
    this.qHead[e] = (head + 1) % this.queueLen;
    this.qCount[e] = n - 1;
    return h;
  }

  /**
   * (iface, ip) is at the MAC (hi: first two octets, lo: last four as
   * int32), heard now. `create`: make the entry when
   * missing (the message was addressed to us); otherwise only known entries
   * are updated. Returns the entry id (its queue may hold frames to send
   * now), or −1.
   */
  confirm(iface: number, ip: number, hi: number, lo: number, now: number, create: boolean): number {
    let e = this.find(iface, ip);
    if (e < 0) {
      if (!create) return -1;
      e = this.create(iface, ip, now);
      if (e < 0) return -1;
    }
    this.eHi[e] = hi;
    this.eLo[e] = lo;
    this.eMac[e] = hi * 0x100000000 + (lo >>> 0);
    this.eState[e] = ArpState.REACHABLE;
    this.eConfirmed[e] = now;
    this.eProbes[e] = 0;
    return e;
  }

  /** Delete entry e; its queued frames go to host.arpUnresolved. */
  remove(e: number, host: ArpHost | null): void {
    const iface = this.eIface[e];
    for (let h = this.dequeue(e); h >= 0; h = this.dequeue(e)) if (host) host.arpUnresolved(h, iface);
    const index = this.index;
    const mask = this.mask;
    let hole = this.hash(iface, this.eIp[e]);
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
    this.eState[e] = 0;
    this.freeIds[this.freeTop++] = e;
    this.size--;
  }

  /** Remove every entry of `iface` (its queued frames go to host.arpUnresolved). */
  flushIface(iface: number, host: ArpHost | null): number {
    let n = 0;
    for (let e = 0; e < this.capacity; e++) {
      if (this.eState[e] !== 0 && this.eIface[e] === iface) {
        this.remove(e, host);
        n++;
      }
    }
    return n;
  }

  /** Retransmit requests, fail unresolved entries, age and collect. About once a second. */
  tick(now: number, host: ArpHost): void {
    for (let e = 0; e < this.capacity; e++) {
      const st = this.eState[e];
      if (st === 0) continue;
      if (st === ArpState.INCOMPLETE || st === ArpState.PROBE) {
        if (now < this.eNext[e]) continue;
        if (this.eProbes[e] >= this.maxProbes) {
          this.remove(e, host);
          continue;
        }
        this.eProbes[e]++;
        this.eNext[e] = now + this.retransMs;
        host.arpRequest(this.eIface[e], this.eIp[e] >>> 0, st === ArpState.PROBE ? this.eMac[e] : 0);
      } else if (st === ArpState.REACHABLE) {
        if (now - this.eConfirmed[e] >= this.reachableMs) this.eState[e] = ArpState.STALE;
      } else if (now - this.eUsed[e] >= this.gcMs && now - this.eConfirmed[e] >= this.gcMs) {
        this.remove(e, host);
      }
    }
  }

  /** Cold: every entry. */
  rows(): ArpRow[] {
    const out: ArpRow[] = [];
    for (let e = 0; e < this.capacity; e++) {
      const st = this.eState[e];
      if (st === 0) continue;
      out.push({ iface: this.eIface[e], ip: this.eIp[e] >>> 0, mac: this.eMac[e], state: STATE_NAMES[st] });
    }
    return out;
  }
}
