/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * - onesSum(): the unfolded 16-bit one's-complement sum of a byte range
 *   (big-endian words, an odd last byte padded with zero), added to an
 *   initial sum (for pseudo-headers). Sums stay exact in a double (< 2^53).
 * - fold(): folds a sum to 16 bits with end-around carry.
 * - checksum(): ~fold(sum) — what goes into a header's checksum field
 *   (computed with that field zeroed).
 * - verifyChecksum(): a range that includes its checksum field is correct
 *   when its folded sum is 0xffff.
 * - pseudoHeaderSum(): IPv4 pseudo-header for TCP/UDP (src, dst, proto, L4 length).
 * - csumUpdate16/32(): RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), for a
 *   16-bit or 32-bit field that changed from m to m'. Eqn. 3 (unlike eqn. 2)
 *   gives the same result as full recomputation but for one case: when
 *   the covered data is all zero, it gives 0x0000 where recomputation gives
 *   0xffff (only the latter verifies). Real headers never are (an IPv4
 *   header has its version; only an ICMP echo reply whose id, sequence
 *   and payload are all zero could be), so the NAT keeps eqn. 3.
 *
 * Note for UDP: a computed checksum of 0x0000 is sent as 0xffff, and a
 * field of 0 means "no checksum" (do not update it incrementally).
 */

export function onesSum(b: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  const end = off + len;
  const even = off + (len & ~1);
  let i = off;
  for (; i < even; i += 2) s += (b[i] << 8) | b[i + 1];
  if (i < end) s += b[i] << 8;
  return s;
}

export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for bytes [off, off+len) (with the field itself zero), plus `initial`. */
export function checksum(b: Uint8Array, off: number, len: number, initial = 0): number {
  return ~fold(onesSum(b, off, len, initial)) & 0xffff;
}

/** True when the range (checksum field included) sums to 0xffff. */
export function verifyChecksum(b: Uint8Array, off: number, len: number, initial = 0): boolean {
  return fold(onesSum(b, off, len, initial)) === 0xffff;
}

/** Unfolded sum of the IPv4 pseudo-header: src, dst, zero+proto, L4 length. */
export function pseudoHeaderSum(src: number, dst: number, proto: number, l4len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + l4len;
}

/** RFC 1624 eqn. 3: checksum `hc` after a 16-bit field changed from `m` to `m2`. */
export function csumUpdate16(hc: number, m: number, m2: number): number {
  let s = (~hc & 0xffff) + (~m & 0xffff) + (m2 & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** RFC 1624 eqn. 3 for a 32-bit field (e.g. an IPv4 address) that changed from `m` to `m2`. */
export function csumUpdate32(hc: number, m: number, m2: number): number {
  let s = (~hc & 0xffff) + (~m >>> 16) + (~m & 0xffff) + (m2 >>> 16) + (m2 & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * onesSum with 32-bit loads: a 32-bit word hi·2^16 + lo is ≡ hi + lo modulo
 * 0xffff, so summing whole words and folding later gives the same checksum
 * (RFC 1071 §2), at half the loads. Exact in a double up to 2^21 words.
 */
export function sum32(v: DataView, b: Uint8Array, off: number, len: number, initial: number): number {
  let s = initial;
  const end = off + len;
  const end16 = off + (len & ~15);
  const end4 = off + (len & ~3);
  let i = off;
  for (; i < end16; i += 16) s += v.getUint32(i) + v.getUint32(i + 4) + v.getUint32(i + 8) + v.getUint32(i + 12);
  for (; i < end4; i += 4) s += v.getUint32(i);
  if (i + 2 <= end) {
    s += v.getUint16(i);
    i += 2;
  }
  if (i < end) s += b[i] << 8;
  return s;
}
