/**
 * ArpQuota — the per-iface share of the ARP cache's dynamic entries (owned
 * by ArpCache, see arp-cache.ts; entry ids are the cache's).
 *
 * Fair shares (one network must not starve the others): each iface may
 * hold at most `quota` dynamic entries, INCOMPLETE ones included. A new
 * entry on an iface at its quota evicts that iface's own least recently
 * confirmed entry (the cache counts counters.quotaEvicted; hits(i) counts
 * per iface); when the whole dynamic table is full the cache evicts from
 * biggest(), the iface holding the most (counters.full). The victim is the
 * first entry that is not REACHABLE among the EVICT_SCAN least recently
 * confirmed of that iface, else the least recently confirmed one. So a
 * flood on one iface only ever churns that iface's own share.
 *
 * Storage (typed arrays, preallocated): each iface keeps its dynamic
 * entries on a doubly linked LRU list (prev/next per entry id; head = least
 * recently confirmed, created/confirmed → tail), so choosing a victim is
 * O(1); per iface (uint16 ids): list head/tail, entries held, quota hits.
 * Permanent entries are never on a list. Allocates nothing after
 * construction.
 */

/** iface ids are uint16 */
const IFACES = 0x10000;
/** how many of an iface's oldest entries a victim search looks at for a non-REACHABLE one */
const EVICT_SCAN = 8;
/** ArpState.REACHABLE (arp-cache.ts; kept in step by hand: this module must not import the cache) */
const REACHABLE = 2;

export class ArpQuota {
  /** dynamic entries one iface may hold */
  readonly quota: number;
  /** the cache's entry states (read by victim()) */
  private readonly state: Uint8Array;
  private readonly lPrev: Int32Array;
  private readonly lNext: Int32Array;
  private readonly ifHead = new Int32Array(IFACES).fill(-1);
  private readonly ifTail = new Int32Array(IFACES).fill(-1);
  /** per iface: dynamic entries held, quota hits */
  private readonly ifDyn = new Int32Array(IFACES);
  private readonly ifQuotaHits = new Float64Array(IFACES);
  /** 1 + the highest iface id that ever held a dynamic entry (bounds the biggest-holder scan) */
  private ifTop = 0;

  /** `entries`: the cache's entry ids (0..entries−1); `state`: its per-entry state array */
  constructor(entries: number, quota: number, state: Uint8Array) {
    this.quota = quota;
    this.state = state;
    this.lPrev = new Int32Array(entries);
    this.lNext = new Int32Array(entries);
  }

  /** iface holds its quota (a new entry must evict one of its own first) */
  full(iface: number): boolean {
    return this.ifDyn[iface] >= this.quota;
  }

  /** Dynamic entries iface holds. */
  held(iface: number): number {
    return this.ifDyn[iface];
  }

  /** How often iface hit its quota. */
  hits(iface: number): number {
    return this.ifQuotaHits[iface];
  }

  /** iface hit its quota once more. */
  hit(iface: number): void {
    this.ifQuotaHits[iface]++;
  }

  /** iface was flushed: its hit count starts over. */
  resetHits(iface: number): void {
    this.ifQuotaHits[iface] = 0;
  }

  /** New dynamic entry e of iface: counted, most recently confirmed. */
  add(e: number, iface: number): void {
    this.ifDyn[iface]++;
    if (iface >= this.ifTop) this.ifTop = iface + 1;
    this.append(e, iface);
  }

  /** Dynamic entry e of iface is gone (deleted, or made permanent). */
  delete(e: number, iface: number): void {
    this.unlink(e, iface);
    this.ifDyn[iface]--;
  }

  /** Dynamic entry e of iface was confirmed: last to be evicted. */
  touch(e: number, iface: number): void {
    this.unlink(e, iface);
    this.append(e, iface);
  }

  /** The iface holding the most dynamic entries. */
  biggest(): number {
    const d = this.ifDyn;
    let best = 0;
    for (let i = 1; i < this.ifTop; i++) if (d[i] > d[best]) best = i;
    return best;
  }

  /** Which of iface's dynamic entries to evict: the first non-REACHABLE of its EVICT_SCAN oldest, else its oldest; −1 when none. */
  victim(iface: number): number {
    const head = this.ifHead[iface];
    let e = head;
    for (let k = 0; k < EVICT_SCAN && e >= 0; k++) {
      if (this.state[e] !== REACHABLE) return e;
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
}
