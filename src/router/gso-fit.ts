/**
 * Super-frames (GSO, see src/dataplane/pool.ts) on the router's paths:
 * what the router checks and how it measures them against an MTU.
 *
 * - gsoIn(pool, h): at input, before anything reads the frame. An ordinary
 *   frame with a partial checksum (META_NEEDS_CSUM: only frames built by
 *   hand, devices complete them on read) is completed here, so that past
 *   this point only super-frames carry a partial checksum. A super-frame
 *   must pass gsoCheck (src/wire/gso.ts: type matches IPv4 + TCP/UDP,
 *   gsoSize > 0, IP length = frame length, checksum start/offset at the L4
 *   checksum field, no fragment, ≤ GSO_MAX_SEGS segments). False: the
 *   caller drops it (badGso), it never goes further.
 * - wireIpLen(b, l3, total, gsoSize): the IP length of the largest packet
 *   the frame puts on a wire: `total` for an ordinary frame; for a
 *   super-frame IP header + L4 header + min(gsoSize, payload). A
 *   super-frame "fits" an MTU when this is ≤ MTU, as the kernel's
 *   skb_gso_validate_network_len: it then goes on whole (total may be
 *   64 KiB), else DF → "fragmentation needed" with the MTU, no DF → cut
 *   into segments of mss = MTU − IP header − L4 header (segmentFrame).
 * - segMss(b, l3, mtu): that mss.
 *
 * Nothing allocates.
 */
import { M_CSUM_OFFSET, M_CSUM_START, M_GSO_SIZE, M_HDR_LEN, META_BYTES, META_NEEDS_CSUM, META_STRIDE, type FramePool } from '../dataplane/pool.js';
import { completeFrame } from '../dataplane/segment.js';
import { gsoCheck } from '../wire/gso.js';

/** Check (super-frame) or complete (partial ordinary frame) frame h at input; false → drop it (badGso). */
export function gsoIn(pool: FramePool, h: number): boolean {
  const fi = h * META_BYTES;
  const flags = pool.meta8[fi];
  const type = pool.meta8[fi + 1];
  if (type === 0) return (flags & META_NEEDS_CSUM) === 0 || completeFrame(pool, h) === 0;
  const m = h * META_STRIDE;
  const meta = pool.meta;
  return gsoCheck(pool.bytes, pool.offsets[h], pool.lengths[h], flags, type, meta[m + M_HDR_LEN], meta[m + M_GSO_SIZE], meta[m + M_CSUM_START], meta[m + M_CSUM_OFFSET]) === 0; // prettier-ignore
}

/** The GSO segment size of h, 0 for an ordinary frame. */
export function gsoSizeOf(pool: FramePool, h: number): number {
  return pool.meta8[h * META_BYTES + 1] === 0 ? 0 : pool.meta[h * META_STRIDE + M_GSO_SIZE];
}

/** IPv4 + L4 header bytes of the (checked) packet at l3: TCP data offset, else 8 (UDP). */
function headers(b: Uint8Array, l3: number): number {
  const hl = (b[l3] & 15) << 2;
  return hl + (b[l3 + 9] === 6 ? (b[l3 + hl + 12] >>> 4) << 2 : 8);
}

/** IP length of the largest packet on the wire (see the header); gsoSize 0: an ordinary frame. */
export function wireIpLen(b: Uint8Array, l3: number, total: number, gsoSize: number): number {
  if (gsoSize === 0) return total;
  const n = headers(b, l3) + gsoSize;
  return n < total ? n : total;
}

/** Payload bytes per segment so that every segment fits `mtu` (≤ 0: none can). */
export function segMss(b: Uint8Array, l3: number, mtu: number): number {
  return mtu - headers(b, l3);
}
