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
 *   notForUs   unicast from the parent not for a child; a broadcast or
 *              multicast from the parent while no child is attached
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
 * tables over typed arrays (IpTable, NeighbourTable: neighbour-table.ts);
 * ARP replies are written over the request frame in place. Child
 * bookkeeping, send/flood/drop and the counting are ChildPortSwitch's
 * (child-ports.ts). Time is injected (process/tick take the caller's clock).
 */
import { DropReason } from '../dataplane/counters.js';
import type { Element } from '../dataplane/engine.js';
import type { FramePool } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';
import { u16, u32, w16, w32 } from '../wire/bytes.js';
import { ETHERTYPE, isMulticastMac, mac48, writeMac48 } from '../wire/ethernet.js';
import { ipv4ToString } from '../wire/ipv4.js';
import { ChildPortSwitch, macIs } from './child-ports.js';
import { ASK_UNTRACKED, ASK_WAIT, IpTable, type Neighbour, NeighbourTable } from './neighbour-table.js';

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

export type IpvlanNeighbour = Neighbour;

const M_L2 = 0;
const M_L3S = 2;

const BAD_SRC = DropReason.badSrcMac;
const MALFORMED = DropReason.malformed;
const NOT_FOR_US = DropReason.notForUs;
const FILTERED = DropReason.filtered;
const NO_ROUTE = DropReason.noRoute;
const HAIRPIN = DropReason.hairpin;
const UNSUPPORTED = DropReason.unsupported;
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

export class IpvlanSwitch extends ChildPortSwitch implements Element {
  readonly mode: IpvlanMode;
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
  private readonly pmHi: number;
  private readonly pmLo: number;
  private readonly track: IpvlanTrack | null;
  /** child address → child index (the index into `kids` / `keys`, which hold the addresses) */
  private readonly ips: IpTable;
  /** l3: neighbour address → MAC */
  private readonly neigh: NeighbourTable;
  private now = 0;

  constructor(pool: FramePool, parent: Port, opts: IpvlanOptions) {
    const m = IPVLAN_MODES.indexOf(opts.mode);
    if (m < 0) throw new Error(`unknown ipvlan mode "${String(opts.mode)}" (l2, l3, l3s)`);
    const pm = opts.parentMac;
    if (!Number.isInteger(pm) || pm <= 0 || pm > 0xffffffffffff || isMulticastMac(pm)) throw new Error('ipvlan: parentMac must be a unicast MAC');
    super(pool, parent, opts.maxChildren ?? 1024, NOT_FOR_US); // a group frame with no child at all is counted, not silently freed
    this.m = m;
    this.mode = opts.mode;
    this.parentMac = pm;
    this.pmHi = Math.floor(pm / 0x100000000) & 0xffff;
    this.pmLo = pm | 0;
    this.parentIp = (opts.parentIp ?? 0) >>> 0;
    this.gatewayIp = (opts.gatewayIp ?? 0) >>> 0;
    this.track = m === M_L3S ? (opts.track ?? null) : null;
    this.neighbourAgingMs = opts.neighbourAgingMs ?? 300_000;
    this.arpRetransMs = opts.arpRetransMs ?? 1000;
    const seed = opts.seed ?? (Math.random() * 0x100000000) >>> 0;
    this.ips = new IpTable(this.maxChildren, seed);
    this.neigh = new NeighbourTable(m === M_L2 ? 1 : (opts.neighbours ?? 256), seed ^ 0x3c6ef372, this.neighbourAgingMs, this.arpRetransMs);
  }

  // ---------------------------------------------------------------- cold

  /** `child` joins with IPv4 address `ip`. Throws on a duplicate or bad address, or a full switch. */
  attach(child: Port, ip: number): void {
    if (this.attached(child, ip >>> 0, ipv4ToString)) return;
    if (!Number.isInteger(ip) || ip <= 0 || ip >= 0xe0000000) throw new Error(`bad endpoint address for ${child.name}: ${String(ip)}`);
    const owner = this.keyOwner(ip >>> 0);
    if (owner !== null) throw new Error(`address ${ipv4ToString(ip)} is already used by ${owner.name}`);
    if (this.kids.length >= this.maxChildren) throw new Error(`ipvlan: at most ${this.maxChildren} endpoints per parent`);
    this.join(child, ip >>> 0);
  }

  children(): { port: Port; ip: number }[] {
    return this.kids.map((port, i) => ({ port, ip: this.keys[i] }));
  }

  /** The child owning `ip`, or null. */
  lookup(ip: number): Port | null {
    const s = this.ips.find(ip);
    return s < 0 ? null : this.kids[this.ips.val[s]];
  }

  /** l3: the neighbour table (ages relative to the last process/tick clock). */
  neighbours(): IpvlanNeighbour[] {
    return this.neigh.list(this.now);
  }

  protected override rebuild(): void {
    const t = this.ips;
    t.clear();
    for (let i = 0; i < this.kids.length; i++) t.val[t.insert(this.keys[i])] = i;
    // a child's address is never a neighbour
    for (let i = 0; i < this.keys.length; i++) this.neigh.forget(this.keys[i]);
  }

  // ----------------------------------------------------------------- hot

  /** Ages the neighbour table; returns how many entries went. */
  tick(now: number): number {
    this.now = now;
    return this.neigh.expire(now);
  }

  process(now: number): void {
    this.now = now;
    const nk = this.kids.length;
    this.fromParent(now);
    for (let i = 0; i < nk; i++) this.fromChild(i, now);
  }

  /** parent.rx → children: what every mode checks first (runt, unicast not to parentMac: notForUs). */
  private fromParent(now: number): void {
    const pool = this.pool;
    const b = pool.bytes;
    const offsets = pool.offsets;
    const rx = this.parent.rx;
    const l2 = this.m === M_L2;
    const pmHi = this.pmHi;
    const pmLo = this.pmLo;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = this.admit(h, true);
      if (len < 0) continue;
      const o = offsets[h];
      const group = (b[o] & 1) !== 0;
      if (!group && !macIs(b, o, pmHi, pmLo)) {
        this.drop(h, NOT_FOR_US);
        continue;
      }
      if (l2) this.parentL2(h, o, len, group);
      else this.parentL3(h, o, len, group, now);
    }
  }

  /** l2: a frame from the parent (group, or to parentMac) → children. */
  private parentL2(h: number, o: number, len: number, group: boolean): void {
    const b = this.pool.bytes;
    // ours: source parentMac (a child's frame hairpinned back, or the parent host's)
    const fromUs = macIs(b, o + 6, this.pmHi, this.pmLo);
    const type = u16(b, o + 12);
    if (type === T_ARP) {
      if (!arpOk(b, o, len)) this.drop(h, MALFORMED);
      else if (group && fromUs && this.ips.find(u32(b, o + ARP_SPA)) >= 0) this.drop(h, FILTERED);
      else if (!this.toChild(h, u32(b, o + ARP_TPA), len)) {
        if (group) this.flood(h, len, -1, false);
        else this.drop(h, NOT_FOR_US);
      }
    } else if (group) {
      if (fromUs && type === T_IPV4 && len >= 34 && this.ips.find(u32(b, o + IP_SRC)) >= 0) this.drop(h, FILTERED);
      else this.flood(h, len, -1, false);
    } else if (type !== T_IPV4) this.drop(h, NOT_FOR_US);
    else if (!ipv4Ok(b, o, len)) this.drop(h, MALFORMED);
    else if (!this.toChild(h, u32(b, o + IP_DST), len)) this.drop(h, NOT_FOR_US);
  }

  /** l3/l3s: a frame from the parent (group, or to parentMac) → children (routed), ARP answered and learned. */
  private parentL3(h: number, o: number, len: number, group: boolean, now: number): void {
    const b = this.pool.bytes;
    const type = u16(b, o + 12);
    if (type === T_ARP) {
      if (!arpOk(b, o, len)) {
        this.drop(h, group ? FILTERED : MALFORMED);
        return;
      }
      const oper = u16(b, o + ARP_OPER);
      const spa = u32(b, o + ARP_SPA);
      const sha = mac48(b, o + ARP_SHA);
      if (oper === 1) {
        // a request for one of our endpoints: answer, learn the asker
        if (this.ips.find(u32(b, o + ARP_TPA)) < 0) {
          // someone else's: it still updates what we know of its sender
          this.neigh.refresh(spa, sha, now);
          this.drop(h, group ? FILTERED : NOT_FOR_US);
          return;
        }
        this.learn(spa, sha, now);
        this.answerArp(o);
        this.send(h, this.parent, len);
        return;
      }
      if (oper === 2 && !group) {
        // a reply to us (our request on a next-hop miss): learn, consume
        this.learn(spa, sha, now);
        this.pool.free(h);
        return;
      }
      if (oper === 2) this.neigh.refresh(spa, sha, now); // gratuitous
      this.drop(h, group ? FILTERED : MALFORMED);
      return;
    }
    if (group) this.drop(h, FILTERED);
    else if (type !== T_IPV4) this.drop(h, UNSUPPORTED);
    else if (!ipv4Ok(b, o, len)) this.drop(h, MALFORMED);
    else {
      const s = this.ips.find(u32(b, o + IP_DST));
      if (s < 0) {
        this.drop(h, NOT_FOR_US);
        return;
      }
      this.learn(u32(b, o + IP_SRC), mac48(b, o + 6), now);
      if (this.track !== null) this.track(this.pool, h, true);
      this.send(h, this.kids[this.ips.val[s]], len);
    }
  }

  /** child i's rx → parent / other children: what every mode checks first (portDown, runt, source parentMac). */
  private fromChild(i: number, now: number): void {
    const child = this.kids[i];
    const rx = child.rx;
    if (rx.empty) return;
    const pool = this.pool;
    const b = pool.bytes;
    const offsets = pool.offsets;
    const l2 = this.m === M_L2;
    const pmHi = this.pmHi;
    const pmLo = this.pmLo;
    const up = child.up;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = this.admit(h, up);
      if (len < 0) continue;
      const o = offsets[h];
      if (!macIs(b, o + 6, pmHi, pmLo)) {
        this.drop(h, BAD_SRC);
        continue;
      }
      if (l2) this.childL2(h, o, len, i);
      else this.childL3(h, o, len, i, now);
    }
  }

  /** l2: a frame from child i → parent / other children. */
  private childL2(h: number, o: number, len: number, i: number): void {
    const b = this.pool.bytes;
    const type = u16(b, o + 12);
    if (type === T_ARP) {
      if (!arpOk(b, o, len)) {
        this.drop(h, MALFORMED);
        return;
      }
      const s = this.ips.find(u32(b, o + ARP_TPA));
      if (s >= 0 && this.ips.val[s] !== i) {
        this.send(h, this.kids[this.ips.val[s]], len);
        return;
      }
    }
    if ((b[o] & 1) !== 0) {
      this.flood(h, len, i, true);
      return;
    }
    if (type === T_IPV4 && macIs(b, o, this.pmHi, this.pmLo)) {
      if (!ipv4Ok(b, o, len)) {
        this.drop(h, MALFORMED);
        return;
      }
      const s = this.ips.find(u32(b, o + IP_DST));
      if (s >= 0) {
        const k = this.ips.val[s];
        if (k === i) this.drop(h, HAIRPIN);
        else this.send(h, this.kids[k], len);
        return;
      }
    }
    this.send(h, this.parent, len);
  }

  /** l3/l3s: a frame from child i → parent (routed) / other children; ARP answered. */
  private childL3(h: number, o: number, len: number, i: number, now: number): void {
    const b = this.pool.bytes;
    const myIp = this.keys[i];
    const type = u16(b, o + 12);
    if (type === T_ARP) {
      if (!arpOk(b, o, len)) this.drop(h, MALFORMED);
      // every address is behind the parent: answer with parentMac
      else if (u16(b, o + ARP_OPER) !== 1 || u32(b, o + ARP_TPA) === myIp) this.drop(h, FILTERED);
      else {
        this.answerArp(o);
        this.send(h, this.kids[i], len);
      }
      return;
    }
    if ((b[o] & 1) !== 0) this.drop(h, FILTERED);
    else if (type !== T_IPV4) this.drop(h, UNSUPPORTED);
    else if (!ipv4Ok(b, o, len)) this.drop(h, MALFORMED);
    else {
      const dst = u32(b, o + IP_DST);
      if (dst >= 0xe0000000) this.drop(h, FILTERED); // multicast / limited broadcast: none in l3
      else this.routeL3(h, o, len, i, dst, now);
    }
  }

  /** l3/l3s: IPv4 unicast from child i to `dst` → that child, or the parent via the next hop's MAC. */
  private routeL3(h: number, o: number, len: number, i: number, dst: number, now: number): void {
    const b = this.pool.bytes;
    const s = this.ips.find(dst);
    let to = this.parent;
    let mac = 0;
    if (s >= 0) {
      const k = this.ips.val[s];
      if (k === i) {
        this.drop(h, HAIRPIN);
        return;
      }
      to = this.kids[k];
      mac = this.parentMac;
    } else {
      const gw = this.gatewayIp;
      mac = this.neigh.macOf(dst);
      if (mac === 0 && gw !== 0) mac = this.neigh.macOf(gw);
      if (mac === 0) {
        this.solicit(gw !== 0 ? gw : dst, this.parentIp !== 0 ? this.parentIp : this.keys[i], now);
        this.drop(h, NO_ROUTE);
        return;
      }
    }
    writeMac48(b, o, mac);
    if (this.track !== null) this.track(this.pool, h, false);
    this.send(h, to, len);
  }

  /** Hand h to the child owning address `ip`; false (h untouched) when none does. */
  private toChild(h: number, ip: number, len: number): boolean {
    const s = this.ips.find(ip);
    if (s < 0) return false;
    this.send(h, this.kids[this.ips.val[s]], len);
    return true;
  }

  /** l3: remember ip → mac (a confirmation), unless it is a child's (or no neighbour's). */
  private learn(ip: number, mac: number, now: number): void {
    if (this.ips.find(ip) >= 0) return;
    if (!this.neigh.learn(ip, mac, now)) this.counters.reasons[TABLE_FULL]++;
  }

  /** l3: broadcast an ARP request for `target` from `spa` (at most once per arpRetransMs while pending). */
  private solicit(target: number, spa: number, now: number): void {
    const asked = this.neigh.ask(target, now);
    if (asked === ASK_WAIT) return;
    if (asked === ASK_UNTRACKED) this.counters.reasons[TABLE_FULL]++;
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
