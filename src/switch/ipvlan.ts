/**
 * IpvlanSwitch — the endpoints of one ipvlan network on one parent
 * interface. Every endpoint uses the parent's MAC (its interface is
 * configured with it); they are told apart by IPv4 address, as the Linux
 * kernel's ipvlan driver (drivers/net/ipvlan) does.
 *
 * Ports:
 * - `parent`: the parent interface (a PacketDevice's port, or a VLAN port
 *   of a ParentDemux). rx = frames from the segment, tx = frames to it.
 * - children: container TAP ports, attach(child, ip) / detach(child).
 *   child.rx holds what the container sent, child.tx takes frames for it.
 *
 * Mode l2 (kernel: ipvlan_handle_mode_l2 / ipvlan_xmit_mode_l2):
 * - from the parent: ARP (request or reply) whose target IP is a child's →
 *   that child only; other broadcast/multicast → every child (n−1 clones);
 *   unicast to parentMac → the child owning the IPv4 destination (none:
 *   notForUs, it is the parent host's); unicast to any other MAC →
 *   notForUs. A broadcast with source parentMac and a child's sender
 *   address is our own frame hairpinned back: not delivered (filtered),
 *   the children had it locally already.
 * - from a child (source MAC must be parentMac, else badSrcMac): ARP whose
 *   target IP is another child's → that child only; other
 *   broadcast/multicast → the parent and every other child; IPv4 to
 *   parentMac whose destination is another child's address → that child
 *   (delivered locally, never on the wire, as the kernel does when
 *   dst MAC = src MAC); everything else → the parent.
 *
 * Mode l3 (routed; kernel: ipvlan_handle_mode_l3 / ipvlan_xmit_mode_l3):
 * no broadcast or multicast crosses, either way (filtered).
 * - from the parent: IPv4 to parentMac whose destination is a child's
 *   address → that child (the Ethernet destination is parentMac already),
 *   and the sender's (source IP → source MAC) is learned in a small
 *   bounded neighbour table; other IPv4 → notForUs. An ARP request from
 *   the segment for a child's address is answered here with parentMac (so
 *   the segment's router reaches each endpoint by IP; a static route via
 *   the parent's address works as well) and its sender learned; an ARP
 *   reply to parentMac is learned and consumed; other ARP (requests for
 *   other addresses, gratuitous replies) only updates a neighbour already
 *   in the table (as Linux with arp_accept=0) and is dropped (filtered /
 *   notForUs). Other ethertypes → unsupported.
 * - from a child: ARP requests are answered here with parentMac (children
 *   resolve every address to the parent, like ipvlan l3's NOARP), except
 *   for the child's own address (duplicate-address probes, gratuitous
 *   ARP: filtered). IPv4 unicast to another child's address → that child
 *   (delivered locally, dst MAC = parentMac); else the destination MAC is
 *   rewritten to the learned MAC of the destination address if known,
 *   else of `gatewayIp` if configured and known, and the frame goes to the
 *   parent; else an ARP request (from parentMac and `parentIp`, or the
 *   child's own address) asks for the gateway (or, without one, the
 *   destination) and the frame is dropped (noRoute). A pending request is
 *   repeated at most once per `arpRetransMs`.
 * Mode l3s: l3, plus `track(pool, h, inbound)` called for every IPv4 frame
 * that passes (inbound = true from the parent to a child, false from a
 * child, child-to-child included), just before it is handed to its tx
 * ring. The daemon plugs conntrack in here (l3s = "l3 with netfilter"). The
 * hook may read or rewrite the frame in place but must neither keep nor
 * free it, and must not throw. It is ignored in l2 and l3.
 *
 * Checks (each failure frees the frame and counts the reason):
 *   runt       shorter than 14 bytes
 *   badSrcMac  a child's frame not from parentMac (every mode)
 *   malformed  an IPv4 header shorter than 20 bytes or not version 4, an
 *              ARP packet that is not Ethernet/IPv4 or is truncated
 *   notForUs   unicast from the parent not for a child
 *   filtered   l3: broadcast/multicast; l2: our own broadcast hairpinned
 *   noRoute    l3: next hop unknown (an ARP request went out instead)
 *   hairpin    a child's frame to its own address
 *   unsupported l3: neither IPv4 nor ARP
 *   portDown / ringFull / poolEmpty as usual
 *
 * Configuration: constructor(pool, parent, { mode, parentMac, seed?,
 * parentIp?, gatewayIp?, track?, neighbours? (table capacity, default
 * 256), neighbourAgingMs? (default 300 000), arpRetransMs? (default
 * 1 000), maxChildren? (default 1024) }). tick(now) ages the neighbour
 * table: call it about once a second.
 *
 * Counters (element): rxPackets/rxBytes = frames taken in, txPackets/
 * txBytes = frames (clones, ARP replies and requests included) handed to
 * tx rings, drops by reason; a neighbour the full table could not take
 * counts reasons[macTableFull] but not `drops`. `arpReplies` and
 * `arpRequests` count the ARP packets this element answered or sent.
 *
 * Hot path: process() allocates nothing: addresses are uint32 (int32 in
 * the tables), children and neighbours live in keyed open-addressing
 * tables over typed arrays; ARP replies are written over the request
 * frame in place. Time is injected (process/tick take the caller's clock).
 */
import { Counters, DropReason } from '../dataplane/counters.js';
import type { Element } from '../dataplane/engine.js';
import type { FramePool } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';
import { u16, u32, w16, w32 } from '../wire/bytes.js';
import { ETHERTYPE, isMulticastMac, mac48, writeMac48 } from '../wire/ethernet.js';
import { ipv4ToString } from '../wire/ipv4.js';

export type IpvlanMode = 'l2' | 'l3' | 'l3s';
export const IPVLAN_MODES: readonly IpvlanMode[] = ['l2', 'l3', 'l3s'];

/** l3s hook: sees every IPv4 frame that passes (see the header comment). */
export type IpvlanTrack = (pool: FramePool, h: number, inbound: boolean) => void;

export interface IpvlanOptions {
  mode: IpvlanMode;
  /** the parent interface's MAC (every child uses it) */
  parentMac: number;
  /** table hash key (default: random) */
  seed?: number;
  /** l3: sender address of the element's ARP requests (default: the child's own address) */
  parentIp?: number;
  /** l3: the segment's router, next hop for destinations not learned */
  gatewayIp?: number;
  /** l3s: conntrack hook */
  track?: IpvlanTrack;
  /** l3: neighbour table capacity (default 256) */
  neighbours?: number;
  /** l3: a neighbour not confirmed for this long is forgotten by tick() (default 300 000 ms) */
  neighbourAgingMs?: number;
  /** l3: an unanswered ARP request is repeated at most this often (default 1 000 ms) */
  arpRetransMs?: number;
  /** at most this many children (default 1024) */
  maxChildren?: number;
}

export interface IpvlanNeighbour {
  ip: number;
  /** 0 while the request is unanswered */
  mac: number;
  state: 'reachable' | 'incomplete';
  ageMs: number;
}

const M_L2 = 0;
const M_L3 = 1;
const M_L3S = 2;

const RUNT = DropReason.runt;
const BAD_SRC = DropReason.badSrcMac;
const MALFORMED = DropReason.malformed;
const NOT_FOR_US = DropReason.notForUs;
const FILTERED = DropReason.filtered;
const NO_ROUTE = DropReason.noRoute;
const HAIRPIN = DropReason.hairpin;
const UNSUPPORTED = DropReason.unsupported;
const PORT_DOWN = DropReason.portDown;
const RING_FULL = DropReason.ringFull;
const POOL_EMPTY = DropReason.poolEmpty;
const TABLE_FULL = DropReason.macTableFull;

const T_IPV4 = ETHERTYPE.IPV4;
const T_ARP = ETHERTYPE.ARP;
/** frame offsets: IPv4 after a 14-byte header, ARP fields likewise */
const IP_SRC = 26;
const IP_DST = 30;
const ARP_OPER = 20;
const ARP_SHA = 22;
const ARP_SPA = 28;
const ARP_THA = 32;
const ARP_TPA = 38;
const ARP_FRAME = 42;

/**
 * IpTable — uint32 address → (value, MAC, time), bounded: open addressing
 * with linear probing over typed arrays (slots = power of two ≥ 2·capacity),
 * keyed hash, backward-shift deletion. A full table refuses (insert → −1).
 */
class IpTable {
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

  /** Slot of address `ip`, or −1. Hot. */
  find(ip: number): number {
    const k = ip | 0;
    const used = this.used;
    const key = this.key;
    const mask = this.mask;
    let i = this.hash(k);
    while (used[i] !== 0) {
      if (key[i] === k) return i;
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** Slot of `ip`, made (value 0, MAC 0, seen 0) when new; −1 when the table is full. Hot. */
  insert(ip: number): number {
    const k = ip | 0;
    const used = this.used;
    const key = this.key;
    const mask = this.mask;
    let i = this.hash(k);
    while (used[i] !== 0) {
      if (key[i] === k) return i;
      i = (i + 1) & mask;
    }
    if (this.size >= this.capacity) return -1;
    used[i] = 1;
    key[i] = k;
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

export class IpvlanSwitch implements Element {
  readonly counters = new Counters();
  readonly mode: IpvlanMode;
  readonly parent: Port;
  readonly parentMac: number;
  readonly parentIp: number;
  readonly gatewayIp: number;
  readonly neighbourAgingMs: number;
  readonly arpRetransMs: number;
  /** ARP replies this element answered with parentMac */
  arpReplies = 0;
  /** ARP requests this element sent (l3 next-hop misses) */
  arpRequests = 0;

  private readonly m: number;
  private readonly pool: FramePool;
  private readonly pmHi: number;
  private readonly pmLo: number;
  private readonly track: IpvlanTrack | null;
  private readonly maxChildren: number;
  /** child address → child index */
  private readonly ips: IpTable;
  /** l3: neighbour address → MAC (0 = request pending), seen = confirmed / last asked */
  private readonly neigh: IpTable;
  private kids: Port[] = [];
  private kIp: number[] = [];
  private now = 0;

  constructor(pool: FramePool, parent: Port, opts: IpvlanOptions) {
    const m = IPVLAN_MODES.indexOf(opts.mode);
    if (m < 0) throw new Error(`unknown ipvlan mode "${String(opts.mode)}" (l2, l3, l3s)`);
    const pm = opts.parentMac;
    if (!Number.isInteger(pm) || pm <= 0 || pm > 0xffffffffffff || isMulticastMac(pm)) throw new Error('ipvlan: parentMac must be a unicast MAC');
    this.m = m;
    this.mode = opts.mode;
    this.pool = pool;
    this.parent = parent;
    this.parentMac = pm;
    this.pmHi = Math.floor(pm / 0x100000000) & 0xffff;
    this.pmLo = pm | 0;
    this.parentIp = (opts.parentIp ?? 0) >>> 0;
    this.gatewayIp = (opts.gatewayIp ?? 0) >>> 0;
    this.track = m === M_L3S ? (opts.track ?? null) : null;
    this.neighbourAgingMs = opts.neighbourAgingMs ?? 300_000;
    this.arpRetransMs = opts.arpRetransMs ?? 1000;
    this.maxChildren = opts.maxChildren ?? 1024;
    const seed = opts.seed ?? (Math.random() * 0x100000000) >>> 0;
    this.ips = new IpTable(this.maxChildren, seed);
    this.neigh = new IpTable(m === M_L2 ? 1 : (opts.neighbours ?? 256), seed ^ 0x3c6ef372);
  }

  // ---------------------------------------------------------------- cold

  /** `child` joins with IPv4 address `ip`. Throws on a duplicate or bad address, or a full switch. */
  attach(child: Port, ip: number): void {
    const i = this.kids.indexOf(child);
    if (i >= 0) {
      if (this.kIp[i] === ip >>> 0) return;
      throw new Error(`port ${child.name} is already attached with ${ipv4ToString(this.kIp[i])}`);
    }
    if (child === this.parent) throw new Error('the parent port cannot be a child');
    if (!Number.isInteger(ip) || ip <= 0 || ip >= 0xe0000000) throw new Error(`bad endpoint address for ${child.name}: ${String(ip)}`);
    const j = this.kIp.indexOf(ip >>> 0);
    if (j >= 0) throw new Error(`address ${ipv4ToString(ip)} is already used by ${this.kids[j].name}`);
    if (this.kids.length >= this.maxChildren) throw new Error(`ipvlan: at most ${this.maxChildren} endpoints per parent`);
    this.kids = [...this.kids, child];
    this.kIp = [...this.kIp, ip >>> 0];
    this.rebuild();
  }

  /** `child` leaves; the frames in its rings are freed. */
  detach(child: Port): void {
    const i = this.kids.indexOf(child);
    if (i < 0) return;
    this.kids = this.kids.filter((_, j) => j !== i);
    this.kIp = this.kIp.filter((_, j) => j !== i);
    this.rebuild();
    const pool = this.pool;
    for (let h = child.rx.pop(); h >= 0; h = child.rx.pop()) pool.free(h);
    for (let h = child.tx.pop(); h >= 0; h = child.tx.pop()) pool.free(h);
  }

  children(): { port: Port; ip: number }[] {
    return this.kids.map((port, i) => ({ port, ip: this.kIp[i] }));
  }

  /** The child owning `ip`, or null. */
  lookup(ip: number): Port | null {
    const s = this.ips.find(ip);
    return s < 0 ? null : this.kids[this.ips.val[s]];
  }

  /** l3: the neighbour table (ages relative to the last process/tick clock). */
  neighbours(): IpvlanNeighbour[] {
    const t = this.neigh;
    const out: IpvlanNeighbour[] = [];
    for (let i = 0; i <= t.mask; i++) {
      if (t.used[i] === 0) continue;
      const mac = t.mac[i];
      out.push({ ip: t.key[i] >>> 0, mac, state: mac === 0 ? 'incomplete' : 'reachable', ageMs: Math.max(0, this.now - t.seen[i]) });
    }
    return out.sort((a, b) => a.ip - b.ip);
  }

  private rebuild(): void {
    const t = this.ips;
    t.clear();
    for (let i = 0; i < this.kids.length; i++) t.val[t.insert(this.kIp[i])] = i;
    // a child's address is never a neighbour
    for (let i = 0; i < this.kIp.length; i++) {
      const s = this.neigh.find(this.kIp[i]);
      if (s >= 0) this.neigh.deleteSlot(s);
    }
  }

  // ----------------------------------------------------------------- hot

  /** Ages the neighbour table; returns how many entries went. */
  tick(now: number): number {
    this.now = now;
    const t = this.neigh;
    const incompleteMs = 3 * this.arpRetransMs;
    let n = 0;
    for (let i = 0; i <= t.mask; ) {
      if (t.used[i] !== 0 && now - t.seen[i] >= (t.mac[i] === 0 ? incompleteMs : this.neighbourAgingMs)) {
        t.deleteSlot(i); // something may have shifted into i: look again
        n++;
      } else i++;
    }
    return n;
  }

  process(now: number): void {
    this.now = now;
    const nk = this.kids.length;
    if (this.m === M_L2) {
      this.parentL2();
      for (let i = 0; i < nk; i++) this.childL2(i);
    } else {
      this.parentL3(now);
      for (let i = 0; i < nk; i++) this.childL3(i, now);
    }
  }

  /** l2: parent.rx → children. */
  private parentL2(): void {
    const pool = this.pool;
    const b = pool.bytes;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const c = this.counters;
    const rx = this.parent.rx;
    const pmHi = this.pmHi;
    const pmLo = this.pmLo;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = lengths[h];
      c.rxPackets++;
      c.rxBytes += len;
      if (len < 14) {
        this.drop(h, RUNT);
        continue;
      }
      const o = offsets[h];
      const dHi = (b[o] << 8) | b[o + 1];
      const group = (dHi & 0x100) !== 0;
      if (!group && (dHi !== pmHi || lo32(b, o + 2) !== pmLo)) {
        this.drop(h, NOT_FOR_US);
        continue;
      }
      // ours: source parentMac (a child's frame hairpinned back, or the parent host's)
      const fromUs = ((b[o + 6] << 8) | b[o + 7]) === pmHi && lo32(b, o + 8) === pmLo;
      const type = u16(b, o + 12);
      if (type === T_ARP) {
        if (!arpOk(b, o, len)) {
          this.drop(h, MALFORMED);
          continue;
        }
        if (group && fromUs && this.ips.find(u32(b, o + ARP_SPA)) >= 0) {
          this.drop(h, FILTERED);
          continue;
        }
        const s = this.ips.find(u32(b, o + ARP_TPA));
        if (s >= 0) this.send(h, this.kids[this.ips.val[s]], len);
        else if (group) this.flood(h, len, -1, false);
        else this.drop(h, NOT_FOR_US);
        continue;
      }
      if (group) {
        if (fromUs && type === T_IPV4 && len >= 34 && this.ips.find(u32(b, o + IP_SRC)) >= 0) this.drop(h, FILTERED);
        else this.flood(h, len, -1, false);
        continue;
      }
      if (type !== T_IPV4) {
        this.drop(h, NOT_FOR_US);
        continue;
      }
      if (!ipv4Ok(b, o, len)) {
        this.drop(h, MALFORMED);
        continue;
      }
      const s = this.ips.find(u32(b, o + IP_DST));
      if (s < 0) this.drop(h, NOT_FOR_US);
      else this.send(h, this.kids[this.ips.val[s]], len);
    }
  }

  /** l2: child i's rx → parent / other children. */
  private childL2(i: number): void {
    const child = this.kids[i];
    const rx = child.rx;
    if (rx.empty) return;
    const pool = this.pool;
    const b = pool.bytes;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const c = this.counters;
    const pmHi = this.pmHi;
    const pmLo = this.pmLo;
    const up = child.up;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = lengths[h];
      c.rxPackets++;
      c.rxBytes += len;
      if (!up) {
        this.drop(h, PORT_DOWN);
        continue;
      }
      if (len < 14) {
        this.drop(h, RUNT);
        continue;
      }
      const o = offsets[h];
      if (((b[o + 6] << 8) | b[o + 7]) !== pmHi || lo32(b, o + 8) !== pmLo) {
        this.drop(h, BAD_SRC);
        continue;
      }
      const dHi = (b[o] << 8) | b[o + 1];
      const group = (dHi & 0x100) !== 0;
      const type = u16(b, o + 12);
      if (type === T_ARP) {
        if (!arpOk(b, o, len)) {
          this.drop(h, MALFORMED);
          continue;
        }
        const s = this.ips.find(u32(b, o + ARP_TPA));
        if (s >= 0 && this.ips.val[s] !== i) {
          this.send(h, this.kids[this.ips.val[s]], len);
          continue;
        }
      }
      if (group) {
        this.flood(h, len, i, true);
        continue;
      }
      if (type === T_IPV4 && dHi === pmHi && lo32(b, o + 2) === pmLo) {
        if (!ipv4Ok(b, o, len)) {
          this.drop(h, MALFORMED);
          continue;
        }
        const s = this.ips.find(u32(b, o + IP_DST));
        if (s >= 0) {
          const k = this.ips.val[s];
          if (k === i) this.drop(h, HAIRPIN);
          else this.send(h, this.kids[k], len);
          continue;
        }
      }
      this.send(h, this.parent, len);
    }
  }

  /** l3/l3s: parent.rx → children (routed), ARP answered and learned. */
  private parentL3(now: number): void {
    const pool = this.pool;
    const b = pool.bytes;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const c = this.counters;
    const parent = this.parent;
    const rx = parent.rx;
    const pmHi = this.pmHi;
    const pmLo = this.pmLo;
    const track = this.track;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = lengths[h];
      c.rxPackets++;
      c.rxBytes += len;
      if (len < 14) {
        this.drop(h, RUNT);
        continue;
      }
      const o = offsets[h];
      const dHi = (b[o] << 8) | b[o + 1];
      const group = (dHi & 0x100) !== 0;
      const type = u16(b, o + 12);
      if (!group && (dHi !== pmHi || lo32(b, o + 2) !== pmLo)) {
        this.drop(h, NOT_FOR_US);
        continue;
      }
      if (type === T_ARP) {
        if (!arpOk(b, o, len)) {
          this.drop(h, group ? FILTERED : MALFORMED);
          continue;
        }
        const oper = u16(b, o + ARP_OPER);
        if (oper === 1) {
          // a request for one of our endpoints: answer, learn the asker
          if (this.ips.find(u32(b, o + ARP_TPA)) < 0) {
            // someone else's: it still updates what we know of its sender
            this.refresh(u32(b, o + ARP_SPA), mac48(b, o + ARP_SHA), now);
            this.drop(h, group ? FILTERED : NOT_FOR_US);
            continue;
          }
          this.learn(u32(b, o + ARP_SPA), mac48(b, o + ARP_SHA), now);
          this.answerArp(o);
          this.send(h, parent, len);
          continue;
        }
        if (oper === 2 && !group) {
          // a reply to us (our request on a next-hop miss): learn, consume
          this.learn(u32(b, o + ARP_SPA), mac48(b, o + ARP_SHA), now);
          pool.free(h);
          continue;
        }
        if (oper === 2) this.refresh(u32(b, o + ARP_SPA), mac48(b, o + ARP_SHA), now); // gratuitous
        this.drop(h, group ? FILTERED : MALFORMED);
        continue;
      }
      if (group) {
        this.drop(h, FILTERED);
        continue;
      }
      if (type !== T_IPV4) {
        this.drop(h, UNSUPPORTED);
        continue;
      }
      if (!ipv4Ok(b, o, len)) {
        this.drop(h, MALFORMED);
        continue;
      }
      const s = this.ips.find(u32(b, o + IP_DST));
      if (s < 0) {
        this.drop(h, NOT_FOR_US);
        continue;
      }
      this.learn(u32(b, o + IP_SRC), mac48(b, o + 6), now);
      if (track !== null) track(pool, h, true);
      this.send(h, this.kids[this.ips.val[s]], len);
    }
  }

  /** l3/l3s: child i's rx → parent (routed) / other children; ARP answered. */
  private childL3(i: number, now: number): void {
    const child = this.kids[i];
    const rx = child.rx;
    if (rx.empty) return;
    const pool = this.pool;
    const b = pool.bytes;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const c = this.counters;
    const pmHi = this.pmHi;
    const pmLo = this.pmLo;
    const up = child.up;
    const myIp = this.kIp[i];
    const track = this.track;
    const neigh = this.neigh;
    const gw = this.gatewayIp;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = lengths[h];
      c.rxPackets++;
      c.rxBytes += len;
      if (!up) {
        this.drop(h, PORT_DOWN);
        continue;
      }
      if (len < 14) {
        this.drop(h, RUNT);
        continue;
      }
      const o = offsets[h];
      if (((b[o + 6] << 8) | b[o + 7]) !== pmHi || lo32(b, o + 8) !== pmLo) {
        this.drop(h, BAD_SRC);
        continue;
      }
      const type = u16(b, o + 12);
      if (type === T_ARP) {
        if (!arpOk(b, o, len)) {
          this.drop(h, MALFORMED);
          continue;
        }
        // every address is behind the parent: answer with parentMac
        if (u16(b, o + ARP_OPER) !== 1 || u32(b, o + ARP_TPA) === myIp) {
          this.drop(h, FILTERED);
          continue;
        }
        this.answerArp(o);
        this.send(h, child, len);
        continue;
      }
      if ((b[o] & 1) !== 0) {
        this.drop(h, FILTERED);
        continue;
      }
      if (type !== T_IPV4) {
        this.drop(h, UNSUPPORTED);
        continue;
      }
      if (!ipv4Ok(b, o, len)) {
        this.drop(h, MALFORMED);
        continue;
      }
      const dst = u32(b, o + IP_DST);
      if (dst >= 0xe0000000) {
        // multicast / limited broadcast: none in l3
        this.drop(h, FILTERED);
        continue;
      }
      const s = this.ips.find(dst);
      if (s >= 0) {
        const k = this.ips.val[s];
        if (k === i) {
          this.drop(h, HAIRPIN);
          continue;
        }
        writeMac48(b, o, this.parentMac);
        if (track !== null) track(pool, h, false);
        this.send(h, this.kids[k], len);
        continue;
      }
      let mac = 0;
      let n = neigh.find(dst);
      if (n >= 0) mac = neigh.mac[n];
      if (mac === 0 && gw !== 0) {
        n = neigh.find(gw);
        if (n >= 0) mac = neigh.mac[n];
      }
      if (mac === 0) {
        this.solicit(gw !== 0 ? gw : dst, this.parentIp !== 0 ? this.parentIp : myIp, now);
        this.drop(h, NO_ROUTE);
        continue;
      }
      writeMac48(b, o, mac);
      if (track !== null) track(pool, h, false);
      this.send(h, this.parent, len);
    }
  }

  /** l3: remember ip → mac (a confirmation), unless it is no neighbour's. */
  private learn(ip: number, mac: number, now: number): void {
    if (ip === 0 || ip >= 0xe0000000 || mac === 0 || isMulticastMac(mac)) return;
    if (this.ips.find(ip) >= 0) return;
    const t = this.neigh;
    const s = t.insert(ip);
    if (s < 0) {
      this.counters.reasons[TABLE_FULL]++;
      return;
    }
    t.mac[s] = mac;
    t.seen[s] = now;
  }

  /** l3: update ip → mac only when ip is already in the table (ARP not addressed to us, as Linux with arp_accept=0). */
  private refresh(ip: number, mac: number, now: number): void {
    const t = this.neigh;
    const s = t.find(ip);
    if (s < 0 || mac === 0 || isMulticastMac(mac)) return;
    t.mac[s] = mac;
    t.seen[s] = now;
  }

  /** l3: broadcast an ARP request for `target` (at most once per arpRetransMs while pending). */
  private solicit(target: number, spa: number, now: number): void {
    const t = this.neigh;
    let s = t.find(target);
    if (s >= 0) {
      if (now - t.seen[s] < this.arpRetransMs) return;
    } else {
      s = t.insert(target);
      if (s < 0) this.counters.reasons[TABLE_FULL]++;
    }
    if (s >= 0) t.seen[s] = now;
    const pool = this.pool;
    const parent = this.parent;
    if (!parent.up) return;
    const h = pool.alloc();
    if (h < 0) {
      this.counters.drop(POOL_EMPTY);
      return;
    }
    const b = pool.bytes;
    const o = pool.offsets[h];
    writeMac48(b, o, 0xffffffffffff);
    writeMac48(b, o + 6, this.parentMac);
    w16(b, o + 12, T_ARP);
    w16(b, o + 14, 1);
    w16(b, o + 16, T_IPV4);
    b[o + 18] = 6;
    b[o + 19] = 4;
    w16(b, o + ARP_OPER, 1);
    writeMac48(b, o + ARP_SHA, this.parentMac);
    w32(b, o + ARP_SPA, spa);
    writeMac48(b, o + ARP_THA, 0);
    w32(b, o + ARP_TPA, target);
    pool.lengths[h] = ARP_FRAME;
    pool.inPort[h] = 0;
    this.arpRequests++;
    this.send(h, parent, ARP_FRAME);
  }

  /**
   * Turn the ARP request at frame offset o into the reply "tpa is at
   * parentMac", in place: to the asker (its sha), from parentMac.
   */
  private answerArp(o: number): void {
    const b = this.pool.bytes;
    const spa = u32(b, o + ARP_SPA);
    const tpa = u32(b, o + ARP_TPA);
    b.copyWithin(o, o + ARP_SHA, o + ARP_SHA + 6); // Ethernet dst = asker
    b.copyWithin(o + ARP_THA, o + ARP_SHA, o + ARP_SHA + 6);
    writeMac48(b, o + 6, this.parentMac);
    w16(b, o + ARP_OPER, 2);
    writeMac48(b, o + ARP_SHA, this.parentMac);
    w32(b, o + ARP_SPA, tpa);
    w32(b, o + ARP_TPA, spa);
    this.arpReplies++;
  }

  /** Hand h to `p`'s tx ring (or drop it: down, ring full). */
  private send(h: number, p: Port, len: number): void {
    if (!p.up) {
      this.drop(h, PORT_DOWN);
      return;
    }
    if (p.tx.push(h)) {
      this.counters.txPackets++;
      this.counters.txBytes += len;
    } else this.drop(h, RING_FULL);
  }

  /** l2: copies of h to every child but `skip` that is up (and the parent): n−1 clones, the original last. */
  private flood(h: number, len: number, skip: number, toParent: boolean): void {
    const kids = this.kids;
    const nk = kids.length;
    const parentUp = toParent && this.parent.up;
    let n = parentUp ? 1 : 0;
    for (let j = 0; j < nk; j++) if (j !== skip && kids[j].up) n++;
    if (n === 0) {
      // nobody else at all: freed without a drop (as the learning switch); only down ports: portDown
      const others = nk - (skip >= 0 ? 1 : 0) + (toParent ? 1 : 0);
      if (others === 0) this.pool.free(h);
      else this.drop(h, PORT_DOWN);
      return;
    }
    const pool = this.pool;
    let left = n;
    if (parentUp) {
      left--;
      this.copyTo(left === 0 ? h : pool.clone(h), this.parent, len);
    }
    for (let j = 0; j < nk && left > 0; j++) {
      if (j === skip || !kids[j].up) continue;
      left--;
      this.copyTo(left === 0 ? h : pool.clone(h), kids[j], len);
    }
  }

  private copyTo(x: number, p: Port, len: number): void {
    if (x < 0) {
      this.counters.drop(POOL_EMPTY);
      return;
    }
    if (p.tx.push(x)) {
      this.counters.txPackets++;
      this.counters.txBytes += len;
    } else this.drop(x, RING_FULL);
  }

  private drop(h: number, reason: number): void {
    this.pool.free(h);
    this.counters.drop(reason);
  }
}

/** Four bytes at o as int32 (the low part of a MAC). */
function lo32(b: Uint8Array, o: number): number {
  return (b[o + 0] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

/** An Ethernet/IPv4 ARP packet fits at frame offset o + 14. */
function arpOk(b: Uint8Array, o: number, len: number): boolean {
  return len >= ARP_FRAME && u16(b, o + 14) === 1 && u16(b, o + 16) === T_IPV4 && b[o + 18] === 6 && b[o + 19] === 4;
}

/** An IPv4 header (version 4, IHL ≥ 5, fits) at frame offset o + 14. */
function ipv4Ok(b: Uint8Array, o: number, len: number): boolean {
  if (len < 34) return false;
  const vi = b[o + 14];
  return vi >>> 4 === 4 && (vi & 0x0f) >= 5 && 14 + ((vi & 0x0f) << 2) <= len;
}

