/**
 * ConntrackEvict — which flows go and when: conntrack's flow ids, the
 * expiry sweep, early drop and zone quotas. Owned by Conntrack
 * (conntrack.ts), which fills the flow records and looks flows up; this
 * class hands out and takes back flow ids (take/drop: a dropped flow's two
 * index entries go, its record is marked free), expires flows (tick),
 * counts unassured flows per zone and chooses which flow a full table
 * gives up for a new one.
 *
 * Early drop: create() on a full table reclaims one flow among up to 64
 * scanned from a rotating cursor: an already expired one at once, else a
 * NOT ASSURED one — never answered (counters.evicted) or answered but not
 * established (counters.earlyDrop: the SYN_RECV flows a SYN flood leaves,
 * as the container answers every SYN) — the one closest to expiry (so the
 * oldest of a state; the cursor then moves just past it). Assured flows
 * (established TCP, answered UDP/ICMP) are never taken, so running
 * connections survive any flood.
 *   Zones: create() takes a zone (0..8191; the router passes its ingress
 * iface + 1, so each network, the uplink — "outside" — and the host link
 * are zones; 0 = none given). Each zone's live unassured flows are counted
 * (zoneUnassured); a zone holding ≥ zoneQuota (default capacity/4) of them
 * is "at quota". Among the scanned flows a victim from a zone at quota is
 * preferred (counters.quotaDrop); a new flow of a zone at quota may only
 * take a victim from a zone at quota, and looks for one in up to 4 windows
 * of 64 (else it is refused: counters.quotaRefused, in full too; a window
 * can hold only other zones' unassured flows). So a flood from one zone (a network,
 * or every outside client together: the uplink is one zone) uses up its own
 * flows, and the new, still unassured flows of other zones are not pushed
 * out before they complete. (Per-source quotas were not added: the outside
 * is one zone; a spoofed flood has no meaningful source anyway.)
 *   If none of them may go, take() refuses (−1, counters.full; the
 * cursor moves past the flows scanned).
 *   tick(now) expires incrementally: each call scans a slice of
 * max(4096, capacity/4) flows, so at ~1 call/s every flow is visited
 * within 4 s (counters.expired).
 *
 * Storage (typed arrays, preallocated): the free flow ids on a stack
 * (Int32Array), zoneUnassured (Int32Array, one per zone), the scan and tick
 * cursors; it reads and frees the table's flow records (rec/recF) and
 * index entries (the TupleIndex), all given at construction, and counts
 * into the table's counters (expired, evicted, earlyDrop, quotaDrop,
 * quotaRefused, full). Allocates nothing after construction.
 */
import { MAX_ZONE, type ConntrackCounters } from './conntrack-config.js';
import type { TupleIndex } from './tuple-index.js';

/** the flow record layout of conntrack.ts (kept in step by hand: this module must not import it) */
const W_META = 6;
const F_EXP = 4; // Float64 index within the record (words 8–9)
const F_USED = 1 << 16;
const F_REPLIED = 1 << 17;
const F_ASSURED = 1 << 18;
const ZONE_SHIFT = 19;
/** flows scanned by victim() */
const EVICT_SCAN = 64;
/** windows a new flow of a zone at quota may scan for a victim of a zone at quota */
const EVICT_ROUNDS = 4;

export class ConntrackEvict {
  /** live unassured flows per zone (index = zone) */
  readonly zoneUnassured = new Int32Array(MAX_ZONE + 1);
  /** unassured flows a zone may hold before it is "at quota" */
  readonly zoneQuota: number;
  /** live unassured flows, all zones */
  unassured = 0;
  private readonly capacity: number;
  private readonly index: TupleIndex;
  private readonly rec: Int32Array;
  private readonly recF: Float64Array;
  private readonly counters: ConntrackCounters;
  /** free flow ids: a stack */
  private readonly freeIds: Int32Array;
  private freeTop: number;
  private cursor = 0;
  private tickCursor = 0;
  private readonly tickSlice: number;

  /** `rec`/`recF`: the table's flow records (int32 and float64 views of one buffer); `index`: its TupleIndex */
  constructor(
    capacity: number,
    zoneQuota: number | undefined,
    index: TupleIndex,
    rec: Int32Array,
    recF: Float64Array,
    counters: ConntrackCounters,
  ) {
    const q = zoneQuota ?? Math.max(1, Math.floor(capacity / 4));
    if (!(q >= 1) || !Number.isInteger(q)) throw new Error('conntrack zoneQuota must be an integer ≥ 1');
    this.zoneQuota = q;
    this.capacity = capacity;
    this.index = index;
    this.rec = rec;
    this.recF = recF;
    this.counters = counters;
    this.freeIds = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeIds[i] = capacity - 1 - i;
    this.freeTop = capacity;
    this.tickSlice = Math.max(4096, Math.ceil(capacity / 4));
  }

  /** Free flow ids. */
  get free(): number {
    return this.freeTop;
  }

  /** Bytes of the free-id stack. */
  get bytes(): number {
    return this.freeIds.byteLength;
  }

  /**
   * A free flow id for a new flow of `zone` (counted unassured in it); on a
   * full table one flow is freed first (see victim()). −1 when none may go
   * (counters.full).
   */
  take(now: number, zone: number): number {
    if (this.freeTop === 0) {
      const v = this.victim(now, zone);
      if (v < 0) {
        this.counters.full++;
        return -1;
      }
      this.drop(v);
    }
    this.zoneUnassured[zone]++;
    this.unassured++;
    return this.freeIds[--this.freeTop];
  }

  /** Free a live flow: both index entries, its record marked free, its id back on the stack. */
  drop(f: number): void {
    const rec = this.rec;
    const b = f << 4;
    const meta = rec[b | W_META];
    const proto = meta & 0xff;
    this.index.remove(proto, rec[b], rec[b + 1], rec[b + 2], f << 1);
    this.index.remove(proto, rec[b + 3], rec[b + 4], rec[b + 5], (f << 1) | 1);
    if ((meta & F_ASSURED) === 0) {
      this.zoneUnassured[meta >>> ZONE_SHIFT]--;
      this.unassured--;
    }
    rec[b | W_META] = 0;
    this.recF[(f << 3) + F_EXP] = Infinity;
    this.freeIds[this.freeTop++] = f;
  }

  /**
   * Expire flows with expires ≤ now among the next slice of flow ids
   * (incremental; call about once a second). Returns how many expired.
   */
  tick(now: number): number {
    const recF = this.recF;
    const cap = this.capacity;
    const n = Math.min(this.tickSlice, cap);
    let cur = this.tickCursor;
    let expired = 0;
    for (let k = 0; k < n; k++) {
      if (recF[(cur << 3) + F_EXP] <= now) {
        this.drop(cur);
        expired++;
      }
      if (++cur === cap) cur = 0;
    }
    this.tickCursor = cur;
    this.counters.expired += expired;
    return expired;
  }

  /** A flow's ASSURED flag flipped to the one in `meta` (set by a reply / ESTABLISHED, cleared by a reopen): its zone's count follows. */
  assuredChanged(meta: number): void {
    const d = (meta & F_ASSURED) !== 0 ? -1 : 1;
    this.zoneUnassured[meta >>> ZONE_SHIFT] += d;
    this.unassured += d;
  }

  /**
   * Full table: the flow to free, among the next EVICT_SCAN from the
   * cursor, for a new flow of `zone` — an expired one at once, else the
   * unassured one closest to expiry, from a zone at quota when there is one
   * (see the header); counted (expired, earlyDrop or evicted). −1 when none
   * of them may go. The caller frees the flow.
   */
  private victim(now: number, zone: number): number {
    const rec = this.rec;
    const recF = this.recF;
    const zu = this.zoneUnassured;
    const quota = this.zoneQuota;
    const cap = this.capacity;
    let cur = this.cursor;
    let best = -1;
    let bestExp = Infinity;
    let over = -1;
    let overExp = Infinity;
    let expired = false;
    // a new flow of a zone at quota may scan up to EVICT_ROUNDS windows for a victim of a zone at quota
    // before it is refused (a window may hold only other zones' unassured flows)
    const atQuota = zu[zone] >= quota;
    let left = Math.min(EVICT_SCAN, cap);
    for (let k = Math.min(EVICT_SCAN * (atQuota ? EVICT_ROUNDS : 1), cap); k > 0; k--, left--) {
      if (left === 0) {
        if (over >= 0) break; // (only reached when atQuota: otherwise k ends with the first window)
        left = EVICT_SCAN;
      }
      const f = cur;
      if (++cur === cap) cur = 0;
      const meta = rec[(f << 4) | W_META];
      if ((meta & F_USED) === 0) continue;
      const e = recF[(f << 3) + F_EXP];
      if (e <= now) {
        best = f;
        expired = true;
        break;
      }
      if ((meta & F_ASSURED) !== 0) continue;
      if (e < bestExp) {
        best = f;
        bestExp = e;
      }
      if (e < overExp && zu[meta >>> ZONE_SHIFT] >= quota) {
        over = f;
        overExp = e;
      }
    }
    const c = this.counters;
    if (!expired) {
      if (over >= 0) {
        best = over;
        c.quotaDrop++;
      } else if (best >= 0 && atQuota) {
        // this zone is at its quota and may not take room from zones below theirs
        best = -1;
        c.quotaRefused++;
      }
    }
    if (best < 0) {
      this.cursor = cur;
      return -1;
    }
    // go on right after the chosen flow, so runs of assured flows cost one
    // refusal per 64 and runs of unassured ones are used up one by one
    this.cursor = best + 1 === cap ? 0 : best + 1;
    if (expired) c.expired++;
    else if ((rec[(best << 4) | W_META] & F_REPLIED) !== 0) c.earlyDrop++;
    else c.evicted++;
    return best;
  }
}
