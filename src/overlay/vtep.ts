/**
 * Vtep — a VXLAN tunnel endpoint (RFC 7348) for the overlay networks that
 * share one underlay UDP port.
 *
 * Ports:
 * - `tunnel`: the underlay. Its rx ring holds datagrams a TunnelDevice read
 *   (the frame starts at the VXLAN header; the sender's IPv4 address sits in
 *   the 8 bytes before it, see src/io/native.ts openTunnel); its tx ring
 *   takes complete outer IPv4 packets for the device to send.
 * - one `port` per overlay network, attached to that network's switch: what
 *   the switch sends out through it is encapsulated, what arrives for the
 *   network's VNI is decapsulated onto its rx ring.
 *
 * Encap (no copy: headers go into the frame's headroom): the destination
 * MAC is looked up in the network's VTEP table (static entries from the
 * control plane's endpoint records, dynamic ones learned from decapsulated
 * frames and aged); a hit goes to that VTEP alone, a miss and every
 * broadcast/multicast frame are replicated to every VTEP of the network
 * (n−1 clones). ARP requests for a remote endpoint's address are answered
 * here from the records (proxy ARP) and never cross the tunnel; ARP for the
 * gateway and frames from the gateway's MAC stay local (every host routes
 * for its own containers with the same gateway address and MAC).
 * Outer headers: IPv4 with DF and a computed checksum, UDP with the source
 * port hashed from the inner flow and checksum 0, VXLAN flags 0x08 + VNI.
 * Encrypted networks seal the inner frame with AES-GCM (./seal.ts) instead
 * of writing the plain VXLAN header.
 *
 * Decap: checks length, flags and VNI (unknown VNI, plain frames on an
 * encrypted network and the reverse are dropped and counted), opens
 * encrypted payloads, learns the inner source MAC against the sender's
 * address, and hands the inner frame to the network's switch.
 *
 * Counters: the tunnel port's (rx = datagrams from the underlay, tx =
 * packets to it, drops with reasons: malformed, notForUs = unknown VNI,
 * filtered = wrong encryption, badChecksum = a payload that failed to
 * open); each network port's (rx = frames decapsulated for the network,
 * tx = frames the switch sent to the tunnel; drops: noRoute = no VTEP to
 * send to, filtered = gateway frames kept local, poolEmpty).
 *
 * Offloads (issue 12): the underlay carries no super-frames, so a frame
 * the switch hands over with a GSO type is segmented first (software GSO,
 * src/dataplane/segment.ts) and every segment is encapsulated on its own
 * (the destination lookup and flooding run per segment). Segments carry
 * gsoSize payload bytes, or fewer when the network's `mtu` is set and the
 * segment's IP packet would not fit it. A plain frame that still has a
 * partial checksum (META_NEEDS_CSUM) is completed before it is sealed or
 * encapsulated: nothing on the far side would complete it. An invalid
 * super-frame or checksum annotation is dropped as malformed on the
 * network port; a pool that runs dry while segmenting counts poolEmpty.
 * `segmented` counts super-frames segmented, `segments` the frames made.
 *
 * Hot path: process() allocates nothing for plain networks (encrypted ones
 * go through node:crypto, which does). Time is injected (process/tick take
 * the caller's clock).
 */
import { DropReason } from '../dataplane/counters.js';
import type { Element } from '../dataplane/engine.js';
import { type FramePool, META_BYTES, META_NEEDS_CSUM } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';
import { completeFrame, segmentFrame } from '../dataplane/segment.js';
import { MacTable } from '../switch/mac-table.js';
import { u16, u32, w16, w32 } from '../wire/bytes.js';
import { writeMac48 } from '../wire/ethernet.js';
import { GH, GSO_MAX_SEGS, GsoError, gsoHdr, gsoParse } from '../wire/gso.js';
import {
  OUTER_IP_UDP_LEN,
  VXLAN,
  VXLAN_FLAG_ENCRYPTED,
  VXLAN_FLAG_I,
  flowSourcePortView,
  writeOuterIpv4UdpView,
} from '../wire/vxlan.js';
import { type KeyRing, Opener, Sealer } from './seal.js';

export interface VtepOptions {
  /** the local VTEP address (source of outer packets; 0 lets the kernel pick) */
  localIp: number;
  /** underlay UDP port (destination of every outer packet) */
  udpPort: number;
  seed?: number;
  /** VTEP table size per network */
  macCapacity?: number;
  /** learned entries age out after this long (ms) */
  agingMs?: number;
  /** at most this many distinct remote VTEPs */
  maxVteps?: number;
}

export interface VtepNetworkConfig {
  vni: number;
  /** the network's port on its switch */
  port: Port;
  /** the gateway every host answers for itself (0 = none) */
  gatewayIp: number;
  gatewayMac: number;
  /** AES-GCM keys for an encrypted network (every key frames may arrive with); null = plain VXLAN */
  keys: KeyRing | null;
  /** the keys this host may send with (a restarted daemon must not reuse a key it sealed with before: nonces) */
  sendKeys: KeyRing | null;
  /** the network's (inner) MTU: segments of a super-frame are cut so their IP packets fit it; 0/absent = the frame's own segment size */
  mtu?: number;
}

interface Net {
  cfg: VtepNetworkConfig;
  vni: number;
  port: Port;
  gwHi: number;
  gwLo: number;
  table: MacTable;
  /** remote endpoint IPv4 → MAC, for proxy ARP */
  arp: Map<number, number>;
  /** VTEP indices that get broadcast and unknown unicast */
  flood: Uint32Array;
  floodCount: number;
  /** per network: sequence counters and replay windows are per key id */
  sealer: Sealer | null;
  opener: Opener | null;
  mtu: number;
}

const MALFORMED = DropReason.malformed;
const NOT_FOR_US = DropReason.notForUs;
const FILTERED = DropReason.filtered;
const RING_FULL = DropReason.ringFull;
const NO_ROUTE = DropReason.noRoute;
const POOL_EMPTY = DropReason.poolEmpty;
const BAD_SRC = DropReason.badSrcMac;
const BAD_SUM = DropReason.badChecksum;
const UNSUPPORTED = DropReason.unsupported;

export class Vtep implements Element {
  readonly localIp: number;
  readonly udpPort: number;
  private readonly seed: number;
  private readonly macCapacity: number;
  private readonly agingMs: number;
  private readonly nets = new Map<number, Net>();
  private netList: Net[] = [];
  /** VTEP index → IPv4 (index 0 unused); ip → index */
  private readonly vtepIps: Uint32Array;
  private readonly vtepIndex = new Map<number, number>();
  private readonly freeIdx: number[] = [];
  private nextIdx = 1;
  private readonly batch = new Uint32Array(64);
  /** segments of one super-frame */
  private readonly segs = new Uint32Array(GSO_MAX_SEGS);
  /** super-frames segmented before encapsulation */
  segmented = 0;
  /** frames those super-frames were cut into */
  segments = 0;
  private ipId = 0;

  constructor(
    private readonly pool: FramePool,
    readonly tunnel: Port,
    opts: VtepOptions,
  ) {
    this.localIp = opts.localIp >>> 0;
    this.udpPort = opts.udpPort;
    this.seed = opts.seed ?? 0x5eed;
    this.macCapacity = opts.macCapacity ?? 4096;
    this.agingMs = opts.agingMs ?? 300_000;
    this.vtepIps = new Uint32Array((opts.maxVteps ?? 4096) + 1);
  }

  // ----------------------------------------------------------------- cold

  addNetwork(cfg: VtepNetworkConfig): void {
    if (this.nets.has(cfg.vni)) throw new Error(`VNI ${cfg.vni} is already on this VTEP`);
    const net: Net = {
      cfg,
      vni: cfg.vni,
      port: cfg.port,
      gwHi: Math.floor(cfg.gatewayMac / 0x100000000),
      gwLo: cfg.gatewayMac >>> 0,
      table: new MacTable(this.macCapacity, this.seed ^ cfg.vni),
      arp: new Map(),
      flood: new Uint32Array(16),
      floodCount: 0,
      sealer: cfg.keys ? new Sealer() : null,
      opener: cfg.keys ? new Opener() : null,
      mtu: cfg.mtu ?? 0,
    };
    this.nets.set(cfg.vni, net);
    this.netList = [...this.netList, net];
  }

  removeNetwork(vni: number): void {
    const net = this.nets.get(vni);
    if (!net) return;
    this.nets.delete(vni);
    this.netList = this.netList.filter((n) => n !== net);
    for (const ring of [net.port.tx]) while (!ring.empty) this.pool.free(ring.pop());
  }

  hasNetwork(vni: number): boolean {
    return this.nets.has(vni);
  }

  get networkCount(): number {
    return this.nets.size;
  }

  /** A remote endpoint from the control plane: its MAC lives behind `vtepIp`; ARP for `ip` is answered with `mac`. */
  setEndpoint(vni: number, mac: number, ip: number, vtepIp: number): void {
    const net = this.nets.get(vni);
    if (!net) return;
    const idx = this.indexOf(vtepIp);
    if (idx < 0) return;
    net.table.remove(mac);
    net.table.addStatic(mac, idx);
    if (ip !== 0) net.arp.set(ip >>> 0, mac);
  }

  removeEndpoint(vni: number, mac: number, ip: number): void {
    const net = this.nets.get(vni);
    if (!net) return;
    net.table.remove(mac);
    if (ip !== 0 && net.arp.get(ip >>> 0) === mac) net.arp.delete(ip >>> 0);
  }

  /** The VTEPs that get this network's broadcast and unknown unicast (replaces the list). */
  setFlood(vni: number, vteps: readonly number[]): void {
    const net = this.nets.get(vni);
    if (!net) return;
    const uniq = [...new Set(vteps.map((v) => v >>> 0))].filter((v) => v !== this.localIp && v !== 0);
    const arr = new Uint32Array(Math.max(16, uniq.length));
    let n = 0;
    for (const ip of uniq) {
      const idx = this.indexOf(ip);
      if (idx > 0) arr[n++] = idx;
    }
    net.flood = arr;
    net.floodCount = n;
  }

  /** A VTEP is gone: forget every entry (static or learned) that points at it, on every network. */
  forgetVtep(vtepIp: number): void {
    const idx = this.vtepIndex.get(vtepIp >>> 0);
    if (idx === undefined) return;
    for (const net of this.netList) {
      const macs = new Set<number>();
      for (const e of net.table.entries()) if (e.port === idx) macs.add(e.mac);
      for (const mac of macs) net.table.remove(mac);
      for (const [ip, mac] of net.arp) if (macs.has(mac)) net.arp.delete(ip);
      let n = 0;
      for (let i = 0; i < net.floodCount; i++) if (net.flood[i] !== idx) net.flood[n++] = net.flood[i];
      net.floodCount = n;
    }
    this.vtepIndex.delete(vtepIp >>> 0);
    this.vtepIps[idx] = 0;
    this.freeIdx.push(idx);
  }

  /** Cold: the VTEP table of a network (for inspect and tests). */
  entries(vni: number): { mac: number; vtep: number; static: boolean }[] {
    const net = this.nets.get(vni);
    if (!net) return [];
    return net.table.entries().map((e) => ({ mac: e.mac, vtep: this.vtepIps[e.port], static: e.static }));
  }

  /** Cold: the VTEPs a network floods to. */
  floodList(vni: number): number[] {
    const net = this.nets.get(vni);
    if (!net) return [];
    return Array.from(net.flood.subarray(0, net.floodCount), (i) => this.vtepIps[i]);
  }

  private indexOf(ip: number): number {
    ip >>>= 0;
    let idx = this.vtepIndex.get(ip);
    if (idx !== undefined) return idx;
    idx = this.freeIdx.pop() ?? this.nextIdx;
    if (idx >= this.vtepIps.length) return -1;
    if (idx === this.nextIdx) this.nextIdx++;
    this.vtepIps[idx] = ip;
    this.vtepIndex.set(ip, idx);
    return idx;
  }

  // ------------------------------------------------------------------ hot

  tick(now: number): void {
    for (const net of this.netList) net.table.age(now, this.agingMs);
    if (this.vtepIndex.size > (this.vtepIps.length - 1) >> 1) this.collectVteps();
  }

  /**
   * Cold: free the VTEP slots nothing points at any more (learned senders
   * whose entries aged out), so datagrams from ever-new senders cannot use
   * up the slots that control-plane VTEPs need. Runs when half are taken.
   */
  private collectVteps(): void {
    const used = new Uint8Array(this.vtepIps.length);
    for (const net of this.netList) {
      for (const e of net.table.entries()) used[e.port] = 1;
      for (let i = 0; i < net.floodCount; i++) used[net.flood[i]] = 1;
    }
    for (const [ip, idx] of this.vtepIndex) {
      if (used[idx]) continue;
      this.vtepIndex.delete(ip);
      this.vtepIps[idx] = 0;
      this.freeIdx.push(idx);
    }
  }

  process(now: number): void {
    this.decapAll(now);
    const nets = this.netList;
    for (let i = 0; i < nets.length; i++) this.encapAll(nets[i], now);
  }

  private decapAll(now: number): void {
    const pool = this.pool;
    const b = pool.bytes;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const tunnel = this.tunnel;
    const tc = tunnel.counters;
    const buf = this.batch;
    for (;;) {
      const n = tunnel.rx.popInto(buf, buf.length);
      if (n === 0) return;
      for (let i = 0; i < n; i++) {
        const h = buf[i];
        const o = offsets[h];
        const len = lengths[h];
        tc.rxPackets++;
        tc.rxBytes += len;
        if (len < VXLAN.HLEN + 14 || (b[o] & VXLAN_FLAG_I) === 0) {
          this.drop(tc, h, MALFORMED);
          continue;
        }
        const net = this.nets.get(u32(b, o + VXLAN.VNI) >>> 8);
        if (net === undefined) {
          this.drop(tc, h, NOT_FOR_US);
          continue;
        }
        const sender = u32(b, o - 8);
        const encrypted = (b[o] & VXLAN_FLAG_ENCRYPTED) !== 0;
        if (net.cfg.keys !== null) {
          if (!encrypted) {
            this.drop(tc, h, FILTERED);
            continue;
          }
          if (net.opener!.open(pool, h, net.cfg.keys, now) !== 0) {
            this.drop(tc, h, BAD_SUM);
            continue;
          }
        } else {
          if (encrypted) {
            this.drop(tc, h, FILTERED);
            continue;
          }
          offsets[h] = o + VXLAN.HLEN;
          lengths[h] = len - VXLAN.HLEN;
        }
        const io = offsets[h];
        const sHi = (b[io + 6] << 8) | b[io + 7];
        const sLo = ((b[io + 8] << 24) | (b[io + 9] << 16) | (b[io + 10] << 8) | b[io + 11]) >>> 0;
        const pc = net.port.counters;
        if ((sHi & 0x0100) !== 0 || (sHi === net.gwHi && sLo === net.gwLo) || (sHi === 0 && sLo === 0)) {
          this.drop(pc, h, BAD_SRC);
          continue;
        }
        const idx = this.vtepIndex.get(sender);
        if (idx !== undefined) net.table.learnHL(sHi, sLo | 0, idx, now);
        else if (this.vtepIndex.size < (this.vtepIps.length - 1) >> 1) {
          // an unknown sender is learned only while half the slots are free (the rest is for the control plane's VTEPs)
          const nidx = this.indexOf(sender);
          if (nidx > 0) net.table.learnHL(sHi, sLo | 0, nidx, now);
        }
        pc.rxPackets++;
        pc.rxBytes += lengths[h];
        pool.inPort[h] = net.port.id;
        if (!net.port.rx.push(h)) this.drop(pc, h, RING_FULL);
      }
    }
  }

  private encapAll(net: Net, now: number): void {
    const pool = this.pool;
    const m8 = pool.meta8;
    const b = pool.bytes;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const pc = net.port.counters;
    const buf = this.batch;
    for (;;) {
      const n = net.port.tx.popInto(buf, buf.length);
      if (n === 0) return;
      for (let i = 0; i < n; i++) {
        const h = buf[i];
        const o = offsets[h];
        const len = lengths[h];
        pc.txPackets++;
        pc.txBytes += len;
        if (len < 14) {
          this.drop(pc, h, MALFORMED);
          continue;
        }
        const sHi = (b[o + 6] << 8) | b[o + 7];
        const sLo = ((b[o + 8] << 24) | (b[o + 9] << 16) | (b[o + 10] << 8) | b[o + 11]) >>> 0;
        if (sHi === net.gwHi && sLo === net.gwLo) {
          this.drop(pc, h, FILTERED); // the local router's frames stay on this host
          continue;
        }
        const fi = h * META_BYTES;
        if (m8[fi + 1] !== 0) {
          this.segmentOut(net, h, now);
          continue;
        }
        if ((m8[fi] & META_NEEDS_CSUM) !== 0 && completeFrame(pool, h) !== 0) {
          this.drop(pc, h, MALFORMED);
          continue;
        }
        this.encapOne(net, h, now);
      }
    }
  }

  /** A super-frame: cut it into ordinary frames (h is freed) and encapsulate each. */
  private segmentOut(net: Net, h: number, now: number): void {
    const pool = this.pool;
    const pc = net.port.counters;
    let mss = 0;
    if (net.mtu > 0) {
      // payload per segment so that IP header + L4 header + payload <= mtu
      if (gsoParse(pool.bytes, pool.offsets[h], pool.lengths[h], true) !== 0) {
        this.drop(pc, h, MALFORMED);
        return;
      }
      mss = net.mtu - (gsoHdr[GH.PAY] - gsoHdr[GH.L3]);
      if (mss <= 0) {
        this.drop(pc, h, MALFORMED);
        return;
      }
    }
    const segs = this.segs;
    const n = segmentFrame(pool, h, mss, segs);
    pool.free(h);
    if (n < 0) {
      pc.drop(n === -GsoError.POOL_EMPTY ? POOL_EMPTY : MALFORMED);
      return;
    }
    this.segmented++;
    this.segments += n;
    for (let j = 0; j < n; j++) this.encapOne(net, segs[j], now);
  }

  /** One ordinary inner frame (at least an Ethernet header, not from the gateway): look up its VTEP (or flood) and encapsulate. */
  private encapOne(net: Net, h: number, now: number): void {
    const pool = this.pool;
    const b = pool.bytes;
    const o = pool.offsets[h];
    const len = pool.lengths[h];
    const dHi = (b[o] << 8) | b[o + 1];
    if ((dHi & 0x0100) !== 0) {
      // broadcast/multicast: ARP requests are answered here when we can
      if (b[o + 12] === 0x08 && b[o + 13] === 0x06 && len >= 42 && this.arpLocally(net, h, o)) return;
      this.flood(net, h, now);
      return;
    }
    const dLo = (b[o + 2] << 24) | (b[o + 3] << 16) | (b[o + 4] << 8) | b[o + 5];
    const table = net.table;
    const slot = table.findHL(dHi, dLo);
    if (slot < 0) {
      this.flood(net, h, now);
      return;
    }
    this.send(net, h, this.vtepIps[table.portAt(slot)], now);
  }

  /**
   * An ARP request on an overlay: for the gateway it is the local router's
   * to answer (dropped here); for a remote endpoint the reply is written in
   * place and handed back to the switch. Returns false to flood it.
   */
  private arpLocally(net: Net, h: number, o: number): boolean {
    const b = this.pool.bytes;
    const a = o + 14;
    if (u16(b, a) !== 1 || u16(b, a + 2) !== 0x0800 || b[a + 4] !== 6 || b[a + 5] !== 4 || u16(b, a + 6) !== 1) return false;
    const target = u32(b, a + 24);
    if (net.cfg.gatewayIp !== 0 && target === net.cfg.gatewayIp >>> 0) {
      this.drop(net.port.counters, h, FILTERED);
      return true;
    }
    const mac = net.arp.get(target);
    if (mac === undefined) return false;
    // reply: to the asker, from the endpoint's MAC
    const sender = u32(b, a + 14);
    b.copyWithin(o, o + 6, o + 12); // eth dst = requester
    writeMac48(b, o + 6, mac);
    w16(b, a + 6, 2);
    b.copyWithin(a + 18, a + 8, a + 14); // THA = requester's SHA
    w32(b, a + 24, sender);
    writeMac48(b, a + 8, mac);
    w32(b, a + 14, target);
    this.pool.lengths[h] = Math.max(42, Math.min(this.pool.lengths[h], 60));
    this.pool.inPort[h] = net.port.id;
    const pc = net.port.counters;
    pc.rxPackets++;
    pc.rxBytes += this.pool.lengths[h];
    if (!net.port.rx.push(h)) this.drop(pc, h, RING_FULL);
    return true;
  }

  private flood(net: Net, h: number, now: number): void {
    const n = net.floodCount;
    if (n === 0) {
      this.drop(net.port.counters, h, NO_ROUTE);
      return;
    }
    const ips = this.vtepIps;
    for (let i = 0; i < n - 1; i++) {
      const c = this.pool.clone(h);
      if (c < 0) {
        net.port.counters.drop(POOL_EMPTY);
        continue;
      }
      this.send(net, c, ips[net.flood[i]], now);
    }
    this.send(net, h, ips[net.flood[n - 1]], now);
  }

  /** Encapsulate h (an inner frame) to `dst` and queue it on the tunnel. */
  private send(net: Net, h: number, dst: number, now: number): void {
    const pool = this.pool;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const view = pool.view;
    const sport = flowSourcePortView(view, offsets[h], lengths[h], this.seed);
    if (net.sealer === null) {
      // plain VXLAN header (flags 0x08, VNI) in front of the frame
      const o = offsets[h] - VXLAN.HLEN;
      if (o - OUTER_IP_UDP_LEN < pool.slotStart(h)) {
        this.drop(net.port.counters, h, MALFORMED);
        return;
      }
      view.setInt32(o, VXLAN_FLAG_I << 24);
      view.setInt32(o + 4, net.vni << 8);
      offsets[h] = o;
      lengths[h] += VXLAN.HLEN;
    } else if (!net.sealer.seal(pool, h, net.vni, net.cfg.sendKeys ?? net.cfg.keys!, this.localIp, now)) {
      // encrypted: the sealer writes the VXLAN + encryption header and the tag
      this.drop(net.port.counters, h, UNSUPPORTED);
      return;
    }
    const payload = lengths[h];
    const o = offsets[h] - OUTER_IP_UDP_LEN;
    if (o < pool.slotStart(h)) {
      this.drop(net.port.counters, h, MALFORMED);
      return;
    }
    this.ipId = (this.ipId + 1) & 0xffff;
    writeOuterIpv4UdpView(view, o, this.localIp, dst, sport, this.udpPort, payload, this.ipId);
    offsets[h] = o;
    lengths[h] = payload + OUTER_IP_UDP_LEN;
    const tc = this.tunnel.counters;
    if (!this.tunnel.tx.push(h)) {
      this.drop(tc, h, RING_FULL);
      return;
    }
    tc.txPackets++;
    tc.txBytes += payload + OUTER_IP_UDP_LEN;
  }

  private drop(c: Port['counters'], h: number, reason: number): void {
    c.drop(reason);
    this.pool.free(h);
  }
}
