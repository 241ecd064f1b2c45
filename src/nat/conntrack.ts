/**
 * Conntrack — the connection tracking table (netfilter's model, bounded).
 *
 * A flow has two tuples, ORIGINAL (as the first packet looked) and REPLY
 * (what the answers look like, after NAT: for masquerade the reply goes to
 * the uplink address and mapped port). A tuple is (proto, srcIp, srcPort,
 * dstIp, dstPort) as uint32/uint16 numbers (int32 addresses are accepted
 * too); for ICMP queries (echo …) srcPort = dstPort = the identifier. Both
 * tuples are keys of one hash index pointing at the flow: an index entry
 * holds the key's hash and ref = flow << 1 | dir, so lookup() answers
 * "which flow, which direction" from one index slot and the flow's record
 * (two cache lines, the record being the one translate()/seen() use).
 *
 * Storage (all preallocated typed arrays, capacity fixed at construction):
 *   idx   the TupleIndex (./tuple-index.ts): 8-byte slots (hash tag, ref;
 *         the key is confirmed in the flow record), slots = power of two
 *         ≥ 4·capacity (load ≤ 0.5), open addressing, keyed hash (seed at
 *         construction), backward-shift deletion.
 *   rec   one 64-byte record (a cache line) per flow, so translate() and
 *         seen() touch one line: Int32Array words 0–5 orig src, dst,
 *         ports, reply src, dst, ports; 6 meta = proto | state << 8 |
 *         flags (USED, REPLIED, ASSURED) | zone << 19; 7 packet-counter wraps (orig low
 *         16 bits, reply high 16); Float64 at words 8–9 expiry (ms, +Infinity
 *         when free), 10–11 orig bytes, 12–13 reply bytes; Uint32 words 14,
 *         15 orig / reply packets (mod 2^32; word 7 counts the wraps).
 *   mark  Uint32Array: free for the router (e.g. interface ids).
 * Free flow ids are kept on a stack (in ConntrackEvict, see Bounds).
 *
 * States and timeouts (ms, `Timeouts`; defaults are netfilter's):
 *   TCP   the state machine of ./tcp-state.ts, driven by seen() with the
 *         segment's flags and direction:
 *           NONE --SYN(o)--> SYN_SENT --SYN+ACK(r)--> SYN_RECV --ACK(o)-->
 *           ESTABLISHED --FIN--> FIN_WAIT --ACK--> CLOSE_WAIT --FIN-->
 *           LAST_ACK --ACK--> TIME_WAIT;   RST (either way) --> CLOSE;
 *           SYN(o) in TIME_WAIT/CLOSE reopens (SYN_SENT, flags/accounting
 *           reset); ACK(o) in NONE picks up a running connection.
 *         Timeout by the state reached: SYN_SENT 120 s, SYN_RECV 60 s,
 *         ESTABLISHED 5 days, FIN_WAIT 120 s, CLOSE_WAIT 60 s, LAST_ACK
 *         30 s, TIME_WAIT 120 s, CLOSE (and NONE) 10 s.
 *   UDP   30 s while unreplied, 120 s (udpStream) once seen both ways.
 *   ICMP  30 s.   Other protocols: `generic` (600 s).
 * Flags: REPLIED once a packet was seen in the REPLY direction; ASSURED once
 * replied (TCP: once replied and ESTABLISHED). A flow expires when now ≥
 * expires = last packet + timeout of its state; create() sets the first
 * expiry (TCP: SYN_SENT timeout) and the caller then reports the packet
 * that made the flow with seen(). An expired flow stays findable until
 * tick() reaches it (≤ 4 s); compare expires(flow) with now where it matters.
 *
 * Bounds (Linux's early drop, plus zone quotas; ./conntrack-evict.ts):
 * create() on a full table frees one flow among up to 64 scanned from a
 * rotating cursor — an expired one, else a NOT ASSURED one (counters.evicted,
 * counters.earlyDrop), preferring zones at their quota (counters.quotaDrop)
 * — and refuses (−1, counters.full; counters.quotaRefused too when the new
 * flow's zone is at quota) when none may go; assured flows are never taken.
 * create() takes a zone (0..8191; 0 = none given); live unassured flows are
 * counted per zone (zoneUnassured, against zoneQuota, default capacity/4).
 *   tick(now) expires incrementally (also ConntrackEvict's): each call
 * scans a slice of max(4096, capacity/4) flows, so at ~1 call/s every flow
 * is visited within 4 s.
 *
 * Hot methods (lookup/find, lookupBulk — the batch path, see
 * conntrack-bulk.ts —, seen, the accessors) allocate nothing; nor do
 * create/remove/tick. Time is injected (`now`, ms). list() is cold.
 */
import { TCP_NEXT, TcpState } from './tcp-state.js';
import { formatConntrack, flowInfo, type FlowInfo } from './conntrack-format.js';
import { TupleIndex } from './tuple-index.js';
import { DEFAULT_TIMEOUTS, MAX_ZONE, type ConntrackCounters, type ConntrackOptions, type Timeouts } from './conntrack-config.js';
import { lookupBulk } from './conntrack-bulk.js';
import { ConntrackEvict } from './conntrack-evict.js';

export { TcpState } from './tcp-state.js';
export { formatConntrack, type FlowInfo, type FlowSide } from './conntrack-format.js';
export { DEFAULT_TIMEOUTS, MAX_ZONE, capacityFromEnv, type ConntrackCounters, type ConntrackOptions, type Timeouts } from './conntrack-config.js';

export const CT_ORIGINAL = 0;
export const CT_REPLY = 1;

/** flow record: 16 int32 words; meta word, wraps word; f64 / u32 positions */
const W_META = 6;
const W_WRAPS = 7;
const F_EXP = 4; // Float64 index within the record (words 8–9)
const F_BYTES = 5; // 5 orig, 6 reply
const U_PKTS = 14; // Uint32 word: 14 orig, 15 reply
/** meta word: proto (bits 0–7), state (8–15), flags */
const F_USED = 1 << 16;
const F_REPLIED = 1 << 17;
const F_ASSURED = 1 << 18;
/** meta word: zone in bits 19–31 (meta >>> ZONE_SHIFT) */
const ZONE_SHIFT = 19;
const EMPTY = -1;
/** TCP states used by seen() (TcpState is imported: local copies for the hot path) */
const S_SYN_SENT = 1;
const S_ESTABLISHED = 3;
const S_TIME_WAIT = 7;
/** int32 words per key of lookupBulk() (see conntrack-bulk.ts) */
export const KEY_STRIDE = 8;

export class Conntrack {
  readonly capacity: number;
  readonly index: TupleIndex;
  /** the index's records (see TupleIndex) */
  readonly idx: Int32Array;
  /** flow records, 16 words each (see the header) */
  readonly rec: Int32Array;
  readonly recU: Uint32Array;
  readonly recF: Float64Array;
  readonly mark: Uint32Array;
  readonly timeouts: Readonly<Timeouts>;
  readonly counters: ConntrackCounters = {
    inserted: 0, deleted: 0, expired: 0, evicted: 0, earlyDrop: 0, quotaDrop: 0, full: 0, quotaRefused: 0, clash: 0, searched: 0, found: 0, // prettier-ignore
  };
  /** the bounds policy: zone counts, early-drop victim choice (conntrack-evict.ts) */
  private readonly evict: ConntrackEvict;
  /** live unassured flows per zone (index = zone; the evict policy's array) */
  readonly zoneUnassured: Int32Array;
  /** unassured flows a zone may hold before it is "at quota" (see the header) */
  readonly zoneQuota: number;
  /** TCP timeout by state */
  private readonly tcpTimeout: Float64Array;
  /** tcp-state.ts's TCP_NEXT, as a field: an imported binding is reloaded (and TDZ-checked) on every use */
  private readonly tcpNext = TCP_NEXT;
  /** xor of the words lookupBulk touched (stored so the touches are not optimised away) */
  touched = 0;

  constructor(opts: ConntrackOptions = {}) {
    const cap = opts.capacity ?? 131072;
    if (!(cap >= 1 && cap <= 1 << 22) || !Number.isInteger(cap)) throw new Error('conntrack capacity must be 1..2^22');
    this.capacity = cap;
    let slots = 8;
    while (slots < 4 * cap) slots *= 2;
    const seed = opts.seed ?? (Math.random() * 0x100000000) >>> 0;
    this.rec = new Int32Array(cap * 16);
    this.index = new TupleIndex(slots, seed, this.rec);
    this.idx = this.index.idx;
    this.recU = new Uint32Array(this.rec.buffer);
    this.recF = new Float64Array(this.rec.buffer);
    for (let f = 0; f < cap; f++) this.recF[(f << 3) + F_EXP] = Infinity;
    this.mark = new Uint32Array(cap);
    this.evict = new ConntrackEvict(cap, opts.zoneQuota, this.index, this.rec, this.recF, this.counters);
    this.zoneUnassured = this.evict.zoneUnassured;
    this.zoneQuota = this.evict.zoneQuota;
    const t = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.timeouts = t;
    this.tcpTimeout = Float64Array.from([t.tcpClose, t.tcpSynSent, t.tcpSynRecv, t.tcpEstablished, t.tcpFinWait, t.tcpCloseWait, t.tcpLastAck, t.tcpTimeWait, t.tcpClose]); // prettier-ignore
  }

  /** live unassured flows, all zones */
  get unassured(): number {
    return this.evict.unassured;
  }

  get size(): number {
    return this.capacity - this.evict.free;
  }

  /** Total bytes of the table's typed arrays. */
  get tableBytes(): number {
    return this.idx.byteLength + this.rec.byteLength + this.mark.byteLength + this.evict.bytes;
  }

  // ----------------------------------------------------------------- hot

  /** (flow << 1) | dir of the flow holding this tuple, or −1. */
  lookup(proto: number, srcIp: number, srcPort: number, dstIp: number, dstPort: number): number {
    return this.find(proto, srcIp | 0, dstIp | 0, (srcPort << 16) | dstPort);
  }

  /** lookup() with int32 addresses and the ports packed as srcPort << 16 | dstPort (as read from a TCP/UDP header). */
  find(proto: number, s: number, d: number, p: number): number {
    const ix = this.index;
    const idx = this.idx;
    const rec = this.rec;
    const mask = ix.mask;
    const c = this.counters;
    c.searched++;
    // inline TupleIndex.hash/probeFrom
    const h = Math.imul(s ^ ix.k0, 0x9e3779b1) ^ Math.imul(d ^ ix.k1, 0x85ebca77) ^ Math.imul(p ^ ix.k2, 0xc2b2ae3d) ^ proto; // prettier-ignore
    const tag = Math.imul(h ^ (h >>> 16), 0x7feb352d);
    let i = tag >>> ix.shift;
    for (;;) {
      const ref = idx[(i << 1) | 1];
      if (ref === EMPTY) return -1;
      if (idx[i << 1] === tag) {
        const fb = (ref >> 1) << 4;
        const b = fb + (ref & 1) * 3;
        if (rec[b] === s && rec[b + 1] === d && rec[b + 2] === p && (rec[fb | W_META] & 0xff) === proto) {
          c.found++;
          return ref;
        }
      }
      i = (i + 1) & mask;
    }
  }

  /**
   * Bulk lookup of a batch of n keys held in `keys` (n ≤ keys.length /
   * KEY_STRIDE), KEY_STRIDE words a key:
   * [src, dst, ports, proto, ref, scratch, free, free] (addresses
   * int32, ports srcPort << 16 | dstPort). Writes each key's ref ((flow <<
   * 1) | dir, or −1) into its word 4; words 6–7 are the caller's (e.g. the
   * frame handle and the packet's L3 offset). Returns the hits. Same answers
   * as find(), but the cache misses of the batch overlap: every key is
   * hashed and its index line touched first, then all are probed by tag
   * (touching each candidate's flow record), then the candidates are
   * confirmed against their records — the lines translate()/seen() read next.
   */
  lookupBulk(keys: Int32Array, n: number): number {
    return lookupBulk(this, keys, n);
  }

  /**
   * A packet of `flow` went by in `dir`: count it, mark the flow replied
   * (REPLY), step the TCP state machine with the segment's flags (0 for
   * other protocols) and push the expiry to now + the state's timeout.
   * `packets`: how many packets it stands for — a super-frame (GSO) is
   * counted as its segments (segmentsOf(), src/dataplane/segments-count.ts)
   * and `bytes` as its IP bytes, as Linux's conntrack accounts a GSO skb;
   * its flags are those of the whole (FIN/PSH as the last segment's).
   */
  seen(flow: number, dir: number, tcpFlags: number, bytes: number, now: number, packets = 1): void {
    const rec = this.rec;
    const b = flow << 4;
    let meta = rec[b | W_META];
    const was = meta;
    const proto = meta & 0xff;
    let timeout: number;
    if (proto === 6) {
      const st = (meta >>> 8) & 0xff;
      // tcpClass() inline: RST 4, SYN+ACK 1, SYN 0, FIN 2, ACK 3, none 5
      const f = tcpFlags;
      const cls = (f & 4) !== 0 ? 4 : (f & 2) !== 0 ? ((f & 0x10) !== 0 ? 1 : 0) : (f & 1) !== 0 ? 2 : (f & 0x10) !== 0 ? 3 : 5;
      const next = this.tcpNext[(dir * 6 + cls) * 9 + st];
      if (next === S_SYN_SENT && st >= S_TIME_WAIT) {
        // reopened: a new connection on the same tuples
        meta &= ~(F_REPLIED | F_ASSURED);
        this.clearAcct(flow);
      }
      if (dir === 1) meta |= F_REPLIED;
      if (next === S_ESTABLISHED && (meta & F_REPLIED) !== 0) meta |= F_ASSURED;
      meta = (meta & ~0xff00) | (next << 8);
      timeout = this.tcpTimeout[next];
    } else {
      if (dir === 1) meta |= F_REPLIED | F_ASSURED;
      const t = this.timeouts;
      timeout = proto === 17 ? ((meta & F_REPLIED) !== 0 ? t.udpStream : t.udp) : proto === 1 ? t.icmp : t.generic;
    }
    rec[b | W_META] = meta;
    if (((meta ^ was) & F_ASSURED) !== 0) this.evict.assuredChanged(meta);
    const recF = this.recF;
    const fb = flow << 3;
    recF[fb + F_EXP] = now + timeout;
    recF[fb + F_BYTES + dir] += bytes;
    const recU = this.recU;
    const pk = (recU[b + U_PKTS + dir] + packets) >>> 0;
    recU[b + U_PKTS + dir] = pk;
    if (pk < packets) this.wrapped(flow, dir); // past 2^32 packets: count the wrap (cold)
  }

  // per-flow fields
  proto(flow: number): number {
    return this.rec[(flow << 4) | W_META] & 0xff;
  }
  srcIp(flow: number, dir: number): number {
    return this.rec[(flow << 4) + dir * 3] >>> 0;
  }
  dstIp(flow: number, dir: number): number {
    return this.rec[(flow << 4) + dir * 3 + 1] >>> 0;
  }
  srcPort(flow: number, dir: number): number {
    return this.rec[(flow << 4) + dir * 3 + 2] >>> 16;
  }
  dstPort(flow: number, dir: number): number {
    return this.rec[(flow << 4) + dir * 3 + 2] & 0xffff;
  }
  state(flow: number): number {
    return (this.rec[(flow << 4) | W_META] >>> 8) & 0xff;
  }
  replied(flow: number): boolean {
    return (this.rec[(flow << 4) | W_META] & F_REPLIED) !== 0;
  }
  assured(flow: number): boolean {
    return (this.rec[(flow << 4) | W_META] & F_ASSURED) !== 0;
  }
  /** the zone given to create() */
  zone(flow: number): number {
    return this.rec[(flow << 4) | W_META] >>> ZONE_SHIFT;
  }
  expires(flow: number): number {
    return this.recF[(flow << 3) + F_EXP];
  }
  packets(flow: number, dir: number): number {
    const wraps = (this.rec[(flow << 4) | W_WRAPS] >>> (dir << 4)) & 0xffff;
    return wraps * 0x100000000 + this.recU[(flow << 4) + U_PKTS + dir];
  }
  bytes(flow: number, dir: number): number {
    return this.recF[(flow << 3) + F_BYTES + dir];
  }
  /** The flow id is allocated (a live flow). */
  inUse(flow: number): boolean {
    return flow >= 0 && flow < this.capacity && (this.rec[(flow << 4) | W_META] & F_USED) !== 0;
  }

  // ---------------------------------------------------------------- cold

  /** Some flow has this tuple (either direction). Counts nothing. */
  tupleInUse(proto: number, srcIp: number, srcPort: number, dstIp: number, dstPort: number): boolean {
    return this.index.slotOf(proto, srcIp | 0, dstIp | 0, (srcPort << 16) | dstPort) >= 0;
  }

  /**
   * A new flow with these tuples, first expiry at now + the protocol's
   * initial timeout, in `zone` (0..MAX_ZONE, see the header); its id, or −1
   * when the table is full and nothing could be evicted (counters.full) or
   * a tuple is taken (counters.clash).
   */
  create(
    proto: number,
    oSrcIp: number, oSrcPort: number, oDstIp: number, oDstPort: number, // prettier-ignore
    rSrcIp: number, rSrcPort: number, rDstIp: number, rDstPort: number, // prettier-ignore
    now: number,
    zone = 0,
  ): number {
    proto &= 0xff;
    zone &= MAX_ZONE;
    const os = oSrcIp | 0, od = oDstIp | 0, op = ((oSrcPort & 0xffff) << 16) | (oDstPort & 0xffff); // prettier-ignore
    const rs = rSrcIp | 0, rd = rDstIp | 0, rp = ((rSrcPort & 0xffff) << 16) | (rDstPort & 0xffff); // prettier-ignore
    const ix = this.index;
    if (ix.slotOf(proto, os, od, op) >= 0 || ix.slotOf(proto, rs, rd, rp) >= 0 || (os === rs && od === rd && op === rp)) {
      this.counters.clash++;
      return -1;
    }
    const f = this.evict.take(now, zone);
    if (f < 0) return -1;
    const b = f << 4;
    const rec = this.rec;
    rec[b] = os;
    rec[b + 1] = od;
    rec[b + 2] = op;
    rec[b + 3] = rs;
    rec[b + 4] = rd;
    rec[b + 5] = rp;
    rec[b | W_META] = proto | (TcpState.NONE << 8) | F_USED | (zone << ZONE_SHIFT);
    this.clearAcct(f);
    this.mark[f] = 0;
    const t = this.timeouts;
    this.recF[(f << 3) + F_EXP] = now + (proto === 6 ? t.tcpSynSent : proto === 17 ? t.udp : proto === 1 ? t.icmp : t.generic); // prettier-ignore
    ix.insert(proto, os, od, op, f << 1);
    ix.insert(proto, rs, rd, rp, (f << 1) | 1);
    this.counters.inserted++;
    return f;
  }

  /** Remove a live flow (both tuples). */
  remove(flow: number): void {
    if (!this.inUse(flow)) return;
    this.evict.drop(flow);
    this.counters.deleted++;
  }

  /** Expire flows among the next slice of flow ids (incremental, see the header; call about once a second). Returns how many expired. */
  tick(now: number): number {
    return this.evict.tick(now);
  }

  /** Every live flow (cold, for the API and `conntrack -L`-style output). */
  list(now: number): FlowInfo[] {
    const out: FlowInfo[] = [];
    for (let f = 0; f < this.capacity; f++) if (this.inUse(f)) out.push(flowInfo(this, f, now));
    return out;
  }

  /** Cold: formatConntrack(list(now)). */
  format(now: number): string {
    return formatConntrack(this.list(now));
  }

  // ------------------------------------------------------------ internal

  private clearAcct(f: number): void {
    this.rec.fill(0, (f << 4) | W_WRAPS, (f << 4) + 16);
    this.recF[(f << 3) + F_EXP] = Infinity; // words 8–9 were just zeroed; the caller sets the expiry
  }

  private wrapped(flow: number, dir: number): void {
    const w = (flow << 4) | W_WRAPS;
    this.rec[w] += 1 << (dir << 4);
  }
}
