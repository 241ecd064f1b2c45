/**
 * LocalUdp — UDP services the router hosts on its network interfaces
 * (DHCP on 67, DNS on 53 at the gateway address for DHCP clients, …) and
 * frames built elsewhere that leave through an interface (sendFrom).
 *
 * Registration (cold): set(iface, port, svc) on a network iface; null
 * removes it; removeIface() forgets an iface's services and queued frames.
 *
 * What reaches a service (everything else keeps the router's behaviour:
 * port unreachable, notForUs, filtered, …):
 *  - unicastIn: UDP to the gateway address of the iface it arrived on (not
 *    a first fragment: no reassembly), after the router's usual checks
 *    (header, anti-spoofing, isolation). From the host link or another
 *    network the gateway address has no services (port unreachable).
 *  - broadcastIn: a frame to the broadcast MAC is only ever a DHCP client's
 *    broadcast: IPv4 to 255.255.255.255, UDP 68 → 67, from 0.0.0.0 (a
 *    client without an address) or from the client's address on that
 *    network (rebinding), to the port-67 service of the ingress iface.
 *    Other broadcasts: notForUs, as before; the pattern with bad lengths
 *    or header checksum: malformed / badChecksum; a fragment: unsupported; another
 *    source or client port: filtered. It never leaves the network (internal
 *    ones included).
 *
 * Delivery: svc.handle(h, now) — h is freed afterwards (returning h itself
 * sends it back as the reply, in place); a reply handle goes out of the
 * ingress iface exactly as built (the service wrote L2/L3/L4). A throw
 * counts as a service error (stats) and the frame is dropped (unsupported).
 *
 * sendFrom(iface, h): the router owns h from then on; it is queued
 * (bounded; full → ringFull) and sent as is at the next process().
 * Outgoing frames longer than the iface's MTU (+ Ethernet header) are
 * dropped (oversize); a super-frame (GSO) is measured by its segments
 * (gso-fit.ts) and cut into segments that fit when they do not.
 *
 * A UDP super-frame (GSO_UDP_L4, checked by the router) for a service is
 * segmented first: the service gets each datagram as an ordinary frame
 * with complete checksums, as a socket would.
 *
 * Hot paths allocate nothing (Map lookups by small-integer key).
 */
import { DropReason as R } from '../dataplane/counters.js';
import { META_BYTES, type FramePool } from '../dataplane/pool.js';
import { segmentFrame } from '../dataplane/segment.js';
import { GSO_MAX_SEGS, GsoError } from '../wire/gso.js';
import { u16, u32 } from '../wire/bytes.js';
import { ETH } from '../wire/ethernet.js';
import { IPV4, IPV4_FRAG_MASK, IPV4_MF, IpProto } from '../wire/ipv4.js';
import { gsoSizeOf, segMss, wireIpLen } from './gso-fit.js';
import { headerSumOk } from './ip-header.js';
import { IfaceTable, KIND_NETWORK, MAX_IFACES } from './ifaces.js';
import type { RouterOutput, RouterStats } from './output.js';

export interface LocalUdpService {
  /**
   * A frame for this service (Ethernet + IPv4 + UDP, addressed to the
   * interface's gateway address or broadcast, dst port as registered).
   * Returns a reply frame handle to send out on the same interface (fully
   * built: L2/L3/L4), or −1. Must not free or keep h.
   */
  handle(h: number, now: number): number;
}

const DHCP_SERVER = 67;
const DHCP_CLIENT = 68;

export class LocalUdp {
  delivered = 0;
  sent = 0;
  errors = 0;
  /** (iface << 16) | port → service */
  private readonly svc = new Map<number, LocalUdpService>();
  /** services per iface: the common case (none) costs no lookup */
  private readonly count = new Uint16Array(MAX_IFACES);
  /** sendFrom queue: a ring of (iface, frame) */
  private readonly qIface: Int32Array;
  private readonly qFrame: Int32Array;
  private qHead = 0;
  private qLen = 0;
  private readonly segs = new Uint32Array(GSO_MAX_SEGS);

  constructor(
    private readonly pool: FramePool,
    private readonly t: IfaceTable,
    private readonly out: RouterOutput,
    queueLen: number,
  ) {
    if (!(queueLen >= 1 && Number.isInteger(queueLen))) throw new Error(`bad send queue length ${queueLen}`);
    this.qIface = new Int32Array(queueLen);
    this.qFrame = new Int32Array(queueLen);
  }

  // ---------------------------------------------------------------- cold

  set(i: number, port: number, svc: LocalUdpService | null): void {
    if (!(Number.isInteger(port) && port >= 1 && port <= 65535)) throw new Error(`bad UDP port ${port}`);
    const k = (i << 16) | port;
    if (svc === null) {
      if (this.svc.delete(k)) this.count[i]--;
      return;
    }
    if (!(Number.isInteger(i) && i >= 0 && i < MAX_IFACES) || this.t.active[i] === 0) throw new Error(`no router iface ${i}`);
    if (this.t.kind[i] !== KIND_NETWORK) throw new Error(`router iface ${i} is not a network: no local UDP services`);
    if (!this.svc.has(k)) this.count[i]++;
    this.svc.set(k, svc);
  }

  /** Iface i goes away: its services are forgotten, its queued frames freed. */
  removeIface(i: number): void {
    for (const k of [...this.svc.keys()]) if (k >>> 16 === i) this.svc.delete(k);
    this.count[i] = 0;
    const n = this.qFrame.length;
    for (let j = 0; j < this.qLen; j++) {
      const s = (this.qHead + j) % n;
      if (this.qIface[s] === i && this.qFrame[s] >= 0) {
        this.pool.free(this.qFrame[s]);
        this.qFrame[s] = -1;
      }
    }
  }

  stats(): Pick<RouterStats, 'udpDelivered' | 'udpSent' | 'udpServiceErrors'> {
    return { udpDelivered: this.delivered, udpSent: this.sent, udpServiceErrors: this.errors };
  }

  // ----------------------------------------------------------------- hot

  /** UDP (checked, not a fragment) from iface i to i's own address, dst port `port`: true when a service took it. */
  unicastIn(h: number, i: number, port: number): boolean {
    if (this.count[i] === 0) return false;
    const svc = this.svc.get((i << 16) | port);
    if (svc === undefined) return false;
    if (this.pool.meta8[h * META_BYTES + 1] !== 0) this.deliverSegments(h, i, svc);
    else this.deliver(h, i, svc);
    return true;
  }

  /** A super-frame for a service: each of its datagrams in turn, h freed. */
  private deliverSegments(h: number, i: number, svc: LocalUdpService): void {
    const segs = this.segs;
    const n = segmentFrame(this.pool, h, 0, segs);
    if (n < 0) return this.out.drop(h, n === -GsoError.POOL_EMPTY ? R.poolEmpty : R.badGso, i);
    this.pool.free(h);
    for (let k = 0; k < n; k++) this.deliver(segs[k], i, svc);
  }

  /** An IPv4 frame (len bytes at off) to the broadcast MAC on iface i: a DHCP client's broadcast, or dropped (see the header). */
  broadcastIn(h: number, i: number, b: Uint8Array, off: number, len: number): void {
    const out = this.out;
    const l3 = off + ETH.HLEN;
    const vi = b[l3];
    const hl = (vi & 15) << 2;
    const u = l3 + hl;
    if (this.count[i] === 0 || len < ETH.HLEN + IPV4.HLEN + 8 || vi >>> 4 !== 4 || hl < IPV4.HLEN || u + 8 > off + len) return out.drop(h, R.notForUs, i);
    if (b[l3 + IPV4.PROTO] !== IpProto.UDP || (u32(b, l3 + IPV4.DST) | 0) !== -1 || u16(b, u + 2) !== DHCP_SERVER) return out.drop(h, R.notForUs, i);
    const svc = this.svc.get((i << 16) | DHCP_SERVER);
    if (svc === undefined) return out.drop(h, R.notForUs, i);
    const total = u16(b, l3 + IPV4.TOTAL_LEN);
    if (total < hl + 8 || ETH.HLEN + total > len) return out.drop(h, R.malformed, i);
    if (!headerSumOk(b, l3, hl)) return out.drop(h, R.badChecksum, i);
    if ((u16(b, l3 + IPV4.FLAGS_FRAG) & (IPV4_MF | IPV4_FRAG_MASK)) !== 0) return out.drop(h, R.unsupported, i);
    const ul = u16(b, u + 4);
    if (ul < 8 || ul > total - hl) return out.drop(h, R.malformed, i);
    const src = u32(b, l3 + IPV4.SRC) | 0;
    const t = this.t;
    if (u16(b, u) !== DHCP_CLIENT || (src !== 0 && (src === t.ip[i] || !t.inSubnet(i, src)))) return out.drop(h, R.filtered, i);
    this.pool.lengths[h] = ETH.HLEN + total; // Ethernet padding off
    this.deliver(h, i, svc);
  }

  /** sendFrom: queue h to leave by iface i at the next drain(). */
  enqueue(i: number, h: number): void {
    const n = this.qFrame.length;
    if (!(i >= 0 && i < MAX_IFACES) || this.t.active[i] === 0) {
      this.pool.free(h);
      this.out.counters.drop(R.portDown);
      return;
    }
    if (this.qLen === n) return this.out.drop(h, R.ringFull, i);
    const s = (this.qHead + this.qLen) % n;
    this.qIface[s] = i;
    this.qFrame[s] = h;
    this.qLen++;
  }

  /** Send every queued frame. */
  drain(): void {
    const n = this.qFrame.length;
    while (this.qLen > 0) {
      const s = this.qHead;
      this.qHead = s + 1 === n ? 0 : s + 1;
      this.qLen--;
      const h = this.qFrame[s];
      if (h >= 0) this.emit(h, this.qIface[s]);
    }
  }

  private deliver(h: number, i: number, svc: LocalUdpService): void {
    this.delivered++;
    let r: number;
    try {
      r = svc.handle(h, this.out.now);
    } catch {
      this.errors++;
      return this.out.drop(h, R.unsupported, i);
    }
    if (r !== h) this.pool.free(h);
    if (r >= 0) this.emit(r, i);
  }

  /** Send the finished frame h out of iface i, as built. */
  private emit(h: number, i: number): void {
    const len = this.pool.lengths[h];
    if (len < ETH.HLEN) return this.out.drop(h, R.runt, i);
    const mtu = this.t.mtu[i];
    const gs = gsoSizeOf(this.pool, h);
    if (len - ETH.HLEN > mtu && gs !== 0) {
      const l3 = this.pool.offsets[h] + ETH.HLEN;
      if (wireIpLen(this.pool.bytes, l3, len - ETH.HLEN, gs) > mtu) {
        const n = this.out.segment(h, i, segMss(this.pool.bytes, l3, mtu));
        this.sent += n;
        for (let k = 0; k < n; k++) this.out.send(this.out.segs[k], i);
        return;
      }
    } else if (len - ETH.HLEN > mtu) return this.out.drop(h, R.oversize, i);
    this.sent++;
    this.out.send(h, i);
  }
}
