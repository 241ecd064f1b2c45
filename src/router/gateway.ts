/**
 * Gateway — the gateway address of a bridge network, answered from inside
 * the dataplane (what docker0's own IP does on a Docker host).
 *
 * What it does: for every frame the switch sends to it,
 *  - ARP request (broadcast or unicast to its MAC) whose target is its IP,
 *    from any sender → ARP reply, built in place in the same frame;
 *  - ICMP echo request to its MAC and IP → echo reply in place: MACs and IPs
 *    swapped, type 0 (ICMP checksum updated incrementally, RFC 1624), TTL 64,
 *    IP checksum recomputed; identifier, sequence, payload, TOS, IP ident,
 *    flags and options are kept; Ethernet padding is trimmed and a VLAN
 *    tag, if any, stays;
 *  - anything else is freed and counted as a drop with a reason.
 * Nothing is allocated per frame: the views are reused and replies reuse the
 * request's pool slot.
 *
 * Ports: one, `port`, attached to the network's switch like any endpoint.
 * process() drains port.tx (frames the switch sent to the gateway) and puts
 * replies on port.rx, tagged with pool.inPort[h] = port.id. The gateway is
 * the device side of that port, so, like a TAP device, it also counts
 * port.counters (tx = frames taken from port.tx, rx = replies queued).
 *
 * Config: { ip (uint32), mac (48-bit number), mtu (default 1500) };
 * reconfigure() swaps the addresses in whole.
 *
 * Counters (`counters`): rx = frames taken from the switch, tx = replies;
 * drops by reason:
 *   runt          shorter than an Ethernet header
 *   malformed     truncated/impossible ARP, IPv4 or ICMP header; group
 *                 (multicast/broadcast) sender address or IPv4 source
 *   badChecksum   IPv4 header or ICMP checksum wrong
 *   notForUs      not addressed to the gateway (flooded unknown unicast,
 *                 multicast, ARP for another IP, ARP replies, IPv4 to
 *                 another address)
 *   unsupported   addressed to the gateway but nothing to answer (UDP, TCP,
 *                 ICMP other than echo request, fragments, IPv6, …)
 *   oversize      an echo request longer than the MTU
 *   ringFull      port.rx had no room for the reply
 */
import { Counters, DropReason } from '../dataplane/counters.js';
import type { FramePool } from '../dataplane/pool.js';
import type { Port } from '../dataplane/port.js';
import { ArpOp, ArpView, ARP } from '../wire/arp.js';
import { csumUpdate16 } from '../wire/checksum.js';
import { ETH, ETHERTYPE, EthernetView, MAC_BROADCAST, isMulticastMac } from '../wire/ethernet.js';
import { IcmpType, IcmpView } from '../wire/icmp.js';
import { IpProto, Ipv4View } from '../wire/ipv4.js';

export interface GatewayConfig {
  ip: number;
  mac: number;
  mtu?: number;
}

/** returned by the handlers when the frame was sent on (ownership passed) */
const SENT = -1;
const REPLY_TTL = 64;

export class Gateway {
  readonly port: Port;
  readonly counters = new Counters();
  private ip = 0;
  private mac = 0;
  private mtu = 1500;
  private readonly eth = new EthernetView();
  private readonly arp = new ArpView();
  private readonly ipv4 = new Ipv4View();
  private readonly icmp = new IcmpView();

  constructor(
    private readonly pool: FramePool,
    port: Port,
    cfg: GatewayConfig,
  ) {
    this.port = port;
    this.reconfigure(cfg);
  }

  /** Cold: new addresses (and MTU when given) take effect for the next frame. */
  reconfigure(cfg: GatewayConfig): void {
    this.ip = cfg.ip >>> 0;
    this.mac = cfg.mac;
    if (cfg.mtu !== undefined) this.mtu = cfg.mtu;
  }

  /** Drain port.tx; replies go to port.rx. */
  process(_now: number): void {
    const tx = this.port.tx;
    const pool = this.pool;
    const c = this.counters;
    const pc = this.port.counters;
    for (let h = tx.pop(); h >= 0; h = tx.pop()) {
      const len = pool.lengths[h];
      c.rxPackets++;
      c.rxBytes += len;
      pc.txPackets++;
      pc.txBytes += len;
      const reason = this.handle(h, len);
      if (reason !== SENT) {
        pool.free(h);
        c.drop(reason);
      }
    }
  }

  /** SENT, or the drop reason (the caller frees the frame). */
  private handle(h: number, len: number): number {
    const b = this.pool.bytes;
    const off = this.pool.offsets[h];
    const eth = this.eth;
    if (!eth.wrap(b, off, len)) return len < ETH.HLEN ? DropReason.runt : DropReason.malformed;
    const dst = eth.dst;
    const type = eth.l3Type;
    if (type === ETHERTYPE.ARP) {
      if (dst !== this.mac && dst !== MAC_BROADCAST) return DropReason.notForUs;
      return this.arpIn(h, b, off, len);
    }
    if (dst !== this.mac) return DropReason.notForUs;
    if (type === ETHERTYPE.IPV4) return this.ipv4In(h, b, off, len);
    return DropReason.unsupported;
  }

  private arpIn(h: number, b: Uint8Array, off: number, len: number): number {
    const l3 = this.eth.l3Offset;
    const arp = this.arp;
    if (!arp.wrap(b, l3, off + len - l3)) return DropReason.malformed;
    if (arp.oper !== ArpOp.REQUEST || arp.tpa !== this.ip) return DropReason.notForUs;
    const sha = arp.sha;
    if (isMulticastMac(sha)) return DropReason.malformed;
    const spa = arp.spa;
    this.eth.dst = sha;
    this.eth.src = this.mac;
    arp.oper = ArpOp.REPLY;
    arp.tha = sha;
    arp.tpa = spa;
    arp.sha = this.mac;
    arp.spa = this.ip;
    this.pool.lengths[h] = l3 - off + ARP.LEN;
    return this.send(h);
  }

  private ipv4In(h: number, b: Uint8Array, off: number, len: number): number {
    const eth = this.eth;
    const l3 = eth.l3Offset;
    const ip = this.ipv4;
    if (!ip.wrap(b, l3, off + len - l3)) return DropReason.malformed;
    if (!ip.verifyChecksum()) return DropReason.badChecksum;
    if (ip.dst !== this.ip) return DropReason.notForUs;
    if (ip.proto !== IpProto.ICMP || ip.isFragment) return DropReason.unsupported;
    const icmp = this.icmp;
    if (!icmp.wrap(b, ip.payloadOff, ip.payloadLen)) return DropReason.malformed;
    if (icmp.type !== IcmpType.ECHO_REQUEST || icmp.code !== 0) return DropReason.unsupported;
    if (!icmp.verifyChecksum()) return DropReason.badChecksum;
    if (ip.totalLen > this.mtu) return DropReason.oversize;
    const peerIp = ip.src;
    const peerMac = eth.src;
    // no replies to 0.0.0.0, multicast/broadcast/class E sources or group MACs
    if (peerIp === 0 || peerIp >= 0xe0000000 || isMulticastMac(peerMac)) return DropReason.malformed;
    eth.dst = peerMac;
    eth.src = this.mac;
    ip.src = this.ip;
    ip.dst = peerIp;
    ip.ttl = REPLY_TTL;
    ip.fillChecksum();
    icmp.checksum = csumUpdate16(icmp.checksum, IcmpType.ECHO_REQUEST << 8, IcmpType.ECHO_REPLY << 8);
    icmp.type = IcmpType.ECHO_REPLY;
    this.pool.lengths[h] = l3 - off + ip.totalLen;
    return this.send(h);
  }

  private send(h: number): number {
    const pool = this.pool;
    const port = this.port;
    pool.inPort[h] = port.id;
    if (!port.rx.push(h)) return DropReason.ringFull;
    const n = pool.lengths[h];
    this.counters.txPackets++;
    this.counters.txBytes += n;
    port.counters.rxPackets++;
    port.counters.rxBytes += n;
    return SENT;
  }
}
