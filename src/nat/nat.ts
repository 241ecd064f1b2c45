/**
 * NatRewriter — rewrites IPv4 packets of tracked flows (SNAT/masquerade,
 * DNAT/published ports, both at once for hairpin), netfilter's model.
 *
 * A flow's two tuples say what the packets look like on each side
 * (conntrack.ts). A packet of flow f travelling in direction d is rewritten
 * to look like the INVERSE of the other direction's tuple:
 *   d = ORIGINAL:  src ← reply.dst (ip, port),  dst ← reply.src
 *   d = REPLY:     src ← orig.dst,              dst ← orig.src
 * (plain inverse tuples: nothing changes). For ICMP queries (echo …) the
 * "port" is the identifier. The IPv4 header checksum and the L4 checksum
 * (TCP, UDP incl. the pseudo-header; ICMP without) are updated
 * incrementally with RFC 1624 eqn. 3 — one sum over every changed 16-bit
 * word, folded once — so they equal a full recomputation. A UDP checksum of
 * 0 ("none") stays 0; a computed 0 is written 0xffff. A non-first fragment
 * has no L4 header: only its addresses (and the IP checksum) change.
 *
 * Partial checksums (translatePartial(), same arguments: the frame has
 * META_NEEDS_CSUM, e.g. a TCP/UDP super-frame, pool.ts): the L4 checksum
 * field holds the folded, NON-complemented pseudo-header sum and whoever
 * completes it sums from the L4 header to the end. So an address change
 * adds Σ(~m + m') to the field as is (no complement), and a port change,
 * inside the part still to be summed, leaves it alone — what Linux's
 * inet_proto_csum_replace4(pseudohdr = true / false) does on
 * CHECKSUM_PARTIAL. A partial ICMP checksum has no pseudo-header: only the
 * identifier would be in it, so it is left alone too.
 *
 * ICMP errors (unreachable, time exceeded, redirect, parameter problem,
 * source quench) quote the packet that caused them. lookupIcmpError() finds
 * the flow of the quoted packet: the quote is what went out on the wire,
 * i.e. the inverse of the tuple of the direction opposite to it, so the
 * quote's tuple is inverted and looked up; it returns (flow << 1) | the
 * direction the QUOTED packet travelled (the error travels the other way).
 * translateIcmpError() then restores the quote to that direction's tuple
 * (its src/dst, ports or identifier, its IP checksum, its UDP/ICMP
 * checksum and its TCP checksum when the 18 bytes holding it are quoted),
 * sends the error to the quote's source (outer dst ← tuple.src) and, when
 * the error comes from the quoted packet's destination itself (outer src =
 * the address it has on this side), gives it that destination's address on
 * the other side (outer src ← tuple.dst: a DNATed container's "port
 * unreachable" leaves from the published address). The ICMP checksum is
 * updated with every changed word of the quote.
 *
 * Preconditions of translate(): the caller (router) has checked the IPv4
 * header (version, IHL, total length) and that the L4 header fits (TCP 20,
 * UDP 8, ICMP 8 bytes) unless the packet is a non-first fragment. The ICMP
 * error methods check everything themselves (len = bytes after l3off).
 *
 * Hot path (translate) allocates nothing: fields are read and written through
 * a DataView of the pool (a view of another byte array is made once and
 * kept). Its TCP/UDP part is kept under V8's inlining budget (460 bytes of
 * bytecode; `node --print-bytecode --print-bytecode-filter=translate`) so it
 * inlines into the router's loop; ICMP, fragments and other protocols go to
 * translateOther(). Measured by bench/nat.ts against a C twin.
 */
import type { FramePool } from '../dataplane/pool.js';
import type { Conntrack } from './conntrack.js';

/** ICMP types carrying an identifier at bytes 4..5 (echo, timestamp, info, mask) */
const ICMP_QUERY = new Uint8Array(256);
for (const t of [0, 8, 13, 14, 15, 16, 17, 18]) ICMP_QUERY[t] = 1;
/** ICMP error types that quote the offending packet */
const ICMP_ERROR = new Uint8Array(256);
for (const t of [3, 4, 5, 11, 12]) ICMP_ERROR[t] = 1;

/** Add the RFC 1624 terms ~m + m' of a 32-bit field m → m2 (int32 values). */
function d32(m: number, m2: number): number {
  return (~m >>> 16) + (~m & 0xffff) + (m2 >>> 16) + (m2 & 0xffff);
}
/** A partial checksum field (non-complemented pseudo-header sum) plus sum, folded (Linux's inet_proto_csum_replace4 on CHECKSUM_PARTIAL). */
function addFold(hc: number, sum: number): number {
  let s = hc + sum;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return s;
}
/** srcPort << 16 | dstPort → dstPort << 16 | srcPort */
function swapHalves(p: number): number {
  return (p << 16) | (p >>> 16);
}
/** HC' = ~(~HC + sum), folded. */
function apply(hc: number, sum: number): number {
  let s = (~hc & 0xffff) + sum;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export class NatRewriter {
  private readonly pool: FramePool;
  private readonly ct: Conntrack;
  private readonly rec: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private otherBytes: Uint8Array | null = null;
  private otherView: DataView | null = null;
  // the parsed ICMP error (set by parseIcmpError)
  private eIcmp = 0; // offset of the ICMP header
  private eIn = 0; // offset of the quoted IP header
  private eL4 = 0; // offset of the quoted L4 header
  private eL4Len = 0; // quoted L4 bytes available
  private eProto = 0;

  constructor(pool: FramePool, ct: Conntrack) {
    this.pool = pool;
    this.ct = ct;
    this.rec = ct.rec;
    this.bytes = pool.bytes;
    this.view = pool.view;
  }

  /** DataView over `bytes` (the pool's own, or one made once and kept). */
  private viewOf(bytes: Uint8Array): DataView {
    return bytes === this.bytes ? this.view : this.otherViewOf(bytes);
  }

  private otherViewOf(bytes: Uint8Array): DataView {
    if (bytes !== this.otherBytes) {
      this.otherBytes = bytes;
      this.otherView = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    return this.otherView as DataView;
  }

  /**
   * Rewrite the IPv4 packet at bytes[l3off..] (TCP, UDP, ICMP query or any
   * other protocol: addresses only) of `flow` travelling in `dir`. True if
   * anything changed.
   */
  translate(bytes: Uint8Array, l3off: number, flow: number, dir: number): boolean {
    // hot: TCP/UDP here, the rest in translateOther(); small enough (bytecode)
    // for V8 to inline it into the caller's loop
    const v = this.viewOf(bytes);
    const proto = bytes[l3off + 9];
    if ((proto !== 6 && proto !== 17) || (v.getUint16(l3off + 6) & 0x1fff) !== 0) return this.translateOther(v, bytes, l3off, flow, dir, false); // prettier-ignore
    const t = this.rec;
    // the other direction's tuple: our new src is its dst, our new dst its src
    const ob = (flow << 4) + 3 - 3 * dir;
    const nDst = t[ob];
    const nSrc = t[ob + 1];
    const nPorts = swapHalves(t[ob + 2]); // (its dstPort, its srcPort)
    const l4 = l3off + ((bytes[l3off] & 15) << 2);
    const cSrc = v.getInt32(l3off + 12);
    const cDst = v.getInt32(l3off + 16);
    const cPorts = v.getInt32(l4);
    if (cSrc === nSrc && cDst === nDst && cPorts === nPorts) return false;
    // RFC 1624: Σ(~m + m') over the changed words, added and folded once
    const d = d32(cSrc, nSrc) + d32(cDst, nDst);
    v.setUint16(l3off + 10, apply(v.getUint16(l3off + 10), d));
    v.setInt32(l3off + 12, nSrc);
    v.setInt32(l3off + 16, nDst);
    v.setInt32(l4, nPorts);
    const co = l4 + (proto === 6 ? 16 : 6);
    const hc = v.getUint16(co);
    // UDP: checksum 0 = none (left alone); a computed 0 is sent as 0xffff
    if (hc !== 0 || proto === 6) v.setUint16(co, apply(hc, d + d32(cPorts, nPorts)) || (proto === 6 ? 0 : 0xffff));
    return true;
  }

  /** translate() for ICMP queries, non-first fragments, other protocols and partial checksums. */
  private translateOther(v: DataView, bytes: Uint8Array, l3off: number, flow: number, dir: number, partial: boolean): boolean {
    const t = this.rec;
    const ob = (flow << 4) + (dir === 0 ? 3 : 0);
    const nDst = t[ob];
    const nSrc = t[ob + 1];
    const nId = t[ob + 2] & 0xffff; // ICMP: the other side's identifier
    const cSrc = v.getInt32(l3off + 12);
    const cDst = v.getInt32(l3off + 16);
    const l4 = l3off + ((bytes[l3off] & 15) << 2);
    const query = bytes[l3off + 9] === 1 && (v.getUint16(l3off + 6) & 0x1fff) === 0 && ICMP_QUERY[bytes[l4]] === 1;
    const cId = query ? v.getUint16(l4 + 4) : nId;
    if (cSrc === nSrc && cDst === nDst && cId === nId) return false;
    v.setUint16(l3off + 10, apply(v.getUint16(l3off + 10), d32(cSrc, nSrc) + d32(cDst, nDst)));
    v.setInt32(l3off + 12, nSrc);
    v.setInt32(l3off + 16, nDst);
    if (query) {
      // a partial ICMP checksum has no pseudo-header: the identifier is in the part still to be summed
      if (!partial) v.setUint16(l4 + 2, apply(v.getUint16(l4 + 2), (~cId & 0xffff) + nId));
      v.setUint16(l4 + 4, nId);
    }
    return true;
  }

  /**
   * translate() for a packet whose L4 checksum is partial (META_NEEDS_CSUM,
   * e.g. a super-frame; see the header): addresses are added to the field
   * as is, ports not at all. Kept apart so translate() stays inlinable.
   */
  translatePartial(bytes: Uint8Array, l3off: number, flow: number, dir: number): boolean {
    const v = this.viewOf(bytes);
    const proto = bytes[l3off + 9];
    if ((proto !== 6 && proto !== 17) || (v.getUint16(l3off + 6) & 0x1fff) !== 0) return this.translateOther(v, bytes, l3off, flow, dir, true); // prettier-ignore
    const t = this.rec;
    const ob = (flow << 4) + 3 - 3 * dir;
    const nDst = t[ob];
    const nSrc = t[ob + 1];
    const nPorts = swapHalves(t[ob + 2]);
    const l4 = l3off + ((bytes[l3off] & 15) << 2);
    const cSrc = v.getInt32(l3off + 12);
    const cDst = v.getInt32(l3off + 16);
    const cPorts = v.getInt32(l4);
    if (cSrc === nSrc && cDst === nDst && cPorts === nPorts) return false;
    const d = d32(cSrc, nSrc) + d32(cDst, nDst);
    v.setUint16(l3off + 10, apply(v.getUint16(l3off + 10), d));
    v.setInt32(l3off + 12, nSrc);
    v.setInt32(l3off + 16, nDst);
    v.setInt32(l4, nPorts);
    const co = l4 + (proto === 6 ? 16 : 6);
    v.setUint16(co, addFold(v.getUint16(co), d));
    return true;
  }

  /**
   * Parse an ICMP error at bytes[l3off..l3off+len) and its quote; false when
   * it is not one or is too short/malformed. Sets the e* fields.
   */
  private parseIcmpError(b: Uint8Array, l3off: number, len: number): boolean {
    if (len < 20 || l3off + len > b.length) return false;
    const vi = b[l3off];
    const hl = (vi & 15) << 2;
    if (vi >>> 4 !== 4 || hl < 20) return false;
    const total = (b[l3off + 2] << 8) | b[l3off + 3];
    if (total < hl || total > len || b[l3off + 9] !== 1) return false;
    if ((((b[l3off + 6] << 8) | b[l3off + 7]) & 0x3fff) !== 0) return false; // a fragment
    const icmp = l3off + hl;
    const ilen = total - hl;
    if (ilen < 8 + 20 + 8 || ICMP_ERROR[b[icmp]] !== 1) return false;
    const inner = icmp + 8;
    const ivi = b[inner];
    const ihl = (ivi & 15) << 2;
    if (ivi >>> 4 !== 4 || ihl < 20 || ilen < 8 + ihl + 8) return false;
    if ((((b[inner + 6] << 8) | b[inner + 7]) & 0x1fff) !== 0) return false; // quote without L4 header
    const proto = b[inner + 9];
    const l4 = inner + ihl;
    if (proto !== 6 && proto !== 17 && !(proto === 1 && ICMP_QUERY[b[l4]] === 1)) return false;
    this.eIcmp = icmp;
    this.eIn = inner;
    this.eL4 = l4;
    this.eL4Len = ilen - 8 - ihl;
    this.eProto = proto;
    return true;
  }

  /** (flow << 1) | direction of the packet quoted by this ICMP error, or −1. */
  lookupIcmpError(bytes: Uint8Array, l3off: number, len: number): number {
    if (!this.parseIcmpError(bytes, l3off, len)) return -1;
    const v = this.viewOf(bytes);
    const inner = this.eIn;
    const l4 = this.eL4;
    const src = v.getInt32(inner + 12);
    const dst = v.getInt32(inner + 16);
    let sport: number;
    let dport: number;
    if (this.eProto === 1) sport = dport = v.getUint16(l4 + 4);
    else {
      sport = v.getUint16(l4);
      dport = v.getUint16(l4 + 2);
    }
    // the quote went out as the inverse of the other direction's tuple
    const ref = this.ct.lookup(this.eProto, dst, dport, src, sport);
    return ref < 0 ? -1 : ref ^ 1;
  }

  /**
   * Translate an ICMP error quoting a packet of `flow` that travelled in
   * `embeddedDir` (as returned by lookupIcmpError). False when malformed.
   */
  translateIcmpError(bytes: Uint8Array, l3off: number, len: number, flow: number, embeddedDir: number): boolean {
    if (!this.parseIcmpError(bytes, l3off, len)) return false;
    const v = this.viewOf(bytes);
    const t = this.rec;
    const eb = (flow << 4) + (embeddedDir === 0 ? 0 : 3); // the quote's own tuple
    const db = (flow << 4) + (embeddedDir === 0 ? 3 : 0); // the error's direction
    const nSrc = t[eb];
    const nDst = t[eb + 1];
    const nPorts = t[eb + 2];
    const inner = this.eIn;
    const l4 = this.eL4;
    let icmpSum = 0; // changes inside the ICMP message
    // quoted IP header: addresses and its checksum
    const qSrc = v.getInt32(inner + 12);
    const qDst = v.getInt32(inner + 16);
    const dAddr = d32(qSrc, nSrc) + d32(qDst, nDst);
    const qhc = v.getUint16(inner + 10);
    const qhc2 = apply(qhc, dAddr);
    v.setUint16(inner + 10, qhc2);
    v.setInt32(inner + 12, nSrc);
    v.setInt32(inner + 16, nDst);
    icmpSum += dAddr + (~qhc & 0xffff) + qhc2;
    // quoted L4 header
    if (this.eProto === 1) {
      const cId = v.getUint16(l4 + 4);
      const nId = nPorts >>> 16;
      const hc = v.getUint16(l4 + 2);
      const hc2 = apply(hc, (~cId & 0xffff) + nId);
      v.setUint16(l4 + 2, hc2);
      v.setUint16(l4 + 4, nId);
      icmpSum += (~cId & 0xffff) + nId + (~hc & 0xffff) + hc2;
    } else {
      const cPorts = v.getInt32(l4);
      const dPorts = d32(cPorts, nPorts);
      v.setInt32(l4, nPorts);
      icmpSum += dPorts;
      const co = this.eProto === 6 ? 16 : 6;
      if (this.eL4Len >= co + 2) {
        const hc = v.getUint16(l4 + co);
        if (hc !== 0 || this.eProto === 6) {
          let hc2 = apply(hc, dAddr + dPorts);
          if (hc2 === 0 && this.eProto === 17) hc2 = 0xffff;
          v.setUint16(l4 + co, hc2);
          icmpSum += (~hc & 0xffff) + hc2;
        }
      }
    }
    const icmp = this.eIcmp;
    v.setUint16(icmp + 2, apply(v.getUint16(icmp + 2), icmpSum));
    // outer header: to the quote's source; from its destination's other face
    const oSrc = v.getInt32(l3off + 12);
    const oDst = v.getInt32(l3off + 16);
    const newSrc = oSrc === t[db] ? nDst : oSrc;
    if (newSrc !== oSrc || nSrc !== oDst) {
      v.setUint16(l3off + 10, apply(v.getUint16(l3off + 10), d32(oSrc, newSrc) + d32(oDst, nSrc)));
      v.setInt32(l3off + 12, newSrc);
      v.setInt32(l3off + 16, nSrc);
    }
    return true;
  }
}
