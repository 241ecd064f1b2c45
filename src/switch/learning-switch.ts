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
 * Configuration (constructor): tableSize (max MACs, default 8192), agingMs
 * (default 300 000, Docker/Linux bridge default), seed (hash key; the daemon
 * passes a random one), batch (handles taken from a ring at a time, default
 * 256), portLimit (dynamic MACs per port, default max(64, tableSize/8), 0 = no
 * limit). `addStatic(mac, port)` pins a MAC (the gateway's, endpoints'),
 * `removeStatic(mac, port)` unpins it; `isolated` and
 * `trust(port)` see above. `sink` is a capture
 * hook called for every frame entering the switch, before any check; it may
 * read (copy) the frame but must neither keep nor free it, and must not
 * throw.
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
import { Counters, DropReason } from '../dataplane/counters.js';
import type { FramePool } from '../dataplane/pool.js';
import type { FrameSink, Port } from '../dataplane/port.js';
import type { Ring } from '../dataplane/ring.js';
import { LEARN_FULL, LEARN_PORT_LIMIT, LEARN_STATIC, MacTable } from './mac-table.js';

export interface LearningSwitchOptions {
  /** max MAC entries (default 8192) */
  tableSize?: number;
  /** dynamic entries not seen for this long are removed by tick() (default 300 000 ms) */
  agingMs?: number;
  /** MAC table hash key (default: random) */
  seed?: number;
  /** handles popped from a ring at a time (default 256) */
  batch?: number;
  /** dynamic MACs one port may learn (default max(64, tableSize/8); 0 = no limit) */
  portLimit?: number;
}

/** Cold: the switch's MAC table and port-security numbers. */
export interface MacStats {
  entries: number;
  capacity: number;
  static: number;
  dynamic: number;
  /** static entries that still fit */
  staticRoom: number;
  portLimit: number;
  /** sources not learned: table full */
  macTableFull: number;
  /** sources not learned: the port's limit reached (frame forwarded) */
  portLimitHits: number;
  /** frames dropped: a pinned source MAC on another port */
  macSpoof: number;
}

export interface MacTableRow {
  mac: number;
  port: number;
  ageMs: number;
  static: boolean;
}

const RUNT = DropReason.runt;
const OVERSIZE = DropReason.oversize;
const BAD_SRC = DropReason.badSrcMac;
const RING_FULL = DropReason.ringFull;
const POOL_EMPTY = DropReason.poolEmpty;
const TABLE_FULL = DropReason.macTableFull;
const HAIRPIN = DropReason.hairpin;
const PORT_DOWN = DropReason.portDown;
const FILTERED = DropReason.filtered;

export class LearningSwitch {
  readonly counters = new Counters();
  /** capture hook (null = off) */
  sink: FrameSink | null = null;
  /** enable_icc=false: frames pass only to or from a trusted port (see trust()) */
  isolated = false;
  readonly agingMs: number;
  /** port security: sources not learned (port limit), frames dropped (pinned MAC spoofed) */
  readonly security = { portLimit: 0, macSpoof: 0 };

  private readonly pool: FramePool;
  private readonly table: MacTable;
  /** attached ports indexed by id (null = not attached) */
  private readonly byId: (Port | null)[];
  /** attached ports, dense, in attach order */
  private members: Port[] = [];
  private readonly batchBuf: Uint32Array;
  private readonly batch: number;
  /**
   * per port id: largest untagged frame the port takes (mtu + 18), 0 when
   * it is down or not attached. Refreshed from the ports at the start of
   * every process(), so the hot loop reads a typed array, not Port fields.
   */
  private readonly maxLen = new Int32Array(0x10000);
  /** per port id: the attached port's tx ring (null = not attached) */
  private readonly txById: (Ring | null)[];
  /** per port id: 1 = trusted (exempt from isolation) */
  private readonly trusted = new Uint8Array(0x10000);
  /** scratch: member indexes a flood goes to */
  private readonly floodTo: Uint32Array = new Uint32Array(0x10000);
  /** last clock value seen by process()/tick() (for macTable() ages) */
  private now = 0;

  constructor(pool: FramePool, opts: LearningSwitchOptions = {}) {
    this.pool = pool;
    this.agingMs = opts.agingMs ?? 300_000;
    const seed = opts.seed ?? (Math.random() * 0x100000000) >>> 0;
    const size = opts.tableSize ?? 8192;
    this.table = new MacTable(size, seed);
    this.table.portLimit = Math.max(0, opts.portLimit ?? Math.max(64, size >>> 3));
    this.batch = Math.max(1, opts.batch ?? 256);
    this.batchBuf = new Uint32Array(this.batch);
    this.byId = new Array<Port | null>(0x10000).fill(null);
    this.txById = new Array<Ring | null>(0x10000).fill(null);
  }

  // ---------------------------------------------------------------- cold

  /** Port joins this switch; a `trunk` (the VXLAN tunnel port, with every remote endpoint behind it) is not bound by portLimit. */
  attach(port: Port, trunk = false): void {
    if (port.id < 0 || port.id > 0xffff) throw new Error(`port id ${port.id} out of range`);
    const cur = this.byId[port.id];
    if (cur === port) return;
    if (cur !== null) throw new Error(`another port with id ${port.id} is attached`);
    this.table.trunk[port.id] = trunk ? 1 : 0;
    this.byId[port.id] = port;
    this.txById[port.id] = port.tx;
    this.members = [...this.members, port];
  }

  /** Port leaves: its MACs (static ones too) are flushed and the frames in its rings freed. */
  detach(port: Port): void {
    if (this.byId[port.id] !== port) return;
    this.byId[port.id] = null;
    this.txById[port.id] = null;
    this.maxLen[port.id] = 0;
    this.trusted[port.id] = 0;
    this.table.trunk[port.id] = 0;
    this.members = this.members.filter((p) => p !== port);
    this.table.flushPort(port.id);
    const pool = this.pool;
    for (let h = port.rx.pop(); h >= 0; h = port.rx.pop()) pool.free(h);
    for (let h = port.tx.pop(); h >= 0; h = port.tx.pop()) pool.free(h);
  }

  /** Ports currently attached. */
  ports(): readonly Port[] {
    return this.members;
  }

  /** With `isolated`, frames to and from `port` still pass (the router's port). */
  trust(port: Port, on = true): void {
    if (port.id < 0 || port.id > 0xffff) throw new Error(`port id ${port.id} out of range`);
    this.trusted[port.id] = on ? 1 : 0;
  }

  /** Whether `port` is trusted. */
  isTrusted(port: Port): boolean {
    return this.trusted[port.id] === 1;
  }

  /** Pin `mac` to `port` (never ages, never moves). */
  addStatic(mac: number, port: Port): void {
    if (!this.table.addStatic(mac, port.id)) {
      this.counters.reasons[TABLE_FULL]++;
      throw new Error('MAC table full');
    }
  }

  /** Unpin `mac` if it is pinned to `port` (a container left); true if it went. */
  removeStatic(mac: number, port: Port): boolean {
    if (!this.table.isStatic(mac) || this.table.lookup(mac) !== port.id) return false;
    return this.table.remove(mac);
  }

  /** Forget one MAC. */
  removeMac(mac: number): boolean {
    return this.table.remove(mac);
  }

  /** Forget every learned MAC (static ones stay). */
  flushDynamic(): number {
    return this.table.age(Infinity, 0);
  }

  /** Port id `mac` forwards to, or −1. */
  lookup(mac: number): number {
    return this.table.lookup(mac);
  }

  /** Number of MAC entries / table capacity. */
  get macCount(): number {
    return this.table.size;
  }
  get macCapacity(): number {
    return this.table.capacity;
  }

  /** Cold: MAC table use and port-security counters. */
  macStats(): MacStats {
    const t = this.table;
    return {
      entries: t.size,
      capacity: t.capacity,
      static: t.staticSize,
      dynamic: t.dynamicSize,
      staticRoom: t.staticRoom,
      portLimit: t.portLimit,
      macTableFull: this.counters.reasons[TABLE_FULL],
      portLimitHits: this.security.portLimit,
      macSpoof: this.security.macSpoof,
    };
  }

  /** Cold, for the API: every entry with its age (relative to the last process/tick clock). */
  macTable(): MacTableRow[] {
    return this.table.entries().map((e) => ({
      mac: e.mac,
      port: e.port,
      ageMs: e.static ? 0 : Math.max(0, this.now - e.seen),
      static: e.static,
    }));
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
          if (sink !== null) sink.frame(h);
          if (len < 14) {
            this.drop(h, RUNT);
            continue;
          }
          const o = offsets[h];
          // a frame longer than mtu + 18 passes only when 802.1Q/802.1ad
          // tagged (4 bytes more); the tag is read only for such frames
          if (len > inMax && (len > inMax + 4 || !tagged(view, o))) {
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
              if (len > outMax && (len > outMax + 4 || !tagged(view, o))) {
                this.drop(h, OVERSIZE);
                continue;
              }
              if ((txById[outId] as Ring).push(h)) {
                txP++;
                txB += len;
              } else this.drop(h, RING_FULL);
              continue;
            }
          }
          // broadcast, multicast or unknown unicast: flood
          const sent = this.flood(h, len, pi, o);
          txP += sent;
          txB += len * sent;
        }
        if (n < batch) break;
      }
    }
    const c = this.counters;
    c.rxPackets += rxP;
    c.rxBytes += rxB;
    c.txPackets += txP;
    c.txBytes += txB;
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
