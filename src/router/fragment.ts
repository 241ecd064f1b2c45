/**
 * IPv4 fragmentation (RFC 791 §3.2, RFC 1812 §4.2.2.7), for a forwarded
 * packet without DF that is longer than the egress MTU (what Linux does).
 *
 * fragment(pool, h, mtu, out) splits the untagged Ethernet frame h (IPv4 at
 * offset 14, valid header) into fragments of at most `mtu` IP bytes: the
 * first stays in h (truncated in place, options kept), the others are new
 * frames with a copy of the Ethernet and IP header — only the options whose
 * "copied" flag is set (padded with EOL) — and the next piece of payload,
 * each data length a multiple of 8 but the last. Fragment offsets add to
 * the packet's own (fragmenting a fragment works) and MF is set on every
 * piece but the last, which keeps the packet's MF. Header checksums are
 * recomputed.
 *
 * The handles (h first) go into out[0..n); returns n, or −1 when the MTU is
 * too small for a fragment (< header + 8) or the pool is empty (nothing
 * allocated is kept; h is untouched, the caller still owns it).
 *
 * Never a super-frame (GSO): it is cut into segments instead (output.ts,
 * gso-fit.ts); one given here is refused (−1). Checksums are complete by
 * then (the router completes a partial one at input).
 */
import { META_BYTES, type FramePool } from '../dataplane/pool.js';
import { u16, w16 } from '../wire/bytes.js';
import { checksum } from '../wire/checksum.js';
import { ETH } from '../wire/ethernet.js';
import { IPV4, IPV4_FRAG_MASK, IPV4_MF } from '../wire/ipv4.js';

/** scratch for the copied options (≤ 40 bytes) */
const opts = new Uint8Array(40);

/** Length of the copied options (written to `opts`), padded to 4. */
function copiedOptions(b: Uint8Array, start: number, end: number): number {
  let n = 0;
  let i = start;
  while (i < end) {
    const t = b[i];
    if (t === 0) break;
    if (t === 1) {
      i++;
      continue;
    }
    if (i + 1 >= end) break;
    const l = b[i + 1];
    if (l < 2 || i + l > end) break;
    if (t & 0x80) for (let k = 0; k < l; k++) opts[n++] = b[i + k];
    i += l;
  }
  while (n & 3) opts[n++] = 0;
  return n;
}

export function fragment(pool: FramePool, h: number, mtu: number, out: Int32Array): number {
  if (pool.meta8[h * META_BYTES + 1] !== 0) return -1;
  const b = pool.bytes;
  const off = pool.offsets[h];
  const l3 = off + ETH.HLEN;
  const hl = (b[l3] & 0x0f) << 2;
  const total = u16(b, l3 + IPV4.TOTAL_LEN);
  const ff = u16(b, l3 + IPV4.FLAGS_FRAG);
  const baseOff = ff & IPV4_FRAG_MASK;
  const lastMf = ff & IPV4_MF;
  const first = (mtu - hl) & ~7;
  const ol = copiedOptions(b, l3 + IPV4.HLEN, l3 + hl);
  const hl2 = IPV4.HLEN + ol;
  const rest = (mtu - hl2) & ~7;
  if (first < 8 || rest < 8) return -1;
  const data = total - hl;
  if (data <= first) return -1;
  const n = 1 + Math.ceil((data - first) / rest);
  if (n > out.length) return -1;
  out[0] = h;
  for (let i = 1; i < n; i++) {
    const f = pool.alloc();
    if (f < 0) {
      for (let k = 1; k < i; k++) pool.free(out[k]);
      return -1;
    }
    out[i] = f;
  }
  // the later fragments first (they read h's payload)
  let pos = first;
  for (let i = 1; i < n; i++) {
    const f = out[i];
    const fo = pool.offsets[f];
    const fl3 = fo + ETH.HLEN;
    const len = data - pos < rest ? data - pos : rest;
    b.copyWithin(fo, off, off + ETH.HLEN + IPV4.HLEN);
    for (let k = 0; k < ol; k++) b[fl3 + IPV4.HLEN + k] = opts[k];
    b.copyWithin(fl3 + hl2, l3 + hl + pos, l3 + hl + pos + len);
    b[fl3 + IPV4.VER_IHL] = 0x40 | (hl2 >>> 2);
    w16(b, fl3 + IPV4.TOTAL_LEN, hl2 + len);
    const last = i === n - 1;
    w16(b, fl3 + IPV4.FLAGS_FRAG, (ff & ~(IPV4_MF | IPV4_FRAG_MASK)) | (last ? lastMf : IPV4_MF) | (baseOff + (pos >>> 3)));
    w16(b, fl3 + IPV4.CHECKSUM, 0);
    w16(b, fl3 + IPV4.CHECKSUM, checksum(b, fl3, hl2));
    pool.lengths[f] = ETH.HLEN + hl2 + len;
    pool.inPort[f] = pool.inPort[h];
    pos += len;
  }
  w16(b, l3 + IPV4.TOTAL_LEN, hl + first);
  w16(b, l3 + IPV4.FLAGS_FRAG, ff | IPV4_MF);
  w16(b, l3 + IPV4.CHECKSUM, 0);
  w16(b, l3 + IPV4.CHECKSUM, checksum(b, l3, hl));
  pool.lengths[h] = ETH.HLEN + hl + first;
  return n;
}
