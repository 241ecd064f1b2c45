/**
 * LearningSwitch — the learning bridge of one network (one per network).
 *
 * What it does: takes every frame from the rx ring of each attached port,
 * learns its source MAC → ingress port, and forwards it: a known unicast
 * destination goes to that port's tx ring only; broadcast, multicast and
 * unknown unicast are flooded to every other attached port that is up
 * (n−1 clones, the original to the last port). It never sends a frame back
 * out of its ingress port.
 *
 * Ports: any number of `Port`s (ids < 65536). Input is `port.rx`, output is
 * `port.tx`. The ingress port is the port whose rx ring held the frame
 * (pool.inPort[h], set by the producer, is left as it is).
 *
 * Checks, in order (each failure frees the frame and counts the reason):
 *   portDown   the ingress port is down (its waiting frames are dropped)
 *   runt       shorter than an Ethernet header (14 bytes)
 *   oversize   longer than ingress mtu + 18 (+4 when 802.1Q/802.1ad tagged);
 *              per copy, also longer than the egress port's mtu + 18 (+4)
 *   badSrcMac  source MAC multicast/broadcast or all zero
 *   hairpin    known destination is the ingress port
 *   filtered   `isolated` and neither the ingress nor the known destination
 *              port is trusted
 *   portDown   known destination port is down (or gone)
 *   ringFull   the egress tx ring is full
 *   poolEmpty  no frame left for a flood clone (that copy only)
 * Isolation (enable_icc=false): with `isolated` set, frames pass only
 * between a trusted port (trust(port): the router's port, a service port)
 * and any other port. Unicast between two untrusted ports is dropped
 * (filtered); a flood from an untrusted port goes to the trusted ports
 * only (when there is none, the frame is dropped as filtered); a flood from
 * a trusted port reaches every port. MAC learning is unchanged.
 *
 * A source that cannot be learned because the table is full counts
 * reasons[macTableFull] but not `drops`: the frame is still forwarded. A
 * flood with no other port to go to is freed without counting a drop.
 *
 * Port security (as a switch's port-security "restrict" mode, but
 * forwarding): a port learns at most `portLimit` dynamic MACs. A frame
 * whose new source MAC would exceed it is still forwarded, only not
 * learned (security.portLimit counts it), so a VM or segment behind a port
 * with more hosts keeps working (its extra hosts are reached by flooding),
 * while a MAC flood from one port cannot fill the table. Pinned MACs
 * (addStatic: the gateway, every container endpoint; they do not count
 * against tableSize or any port's limit, see MacTable) belong to their
 * port: a frame from another port with a pinned source MAC is a spoof and
 * is dropped (reason filtered, security.macSpoof counts it) and the entry
 * does not move.
 * Port state (up, mtu) is read once per process() call.
 *
 * Configuration, ports, trust, pinned MACs and the cold snapshots
 * (macStats, macTable) are the base class SwitchControl
 * (./switch-control.ts); this file is the per-frame path. `sink` is a
 * capture hook called for every frame entering the switch, before any
 * check; it may read (copy) the frame but must neither keep nor free it,
 * and must not throw.
 *
 * Hot path: process() allocates nothing, probes the MAC table inline
 * (MacTable's arrays hoisted into locals), keeps every loop invariant in a
 * local of fixed representation, and reads port state from typed arrays
 * indexed by port id. Measured with bench/switch.ts against a C twin.
 *
 * Counters (element): rxPackets/rxBytes = frames taken in, txPackets/txBytes
 * = frames (clones included) handed to tx rings, drops by reason. The port
 * counters are the device layer's business.
 *
 * Time is injected: process(now) and tick(now) take the caller's clock (ms).
 * Aging runs in tick(): call it about once a second.
 */
import { DropReason } from '../dataplane/counters.js';
import { META_BYTES, type FramePool } from '../dataplane/pool.js';
import type { FrameSink } from '../dataplane/port.js';
import type { Ring } from '../dataplane/ring.js';
import { segmentsOf, wireLength } from '../dataplane/segments-count.js';
import { LEARN_FULL, LEARN_PORT_LIMIT, LEARN_STATIC } from './mac-table.js';
import { SwitchControl, type LearningSwitchOptions } from './switch-control.js';

export type { LearningSwitchOptions, MacStats, MacTableRow } from './switch-control.js';

const RUNT = DropReason.runt;
const OVERSIZE = DropReason.oversize;
const BAD_SRC = DropReason.badSrcMac;
const RING_FULL = DropReason.ringFull;
const POOL_EMPTY = DropReason.poolEmpty;
const TABLE_FULL = DropReason.macTableFull;
const HAIRPIN = DropReason.hairpin;
const PORT_DOWN = DropReason.portDown;
const FILTERED = DropReason.filtered;

export class LearningSwitch extends SwitchControl {
  /** capture hook (null = off) */
  sink: FrameSink | null = null;
  private readonly batchBuf: Uint32Array;
  private readonly batch: number;
  /** scratch: member indexes a flood goes to */
  private readonly floodTo: Uint32Array = new Uint32Array(0x10000);

  constructor(pool: FramePool, opts: LearningSwitchOptions = {}) {
    super(pool, opts);
    this.batch = Math.max(1, opts.batch ?? 256);
    this.batchBuf = new Uint32Array(this.batch);
  }

  // ----------------------------------------------------------------- hot

  /** Aging: remove dynamic MACs not seen for agingMs. Returns how many went. */
  tick(now: number): number {
    this.now = now;
    return this.table.age(now, this.agingMs);
  }

  /** Drain every attached port's rx ring and forward. */
  process(now: number): void {
    this.now = now;
    // `| 0` and `* 1` pin the representation of the loop invariants (int32 /
    // float64) so the optimised loop does not re-check them per frame
    const tNow = now * 1;
    const members = this.members;
    const nm = members.length;
    if (nm === 0) return;
    const pool = this.pool;
    const view = pool.view;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    // the MAC table's arrays and hash keys live in locals: the table is
    // probed inline below (same code as MacTable.findHL/learnHL), so nothing
    // is re-loaded from `this` per frame
    const table = this.table;
    const rec = table.rec;
    const seen = table.seen;
    const mask = table.mask | 0;
    const k0 = table.k0 | 0;
    const k1 = table.k1 | 0;
    const shift = table.shift | 0;
    const txById = this.txById;
    const maxLen = this.maxLen;
    for (let j = 0; j < nm; j++) {
      const p = members[j];
      maxLen[p.id] = p.up ? p.mtu + 18 : 0;
    }
    const buf = this.batchBuf;
    const batch = this.batch | 0;
    const sink = this.sink;
    const isolated = this.isolated;
    const trusted = this.trusted;
    let rxP = 0;
    let rxB = 0;
    let txP = 0;
    let txB = 0;
    // wire segments: a super-frame counts as the segments it stands for
    let rxS = 0;
    let txS = 0;

    for (let pi = 0; pi < nm; pi++) {
      const ip = members[pi];
      const rx = ip.rx;
      const inId = ip.id | 0;
      const inMax = maxLen[inId];
      if (inMax === 0) {
        this.dropAll(rx, PORT_DOWN);
        continue;
      }
      for (;;) {
        const n = rx.popInto(buf, batch);
        if (n === 0) break;
        for (let i = 0; i < n; i++) {
          const h = buf[i];
          const len = lengths[h];
          rxP++;
          rxB += len;
          const sg = pool.meta8[h * META_BYTES + 1] === 0 ? 1 : segmentsOf(pool, h);
          rxS += sg;
          if (sink !== null) sink.frame(h);
          if (len < 14) {
            this.drop(h, RUNT);
            continue;
          }
          const o = offsets[h];
          // a frame longer than mtu + 18 passes only when 802.1Q/802.1ad
          // tagged (4 bytes more); the tag is read only for such frames. A
          // super-frame is measured by its segments (wireLength).
          const wl = len > inMax ? wireLength(pool, h) : len;
          if (wl > inMax && (wl > inMax + 4 || !tagged(view, o))) {
            this.drop(h, OVERSIZE);
            continue;
          }
          // dst = w0 and the top half of w1, src = the bottom half of w1 and w2
          const w0 = view.getInt32(o);
          const w1 = view.getInt32(o + 4);
          const sHi = w1 & 0xffff;
          const sLo = view.getInt32(o + 8);
          if ((sHi & 0x100) !== 0 || (sHi | sLo) === 0) {
            this.drop(h, BAD_SRC);
            continue;
          }
          // learn the source (inline MacTable.learnHL)
          let x = (Math.imul(sLo ^ k0, 0x9e3779b1) ^ Math.imul(sHi ^ k1, 0x85ebca77)) >>> shift;
          let learned = 0;
          for (;;) {
            const w = rec[(x << 2) | 1];
            if (w === -1) {
              // new MAC: the table inserts it (or refuses: full, port limit)
              learned = table.learnHL(sHi, sLo, inId, tNow);
              break;
            }
            if ((w & 0xffff) === sHi && rec[x << 2] === sLo) {
              // known on this port: refresh; on another: station move (the
              // table keeps static entries where they are: LEARN_STATIC)
              if (w >>> 16 === inId) seen[(x << 1) | 1] = tNow;
              else learned = table.learnHL(sHi, sLo, inId, tNow);
              break;
            }
            x = (x + 1) & mask;
          }
          if (learned !== 0) {
            if (learned === LEARN_STATIC) {
              this.security.macSpoof++;
              this.drop(h, FILTERED);
              continue;
            }
            if (learned === LEARN_FULL) this.counters.reasons[TABLE_FULL]++;
            else if (learned === LEARN_PORT_LIMIT) this.security.portLimit++;
          }

          const dHi = w0 >>> 16;
          if ((dHi & 0x100) === 0) {
            const dLo = (w0 << 16) | (w1 >>> 16);
            // look the destination up (inline MacTable.findHL)
            let y = (Math.imul(dLo ^ k0, 0x9e3779b1) ^ Math.imul(dHi ^ k1, 0x85ebca77)) >>> shift;
            let outId = -1;
            for (;;) {
              const w = rec[(y << 2) | 1];
              if (w === -1) break;
              if ((w & 0xffff) === dHi && rec[y << 2] === dLo) {
                outId = w >>> 16;
                break;
              }
              y = (y + 1) & mask;
            }
            if (outId >= 0) {
              if (outId === inId) {
                this.drop(h, HAIRPIN);
                continue;
              }
              if (isolated && trusted[inId] === 0 && trusted[outId] === 0) {
                this.drop(h, FILTERED);
                continue;
              }
              const outMax = maxLen[outId];
              if (outMax === 0) {
                this.drop(h, PORT_DOWN);
                continue;
              }
              if (wl > outMax && (wl > outMax + 4 || !tagged(view, o))) {
                this.drop(h, OVERSIZE);
                continue;
              }
              if ((txById[outId] as Ring).push(h)) {
                txP++;
                txB += len;
                txS += sg;
              } else this.drop(h, RING_FULL);
              continue;
            }
          }
          // broadcast, multicast or unknown unicast: flood
          const sent = this.flood(h, wl, pi, o);
          txP += sent;
          txB += len * sent;
          txS += sg * sent;
        }
        if (n < batch) break;
      }
    }
    const c = this.counters;
    c.rxPackets += rxP;
    c.rxBytes += rxB;
    c.txPackets += txP;
    c.txBytes += txB;
    c.rxSegments += rxS;
    c.txSegments += txS;
  }

  /** Flood h to every member but `skip` that is up and takes `len`; returns copies sent. */
  private flood(h: number, len: number, skip: number, o: number): number {
    const tag = tagged(this.pool.view, o) ? 4 : 0;
    const members = this.members;
    const nm = members.length;
    const to = this.floodTo;
    const trusted = this.trusted;
    // isolated: an untrusted port's flood reaches trusted ports only
    const only = this.isolated && trusted[members[skip].id] === 0;
    let withheld = false;
    let k = 0;
    for (let j = 0; j < nm; j++) {
      if (j === skip) continue;
      if (only && trusted[members[j].id] === 0) {
        withheld = true;
        continue;
      }
      const max = this.maxLen[members[j].id];
      if (max === 0) continue; // down: not a flood target
      if (len > max + tag) {
        this.counters.drop(OVERSIZE);
        continue;
      }
      to[k++] = j;
    }
    let sent = 0;
    if (k === 0) {
      this.pool.free(h);
      if (withheld) this.counters.drop(FILTERED);
      return 0;
    }
    const pool = this.pool;
    for (let j = 0; j < k - 1; j++) {
      const c = pool.clone(h);
      if (c < 0) {
        this.counters.drop(POOL_EMPTY);
        continue;
      }
      if (members[to[j]].tx.push(c)) sent++;
      else this.drop(c, RING_FULL);
    }
    if (members[to[k - 1]].tx.push(h)) sent++;
    else this.drop(h, RING_FULL);
    return sent;
  }

  private drop(h: number, reason: number): void {
    this.pool.free(h);
    this.counters.drop(reason);
  }

  /** Cold: take in and drop every frame waiting in `ring`. */
  private dropAll(ring: Ring, reason: number): void {
    const lengths = this.pool.lengths;
    for (let h = ring.pop(); h >= 0; h = ring.pop()) {
      this.counters.rxPackets++;
      this.counters.rxBytes += lengths[h];
      this.drop(h, reason);
    }
  }
}

/** 802.1Q (0x8100) or 802.1ad (0x88a8) tagged frame at offset o. */
function tagged(view: DataView, o: number): boolean {
  const et = view.getUint16(o + 12);
  return et === 0x8100 || et === 0x88a8;
}
