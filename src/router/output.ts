/**
 * RouterOutput — the router's transmit side: next-hop resolution through
 * the ARP cache, fragmentation, the output rings, what the router answers
 * itself (ARP, echo, ICMP errors, RSTs: arpIn(), answer()) and the drop/tx
 * accounting shared with the input path.
 *
 * forward(h, e, dst): h is an untagged IPv4 frame (L3 at off + 14, TTL
 * already decremented) leaving through iface e towards dst. Too long for
 * e's MTU (DF clear — DF was handled by the caller) → fragmented. For each
 * piece, the next hop (dst when on-link, else e's gateway) is looked up in
 * the ARP cache: known → Ethernet header written, frame pushed on e's
 * output ring; unknown → queued on the entry (created INCOMPLETE, a
 * broadcast request sent at once; tick() retries and gives up).
 * A super-frame (GSO) is measured by its segments (gso-fit.ts): when they
 * fit it goes on whole, else (DF clear — the caller answered DF) it is cut
 * into segments that fit (segmentFrame with mss = MTU − headers), counted
 * in `segmentsMade`; it is never IP-fragmented.
 *
 * sendError(h, i, src, type, code, rest): an ICMP error about the packet in
 * frame h (unchanged, as received on iface i) from address `src`, if the
 * packet is eligible and a rate-limit token is left. It is routed back to
 * the packet's source, and only through i (the way the packet came: a
 * spoofed source never draws an error into another network). sendRst()
 * does the same for a TCP RST (not rate-limited).
 *
 * Accounting: drop(h, reason, iface) frees and counts on the router's
 * counters and iface's; send() counts tx on both, and port.counters when
 * the router is the port's device side (txSegments/rxSegments: segmentsOf).
 */
import { Counters, DropReason } from '../dataplane/counters.js';
import type { FramePool } from '../dataplane/pool.js';
import { segmentFrame } from '../dataplane/segment.js';
import { segmentsOf } from '../dataplane/segments-count.js';
import { GSO_MAX_SEGS, GsoError } from '../wire/gso.js';
import { ArpCache, type ArpCacheOptions, type ArpHost } from './arp-cache.js';
import { u16, u32 } from '../wire/bytes.js';
import { verifyChecksum } from '../wire/checksum.js';
import { ETH, ETHERTYPE } from '../wire/ethernet.js';
import { IPV4, IPV4_MF, IpProto } from '../wire/ipv4.js';
import { fragment } from './fragment.js';
import { gsoSizeOf, segMss, wireIpLen } from './gso-fit.js';
import { IcmpErrors, type IcmpRateOptions } from './icmp-errors.js';
import { IfaceTable, writeMacHL } from './ifaces.js';
import { arpReplyInPlace, buildArpRequest, buildRst, echoReplyInPlace } from './local.js';

export interface RouterStats {
  icmpErrorsSent: number;
  icmpRateLimited: number;
  rstSent: number;
  arpRequests: number;
  /** create refused (nothing to evict) */
  arpCacheFull: number;
  arpUnresolved: number;
  /** ARP cache: entries in use (learned / permanent) and room */
  arpDynamic: number;
  arpCapacity: number;
  arpStatic: number;
  arpStaticCapacity: number;
  /** learned entries one iface may hold */
  arpIfaceQuota: number;
  /** a new entry found the whole table full (the biggest iface lost its oldest entry) */
  arpTableFull: number;
  /** a new entry found its iface at its quota (that iface lost its own oldest entry) */
  arpQuotaEvicted: number;
  /** permanent entries refused (static area full) */
  arpStaticFull: number;
  /** ARP claims against a permanent entry, ignored */
  arpConflicts: number;
  fragmentsMade: number;
  /** super-frames cut into segments to fit an egress MTU, and the segments made */
  gsoSegmented: number;
  segmentsMade: number;
  conntrackFull: number;
  natPortsExhausted: number;
  /** local UDP services (local-udp.ts): frames delivered, frames sent (replies and sendFrom), handle() throws */
  udpDelivered: number;
  udpSent: number;
  udpServiceErrors: number;
}

export class RouterOutput implements ArpHost {
  readonly counters = new Counters();
  readonly icmp: IcmpErrors;
  readonly arp: ArpCache;
  now = 0;
  rstSent = 0;
  arpRequests = 0;
  arpCacheFull = 0;
  arpUnresolvedCount = 0;
  fragmentsMade = 0;
  gsoSegmented = 0;
  segmentsMade = 0;
  private readonly frags = new Int32Array(64);
  /** the segments of the last segment() */
  readonly segs = new Uint32Array(GSO_MAX_SEGS);

  constructor(
    private readonly pool: FramePool,
    private readonly t: IfaceTable,
    arpOpts: ArpCacheOptions,
    icmpRate: IcmpRateOptions,
  ) {
    this.icmp = new IcmpErrors(pool, icmpRate);
    this.arp = new ArpCache(arpOpts);
  }

  drop(h: number, reason: number, iface: number): void {
    this.pool.free(h);
    this.counters.drop(reason);
    const c = this.t.counters[iface];
    if (c !== null) c.drop(reason);
  }

  /** Push the finished frame h on iface e's output ring. */
  send(h: number, e: number): void {
    const ring = this.t.outRing[e];
    if (ring === null) {
      this.drop(h, DropReason.portDown, e);
      return;
    }
    const port = this.t.port[e]!;
    this.pool.inPort[h] = port.id;
    if (!ring.push(h)) {
      this.drop(h, DropReason.ringFull, e);
      return;
    }
    const n = this.pool.lengths[h];
    const sg = segmentsOf(this.pool, h);
    this.counters.txPackets++;
    this.counters.txBytes += n;
    this.counters.txSegments += sg;
    const c = this.t.counters[e]!;
    c.txPackets++;
    c.txBytes += n;
    c.txSegments += sg;
    if (this.t.deviceSide[e] === 1) {
      port.counters.rxPackets++;
      port.counters.rxBytes += n;
      port.counters.rxSegments += sg;
    }
  }

  /** Route the IPv4 frame h out of iface e towards dst (see the header). */
  forward(h: number, e: number, dst: number): void {
    const t = this.t;
    const nh = t.nextHop(e, dst);
    if (nh === 0) {
      this.drop(h, DropReason.noRoute, e);
      return;
    }
    const b = this.pool.bytes;
    const l3 = this.pool.offsets[h] + ETH.HLEN;
    const total = u16(b, l3 + IPV4.TOTAL_LEN);
    const gs = gsoSizeOf(this.pool, h);
    if (total <= t.mtu[e] || (gs !== 0 && wireIpLen(b, l3, total, gs) <= t.mtu[e])) {
      this.resolve(h, e, nh);
      return;
    }
    if (gs !== 0) {
      const k = this.segment(h, e, segMss(b, l3, t.mtu[e]));
      for (let j = 0; j < k; j++) this.resolve(this.segs[j], e, nh);
      return;
    }
    const n = fragment(this.pool, h, t.mtu[e], this.frags);
    if (n < 0) {
      this.drop(h, DropReason.oversize, e);
      return;
    }
    this.fragmentsMade += n;
    for (let k = 0; k < n; k++) this.resolve(this.frags[k], e, nh);
  }

  /**
   * Cut super-frame h into segments of at most `mss` payload bytes (into
   * this.segs); h is freed (or dropped: oversize when mss leaves no room,
   * poolEmpty, badGso). Returns the segments made (0 on failure).
   */
  segment(h: number, e: number, mss: number): number {
    const n = mss > 0 ? segmentFrame(this.pool, h, mss, this.segs) : -GsoError.TOO_MANY_SEGS;
    if (n < 0) {
      const reason = n === -GsoError.POOL_EMPTY ? DropReason.poolEmpty : n === -GsoError.TOO_MANY_SEGS ? DropReason.oversize : DropReason.badGso;
      this.drop(h, reason, e);
      return 0;
    }
    this.pool.free(h);
    this.gsoSegmented++;
    this.segmentsMade += n;
    return n;
  }

  /** Ethernet header to nh's MAC and send, or queue on the ARP entry. */
  resolve(h: number, e: number, nh: number): void {
    const arp = this.arp;
    const n = arp.lookup(e, nh, this.now, this);
    if (n >= 0) {
      this.sendTo(h, e, arp.eHi[n], arp.eLo[n]);
      return;
    }
    let a = arp.find(e, nh);
    if (a < 0) {
      a = arp.create(e, nh, this.now, this);
      if (a < 0) {
        this.arpCacheFull++;
        this.drop(h, DropReason.noRoute, e);
        return;
      }
      this.arpRequest(e, nh, 0);
    }
    const old = arp.enqueue(a, h);
    if (old >= 0) this.drop(old, DropReason.noRoute, e);
  }

  /** Write the Ethernet header (to the MAC hi/lo, from ours, IPv4) and send. */
  sendTo(h: number, e: number, hi: number, lo: number): void {
    const b = this.pool.bytes;
    const o = this.pool.offsets[h];
    writeMacHL(b, o + ETH.DST, hi, lo);
    writeMacHL(b, o + ETH.SRC, this.t.macHi[e], this.t.macLo[e]);
    b[o + ETH.TYPE] = 0x08;
    b[o + ETH.TYPE + 1] = 0x00;
    this.send(h, e);
  }

  /** Frames waiting on ARP entry a (of iface e) go out to its MAC. */
  release(a: number, e: number): void {
    const arp = this.arp;
    for (let h = arp.dequeue(a); h >= 0; h = arp.dequeue(a)) this.sendTo(h, e, arp.eHi[a], arp.eLo[a]);
  }

  /** ArpHost: a who-has for ip on iface e. */
  arpRequest(e: number, ip: number, mac: number): void {
    const t = this.t;
    if (t.active[e] === 0) return;
    const h = buildArpRequest(this.pool, t.mac[e], t.ip[e], ip, mac);
    if (h < 0) {
      this.counters.drop(DropReason.poolEmpty);
      return;
    }
    this.arpRequests++;
    this.send(h, e);
  }

  /** ArpHost: a frame whose next hop never answered. */
  arpUnresolved(h: number, e: number): void {
    this.arpUnresolvedCount++;
    this.drop(h, DropReason.noRoute, e);
  }

  /**
   * An ICMP error about the packet in h (as received on iface i) from
   * `src`. `toGroup`: the packet was sent to a group/broadcast address.
   * h is left alone (the caller still owns and drops it).
   */
  sendError(h: number, i: number, src: number, type: number, code: number, rest: number, toGroup: boolean): void {
    const l3 = this.pool.offsets[h] + ETH.HLEN;
    const icmp = this.icmp;
    if (!icmp.eligible(this.pool.bytes, l3, toGroup) || !icmp.take(i)) return;
    const e = this.replyIface(l3, i);
    if (e < 0) return;
    const g = icmp.build(l3, src, type, code, rest);
    if (g < 0) {
      this.counters.drop(DropReason.poolEmpty);
      return;
    }
    this.forward(g, e, u32(this.pool.bytes, l3 + IPV4.SRC) | 0);
  }

  /** A RST answering the TCP segment in h (as received on iface i). */
  sendRst(h: number, i: number): void {
    const l3 = this.pool.offsets[h] + ETH.HLEN;
    const e = this.replyIface(l3, i);
    if (e < 0) return;
    const g = buildRst(this.pool, l3);
    if (g < 0) {
      this.counters.drop(DropReason.poolEmpty);
      return;
    }
    this.rstSent++;
    this.forward(g, e, u32(this.pool.bytes, l3 + IPV4.SRC) | 0);
  }

  /**
   * An ARP packet in frame h from iface i: learn the sender when it is on
   * i's subnet (create the entry only when the packet is addressed to us;
   * frames waiting for it go out), answer requests for i's address in
   * place; replies to us are consumed, the rest dropped (notForUs).
   */
  arpIn(h: number, i: number, b: Uint8Array, off: number, len: number): void {
    const a = off + ETH.HLEN;
    if (len < ETH.HLEN + 28 || u16(b, a) !== 1 || u16(b, a + 2) !== ETHERTYPE.IPV4 || b[a + 4] !== 6 || b[a + 5] !== 4) {
      return this.drop(h, DropReason.malformed, i);
    }
    const op = u16(b, a + 6);
    const hi = u16(b, a + 8);
    const lo = u32(b, a + 10) | 0;
    const spa = u32(b, a + 14) | 0;
    const tpa = u32(b, a + 24) | 0;
    if ((hi | lo) === 0 || (hi & 0x100) !== 0) return this.drop(h, DropReason.malformed, i);
    const t = this.t;
    const forUs = tpa === t.ip[i];
    if (spa !== 0 && spa !== t.ip[i] && t.inSubnet(i, spa)) {
      const e = this.arp.confirm(i, spa, hi, lo, this.now, forUs, this);
      if (e >= 0 && this.arp.pending(e) > 0) this.release(e, i);
    }
    if (forUs && op === 1) {
      this.pool.lengths[h] = arpReplyInPlace(b, off, t.macHi[i], t.macLo[i], t.ip[i]);
      this.send(h, i);
    } else if (forUs && op === 2) this.pool.free(h);
    else this.drop(h, DropReason.notForUs, i);
  }

  /**
   * An IPv4 packet (checked; L4 header present) from iface i addressed to
   * the router's address on iface li, not a published port: echo request →
   * reply in place (from that address, back to the sender's MAC); UDP →
   * port unreachable; TCP (not RST) → RST; other protocols → protocol
   * unreachable; the frame is freed (unsupported) unless it became the reply.
   * Reads the header annotations (pool.ts: l3, l4, ipLen).
   */
  answer(h: number, i: number, li: number): void {
    const pool = this.pool;
    const b = pool.bytes;
    const t = this.t;
    const off = pool.offsets[h];
    const l3 = off + pool.l3[h];
    if ((u16(b, l3 + IPV4.FLAGS_FRAG) & IPV4_MF) !== 0) return this.drop(h, DropReason.unsupported, i); // no reassembly
    const proto = b[l3 + IPV4.PROTO];
    const p = off + pool.l4[h];
    const total = pool.ipLen[h];
    const pl = total - (p - l3);
    if (proto === IpProto.ICMP) {
      if (b[p] !== 8 || b[p + 1] !== 0) return this.drop(h, DropReason.unsupported, i);
      if (!verifyChecksum(b, p, pl)) return this.drop(h, DropReason.badChecksum, i);
      if (total > t.mtu[i]) return this.drop(h, DropReason.oversize, i);
      const sHi = u16(b, off + ETH.SRC);
      if ((sHi & 0x100) !== 0 || (sHi | u32(b, off + ETH.SRC + 2)) === 0) return this.drop(h, DropReason.malformed, i);
      this.pool.lengths[h] = echoReplyInPlace(b, off, l3, t.macHi[i], t.macLo[i], t.ip[li]);
      return this.send(h, i);
    }
    if (proto === IpProto.UDP) this.sendError(h, i, t.ip[li], 3, 3, 0, false);
    else if (proto === IpProto.TCP) {
      if ((b[p + 13] & 0x04) === 0) this.sendRst(h, i);
    } else this.sendError(h, i, t.ip[li], 3, 2, 0, false);
    this.drop(h, DropReason.unsupported, i);
  }

  /** The iface a reply to the packet at l3 leaves by: i when its source routes back through i, else −1. */
  private replyIface(l3: number, i: number): number {
    const src = u32(this.pool.bytes, l3 + IPV4.SRC) | 0;
    const e = this.t.route(src);
    return e === i && this.t.nextHop(e, src) !== 0 ? e : -1;
  }

  stats(): Omit<RouterStats, 'conntrackFull' | 'natPortsExhausted' | 'udpDelivered' | 'udpSent' | 'udpServiceErrors'> {
    const arp = this.arp;
    return {
      icmpErrorsSent: this.icmp.sent,
      icmpRateLimited: this.icmp.rateLimited,
      rstSent: this.rstSent,
      arpRequests: this.arpRequests,
      arpCacheFull: this.arpCacheFull,
      arpUnresolved: this.arpUnresolvedCount,
      arpDynamic: arp.dynamicSize,
      arpCapacity: arp.capacity,
      arpStatic: arp.staticSize,
      arpStaticCapacity: arp.staticCapacity,
      arpIfaceQuota: arp.ifaceQuota,
      arpTableFull: arp.counters.full,
      arpQuotaEvicted: arp.counters.quotaEvicted,
      arpStaticFull: arp.counters.staticFull,
      arpConflicts: arp.counters.conflicts,
      fragmentsMade: this.fragmentsMade,
      gsoSegmented: this.gsoSegmented,
      segmentsMade: this.segmentsMade,
    };
  }
}
