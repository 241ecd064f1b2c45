/**
 * Software GSO over bytes: validate a super-frame (a frame with a virtio-net
 * GSO annotation, see src/dataplane/pool.ts), count its segments, and
 * complete a partial (CHECKSUM_PARTIAL) checksum. The per-segment writing
 * lives in src/dataplane/segment.ts (it needs the pool); it reads the
 * header offsets this module's parser leaves in `gsoHdr`.
 *
 * What is parsed:
 * - Ethernet with at most one 802.1Q tag (TPID 0x8100);
 * - IPv4 with any IHL (options are copied into every segment); fragments
 *   are refused (FRAGMENT);
 * - IPv6 fixed header only: an extension header (next header other than
 *   TCP/UDP) is refused (IPV6_EXT), jumbograms (BIG TCP) with it;
 * - TCP (data offset, options copied), or UDP for GSO_UDP_L4.
 * GSO_UDP (UFO, IP fragmentation of UDP) is refused (BAD_TYPE): nothing on
 * our paths produces it (tun only hands it out when the peer negotiated it).
 *
 * Rules checked by gsoCheck (the kernel's virtio_net_hdr_to_skb and
 * skb_gso_segment checks, stricter where a dataplane may be): the type
 * matches the L3/L4 (TCPV4 = IPv4+TCP, TCPV6 = IPv6+TCP, UDP_L4 = either +
 * UDP); gsoSize > 0; the IP length covers exactly the rest of the frame
 * (a super-frame has no Ethernet padding); NEEDS_CSUM is set with csumStart
 * at the L4 header and csumOffset at its checksum field; hdrLen (a hint:
 * Linux writes the skb's linear length there, which may include payload) is
 * at most the frame length; at most GSO_MAX_SEGS segments. The UDP length
 * field of a UDP_L4 super-frame is not checked (every segment gets its own).
 *
 * Nothing here allocates: the parser writes into the module's `gsoHdr`.
 */
import { fold, onesSum } from './checksum.js';

export const GSO_MAX_SEGS = 1024;

/** Error codes (0 = ok). segmentFrame returns them negated. */
export const GsoError = {
  OK: 0,
  /** an unknown or unsupported GSO type (UFO), or a GSO frame where a plain one is expected */
  BAD_TYPE: 1,
  /** L3/L4 not what the GSO type says (or not IP at all) */
  WRONG_PROTO: 2,
  /** gsoSize 0 */
  ZERO_SIZE: 3,
  /** headers run past the end of the frame */
  TRUNCATED: 4,
  /** IP total/payload length does not match the frame, IHL < 5, data offset < 5, hdrLen > frame */
  BAD_LENGTH: 5,
  /** checksum start/offset outside the frame, not at the L4 checksum field, or a super-frame without NEEDS_CSUM */
  BAD_CSUM: 6,
  /** more than GSO_MAX_SEGS segments */
  TOO_MANY_SEGS: 7,
  /** IPv6 extension headers (not supported) */
  IPV6_EXT: 8,
  /** an IPv4 fragment */
  FRAGMENT: 9,
  /** segmentFrame on a frame without a GSO type */
  NOT_GSO: 10,
  /** the pool ran out of frames while segmenting */
  POOL_EMPTY: 11,
  /** the output array is shorter than the segment count */
  OUT_TOO_SMALL: 12,
} as const;

/** the virtio-net values (mirrored from src/dataplane/pool.ts: wire imports nothing) */
const NEEDS_CSUM = 1;
const T_TCPV4 = 1;
const T_TCPV6 = 4;
const T_UDP_L4 = 5;
const ECN = 0x80;

/** indexes into gsoHdr */
export const GH = {
  /** L3 header offset from the frame start */
  L3: 0,
  /** L4 header offset from the frame start */
  L4: 1,
  /** payload offset (end of all headers) from the frame start */
  PAY: 2,
  /** 4 or 6 */
  IPV: 3,
  /** 6 (TCP) or 17 (UDP) */
  PROTO: 4,
  /** payload bytes */
  PAYLEN: 5,
  /** L4 header length */
  L4LEN: 6,
} as const;

/** The last successful gsoParse: offsets relative to the frame's first byte. */
export const gsoHdr = new Int32Array(8);

/**
 * Parse Ethernet(+VLAN) / IPv4|IPv6 / TCP|UDP headers of the frame at b[off, off+len)
 * into gsoHdr. proto 6 or 17 picks the L4 header that must follow. `exact`:
 * the IP length must end exactly at the frame end (super-frames); otherwise
 * it may end before it (Ethernet padding). Returns 0 or a GsoError.
 */
export function gsoParse(b: Uint8Array, off: number, len: number, exact: boolean): number {
  if (len < 14) return GsoError.TRUNCATED;
  let l3 = 14;
  let et = (b[off + 12] << 8) | b[off + 13];
  if (et === 0x8100) {
    if (len < 18) return GsoError.TRUNCATED;
    l3 = 18;
    et = (b[off + 16] << 8) | b[off + 17];
  }
  let l4: number;
  let proto: number;
  let ipEnd: number;
  let ipv: number;
  if (et === 0x0800) {
    if (len < l3 + 20) return GsoError.TRUNCATED;
    const vihl = b[off + l3];
    if (vihl >>> 4 !== 4) return GsoError.WRONG_PROTO;
    const ihl = (vihl & 15) * 4;
    if (ihl < 20) return GsoError.BAD_LENGTH;
    if (len < l3 + ihl) return GsoError.TRUNCATED;
    if ((((b[off + l3 + 6] << 8) | b[off + l3 + 7]) & 0x3fff) !== 0) return GsoError.FRAGMENT;
    ipEnd = l3 + ((b[off + l3 + 2] << 8) | b[off + l3 + 3]);
    if (ipEnd < l3 + ihl) return GsoError.BAD_LENGTH;
    proto = b[off + l3 + 9];
    l4 = l3 + ihl;
    ipv = 4;
  } else if (et === 0x86dd) {
    if (len < l3 + 40) return GsoError.TRUNCATED;
    if (b[off + l3] >>> 4 !== 6) return GsoError.WRONG_PROTO;
    proto = b[off + l3 + 6];
    if (proto !== 6 && proto !== 17) return proto === 58 ? GsoError.WRONG_PROTO : GsoError.IPV6_EXT;
    ipEnd = l3 + 40 + ((b[off + l3 + 4] << 8) | b[off + l3 + 5]);
    l4 = l3 + 40;
    ipv = 6;
  } else return GsoError.WRONG_PROTO;
  let l4len: number;
  if (proto === 6) {
    if (len < l4 + 20) return GsoError.TRUNCATED;
    l4len = (b[off + l4 + 12] >>> 4) * 4;
    if (l4len < 20) return GsoError.BAD_LENGTH;
  } else if (proto === 17) {
    l4len = 8;
  } else return GsoError.WRONG_PROTO;
  if (len < l4 + l4len) return GsoError.TRUNCATED;
  if (exact ? ipEnd !== len : ipEnd > len) return GsoError.BAD_LENGTH;
  if (ipEnd < l4 + l4len) return GsoError.BAD_LENGTH;
  gsoHdr[GH.L3] = l3;
  gsoHdr[GH.L4] = l4;
  gsoHdr[GH.PAY] = l4 + l4len;
  gsoHdr[GH.IPV] = ipv;
  gsoHdr[GH.PROTO] = proto;
  gsoHdr[GH.PAYLEN] = ipEnd - l4 - l4len;
  gsoHdr[GH.L4LEN] = l4len;
  return 0;
}

/**
 * Validate a frame's annotations against its bytes. gsoType 0: only the
 * checksum fields (when NEEDS_CSUM) must lie inside the frame. Otherwise
 * the super-frame rules above. On 0 with a GSO type, gsoHdr holds its headers.
 */
export function gsoCheck(
  b: Uint8Array,
  off: number,
  len: number,
  flags: number,
  gsoType: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
): number {
  const t = gsoType & ~ECN;
  if (gsoType === 0) {
    if ((flags & NEEDS_CSUM) !== 0 && csumStart + csumOffset + 2 > len) return GsoError.BAD_CSUM;
    return 0;
  }
  if (t !== T_TCPV4 && t !== T_TCPV6 && t !== T_UDP_L4) return GsoError.BAD_TYPE;
  if (gsoSize === 0) return GsoError.ZERO_SIZE;
  const e = gsoParse(b, off, len, true);
  if (e !== 0) return e;
  const ipv = gsoHdr[GH.IPV];
  const proto = gsoHdr[GH.PROTO];
  if (t === T_TCPV4 ? ipv !== 4 || proto !== 6 : t === T_TCPV6 ? ipv !== 6 || proto !== 6 : proto !== 17) {
    return GsoError.WRONG_PROTO;
  }
  if (hdrLen > len) return GsoError.BAD_LENGTH;
  if ((flags & NEEDS_CSUM) === 0) return GsoError.BAD_CSUM;
  if (csumStart !== gsoHdr[GH.L4] || csumOffset !== (proto === 6 ? 16 : 6)) return GsoError.BAD_CSUM;
  if (Math.ceil(gsoHdr[GH.PAYLEN] / gsoSize) > GSO_MAX_SEGS) return GsoError.TOO_MANY_SEGS;
  return 0;
}

/** Segments of gsoSize payload bytes the (already checked) super-frame splits into; at least 1, or −1 if its headers do not parse. */
export function gsoSegments(b: Uint8Array, off: number, len: number, gsoSize: number): number {
  if (gsoParse(b, off, len, true) !== 0 || gsoSize <= 0) return -1;
  const p = gsoHdr[GH.PAYLEN];
  return p === 0 ? 1 : Math.ceil(p / gsoSize);
}

/**
 * Complete a partial checksum: the field at csumStart + csumOffset holds the
 * folded pseudo-header sum (Linux CHECKSUM_PARTIAL); sum from csumStart to
 * len (both from off), complement and store. A result of 0 is written as
 * 0xffff (required for UDP, equivalent for TCP: both are one's-complement
 * zero, and the pseudo-header makes the sum non-zero). The caller checked
 * the bounds (gsoCheck) and passes len = end of the IP packet.
 */
export function completeChecksum(b: Uint8Array, off: number, len: number, csumStart: number, csumOffset: number): void {
  const s = off + csumStart;
  const c = ~fold(onesSum(b, s, len - csumStart)) & 0xffff;
  const v = c === 0 ? 0xffff : c;
  b[s + csumOffset] = v >>> 8;
  b[s + csumOffset + 1] = v;
}

/** End of the IP packet inside the frame (excludes Ethernet padding), or len when it is not IPv4/IPv6 or does not parse. */
export function ipEnd(b: Uint8Array, off: number, len: number): number {
  if (len < 14) return len;
  let l3 = 14;
  let et = (b[off + 12] << 8) | b[off + 13];
  if (et === 0x8100 && len >= 18) {
    l3 = 18;
    et = (b[off + 16] << 8) | b[off + 17];
  }
  let end = len;
  if (et === 0x0800 && len >= l3 + 20) end = l3 + ((b[off + l3 + 2] << 8) | b[off + l3 + 3]);
  else if (et === 0x86dd && len >= l3 + 40) end = l3 + 40 + ((b[off + l3 + 4] << 8) | b[off + l3 + 5]);
  return end <= len && end > l3 ? end : len;
}
