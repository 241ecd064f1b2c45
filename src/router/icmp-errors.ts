/**
 * IcmpErrors — builds the router's ICMP error messages (RFC 792, RFC 1812
 * §4.3.2) and rate-limits them.
 *
 * build(l3, src, type, code, rest) makes a new frame: a 14-byte Ethernet
 * header left for the output path to fill, an IPv4 header (src = the given
 * router address, dst = the offending packet's source, TTL 64, TOS 0xc0 as
 * Linux sends errors), and the ICMP message whose data quotes the offending
 * IP header and the first 8 bytes of its payload, exactly as received (so
 * the quote matches what the sender sent, before any NAT or TTL change).
 * `rest` fills bytes 4..7 (the next-hop MTU for "fragmentation needed").
 *
 * eligible() says whether an error may be sent at all: never about ICMP
 * errors (or unknown ICMP types), fragments other than the first, packets
 * to broadcast/multicast (the caller passes what it knows of the link-layer
 * and subnet broadcast), or from 0.0.0.0, loopback, multicast, broadcast
 * or class E sources.
 *
 * Rate limit: one token bucket per ingress interface (ratePerSec, burst;
 * Linux's icmp_msgs_per_sec/burst are 1000/50), so a network that provokes
 * errors by the thousand (a traceroute storm, a port scan) spends only its
 * own tokens: the others still get their "fragmentation needed" (path MTU
 * discovery) and unreachables. refill(now) once per breath sets the clock;
 * take(iface) refills that bucket lazily and spends a token, or counts
 * `rateLimited`. Nothing allocates besides the pool frame.
 */
import type { FramePool } from '../dataplane/pool.js';
import { u16, w16, w32 } from '../wire/bytes.js';
import { checksum } from '../wire/checksum.js';
import { ETH, ETHERTYPE } from '../wire/ethernet.js';
import { IPV4, IPV4_FRAG_MASK, IpProto } from '../wire/ipv4.js';
import { ICMP, IcmpType } from '../wire/icmp.js';
import { MAX_IFACES } from './ifaces.js';

export interface IcmpRateOptions {
  /** tokens per second (default 1000) */
  ratePerSec?: number;
  /** bucket size (default 50) */
  burst?: number;
}

/** ICMP types that are queries (never errors): echo, timestamp, info, address mask, router adv/solicit. */
function isIcmpQuery(type: number): boolean {
  return type === 0 || type === 8 || (type >= 13 && type <= 18) || type === 9 || type === 10;
}

/** A source address no error may be sent to. */
export function isMartianSource(ip: number): boolean {
  const a = ip >>> 24;
  return ip === 0 || a === 127 || a >= 224 || a === 0;
}

export class IcmpErrors {
  sent = 0;
  rateLimited = 0;
  /** per interface id: tokens, and when they were last refilled (−1: never used, a full bucket) */
  private readonly tokens = new Float64Array(MAX_IFACES);
  private readonly last = new Float64Array(MAX_IFACES).fill(-1);
  private now = 0;
  private readonly rate: number;
  private readonly burst: number;
  private ident = 1;

  constructor(
    private readonly pool: FramePool,
    opts: IcmpRateOptions = {},
  ) {
    this.rate = opts.ratePerSec ?? 1000;
    this.burst = opts.burst ?? 50;
  }

  /** The clock for the buckets (once per breath). */
  refill(now: number): void {
    this.now = now;
  }

  /** Spend a token of interface `iface`'s bucket (true), or count the error as rate-limited (false). */
  take(iface = 0): boolean {
    const i = iface >= 0 && iface < MAX_IFACES ? iface : 0;
    const now = this.now;
    const last = this.last[i];
    let t: number;
    if (last < 0) t = this.burst;
    else if (now <= last) t = this.tokens[i];
    else {
      t = this.tokens[i] + ((now - last) * this.rate) / 1000;
      if (t > this.burst) t = this.burst;
    }
    this.last[i] = now > last ? now : last;
    if (t >= 1) {
      this.tokens[i] = t - 1;
      return true;
    }
    this.tokens[i] = t;
    this.rateLimited++;
    return false;
  }

  /**
   * May an error be sent about the validated IPv4 packet at l3? `toGroup`:
   * it was sent to a link-layer or IP broadcast/multicast address.
   */
  eligible(b: Uint8Array, l3: number, toGroup: boolean): boolean {
    if (toGroup) return false;
    if ((u16(b, l3 + IPV4.FLAGS_FRAG) & IPV4_FRAG_MASK) !== 0) return false;
    const src = ((b[l3 + IPV4.SRC] << 24) | (b[l3 + IPV4.SRC + 1] << 16) | (b[l3 + IPV4.SRC + 2] << 8) | b[l3 + IPV4.SRC + 3]) >>> 0;
    if (isMartianSource(src) || src === 0xffffffff) return false;
    const dstA = b[l3 + IPV4.DST];
    if (dstA >= 224) return false;
    if (b[l3 + IPV4.PROTO] === IpProto.ICMP) {
      const hl = (b[l3] & 0x0f) << 2;
      if (u16(b, l3 + IPV4.TOTAL_LEN) < hl + 1) return false;
      if (!isIcmpQuery(b[l3 + hl])) return false;
    }
    return true;
  }

  /**
   * A new frame holding the error about the packet at pool.bytes[l3…]
   * (validated, eligible), from `src`; Ethernet header not yet written. −1
   * when the pool is empty. Does not spend a token (call take() first).
   */
  build(l3: number, src: number, type: number, code: number, rest: number): number {
    const pool = this.pool;
    const b = pool.bytes;
    const h = pool.alloc();
    if (h < 0) return -1;
    const hl = (b[l3] & 0x0f) << 2;
    const total = u16(b, l3 + IPV4.TOTAL_LEN);
    const quote = total < hl + 8 ? total : hl + 8;
    const o = pool.offsets[h];
    const out = pool.bytes;
    const ip = o + ETH.HLEN;
    const ic = ip + IPV4.HLEN;
    const icmpLen = ICMP.HLEN + quote;
    out.copyWithin(ic + ICMP.HLEN, l3, l3 + quote);
    w16(out, o + ETH.TYPE, ETHERTYPE.IPV4);
    out[ip + IPV4.VER_IHL] = 0x45;
    out[ip + IPV4.TOS] = 0xc0;
    w16(out, ip + IPV4.TOTAL_LEN, IPV4.HLEN + icmpLen);
    w16(out, ip + IPV4.IDENT, this.ident);
    this.ident = (this.ident + 1) & 0xffff;
    w16(out, ip + IPV4.FLAGS_FRAG, 0);
    out[ip + IPV4.TTL] = 64;
    out[ip + IPV4.PROTO] = IpProto.ICMP;
    w16(out, ip + IPV4.CHECKSUM, 0);
    w32(out, ip + IPV4.SRC, src);
    out.copyWithin(ip + IPV4.DST, l3 + IPV4.SRC, l3 + IPV4.SRC + 4);
    w16(out, ip + IPV4.CHECKSUM, checksum(out, ip, IPV4.HLEN));
    out[ic + ICMP.TYPE] = type;
    out[ic + ICMP.CODE] = code;
    w16(out, ic + ICMP.CHECKSUM, 0);
    w32(out, ic + ICMP.REST, rest);
    w16(out, ic + ICMP.CHECKSUM, checksum(out, ic, icmpLen));
    pool.lengths[h] = ETH.HLEN + IPV4.HLEN + icmpLen;
    this.sent++;
    return h;
  }
}

export { IcmpType };
