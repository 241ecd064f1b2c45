/**
 * DhcpServer — the DHCP server of one bridge network (RFC 2131/2132),
 * answered from inside the dataplane on the network's gateway address.
 *
 * Ports: none. handle(h) takes a frame to UDP 67 (Ethernet broadcast or
 * serverMac; IP broadcast or serverIp) and returns a new reply frame from
 * the pool (Ethernet, IPv4 and UDP with checksums, BOOTP padded to 300
 * bytes) or −1; it never frees or keeps `h`; the caller sends the reply.
 * Config: DhcpConfig (addresses uint32, MACs 48-bit numbers); opts
 * maxLeases (default min(range size, 1024)), offerSeconds (30),
 * declineSeconds (300), seed (hash key).
 *
 *  - DISCOVER → OFFER of: the client's live lease; else its previous
 *    address if still free; else the requested one if free and in range;
 *    else the lowest free address nobody is remembered for; else the lowest
 *    free one. Claimed with IPAM at offer time and held offerSeconds.
 *  - REQUEST with another server's id: our offer is forgotten, no reply.
 *    Otherwise (selecting: option 50; init-reboot: option 50; renewing or
 *    rebinding: ciaddr) the address is ACKed when it is the client's or
 *    free and in range — authoritative, so also without a record (after a
 *    daemon restart) — else NAKed. ACK: mask, router, DNS, lease, T1 = ½,
 *    T2 = ⅞; INFORM → ACK without lease or yiaddr; client id echoed (RFC
 *    6842). RELEASE frees (the client stays remembered); DECLINE keeps the
 *    address claimed and unused for declineSeconds.
 *  - Replies (RFC 2131 4.1, giaddr 0): NAK broadcast; ciaddr → unicast to
 *    ciaddr + chaddr; broadcast flag → broadcast; else yiaddr + chaddr.
 *  - Unsupported: relayed messages (giaddr ≠ 0, source port ≠ 68), non-
 *    Ethernet chaddr. Leases are keyed by chaddr, not option 61.
 *
 * Lease table: `maxLeases` slots in typed arrays, two keyed open-addressing
 * indexes (by MAC, by address). A slot is free, offered, bound, declined or
 * remembered (an ended lease kept so the MAC gets its address back; reused
 * oldest first, so only the other three fill the table: full →
 * stats.tableFull, no offer). Leases end in tick() and lazily in handle().
 *
 * Counters: rx = frames handled, tx = replies; drops: runt, unsupported
 * (not IPv4/UDP, fragment, relayed, htype), malformed (lengths, cookie, op,
 * no message type), badChecksum (IPv4 or UDP), notForUs, badSrcMac
 * (chaddr multicast or zero), poolEmpty. `stats`: messages and replies by
 * type, tableFull, noAddress, otherServer. Time is injected (ms).
 */
import { Counters, DropReason as R } from '../dataplane/counters.js';
import type { FramePool } from '../dataplane/pool.js';
import { u16, w16, w32 } from '../wire/bytes.js';
import { checksum } from '../wire/checksum.js';
import { BOOTP, BootpOp, DHCP_CLIENT_PORT, DHCP_MAGIC, DHCP_SERVER_PORT, DhcpMsgType as T, DhcpOpt as O, DhcpView, putOptBytes, putOptIps, putOptU32, putOptU8 } from '../wire/dhcp.js';
import { ETH, ETHERTYPE, MAC_BROADCAST, isMulticastMac, mac48, writeMac48 } from '../wire/ethernet.js';
import { IPV4, IpProto, Ipv4View } from '../wire/ipv4.js';
import { UDP, UdpView, udpChecksum } from '../wire/udp.js';

export interface DhcpConfig {
  serverIp: number;
  serverMac: number;
  subnet: number;
  prefixLen: number;
  router: number;
  dns: number[];
  leaseSeconds: number;
  /** addresses it may hand out */
  isFree(ip: number): boolean;
  /** claims/releases with the network's IPAM so containers and DHCP never collide */
  claim(ip: number, mac: number): boolean;
  release(ip: number): void;
  rangeFirst: number;
  rangeLast: number;
}

export interface DhcpOptions {
  maxLeases?: number;
  offerSeconds?: number;
  declineSeconds?: number;
  seed?: number;
}

/** messages in by type, replies out by type, refusals */
export type DhcpStats = Record<'discover' | 'request' | 'decline' | 'release' | 'inform' | 'offer' | 'ack' | 'nak' | 'tableFull' | 'noAddress' | 'otherServer', number>;

// slot states
const FREE = 0, OFFERED = 1, BOUND = 2, DECLINED = 3, REMEMBERED = 4;
const BCAST_IP = 0xffffffff;
const MAX_DNS = 8;
const REPLY_HEAD = Uint8Array.of(BootpOp.REPLY, 1, 6, 0);
const IP_HEAD = Uint8Array.of(0x45, 0, 0, 0, 0, 0, 0, 0, 64, IpProto.UDP, 0, 0);
const NAK_MSG = Uint8Array.from('address not available', (c) => c.charCodeAt(0));
const L3 = ETH.HLEN, L4 = L3 + IPV4.HLEN, L7 = L4 + UDP.HLEN;
/** largest reply: fixed part, 53 54 51 58 59 1 3 6 61 56 END */
const MAX_REPLY = L7 + BOOTP.OPTIONS + 3 + 6 * 6 + 2 + 4 * MAX_DNS + 257 + 2 + NAK_MSG.length + 1;

/** Keyed open-addressing index (linear probing, backward-shift deletion) from keys[slot] to slot. */
class KeyIndex {
  private readonly idx: Int32Array;
  private readonly mask: number;
  private readonly shift: number;
  constructor(private readonly keys: Float64Array, capacity: number, private readonly k0: number, private readonly k1: number) {
    let n = 2;
    while (n < 2 * capacity) n *= 2;
    this.idx = new Int32Array(n).fill(-1);
    this.mask = n - 1;
    this.shift = 32 - Math.log2(n);
  }
  private home(key: number): number {
    return (Math.imul((key | 0) ^ this.k0, 0x9e3779b1) ^ Math.imul((Math.floor(key / 4294967296) | 0) ^ this.k1, 0x85ebca77)) >>> this.shift;
  }
  find(key: number): number {
    for (let i = this.home(key); ; i = (i + 1) & this.mask) {
      const s = this.idx[i];
      if (s < 0 || this.keys[s] === key) return s;
    }
  }
  insert(slot: number): void {
    let i = this.home(this.keys[slot]);
    while (this.idx[i] >= 0) i = (i + 1) & this.mask;
    this.idx[i] = slot;
  }
  remove(slot: number): void {
    const idx = this.idx;
    let i = this.home(this.keys[slot]);
    while (idx[i] !== slot) i = (i + 1) & this.mask;
    for (let j = (i + 1) & this.mask; idx[j] >= 0; j = (j + 1) & this.mask) {
      const h = this.home(this.keys[idx[j]]);
      // move idx[j] into the hole unless its home lies cyclically in (i, j]
      if (i <= j ? h <= i || h > j : h <= i && h > j) {
        idx[i] = idx[j];
        i = j;
      }
    }
    idx[i] = -1;
  }
}

export class DhcpServer {
  readonly counters = new Counters();
  readonly stats: DhcpStats = { discover: 0, request: 0, decline: 0, release: 0, inform: 0, offer: 0, ack: 0, nak: 0, tableFull: 0, noAddress: 0, otherServer: 0 };
  readonly capacity: number;
  private readonly mac: Float64Array;
  private readonly ip: Float64Array;
  private readonly state: Uint8Array;
  private readonly expires: Float64Array;
  private readonly byMac: KeyIndex;
  private readonly byIp: KeyIndex;
  private readonly freeSlots: Int32Array;
  private freeTop: number;
  private remembered = 0;
  private readonly mask: number;
  private readonly offerMs: number;
  private readonly declineMs: number;
  private readonly ipv = new Ipv4View();
  private readonly udp = new UdpView();
  private readonly v = new DhcpView();
  private ident = 0;

  constructor(private readonly pool: FramePool, private readonly cfg: DhcpConfig, opts: DhcpOptions = {}) {
    const { prefixLen: p, rangeFirst: a, rangeLast: z } = cfg;
    if (!(p >= 0 && p <= 30)) throw new Error(`DHCP: prefix length ${p} out of 0..30`);
    this.mask = p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0;
    if (!(a <= z) || !this.inSubnet(a) || !this.inSubnet(z)) throw new Error('DHCP: range must be first ≤ last inside the subnet');
    if (cfg.dns.length > MAX_DNS) throw new Error(`DHCP: at most ${MAX_DNS} DNS servers`);
    if (pool.maxFrame < MAX_REPLY) throw new Error(`DHCP: pool frames must hold ${MAX_REPLY} bytes`);
    const n = (this.capacity = Math.max(1, Math.floor(opts.maxLeases ?? Math.min(z - a + 1, 1024))));
    this.offerMs = (opts.offerSeconds ?? 30) * 1000;
    this.declineMs = (opts.declineSeconds ?? 300) * 1000;
    this.mac = new Float64Array(n);
    this.ip = new Float64Array(n);
    this.state = new Uint8Array(n);
    this.expires = new Float64Array(n);
    const seed = opts.seed ?? (Math.random() * 0x7fffffff) | 0;
    this.byMac = new KeyIndex(this.mac, n, Math.imul(seed, 0x9e3779b1), Math.imul(seed ^ 0x5bd1e995, 0x85ebca6b));
    this.byIp = new KeyIndex(this.ip, n, Math.imul(seed ^ 0x27d4eb2f, 0xc2b2ae35), Math.imul(seed, 0x165667b1));
    this.freeSlots = new Int32Array(n);
    for (let i = 0; i < n; i++) this.freeSlots[i] = n - 1 - i;
    this.freeTop = n;
  }

  // ----------------------------------------------------------------- hot

  handle(h: number, now: number): number {
    const c = this.counters;
    const b = this.pool.bytes;
    const off = this.pool.offsets[h];
    const len = this.pool.lengths[h];
    c.rxPackets++;
    c.rxBytes += len;
    if (len < ETH.HLEN) return this.drop(R.runt);
    const dmac = mac48(b, off);
    if (dmac !== MAC_BROADCAST && dmac !== this.cfg.serverMac) return this.drop(R.notForUs);
    if (u16(b, off + ETH.TYPE) !== ETHERTYPE.IPV4) return this.drop(R.unsupported);
    const ip = this.ipv;
    if (!ip.wrap(b, off + L3, len - L3)) return this.drop(R.malformed);
    if (!ip.verifyChecksum()) return this.drop(R.badChecksum);
    if (ip.proto !== IpProto.UDP || ip.isFragment) return this.drop(R.unsupported);
    const udp = this.udp;
    if (!udp.wrap(b, ip.payloadOff, ip.payloadLen)) return this.drop(R.malformed);
    const dst = ip.dst;
    if (udp.dstPort !== DHCP_SERVER_PORT || (dst !== BCAST_IP && dst !== this.cfg.serverIp)) return this.drop(R.notForUs);
    if (!udp.verifyChecksum(ip.src, dst)) return this.drop(R.badChecksum);
    const v = this.v;
    if (!v.wrap(b, udp.payloadOff, udp.payloadLen) || v.op !== BootpOp.REQUEST || v.msgType === 0) return this.drop(R.malformed);
    if (v.htype !== 1 || v.hlen !== 6 || v.giaddr !== 0 || udp.srcPort !== DHCP_CLIENT_PORT) return this.drop(R.unsupported);
    const mac = v.chaddr;
    if (mac === 0 || isMulticastMac(mac)) return this.drop(R.badSrcMac);
    const s = this.byMac.find(mac);
    if (s >= 0) this.settle(s, now);
    const st = s >= 0 ? this.state[s] : FREE;
    const live = st === OFFERED || st === BOUND;
    const k = this.stats;
    const sid = v.serverId;
    switch (v.msgType) {
      case T.DISCOVER: {
        k.discover++;
        let r = s;
        if (live) {
          if (st === OFFERED) this.expires[s] = now + this.offerMs;
        } else r = this.choose(mac, s, v.requestedIp, now);
        if (r < 0) return -1;
        k.offer++;
        return this.reply(T.OFFER, this.ip[r], this.cfg.leaseSeconds);
      }
      case T.REQUEST: {
        k.request++;
        if (sid !== 0 && sid !== this.cfg.serverIp) {
          k.otherServer++;
          if (live) this.forget(s, now);
          return -1;
        }
        const want = v.requestedIp !== 0 ? v.requestedIp : v.ciaddr;
        if (want === 0) return this.drop(R.malformed);
        const r = live && this.ip[s] === want ? s : this.assign(mac, want, s, now);
        if (r < 0) {
          k.nak++;
          return this.reply(T.NAK, 0, 0);
        }
        this.state[r] = BOUND;
        this.expires[r] = now + this.cfg.leaseSeconds * 1000;
        k.ack++;
        return this.reply(T.ACK, want, this.cfg.leaseSeconds);
      }
      case T.DECLINE:
        k.decline++;
        if (live && (sid === 0 || sid === this.cfg.serverIp) && this.ip[s] === v.requestedIp) {
          this.byMac.remove(s);
          this.mac[s] = 0;
          this.state[s] = DECLINED;
          this.expires[s] = now + this.declineMs;
        }
        return -1;
      case T.RELEASE:
        k.release++;
        if (live && (sid === 0 || sid === this.cfg.serverIp) && this.ip[s] === v.ciaddr) this.forget(s, now);
        return -1;
      case T.INFORM:
        k.inform++;
        k.ack++;
        return this.reply(T.ACK, 0, 0);
      default:
        return this.drop(R.unsupported);
    }
  }

  /** Expire leases and decline holds. */
  tick(now: number): void {
    for (let s = 0; s < this.capacity; s++) this.settle(s, now);
  }

  // ---------------------------------------------------------------- cold

  leases(now: number): Array<{ mac: number; ip: number; expiresInS: number; state: 'offered' | 'bound' }> {
    const out: Array<{ mac: number; ip: number; expiresInS: number; state: 'offered' | 'bound' }> = [];
    for (let s = 0; s < this.capacity; s++) {
      const st = this.state[s];
      if ((st === OFFERED || st === BOUND) && this.expires[s] > now)
        out.push({ mac: this.mac[s], ip: this.ip[s], expiresInS: Math.floor((this.expires[s] - now) / 1000), state: st === BOUND ? 'bound' : 'offered' });
    }
    return out.sort((x, y) => x.ip - y.ip);
  }

  // ------------------------------------------------------------- private

  private drop(reason: number): number {
    this.counters.drop(reason);
    return -1;
  }

  private inSubnet(ip: number): boolean {
    return ((ip & this.mask) >>> 0) === ((this.cfg.subnet & this.mask) >>> 0);
  }

  /** An address DHCP may ever hand out. */
  private valid(ip: number): boolean {
    const c = this.cfg;
    const host = (ip & ~this.mask) >>> 0;
    return ip >= c.rangeFirst && ip <= c.rangeLast && host !== 0 && host !== (~this.mask >>> 0) && ip !== c.serverIp && ip !== c.router;
  }

  /** Expire slot s if due; true when it changed. */
  private settle(s: number, now: number): boolean {
    const st = this.state[s];
    if (st === FREE || st === REMEMBERED || this.expires[s] > now) return false;
    if (st === DECLINED) {
      this.cfg.release(this.ip[s]);
      this.byIp.remove(s);
      this.state[s] = FREE;
      this.freeSlots[this.freeTop++] = s;
    } else this.forget(s, now);
    return true;
  }

  /** An offered/bound lease ends: the address goes back to IPAM, the client is remembered. */
  private forget(s: number, now: number): void {
    this.cfg.release(this.ip[s]);
    this.state[s] = REMEMBERED;
    this.expires[s] = now;
    this.remembered++;
  }

  /** Drop a remembered slot altogether. */
  private evict(s: number): void {
    this.byMac.remove(s);
    this.byIp.remove(s);
    this.state[s] = FREE;
    this.remembered--;
    this.freeSlots[this.freeTop++] = s;
  }

  /** The address to offer a client without a live lease (slot s: its remembered one, or −1); −1 when none. */
  private choose(mac: number, s: number, requested: number, now: number): number {
    if (s < 0 && this.freeTop === 0 && this.remembered === 0) {
      this.stats.tableFull++;
      return -1;
    }
    let r = s >= 0 ? this.assign(mac, this.ip[s], s, now) : -1;
    if (r < 0 && requested !== 0) r = this.assign(mac, requested, s, now);
    const { rangeFirst: a, rangeLast: z } = this.cfg;
    // first pass: addresses nobody is remembered for; second: any free one
    for (let ip = a; r < 0 && ip <= z; ip++) if (this.byIp.find(ip) < 0 && this.cfg.isFree(ip)) r = this.assign(mac, ip, s, now);
    for (let ip = a; r < 0 && ip <= z; ip++) if (this.cfg.isFree(ip)) r = this.assign(mac, ip, s, now);
    if (r < 0) this.stats.noAddress++;
    return r;
  }

  /**
   * Give `ip` to `mac` (s: the MAC's slot, not live, or −1) as an offer:
   * claims it with IPAM, moves or makes the slot. Returns the slot or −1.
   */
  private assign(mac: number, ip: number, s: number, now: number): number {
    if (!this.valid(ip)) return -1;
    let holder = this.byIp.find(ip);
    if (holder >= 0 && holder !== s) {
      this.settle(holder, now);
      if (this.state[holder] === FREE) holder = -1; // a decline hold that just ended
      else if (this.state[holder] !== REMEMBERED) return -1;
    }
    if (s < 0 && this.freeTop === 0 && this.remembered === 0) {
      this.stats.tableFull++;
      return -1;
    }
    if (!this.cfg.isFree(ip) || !this.cfg.claim(ip, mac)) return -1;
    if (holder >= 0 && holder !== s) this.evict(holder);
    if (s >= 0) {
      const st = this.state[s];
      if (st === REMEMBERED) this.remembered--;
      else this.cfg.release(this.ip[s]); // a live lease moving to another address
    }
    if (s < 0) {
      if (this.freeTop === 0) this.evict(this.oldestRemembered());
      s = this.freeSlots[--this.freeTop];
      this.mac[s] = mac;
      this.byMac.insert(s);
      holder = -1;
    } else if (this.ip[s] !== ip) this.byIp.remove(s);
    if (holder !== s) {
      this.ip[s] = ip;
      this.byIp.insert(s);
    }
    this.state[s] = OFFERED;
    this.expires[s] = now + this.offerMs;
    return s;
  }

  private oldestRemembered(): number {
    let best = -1;
    for (let s = 0; s < this.capacity; s++) if (this.state[s] === REMEMBERED && (best < 0 || this.expires[s] < this.expires[best])) best = s;
    return best;
  }

  /** Build the reply to the message in this.v; leaseS 0 = no lease options. */
  private reply(type: number, yiaddr: number, leaseS: number): number {
    const pool = this.pool;
    const h = pool.alloc();
    if (h < 0) return this.drop(R.poolEmpty);
    const b = pool.bytes;
    const o = pool.offsets[h];
    const v = this.v;
    const c = this.cfg;
    const ciaddr = type === T.ACK ? v.ciaddr : 0;
    // RFC 2131 4.1 (giaddr is 0: relayed messages are not served)
    let dstIp = BCAST_IP;
    if (type !== T.NAK) {
      if (v.ciaddr !== 0) dstIp = v.ciaddr;
      else if (!v.broadcast && yiaddr !== 0) dstIp = yiaddr;
    }
    writeMac48(b, o + ETH.DST, dstIp === BCAST_IP ? MAC_BROADCAST : v.chaddr);
    writeMac48(b, o + ETH.SRC, c.serverMac);
    w16(b, o + ETH.TYPE, ETHERTYPE.IPV4);
    // BOOTP
    const d = o + L7;
    b.set(REPLY_HEAD, d); // op htype hlen hops
    b.copyWithin(d + BOOTP.XID, v.off + BOOTP.XID, v.off + BOOTP.SECS);
    w16(b, d + BOOTP.SECS, 0);
    w16(b, d + BOOTP.FLAGS, v.flags);
    w32(b, d + BOOTP.CIADDR, ciaddr);
    w32(b, d + BOOTP.YIADDR, yiaddr);
    b.fill(0, d + BOOTP.SIADDR, d + BOOTP.CHADDR); // siaddr, giaddr
    b.copyWithin(d + BOOTP.CHADDR, v.off + BOOTP.CHADDR, v.off + BOOTP.SNAME);
    b.fill(0, d + BOOTP.SNAME, d + BOOTP.COOKIE);
    w32(b, d + BOOTP.COOKIE, DHCP_MAGIC);
    let p = putOptU8(b, d + BOOTP.OPTIONS, O.MSG_TYPE, type);
    p = putOptU32(b, p, O.SERVER_ID, c.serverIp);
    if (leaseS > 0) {
      p = putOptU32(b, p, O.LEASE_TIME, leaseS);
      p = putOptU32(b, p, O.RENEWAL_TIME, Math.floor(leaseS / 2));
      p = putOptU32(b, p, O.REBINDING_TIME, Math.floor((leaseS * 7) / 8));
    }
    if (type !== T.NAK) {
      p = putOptU32(b, p, O.SUBNET_MASK, this.mask);
      if (c.router !== 0) p = putOptU32(b, p, O.ROUTER, c.router);
      p = putOptIps(b, p, O.DNS, c.dns);
    } else p = putOptBytes(b, p, O.MESSAGE, NAK_MSG, 0, NAK_MSG.length);
    if (v.clientIdLen > 0) p = putOptBytes(b, p, O.CLIENT_ID, b, v.clientIdOff, v.clientIdLen);
    b[p++] = O.END;
    const padTo = d + BOOTP.PAD_TO;
    if (p < padTo) {
      b.fill(0, p, padTo);
      p = padTo;
    }
    // UDP, then IPv4
    const ulen = p - (o + L4);
    const u = o + L4;
    w16(b, u + UDP.SRC_PORT, DHCP_SERVER_PORT);
    w16(b, u + UDP.DST_PORT, DHCP_CLIENT_PORT);
    w16(b, u + UDP.LENGTH, ulen);
    w16(b, u + UDP.CHECKSUM, 0);
    w16(b, u + UDP.CHECKSUM, udpChecksum(b, u, ulen, c.serverIp, dstIp));
    const i = o + L3;
    b.set(IP_HEAD, i); // 0x45, TOS 0, flags 0, TTL 64, UDP, checksum 0
    w16(b, i + IPV4.TOTAL_LEN, IPV4.HLEN + ulen);
    w16(b, i + IPV4.IDENT, (this.ident = (this.ident + 1) & 0xffff));
    w32(b, i + IPV4.SRC, c.serverIp);
    w32(b, i + IPV4.DST, dstIp);
    w16(b, i + IPV4.CHECKSUM, checksum(b, i, IPV4.HLEN));
    const n = p - o;
    pool.lengths[h] = n;
    this.counters.txPackets++;
    this.counters.txBytes += n;
    return h;
  }
}
