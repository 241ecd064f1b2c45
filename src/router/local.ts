/**
 * Replies the router makes from its own addresses (what a host's stack
 * answers on the gateway address), as plain functions over pool bytes:
 *
 *  - arpReplyInPlace: an ARP request for our IP becomes the reply, in the
 *    same frame (Ethernet padding trimmed);
 *  - buildArpRequest: a new who-has frame (broadcast, or unicast to a known
 *    MAC when re-probing a stale entry);
 *  - echoReplyInPlace: an ICMP echo request becomes the reply in place:
 *    MACs and IPs swapped, type 0 (ICMP checksum updated incrementally,
 *    RFC 1624), TTL 64, IP checksum recomputed; id, sequence, payload, TOS,
 *    IP ident, flags and options kept;
 *  - buildRst: a new frame with the RST a closed TCP port answers
 *    (RFC 9293 §3.10.7.1): to a segment with ACK, <SEQ=SEG.ACK><RST>;
 *    otherwise <SEQ=0><ACK=SEG.SEQ+SEG.LEN><RST,ACK> (SYN and FIN count).
 *
 * All frames are untagged Ethernet II (L3 at off + 14). Nothing allocates
 * besides pool frames.
 */
import type { FramePool } from '../dataplane/pool.js';
import { u16, u32, w16, w32 } from '../wire/bytes.js';
import { checksum, csumUpdate16, pseudoHeaderSum } from '../wire/checksum.js';
import { ARP, ArpOp } from '../wire/arp.js';
import { ETH, ETHERTYPE, MAC_BROADCAST, writeMac48 } from '../wire/ethernet.js';
import { ICMP, IcmpType } from '../wire/icmp.js';
import { IPV4, IpProto } from '../wire/ipv4.js';
import { TCP, TcpFlags } from '../wire/tcp.js';
import { writeMacHL } from './ifaces.js';

/** Turn the (checked) ARP request at off into our reply (our MAC as hi/lo); returns the new frame length. */
export function arpReplyInPlace(b: Uint8Array, off: number, myHi: number, myLo: number, myIp: number): number {
  const a = off + ETH.HLEN;
  // Ethernet to the sender; ARP target ← sender, sender ← us
  b.copyWithin(off + ETH.DST, a + ARP.SHA, a + ARP.SHA + 6);
  b.copyWithin(a + ARP.THA, a + ARP.SHA, a + ARP.SHA + 10);
  writeMacHL(b, a + ARP.SHA, myHi, myLo);
  w32(b, a + ARP.SPA, myIp);
  w16(b, a + ARP.OPER, ArpOp.REPLY);
  writeMacHL(b, off + ETH.SRC, myHi, myLo);
  return ETH.HLEN + ARP.LEN;
}

/** A new ARP request frame for `target` (dstMac 0: broadcast), or −1 when the pool is empty. */
export function buildArpRequest(pool: FramePool, myMac: number, myIp: number, target: number, dstMac: number): number {
  const h = pool.alloc();
  if (h < 0) return -1;
  const b = pool.bytes;
  const o = pool.offsets[h];
  const a = o + ETH.HLEN;
  writeMac48(b, o + ETH.DST, dstMac === 0 ? MAC_BROADCAST : dstMac);
  writeMac48(b, o + ETH.SRC, myMac);
  w16(b, o + ETH.TYPE, ETHERTYPE.ARP);
  w16(b, a + ARP.HTYPE, 1);
  w16(b, a + ARP.PTYPE, ETHERTYPE.IPV4);
  b[a + ARP.HLEN] = 6;
  b[a + ARP.PLEN] = 4;
  w16(b, a + ARP.OPER, ArpOp.REQUEST);
  writeMac48(b, a + ARP.SHA, myMac);
  w32(b, a + ARP.SPA, myIp);
  writeMac48(b, a + ARP.THA, 0);
  w32(b, a + ARP.TPA, target);
  pool.lengths[h] = ETH.HLEN + ARP.LEN;
  return h;
}

/** Turn the (checked) echo request at l3 into the reply from `myIp` (our MAC as hi/lo); returns the new frame length. */
export function echoReplyInPlace(b: Uint8Array, off: number, l3: number, myHi: number, myLo: number, myIp: number): number {
  b.copyWithin(off + ETH.DST, off + ETH.SRC, off + ETH.SRC + 6);
  writeMacHL(b, off + ETH.SRC, myHi, myLo);
  const hl = (b[l3] & 0x0f) << 2;
  b.copyWithin(l3 + IPV4.DST, l3 + IPV4.SRC, l3 + IPV4.SRC + 4);
  w32(b, l3 + IPV4.SRC, myIp);
  b[l3 + IPV4.TTL] = 64;
  w16(b, l3 + IPV4.CHECKSUM, 0);
  w16(b, l3 + IPV4.CHECKSUM, checksum(b, l3, hl));
  const ic = l3 + hl;
  w16(b, ic + ICMP.CHECKSUM, csumUpdate16(u16(b, ic + ICMP.CHECKSUM), IcmpType.ECHO_REQUEST << 8, IcmpType.ECHO_REPLY << 8));
  b[ic + ICMP.TYPE] = IcmpType.ECHO_REPLY;
  return l3 - off + u16(b, l3 + IPV4.TOTAL_LEN);
}

/**
 * A new frame (Ethernet header to fill, type set) with the RST answering
 * the TCP segment at l3 (validated: header and TCP header present), or −1
 * when the pool is empty. The caller checks that the segment is not a RST.
 */
export function buildRst(pool: FramePool, l3: number): number {
  const h = pool.alloc();
  if (h < 0) return -1;
  const b = pool.bytes;
  const hl = (b[l3] & 0x0f) << 2;
  const total = u16(b, l3 + IPV4.TOTAL_LEN);
  const t = l3 + hl;
  const flags = b[t + TCP.FLAGS];
  const segLen = total - hl - ((b[t + TCP.DATA_OFF] >>> 4) << 2) + (flags & TcpFlags.SYN ? 1 : 0) + (flags & TcpFlags.FIN ? 1 : 0);
  const o = pool.offsets[h];
  const ip = o + ETH.HLEN;
  const tcp = ip + IPV4.HLEN;
  w16(b, o + ETH.TYPE, ETHERTYPE.IPV4);
  b[ip + IPV4.VER_IHL] = 0x45;
  b[ip + IPV4.TOS] = 0;
  w16(b, ip + IPV4.TOTAL_LEN, IPV4.HLEN + TCP.HLEN);
  w16(b, ip + IPV4.IDENT, 0);
  w16(b, ip + IPV4.FLAGS_FRAG, 0x4000);
  b[ip + IPV4.TTL] = 64;
  b[ip + IPV4.PROTO] = IpProto.TCP;
  w16(b, ip + IPV4.CHECKSUM, 0);
  const src = u32(b, l3 + IPV4.DST);
  const dst = u32(b, l3 + IPV4.SRC);
  w32(b, ip + IPV4.SRC, src);
  w32(b, ip + IPV4.DST, dst);
  w16(b, ip + IPV4.CHECKSUM, checksum(b, ip, IPV4.HLEN));
  w16(b, tcp + TCP.SRC_PORT, u16(b, t + TCP.DST_PORT));
  w16(b, tcp + TCP.DST_PORT, u16(b, t + TCP.SRC_PORT));
  if (flags & TcpFlags.ACK) {
    w32(b, tcp + TCP.SEQ, u32(b, t + TCP.ACK));
    w32(b, tcp + TCP.ACK, 0);
    b[tcp + TCP.FLAGS] = TcpFlags.RST;
  } else {
    w32(b, tcp + TCP.SEQ, 0);
    w32(b, tcp + TCP.ACK, (u32(b, t + TCP.SEQ) + segLen) >>> 0);
    b[tcp + TCP.FLAGS] = TcpFlags.RST | TcpFlags.ACK;
  }
  b[tcp + TCP.DATA_OFF] = (TCP.HLEN >>> 2) << 4;
  w16(b, tcp + TCP.WINDOW, 0);
  w16(b, tcp + TCP.CHECKSUM, 0);
  w16(b, tcp + TCP.URGENT, 0);
  w16(b, tcp + TCP.CHECKSUM, checksum(b, tcp, TCP.HLEN, pseudoHeaderSum(src, dst, IpProto.TCP, TCP.HLEN)));
  pool.lengths[h] = ETH.HLEN + IPV4.HLEN + TCP.HLEN;
  return h;
}
