/**
 * segmentsOf(pool, h): how many wire packets frame h stands for — 1 for an
 * ordinary frame, ceil(payload / gsoSize) for a super-frame (gsoType != 0,
 * see pool.ts). For the segment counters (Counters.rxSegments/txSegments)
 * and conntrack's packet counts.
 *
 * Cheap (no validation, no allocation): the header length is read from the
 * bytes (Ethernet, one optional 802.1Q tag, IPv4 IHL or the fixed IPv6
 * header, TCP data offset or the UDP header), because a kernel's hdr_len is
 * only a hint (tun reports the skb's linear length); when the bytes do not
 * look like that, meta hdrLen is used. A super-frame with gsoSize 0 or no
 * payload counts 1. Whether the frame is valid at all is gsoCheck's
 * business (src/wire/gso.ts), not this function's.
 */
import { META_BYTES, META_STRIDE, M_GSO_SIZE, M_HDR_LEN, type FramePool } from './pool.js';

export function segmentsOf(pool: FramePool, h: number): number {
  if ((pool.meta8[h * META_BYTES + 1] & 0x7f) === 0) return 1;
  const m = h * META_STRIDE;
  const gs = pool.meta[m + M_GSO_SIZE];
  if (gs === 0) return 1;
  const len = pool.lengths[h];
  const pay = len - headerLen(pool, h, len);
  return pay <= 0 ? 1 : ((pay + gs - 1) / gs) | 0;
}

/** Ethernet + IP + L4 header bytes of super-frame h (meta hdrLen when the bytes do not parse). */
function headerLen(pool: FramePool, h: number, len: number): number {
  const b = pool.bytes;
  const off = pool.offsets[h];
  let l3 = 14;
  let type = len >= 14 ? (b[off + 12] << 8) | b[off + 13] : 0;
  if (type === 0x8100 && len >= 18) {
    type = (b[off + 16] << 8) | b[off + 17];
    l3 = 18;
  }
  let l4 = 0;
  let proto = 0;
  if (type === 0x0800 && len >= l3 + 20) {
    l4 = l3 + ((b[off + l3] & 15) << 2);
    proto = b[off + l3 + 9];
  } else if (type === 0x86dd && len >= l3 + 40) {
    l4 = l3 + 40;
    proto = b[off + l3 + 6];
  }
  if (proto === 6 && len >= l4 + 20) return l4 + ((b[off + l4 + 12] >>> 4) << 2);
  if (proto === 17 && len >= l4 + 8) return l4 + 8;
  return pool.meta[h * META_STRIDE + M_HDR_LEN];
}

/**
 * The longest frame h puts on a wire: its length for an ordinary frame, the
 * headers plus one segment (gsoSize) for a super-frame. What an MTU check
 * (switch, device) compares with, as Linux's skb_gso_validate_mac_len does.
 */
export function wireLength(pool: FramePool, h: number): number {
  const len = pool.lengths[h];
  if ((pool.meta8[h * META_BYTES + 1] & 0x7f) === 0) return len;
  const seg = headerLen(pool, h, len) + pool.meta[h * META_STRIDE + M_GSO_SIZE];
  return seg < len ? seg : len;
}
