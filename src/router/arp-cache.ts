/**
 * ArpCache — the router's neighbour table: (iface, IPv4) → MAC, bounded.
 *
 * Storage: `capacity` learned (dynamic) entries plus `staticCapacity`
 * permanent ones in preallocated typed arrays (entry ids are stable while
 * the entry lives; free ids on a stack), indexed by ./arp-index.ts
 * (ArpIndex: open addressing, slots = next power of two ≥ 2·(capacity +
 * staticCapacity), keyed hash seeded per daemon, backward-shift deletion).
 * It never grows.
 *
 * Fair shares (one network must not starve the others): each iface may
 * hold at most `ifaceQuota` dynamic entries (default max(capacity/8, 64),
 * at most capacity), INCOMPLETE ones included. A new entry on an iface at
 * its quota evicts one of that iface's own (counters.quotaEvicted, per
 * iface ifaceStats(i).quotaHits); when the whole dynamic table is full it
 * evicts from the iface holding the most (counters.full). The per-iface
 * LRU lists, counts and the victim choice are ./arp-quota.ts (ArpQuota);
 * an evicted entry's queued frames go to host.arpUnresolved.
 *
 * Permanent entries (setStatic: endpoints whose MAC usernet assigned) are
 * never learned, never aged or probed, never evicted, not changed by ARP
 * (a conflicting claim counts counters.conflicts) and not counted in any
 * quota; only removeStatic() or flushIface() removes them. A full static
 * area refuses (counters.staticFull).
 *
 * Each entry has a small FIFO of frames waiting for resolution (`queueLen`,
 * default 4; ./arp-queue.ts, ArpQueue): enqueue() on a full queue hands
 * back the oldest frame for the caller to free, as Linux's unres_qlen does.
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
 * Hot methods (find, lookup, enqueue, dequeue) allocate nothing. Time is
 * injected (ms).
 */
import { ArpIndex } from './arp-index.js';
import { ArpQuota } from './arp-quota.js';
import { ArpQueue } from './arp-queue.js';
import type { ArpCacheCounters, ArpCacheOptions, ArpHost, ArpRow } from './arp-config.js';

export type { ArpCacheCounters, ArpCacheOptions, ArpHost, ArpRow } from './arp-config.js';

export const ArpState = { INCOMPLETE: 1, REACHABLE: 2, STALE: 3, PROBE: 4, PERMANENT: 5 } as const;
const STATE_NAMES = ['none', 'incomplete', 'reachable', 'stale', 'probe', 'permanent'];

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
  /** (iface, ip) → entry id */
  private readonly index: ArpIndex;
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
  /** frames waiting per entry */
  private readonly q: ArpQueue;
  private readonly freeIds: Int32Array;
  private freeTop: number;
  /** per iface share of the dynamic entries: LRU lists, counts, victim choice */
  private readonly quota: ArpQuota;

  constructor(opts: ArpCacheOptions = {}) {
    const cap = opts.capacity ?? 1024;
    if (!(cap >= 1) || cap > 1 << 20) throw new Error('ARP cache capacity must be 1..2^20');
    const scap = opts.staticCapacity ?? 1024;
    if (!(scap >= 0) || scap > 1 << 20) throw new Error('ARP static capacity must be 0..2^20');
    this.capacity = cap;
    this.staticCapacity = scap;
    const ifaceQuota = Math.max(1, Math.min(cap, opts.ifaceQuota ?? Math.max(cap >>> 3, 64)));
    this.ifaceQuota = ifaceQuota;
    this.queueLen = Math.max(1, Math.min(255, opts.queueLen ?? 4));
    this.reachableMs = opts.reachableMs ?? 30_000;
    this.retransMs = opts.retransMs ?? 1_000;
    this.maxProbes = opts.maxProbes ?? 3;
    this.gcMs = opts.gcMs ?? 60_000;
    const total = cap + scap;
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
    this.q = new ArpQueue(total, this.queueLen);
    this.quota = new ArpQuota(total, ifaceQuota, this.eState);
    this.freeIds = new Int32Array(total);
    for (let i = 0; i < total; i++) this.freeIds[i] = total - 1 - i;
    this.freeTop = total;
    this.index = new ArpIndex(total, opts.seed ?? 0, this.eIface, this.eIp);
  }

  /** Entry id of (iface, ip), or −1. */
  find(iface: number, ip: number): number {
    return this.index.find(iface, ip);
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
    const quota = this.quota;
    if (quota.full(iface)) {
      const v = quota.victim(iface);
      if (v < 0) return -1;
      this.counters.quotaEvicted++;
      quota.hit(iface);
      this.remove(v, host);
    } else if (this.dynamicSize >= this.capacity) {
      const v = quota.victim(quota.biggest());
      if (v < 0) return -1;
      this.counters.full++;
      this.remove(v, host);
    }
    const e = this.alloc(iface, ip, now);
    this.eState[e] = ArpState.INCOMPLETE;
    this.dynamicSize++;
    quota.add(e, iface);
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
    this.q.reset(e);
    this.index.insert(e, iface, ip);
    this.size++;
    return e;
  }

  /** Queue frame h on entry e; returns −1, or the oldest frame pushed out (the caller frees it). */
  enqueue(e: number, h: number): number {
    return this.q.enqueue(e, h);
  }

  /** Frames queued on e. */
  pending(e: number): number {
    return this.q.pending(e);
  }

  /** Take the oldest queued frame of e (−1 when none). */
  dequeue(e: number): number {
    return this.q.dequeue(e);
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
      this.quota.touch(e, iface);
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
      this.quota.delete(e, iface);
      this.dynamicSize--;
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
    this.index.remove(e);
    if (this.eState[e] === ArpState.PERMANENT) this.staticSize--;
    else {
      this.quota.delete(e, iface);
      this.dynamicSize--;
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
    this.quota.resetHits(iface);
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
    return { dynamic: this.quota.held(iface), static: st, quota: this.ifaceQuota, quotaHits: this.quota.hits(iface) };
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
