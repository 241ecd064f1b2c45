/**
 * ArpCache — the router's neighbour table: (iface, IPv4) → MAC, bounded.
 *
 * Storage: `capacity` learned (dynamic) entries plus `staticCapacity`
 * permanent ones in preallocated typed arrays (entry ids are stable while
 * the entry lives), indexed by an open-addressing hash (slots = next power
 * of two ≥ 2·(capacity + staticCapacity), load ≤ 0.5) with a keyed
 * multiply-shift hash (seeded per daemon) and backward-shift deletion (no
 * tombstones). It never grows.
 *
 * Fair shares (one network must not starve the others): each iface may
 * hold at most `ifaceQuota` dynamic entries (default max(capacity/8, 64),
 * at most capacity), INCOMPLETE ones included. A new entry on an iface at
 * its quota evicts that iface's own least recently confirmed entry
 * (counters.quotaEvicted, and per iface ifaceQuotaHits(i)); when the whole
 * dynamic table is full it evicts from the iface holding the most
 * (counters.full). The victim is the first entry that is not REACHABLE
 * among the EVICT_SCAN least recently confirmed of that iface, else the
 * least recently confirmed one; its queued frames go to
 * host.arpUnresolved. So a flood on one iface only ever churns that
 * iface's own share. Each iface keeps its dynamic entries on an LRU list
 * (created/confirmed → tail), so choosing a victim is O(1).
 *
 * Permanent entries (setStatic: endpoints whose MAC usernet assigned) are
 * never learned, never aged or probed, never evicted, not changed by ARP
 * (a conflicting claim counts counters.conflicts) and not counted in any
 * quota; only removeStatic() or flushIface() removes them. A full static
 * area refuses (counters.staticFull).
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
 *   PERMANENT   set by the control plane (setStatic); see above.
 * tick() also deletes STALE entries unused for `gcMs`.
 *
 * Hot methods (find, lookup, enqueue, markUsed) allocate nothing. Time is
 * injected (ms).
 */

export const ArpState = { INCOMPLETE: 1, REACHABLE: 2, STALE: 3, PROBE: 4, PERMANENT: 5 } as const;
const STATE_NAMES = ['none', 'incomplete', 'reachable', 'stale', 'probe', 'permanent'];
/** iface ids are uint16 */
const IFACES = 0x10000;
/** how many of an iface's oldest entries a victim search looks at for a non-REACHABLE one */
const EVICT_SCAN = 8;

/** Event counters of the cache (cold reads). */
export interface ArpCacheCounters {
  /** a new entry found the whole dynamic table full (an entry of the biggest iface was evicted) */
  full: number;
  /** a new entry found its iface at its quota (one of that iface's own entries was evicted) */
  quotaEvicted: number;
  /** setStatic refused: the static area is full */
  staticFull: number;
  /** ARP claims for a permanent entry with another MAC (ignored) */
  conflicts: number;
}

export interface ArpCacheOptions {
  /** learned (dynamic) entries, all ifaces together (default 1024) */
  capacity?: number;
  /** permanent entries (setStatic), counted apart (default 1024) */
  staticCapacity?: number;
  /** dynamic entries one iface may hold (default max(capacity/8, 64), at most capacity) */
  ifaceQuota?: number;
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
  /** dynamic entries (all ifaces) */
  readonly capacity: number;
  readonly staticCapacity: number;
  readonly ifaceQuota: number;
  readonly queueLen: number;
  readonly reachableMs: number;
  readonly retransMs: number;
  readonly maxProbes: number;
  readonly gcMs: number;
  /** entries in use (dynamic + static) */
  size = 0;
  dynamicSize = 0;
  staticSize = 0;
  readonly counters: ArpCacheCounters = { full: 0, quotaEvicted: 0, staticFull: 0, conflicts: 0 };
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
  /** per iface LRU list of its dynamic entries (head = least recently confirmed) */
  private readonly lPrev: Int32Array;
  private readonly lNext: Int32Array;
  private readonly ifHead = new Int32Array(IFACES).fill(-1);
  private readonly ifTail = new Int32Array(IFACES).fill(-1);
  /** per iface: dynamic entries held, quota hits */
  private readonly ifDyn = new Int32Array(IFACES);
  private readonly ifQuotaHits = new Float64Array(IFACES);
  /** 1 + the highest iface id that ever held a dynamic entry (bounds the biggest-holder scan) */
  private ifTop = 0;

  constructor(opts: ArpCacheOptions = {}) {
    const cap = opts.capacity ?? 1024;
    if (!(cap >= 1) || cap > 1 << 20) throw new Error('ARP cache capacity must be 1..2^20');
    const scap = opts.staticCapacity ?? 1024;
    if (!(scap >= 0) || scap > 1 << 20) throw new Error('ARP static capacity must be 0..2^20');
    this.capacity = cap;
    this.staticCapacity = scap;
    this.ifaceQuota = Math.max(1, Math.min(cap, opts.ifaceQuota ?? Math.max(cap >>> 3, 64)));
    this.queueLen = Math.max(1, Math.min(255, opts.queueLen ?? 4));
    this.reachableMs = opts.reachableMs ?? 30_000;
    this.retransMs = opts.retransMs ?? 1_000;
    this.maxProbes = opts.maxProbes ?? 3;
    this.gcMs = opts.gcMs ?? 60_000;
    const total = cap + scap;
    let slots = 2;
    while (slots < 2 * total) slots *= 2;
    this.mask = slots - 1;
    this.shift = 32 - Math.log2(slots);
    this.index = new Int32Array(slots).fill(-1);
    this.eIface = new Uint16Array(total);
    this.eIp = new Int32Array(total);
    this.eMac = new Float64Array(total);
    this.eHi = new Int32Array(total);
    this.eLo = new Int32Array(total);
    this.eState = new Uint8Array(total);
    this.eConfirmed = new Float64Array(total);
    this.eUsed = new Float64Array(total);
    this.eNext = new Float64Array(total);
    this.eProbes = new Uint8Array(total);
    this.qHead = new Uint8Array(total);
    this.qCount = new Uint8Array(total);
    this.queue = new Int32Array(total * this.queueLen);
    this.lPrev = new Int32Array(total);
    this.lNext = new Int32Array(total);
    this.freeIds = new Int32Array(total);
    for (let i = 0; i < total; i++) this.freeIds[i] = total - 1 - i;
    this.freeTop = total;
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
    if (st === ArpState.PERMANENT) return e;
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

  /**
   * A new INCOMPLETE entry (the caller sends the first request). When the
   * iface is at its quota or the dynamic table is full, an older entry is
   * evicted first (see the header; its frames go to host.arpUnresolved).
   * −1 only when nothing can be evicted.
   */
  create(iface: number, ip: number, now: number, host: ArpHost | null = null): number {
    if (this.ifDyn[iface] >= this.ifaceQuota) {
      const v = this.victim(iface);
      if (v < 0) return -1;
      this.counters.quotaEvicted++;
      this.ifQuotaHits[iface]++;
      this.remove(v, host);
    } else if (this.dynamicSize >= this.capacity) {
      const v = this.victim(this.biggest());
      if (v < 0) return -1;
      this.counters.full++;
      this.remove(v, host);
    }
    const e = this.alloc(iface, ip, now);
    this.eState[e] = ArpState.INCOMPLETE;
    this.dynamicSize++;
    this.ifDyn[iface]++;
    if (iface >= this.ifTop) this.ifTop = iface + 1;
    this.append(e, iface);
    return e;
  }

  /** Take a free id and index it under (iface, ip); fields reset. */
  private alloc(iface: number, ip: number, now: number): number {
    const e = this.freeIds[--this.freeTop];
    this.eIface[e] = iface;
    this.eIp[e] = ip | 0;
    this.eMac[e] = 0;
    this.eHi[e] = 0;
    this.eLo[e] = 0;
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

  /** The iface holding the most dynamic entries. */
  private biggest(): number {
    const d = this.ifDyn;
    let best = 0;
    for (let i = 1; i < this.ifTop; i++) if (d[i] > d[best]) best = i;
    return best;
  }

  /** Which of iface's dynamic entries to evict: the first non-REACHABLE of its EVICT_SCAN oldest, else its oldest; −1 when none. */
  private victim(iface: number): number {
    const head = this.ifHead[iface];
    let e = head;
    for (let k = 0; k < EVICT_SCAN && e >= 0; k++) {
      if (this.eState[e] !== ArpState.REACHABLE) return e;
      e = this.lNext[e];
    }
    return head;
  }

  private append(e: number, iface: number): void {
    const tail = this.ifTail[iface];
    this.lPrev[e] = tail;
    this.lNext[e] = -1;
    if (tail >= 0) this.lNext[tail] = e;
    else this.ifHead[iface] = e;
    this.ifTail[iface] = e;
  }

  private unlink(e: number, iface: number): void {
    const p = this.lPrev[e];
    const n = this.lNext[e];
    if (p >= 0) this.lNext[p] = n;
    else this.ifHead[iface] = n;
    if (n >= 0) this.lPrev[n] = p;
    else this.ifTail[iface] = p;
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
   * are updated. A permanent entry is left as it is (another MAC counts a
   * conflict). Returns the entry id (its queue may hold frames to send
   * now), or −1.
   */
  confirm(iface: number, ip: number, hi: number, lo: number, now: number, create: boolean, host: ArpHost | null = null): number {
    let e = this.find(iface, ip);
    if (e < 0) {
      if (!create) return -1;
      e = this.create(iface, ip, now, host);
      if (e < 0) return -1;
    } else if (this.eState[e] === ArpState.PERMANENT) {
      if (this.eHi[e] !== hi || this.eLo[e] !== lo) this.counters.conflicts++;
      return e;
    } else {
      // most recently confirmed: last to be evicted
      this.unlink(e, iface);
      this.append(e, iface);
    }
    this.eHi[e] = hi;
    this.eLo[e] = lo;
    this.eMac[e] = hi * 0x100000000 + (lo >>> 0);
    this.eState[e] = ArpState.REACHABLE;
    this.eConfirmed[e] = now;
    this.eProbes[e] = 0;
    return e;
  }

  /**
   * Cold: a permanent entry (iface, ip) → mac. A dynamic entry for it
   * becomes permanent (frames queued on it wait: the caller sends them, see
   * pending()). Returns the entry id, or −1 when the static area is full.
   */
  setStatic(iface: number, ip: number, mac: number, now = 0): number {
    let e = this.find(iface, ip);
    if (e >= 0 && this.eState[e] !== ArpState.PERMANENT) {
      this.unlink(e, iface);
      this.dynamicSize--;
      this.ifDyn[iface]--;
      this.staticSize++;
    } else if (e < 0) {
      if (this.staticSize >= this.staticCapacity) {
        this.counters.staticFull++;
        return -1;
      }
      e = this.alloc(iface, ip, now);
      this.staticSize++;
    }
    this.eState[e] = ArpState.PERMANENT;
    this.eHi[e] = Math.floor(mac / 0x100000000) & 0xffff;
    this.eLo[e] = mac | 0;
    this.eMac[e] = mac;
    this.eConfirmed[e] = now;
    this.eProbes[e] = 0;
    return e;
  }

  /** Cold: remove the permanent entry (iface, ip) (only if it maps to `mac`, when given); true if it went. */
  removeStatic(iface: number, ip: number, mac?: number): boolean {
    const e = this.find(iface, ip);
    if (e < 0 || this.eState[e] !== ArpState.PERMANENT || (mac !== undefined && this.eMac[e] !== mac)) return false;
    this.remove(e, null);
    return true;
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
    if (this.eState[e] === ArpState.PERMANENT) this.staticSize--;
    else {
      this.unlink(e, iface);
      this.dynamicSize--;
      this.ifDyn[iface]--;
    }
    this.eState[e] = 0;
    this.freeIds[this.freeTop++] = e;
    this.size--;
  }

  /** Remove every entry of `iface`, permanent ones too (its queued frames go to host.arpUnresolved). */
  flushIface(iface: number, host: ArpHost | null): number {
    let n = 0;
    const total = this.capacity + this.staticCapacity;
    for (let e = 0; e < total; e++) {
      if (this.eState[e] !== 0 && this.eIface[e] === iface) {
        this.remove(e, host);
        n++;
      }
    }
    this.ifQuotaHits[iface] = 0;
    return n;
  }

  /** Retransmit requests, fail unresolved entries, age and collect. About once a second. */
  tick(now: number, host: ArpHost): void {
    const total = this.capacity + this.staticCapacity;
    for (let e = 0; e < total; e++) {
      const st = this.eState[e];
      if (st === 0 || st === ArpState.PERMANENT) continue;
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

  /** Cold: dynamic entries iface holds, permanent ones, and how often it hit its quota. */
  ifaceStats(iface: number): { dynamic: number; static: number; quota: number; quotaHits: number } {
    let st = 0;
    const total = this.capacity + this.staticCapacity;
    for (let e = 0; e < total; e++) if (this.eState[e] === ArpState.PERMANENT && this.eIface[e] === iface) st++;
    return { dynamic: this.ifDyn[iface], static: st, quota: this.ifaceQuota, quotaHits: this.ifQuotaHits[iface] };
  }

  /** Cold: every entry. */
  rows(): ArpRow[] {
    const out: ArpRow[] = [];
    const total = this.capacity + this.staticCapacity;
    for (let e = 0; e < total; e++) {
      const st = this.eState[e];
      if (st === 0) continue;
      out.push({ iface: this.eIface[e], ip: this.eIp[e] >>> 0, mac: this.eMac[e], state: STATE_NAMES[st] });
    }
    return out;
  }
}
