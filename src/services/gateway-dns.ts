/**
 * GatewayDns — DNS on UDP 53 at a network's gateway address, for endpoints
 * configured by DHCP (their resolver is the gateway; containers use
 * 127.0.0.11 instead). A LocalUdpService: handle() copies the query out and
 * returns −1 at once; the answer (from an async resolver, e.g. the
 * daemon's embedded DNS) is built into a fresh frame — Ethernet, IPv4 and
 * UDP with checksums, from the gateway back to the asker — and queued with
 * `send` (router.sendFrom of the network's interface). Cold-ish path: it
 * allocates per query.
 *
 * Counters: queries, answers, dropped (malformed, no answer, pool empty,
 * resolver error).
 */
import type { FramePool } from '../dataplane/pool.js';
import { u16, w16, w32 } from '../wire/bytes.js';
import { checksum } from '../wire/checksum.js';
import { ETH, ETHERTYPE, mac48, writeMac48 } from '../wire/ethernet.js';
import { IPV4, IpProto, Ipv4View } from '../wire/ipv4.js';
import { UDP, UdpView, udpChecksum } from '../wire/udp.js';

export interface GatewayDnsConfig {
  gatewayIp: number;
  gatewayMac: number;
  /** the answer to a DNS query (wire format), or null for none */
  resolve(query: Buffer): Promise<Buffer | null>;
  /** queue a finished frame on the network (the router owns it) */
  send(h: number): void;
}

export class GatewayDns {
  queries = 0;
  answers = 0;
  dropped = 0;
  private readonly ipv = new Ipv4View();
  private readonly udp = new UdpView();
  private ident = 0;

  constructor(
    private readonly pool: FramePool,
    private readonly cfg: GatewayDnsConfig,
  ) {}

  handle(h: number, _now: number): number {
    const b = this.pool.bytes;
    const off = this.pool.offsets[h];
    const len = this.pool.lengths[h];
    this.queries++;
    if (len < ETH.HLEN || u16(b, off + ETH.TYPE) !== ETHERTYPE.IPV4) return this.drop();
    const ip = this.ipv;
    if (!ip.wrap(b, off + ETH.HLEN, len - ETH.HLEN) || ip.proto !== IpProto.UDP || ip.isFragment) return this.drop();
    const udp = this.udp;
    if (!udp.wrap(b, ip.payloadOff, ip.payloadLen) || !udp.verifyChecksum(ip.src, ip.dst) || udp.payloadLen < 12) return this.drop();
    const peer = { mac: mac48(b, off + ETH.SRC), ip: ip.src, port: udp.srcPort };
    const query = Buffer.from(b.subarray(udp.payloadOff, udp.payloadOff + udp.payloadLen));
    this.cfg.resolve(query).then(
      (answer) => (answer ? this.answer(peer, answer) : void this.dropped++),
      () => void this.dropped++,
    );
    return -1;
  }

  private drop(): number {
    this.dropped++;
    return -1;
  }

  private answer(peer: { mac: number; ip: number; port: number }, dns: Buffer): void {
    const pool = this.pool;
    const ulen = UDP.HLEN + dns.length;
    const n = ETH.HLEN + IPV4.HLEN + ulen;
    if (n > pool.maxFrame) return void this.dropped++;
    const h = pool.alloc();
    if (h < 0) return void this.dropped++;
    const b = pool.bytes;
    const o = pool.offsets[h];
    writeMac48(b, o + ETH.DST, peer.mac);
    writeMac48(b, o + ETH.SRC, this.cfg.gatewayMac);
    w16(b, o + ETH.TYPE, ETHERTYPE.IPV4);
    const i = o + ETH.HLEN;
    b.fill(0, i, i + IPV4.HLEN);
    b[i] = 0x45;
    w16(b, i + IPV4.TOTAL_LEN, IPV4.HLEN + ulen);
    w16(b, i + IPV4.IDENT, (this.ident = (this.ident + 1) & 0xffff));
    b[i + IPV4.TTL] = 64;
    b[i + IPV4.PROTO] = IpProto.UDP;
    w32(b, i + IPV4.SRC, this.cfg.gatewayIp);
    w32(b, i + IPV4.DST, peer.ip);
    w16(b, i + IPV4.CHECKSUM, checksum(b, i, IPV4.HLEN));
    const u = i + IPV4.HLEN;
    w16(b, u + UDP.SRC_PORT, 53);
    w16(b, u + UDP.DST_PORT, peer.port);
    w16(b, u + UDP.LENGTH, ulen);
    w16(b, u + UDP.CHECKSUM, 0);
    b.set(dns, u + UDP.HLEN);
    w16(b, u + UDP.CHECKSUM, udpChecksum(b, u, ulen, this.cfg.gatewayIp, peer.ip));
    pool.lengths[h] = n;
    this.answers++;
    this.cfg.send(h);
  }
}
