/**
 * Router — the daemon's one IPv4 router: the gateway of every bridge
 * network, the uplink (outbound masquerade, published ports) and the host
 * link, with conntrack NAT (src/nat) and ARP.
 *
 * Ports: one per L3 interface (addInterface). A 'switch'-side iface is the
 * router's port on a network's LearningSwitch (it reads port.tx, writes
 * port.rx, and counts port.counters as that port's device); a 'device'-side
 * iface faces a TAP/AF_PACKET device (reads port.rx, writes port.tx).
 * Frames out are untagged Ethernet II; 802.1Q-tagged frames in are dropped
 * (unsupported).
 *
 * Per IPv4 packet (after checks: header, checksum, lengths, martian
 * source; a network's source outside its subnet, or the iface's own
 * address as source → filtered):
 *  1. TCP/UDP/ICMP echo: conntrack lookup as received. A hit in dir d must
 *     arrive on the iface d came from (else filtered); it leaves by the
 *     other iface of the flow's mark, NATed (nat.translate), ct.seen().
 *  2. ICMP errors: nat.lookupIcmpError → translateIcmpError, routed to the
 *     quoted packet's source side (never about untracked flows: filtered).
 *  3. To a router address (a network's gateway address only from that
 *     network or the host link: isolation): a published (proto, port) on
 *     an uplink or host link address → DNAT (+ SNAT to the target
 *     network's gateway when it came from a network: hairpin); UDP from a
 *     network to its own gateway address on a port with a service
 *     (setUdpService: DHCP 67, DNS 53) → that service (local-udp.ts); else
 *     answered locally: ARP, echo, UDP → port unreachable, TCP → RST,
 *     other → protocol unreachable.
 *  4. Else routed (connected subnets, default via the uplink's gateway),
 *     subject to policy (flows.ts): a new flow is made with its NAT.
 * An internal network starts no flow outside its subnet (net unreachable);
 * only the host link's flows into it are answered.
 * TTL ≤ 1 → time exceeded; too big with DF → frag needed (next-hop MTU);
 * without DF → fragmented (fragment.ts). No route → net unreachable from
 * the ingress iface. Errors quote the packet as received, are rate limited
 * and follow RFC 1812's don'ts (icmp-errors.ts). Later fragments follow
 * their first fragment's flow (frag-track.ts); no reassembly.
 * Frames to the broadcast MAC: ARP, or a DHCP client's broadcast (from
 * 0.0.0.0 too) to the ingress network's port-67 service; else notForUs.
 * Super-frames (GSO, pool.ts; gso-fit.ts): checked at input (gsoCheck;
 * mismatch → dropped, badGso, never forwarded); TTL and IP checksum
 * rewritten once for the whole; NAT keeps their partial checksum
 * (nat.translatePartial); conntrack counts their segments. "Too big"
 * means their segments are (IP + L4 header + gsoSize > MTU): DF → frag
 * needed, else cut into segments that fit (output.ts), never fragmented.
 * A local UDP service gets them segmented (local-udp.ts).
 * sendFrom() queues a frame built elsewhere for the next process().
 * Once ipIn() has checked a packet it sets the frame's header annotations
 * (pool.ts: l3, l4, ipLen, as Click's network/transport header): the
 * per-frame steps after it take the frame and read them, or the bytes.
 *
 * Counters: `counters` (all ifaces) and ifaceCounters(id): rx = frames
 * taken in, tx = frames sent (generated ones included), rx/txSegments
 * the wire packets they stand for (segmentsOf), drops by reason
 * (runt malformed badChecksum notForUs unsupported filtered noRoute
 * ttlExceeded oversize ringFull poolEmpty portDown badGso). stats(): ICMP errors
 * sent / rate-limited, RSTs, ARP requests / failures / table full / quota
 * evictions / entries and room (per iface: arpIfaceStats()),
 * fragments made, conntrack full, NAT ports exhausted, local UDP
 * deliveries / frames sent / service errors.
 *
 * Hot path (process) allocates nothing. Time is injected.
 */
import { Counters, DropReason as R } from '../dataplane/counters.js';
import { META_BYTES, type FramePool } from '../dataplane/pool.js';
import { segmentsOf } from '../dataplane/segments-count.js';
import { CT_ORIGINAL, type Conntrack } from '../nat/conntrack.js';
import type { NatRewriter } from '../nat/nat.js';
import { u16, u32 } from '../wire/bytes.js';
import { ETH, ETHERTYPE } from '../wire/ethernet.js';
import { IPV4, IPV4_DF, IPV4_FRAG_MASK, IPV4_MF, IpProto } from '../wire/ipv4.js';
import type { ArpRow } from './arp-cache.js';
import { FlowMaker, MARK_NAT, MARK_VALID, POLICY_DROP, POLICY_MASQ, POLICY_PLAIN, markIn, markOut, policy } from './flows.js';
import { FragTrack } from './frag-track.js';
import { gsoIn, gsoSizeOf, wireIpLen } from './gso-fit.js';
import { isMartianSource } from './icmp-errors.js';
import { IfaceTable, KIND_NETWORK, type IfaceConfig, type Published } from './ifaces.js';
import { decTtl, headerSumOk } from './ip-header.js';
import { LocalUdp, type LocalUdpService } from './local-udp.js';
import { RouterOutput, type RouterStats } from './output.js';

export type { IfaceConfig, IfaceKind, Published } from './ifaces.js';
export type { RouterStats } from './output.js';
export type { LocalUdpService } from './local-udp.js';

export interface RouterOptions {
  /** learned ARP cache entries, all ifaces (default 1024) */
  arpCapacity?: number;
  /** learned ARP entries one iface may hold (default max(arpCapacity/8, 64)) */
  arpIfaceQuota?: number;
  /** permanent ARP entries (addNeighbour; default 1024) */
  arpStaticCapacity?: number;
  /** frames queued per unresolved next hop (default 8) */
  arpQueueLen?: number;
  /** hash key for the ARP cache, fragment table and NAT port choice */
  seed?: number;
  /** source ports (and ICMP identifiers) masquerade may use (default [32768, 60999]) */
  natPorts?: [number, number];
  /** ICMP error rate limit (default 1000/s, burst 50) */
  icmpRatePerSec?: number;
  icmpBurst?: number;
  /** frames sendFrom() may queue between process() calls (default 256) */
  sendQueueLen?: number;
}

const TCP_RST = 0x04;

export class Router {
  readonly counters: Counters;
  private readonly t = new IfaceTable();
  private readonly out: RouterOutput;
  private readonly flows: FlowMaker;
  private readonly frag: FragTrack;
  private readonly udp: LocalUdp;
  private now = 0;

  constructor(
    private readonly pool: FramePool,
    private readonly ct: Conntrack,
    private readonly nat: NatRewriter,
    opts: RouterOptions = {},
  ) {
    const seed = opts.seed ?? (Math.random() * 0x7fffffff) | 0;
    this.out = new RouterOutput(pool, this.t, { capacity: opts.arpCapacity ?? 1024, ifaceQuota: opts.arpIfaceQuota, staticCapacity: opts.arpStaticCapacity, queueLen: opts.arpQueueLen ?? 8, seed }, { ratePerSec: opts.icmpRatePerSec, burst: opts.icmpBurst });
    this.counters = this.out.counters;
    const [lo, hi] = opts.natPorts ?? [32768, 60999];
    this.flows = new FlowMaker(ct, lo, hi, seed);
    this.frag = new FragTrack(1024, seed);
    this.udp = new LocalUdp(pool, this.t, this.out, opts.sendQueueLen ?? 256);
  }

  // ---------------------------------------------------------------- cold

  /** A new L3 interface; returns its id. Sets port.mtu to cfg.mtu. */
  addInterface(cfg: IfaceConfig): number {
    const id = this.t.add(cfg);
    cfg.port.mtu = cfg.mtu;
    return id;
  }

  /** Remove an iface: its flows leave conntrack, its ARP entries (and queued frames) and ring contents are freed. */
  removeInterface(id: number): void {
    const t = this.t;
    if (id < 0 || id >= t.active.length || t.active[id] === 0) return;
    this.flows.removeIface(id);
    this.udp.removeIface(id);
    this.frag.clear();
    this.out.arp.flushIface(id, this.out);
    const port = t.port[id]!;
    for (let h = port.rx.pop(); h >= 0; h = port.rx.pop()) this.pool.free(h);
    for (let h = port.tx.pop(); h >= 0; h = port.tx.pop()) this.pool.free(h);
    t.remove(id);
  }

  /** DNAT (proto, hostPort) on every uplink/host-link address to the target. Throws when taken by another target. */
  publish(p: Published): void {
    this.t.publish(p);
  }

  unpublish(p: Published): void {
    this.t.unpublish(p);
  }

  /** Serve UDP `port` on network iface `iface` (its gateway address; 67 also DHCP broadcasts); null removes. See local-udp.ts. */
  setUdpService(iface: number, port: number, svc: LocalUdpService | null): void {
    this.udp.set(iface, port, svc);
  }

  /** A finished frame (built elsewhere, e.g. an async DNS answer) to leave by `iface` as is at the next process(); the router owns h. */
  sendFrom(iface: number, h: number): void {
    this.udp.enqueue(iface, h);
  }

  /** Cold: the neighbour table. */
  arpTable(): ArpRow[] {
    return this.out.arp.rows();
  }

  /**
   * Cold: a permanent neighbour on iface `iface` (an endpoint whose MAC the
   * control plane assigned): never learned, aged, evicted or changed by ARP,
   * outside the iface's quota. Frames waiting on it go out now. False when
   * the static area is full (it is then learned as usual).
   */
  addNeighbour(iface: number, ip: number, mac: number): boolean {
    const t = this.t;
    if (iface < 0 || iface >= t.active.length || t.active[iface] === 0) return false;
    const e = this.out.arp.setStatic(iface, ip, mac, this.now);
    if (e < 0) return false;
    if (this.out.arp.pending(e) > 0) this.out.release(e, iface);
    return true;
  }

  /** Cold: remove the permanent neighbour (iface, ip), only while it still maps to `mac` when given. */
  removeNeighbour(iface: number, ip: number, mac?: number): boolean {
    return this.out.arp.removeStatic(iface, ip, mac);
  }

  /** Cold: an iface's share of the ARP cache (learned entries, permanent ones, quota, quota hits). */
  arpIfaceStats(iface: number): { dynamic: number; static: number; quota: number; quotaHits: number } {
    return this.out.arp.ifaceStats(iface);
  }

  ifaceCounters(id: number): Counters {
    const c = this.t.counters[id];
    if (!c) throw new Error(`no router iface ${id}`);
    return c;
  }

  /** Cold: the router's own event counters. */
  stats(): RouterStats {
    return { ...this.out.stats(), ...this.udp.stats(), conntrackFull: this.flows.conntrackFull, natPortsExhausted: this.flows.natPortsExhausted };
  }

  // ----------------------------------------------------------------- hot

  /** ARP retries/aging and conntrack expiry; about once a second. */
  tick(now: number): void {
    now = Math.floor(now);
    this.now = now;
    this.out.now = now;
    this.out.arp.tick(now, this.out);
    this.ct.tick(now);
  }

  /** Drain every iface's input ring and route. */
  process(now: number): void {
    // whole ms: a small integer, so passing it on never makes a heap number
    now = Math.floor(now);
    this.now = now;
    this.out.now = now;
    this.out.icmp.refill(now);
    this.udp.drain();
    const t = this.t;
    const live = t.live;
    const pool = this.pool;
    const lengths = pool.lengths;
    const c = this.counters;
    for (let k = 0; k < live.length; k++) {
      const i = live[k];
      const ring = t.inRing[i];
      if (ring === null) continue;
      const ic = t.counters[i]!;
      const pc = t.deviceSide[i] === 1 ? t.port[i]!.counters : null;
      for (let h = ring.pop(); h >= 0; h = ring.pop()) {
        const len = lengths[h];
        const sg = segmentsOf(pool, h);
        c.rxPackets++;
        c.rxBytes += len;
        c.rxSegments += sg;
        ic.rxPackets++;
        ic.rxBytes += len;
        ic.rxSegments += sg;
        if (pc !== null) {
          pc.txPackets++;
          pc.txBytes += len;
          pc.txSegments += sg;
        }
        this.input(h, i, len);
      }
    }
  }

  private drop(h: number, reason: number, i: number): void {
    this.out.drop(h, reason, i);
  }

  private input(h: number, i: number, len: number): void {
    const b = this.pool.bytes;
    const off = this.pool.offsets[h];
    if (len < ETH.HLEN) return this.drop(h, R.runt, i);
    // a super-frame must match its annotations; a partial checksum on an ordinary frame is completed (gso-fit.ts)
    const m8 = this.pool.meta8;
    const gso = m8[h * META_BYTES + 1];
    if ((gso | (m8[h * META_BYTES] & 1)) !== 0 && !gsoIn(this.pool, h)) return this.drop(h, R.badGso, i);
    const type = u16(b, off + ETH.TYPE);
    const dHi = u16(b, off);
    const dLo = u32(b, off + 2) | 0;
    const ours = dHi === this.t.macHi[i] && dLo === this.t.macLo[i];
    if (type === ETHERTYPE.ARP) {
      if (!ours && (dHi !== 0xffff || dLo !== -1)) return this.drop(h, R.notForUs, i);
      return this.out.arpIn(h, i, b, off, len);
    }
    if (!ours) return dHi === 0xffff && dLo === -1 && type === ETHERTYPE.IPV4 && gso === 0 ? this.udp.broadcastIn(h, i, b, off, len) : this.drop(h, R.notForUs, i);
    if (type !== ETHERTYPE.IPV4) return this.drop(h, R.unsupported, i);
    this.ipIn(h, i, b, off, len);
  }

  private ipIn(h: number, i: number, b: Uint8Array, off: number, len: number): void {
    const t = this.t;
    const l3 = off + ETH.HLEN;
    const vi = b[l3];
    const hl = (vi & 15) << 2;
    if (len < ETH.HLEN + IPV4.HLEN || vi >>> 4 !== 4 || hl < IPV4.HLEN || ETH.HLEN + hl > len) return this.drop(h, R.malformed, i);
    const total = u16(b, l3 + IPV4.TOTAL_LEN);
    if (total < hl || ETH.HLEN + total > len) return this.drop(h, R.malformed, i);
    if (!headerSumOk(b, l3, hl)) return this.drop(h, R.badChecksum, i);
    const pool = this.pool;
    pool.lengths[h] = ETH.HLEN + total; // Ethernet padding off
    // header annotations (pool.ts): what follows takes the frame and reads them
    pool.l3[h] = ETH.HLEN;
    pool.l4[h] = ETH.HLEN + hl;
    pool.ipLen[h] = total;
    // addresses and ports as int32 all along (small integers: nothing boxed)
    const src = u32(b, l3 + IPV4.SRC) | 0;
    const dst = u32(b, l3 + IPV4.DST) | 0;
    if (isMartianSource(src)) return this.drop(h, R.malformed, i);
    // to 0/8, loopback, multicast, broadcast (limited or the subnet's): never routed
    if (isMartianSource(dst) || t.isSubnetBroadcast(i, dst)) return this.drop(h, R.notForUs, i);
    // anti-spoofing: a network's sources are its own addresses; nobody is the router
    if (src === t.ip[i] || (t.kind[i] === KIND_NETWORK && !t.inSubnet(i, src))) return this.drop(h, R.filtered, i);
    const proto = b[l3 + IPV4.PROTO];
    const ff = u16(b, l3 + IPV4.FLAGS_FRAG);
    if ((ff & IPV4_FRAG_MASK) !== 0) return this.laterFragment(h, i);
    const p = l3 + hl;
    const pl = total - hl;
    let tracked = false;
    let ports = 0;
    let flags = 0;
    let icmpType = -1;
    if (proto === IpProto.TCP) {
      if (pl < 20 || b[p + 12] >>> 4 < 5 || ((ff & IPV4_MF) === 0 && (b[p + 12] >>> 4) << 2 > pl)) return this.drop(h, R.malformed, i);
      tracked = true;
      ports = u32(b, p) | 0;
      flags = b[p + 13];
    } else if (proto === IpProto.UDP) {
      const ul = pl >= 8 ? u16(b, p + 4) : 0;
      if (pl < 8 || ((ff & IPV4_MF) === 0 && (ul < 8 || ul > pl))) return this.drop(h, R.malformed, i);
      tracked = true;
      ports = u32(b, p) | 0;
    } else if (proto === IpProto.ICMP) {
      if (pl < 8) return this.drop(h, R.malformed, i);
      icmpType = b[p];
      if (icmpType === 8 || icmpType === 0) {
        tracked = true;
        const id = u16(b, p + 4);
        ports = (id << 16) | id;
      }
    }
    const ct = this.ct;
    if (tracked) {
      const r = ct.find(proto, src, dst, ports);
      // ICMP echo is keyed by its type too (as Linux's conntrack): requests go the way the flow was made, replies back;
      // a request in the reply direction is not the flow's (the answering side cannot ping in through it)
      if (r >= 0 && (icmpType < 0 || (icmpType === 8) === ((r & 1) === CT_ORIGINAL))) return this.established(h, i, r >>> 1, r & 1);
    }
    if (icmpType === 3 || icmpType === 4 || icmpType === 11 || icmpType === 12) return this.icmpErrorIn(h, i);
    if (icmpType === 5) return this.drop(h, R.unsupported, i); // redirects are for the router, never passed on
    // an internal network starts nothing outside its subnet (the host's flows into it are answered above)
    if (t.internal[i] === 1 && !t.inSubnet(i, dst)) return this.unreachable(h, i, 0);
    const li = t.localIface(dst);
    if (li >= 0) {
      // isolation: another network's gateway address is not reachable from a network either
      if (li !== i && t.kind[li] === KIND_NETWORK && t.kind[i] === KIND_NETWORK) return this.drop(h, R.filtered, i);
      if (li === i && proto === IpProto.UDP && (ff & IPV4_MF) === 0 && this.udp.unicastIn(h, i, ports & 0xffff)) return;
      if (tracked && proto !== IpProto.ICMP && t.kind[li] !== KIND_NETWORK) {
        const k = (proto === IpProto.TCP ? 0 : 65536) + (ports & 0xffff);
        if (t.pubPort[k] >= 0) return this.dnat(h, i, k);
      }
      return this.out.answer(h, i, li);
    }
    const e = t.route(dst);
    if (e < 0 || t.nextHop(e, dst) === 0) return this.unreachable(h, i, 0);
    if (t.isSubnetBroadcast(e, dst)) return this.drop(h, R.notForUs, i);
    const pol = policy(t, i, e);
    if (pol === POLICY_DROP) return this.drop(h, R.filtered, i);
    if (!tracked) {
      // untracked protocols pass only where no NAT is needed (host link ↔ network)
      if (pol !== POLICY_PLAIN || icmpType >= 0) return this.drop(h, pol === POLICY_PLAIN ? R.filtered : R.unsupported, i);
      if (!this.checks(h, i, e)) return;
      decTtl(b, l3);
      return this.out.forward(h, e, dst);
    }
    // no flow is born from a RST or an echo reply
    if ((proto === IpProto.TCP && (flags & TCP_RST) !== 0) || icmpType === 0) return this.drop(h, R.filtered, i);
    if (!this.checks(h, i, e)) return;
    const f = this.flows.make(proto, src, ports >>> 16, dst, ports & 0xffff, dst, ports & 0xffff, pol === POLICY_MASQ ? t.ip[e] : src, i, e, this.now);
    if (f < 0) return this.drop(h, R.filtered, i);
    this.pass(h, e, f, CT_ORIGINAL);
  }

  /** The network header's position in pool.bytes (its annotation). */
  private l3Of(h: number): number {
    return this.pool.offsets[h] + this.pool.l3[h];
  }

  /** A packet of a known flow: flow f, direction dir. */
  private established(h: number, i: number, f: number, dir: number): void {
    const m = this.ct.mark[f];
    if ((m & MARK_VALID) === 0 || i !== (dir === CT_ORIGINAL ? markIn(m) : markOut(m))) return this.drop(h, R.filtered, i);
    const e = dir === CT_ORIGINAL ? markOut(m) : markIn(m);
    if (this.t.active[e] === 0) return this.drop(h, R.portDown, i);
    if (!this.checks(h, i, e)) return;
    this.pass(h, e, f, dir);
  }

  /** A new flow to published port k (TCP/UDP, t.pubPort[k] ≥ 0). */
  private dnat(h: number, i: number, k: number): void {
    const t = this.t;
    const target = t.pubIp[k];
    const e = t.route(target);
    if (e < 0 || t.kind[e] !== KIND_NETWORK || t.internal[e] === 1 || !t.inSubnet(e, target)) return this.drop(h, R.filtered, i);
    const pool = this.pool;
    const b = pool.bytes;
    const l3 = this.l3Of(h);
    const l4 = pool.offsets[h] + pool.l4[h];
    const proto = b[l3 + IPV4.PROTO];
    if (proto === IpProto.TCP && (b[l4 + 13] & TCP_RST) !== 0) return this.drop(h, R.filtered, i);
    if (!this.checks(h, i, e)) return;
    const src = u32(b, l3 + IPV4.SRC) | 0;
    const ports = u32(b, l4) | 0;
    // hairpin: a container's packet is also SNATed to the target network's gateway address
    const rDst = t.kind[i] === KIND_NETWORK ? t.ip[e] : src;
    const f = this.flows.make(proto, src, ports >>> 16, u32(b, l3 + IPV4.DST) | 0, ports & 0xffff, target, t.pubPort[k], rDst, i, e, this.now);
    if (f < 0) return this.drop(h, R.filtered, i);
    this.pass(h, e, f, CT_ORIGINAL);
  }

  /** NAT, account, TTL − 1, send on (flow f, direction dir). */
  private pass(h: number, e: number, f: number, dir: number): void {
    const pool = this.pool;
    const b = pool.bytes;
    const l3 = this.l3Of(h);
    // TCP flags for conntrack (read before NAT; 0 for other protocols)
    const flags = b[l3 + IPV4.PROTO] === IpProto.TCP ? b[pool.offsets[h] + pool.l4[h] + 13] : 0;
    // a first fragment: its later fragments will follow this flow (keyed as received)
    if ((u16(b, l3 + IPV4.FLAGS_FRAG) & IPV4_MF) !== 0) this.frag.remember(u32(b, l3 + IPV4.SRC) | 0, u32(b, l3 + IPV4.DST) | 0, u16(b, l3 + IPV4.IDENT), b[l3 + IPV4.PROTO], (f << 1) | dir, this.now);
    // a partial checksum (a super-frame) holds the pseudo-header sum: NAT updates it as such (nat.ts)
    if ((this.ct.mark[f] & MARK_NAT) !== 0) {
      if ((this.pool.meta8[h * META_BYTES] & 1) !== 0) this.nat.translatePartial(b, l3, f, dir);
      else this.nat.translate(b, l3, f, dir);
    }
    // a super-frame counts as its segments (its bytes as its IP bytes)
    this.ct.seen(f, dir, flags, pool.ipLen[h], this.now, segmentsOf(pool, h));
    decTtl(b, l3);
    this.out.forward(h, e, u32(b, l3 + IPV4.DST) | 0);
  }

  /** TTL and DF/MTU checks before forwarding from i to e (errors sent, frame dropped on failure). */
  private checks(h: number, i: number, e: number): boolean {
    const b = this.pool.bytes;
    const l3 = this.l3Of(h);
    if (b[l3 + IPV4.TTL] <= 1) {
      this.out.sendError(h, i, this.t.ip[i], 11, 0, 0, false);
      this.drop(h, R.ttlExceeded, i);
      return false;
    }
    // a super-frame is too big when its segments are (gso-fit.ts); DF clear: output.ts cuts it
    const total = this.pool.ipLen[h];
    if (total > this.t.mtu[e] && (u16(b, l3 + IPV4.FLAGS_FRAG) & IPV4_DF) !== 0 && wireIpLen(b, l3, total, gsoSizeOf(this.pool, h)) > this.t.mtu[e]) {
      this.out.sendError(h, i, this.t.ip[i], 3, 4, this.t.mtu[e], false);
      this.drop(h, R.oversize, i);
      return false;
    }
    return true;
  }

  private unreachable(h: number, i: number, code: number): void {
    this.out.sendError(h, i, this.t.ip[i], 3, code, 0, false);
    this.drop(h, R.noRoute, i);
  }

  /** An ICMP error in transit: to the inside host of the flow it is about. */
  private icmpErrorIn(h: number, i: number): void {
    const b = this.pool.bytes;
    const l3 = this.l3Of(h);
    const total = this.pool.ipLen[h];
    const nat = this.nat;
    const r = nat.lookupIcmpError(b, l3, total);
    if (r < 0) return this.drop(h, this.t.localIface(u32(b, l3 + IPV4.DST) | 0) >= 0 ? R.notForUs : R.filtered, i);
    const f = r >>> 1;
    const qdir = r & 1; // the quoted packet's direction; the error goes the other way
    const m = this.ct.mark[f];
    if ((m & MARK_VALID) === 0 || i !== (qdir === CT_ORIGINAL ? markOut(m) : markIn(m))) return this.drop(h, R.filtered, i);
    const e = qdir === CT_ORIGINAL ? markIn(m) : markOut(m);
    if (this.t.active[e] === 0) return this.drop(h, R.portDown, i);
    if (b[l3 + IPV4.TTL] <= 1) return this.drop(h, R.ttlExceeded, i);
    if (total > this.t.mtu[e] && (u16(b, l3 + IPV4.FLAGS_FRAG) & IPV4_DF) !== 0) return this.drop(h, R.oversize, i);
    if ((m & MARK_NAT) !== 0 && !nat.translateIcmpError(b, l3, total, f, qdir)) return this.drop(h, R.malformed, i);
    decTtl(b, l3);
    this.out.forward(h, e, u32(b, l3 + IPV4.DST) | 0);
  }

  /** A fragment other than the first: it follows its first fragment's flow, if seen. */
  private laterFragment(h: number, i: number): void {
    const b = this.pool.bytes;
    const l3 = this.l3Of(h);
    const r = this.frag.find(u32(b, l3 + IPV4.SRC) | 0, u32(b, l3 + IPV4.DST) | 0, u16(b, l3 + IPV4.IDENT), b[l3 + IPV4.PROTO], this.now);
    if (r < 0 || !this.ct.inUse(r >>> 1)) return this.drop(h, R.unsupported, i);
    const f = r >>> 1;
    const dir = r & 1;
    const m = this.ct.mark[f];
    if ((m & MARK_VALID) === 0 || i !== (dir === CT_ORIGINAL ? markIn(m) : markOut(m))) return this.drop(h, R.filtered, i);
    const e = dir === CT_ORIGINAL ? markOut(m) : markIn(m);
    if (this.t.active[e] === 0) return this.drop(h, R.portDown, i);
    if (!this.checks(h, i, e)) return;
    if ((m & MARK_NAT) !== 0) this.nat.translate(b, l3, f, dir);
    this.ct.seen(f, dir, 0, this.pool.ipLen[h], this.now);
    decTtl(b, l3);
    this.out.forward(h, e, u32(b, l3 + IPV4.DST) | 0);
  }
}
