/**
 * Software GRO: the inverse of segmentFrame (src/dataplane/segment.ts).
 * groMerge(pool, hs, n) takes frames about to be written to one device that
 * takes super-frames (a TAP with offloads on) and coalesces each run of
 * consecutive, mergeable ordinary TCP/IPv4 segments of one flow into one
 * super-frame in a fresh large slot, so the device gets one write instead
 * of ~45. The contract of super-frames is /work/notes/offload.md.
 *
 * A frame may be merged (as Linux inet_gro_receive / tcp_gro_receive) when:
 * its annotations say nothing (gsoType 0, no NEEDS_CSUM; DATA_VALID is
 * ignored: the checksum is verified here anyway); Ethernet without VLAN;
 * IPv4 with IHL 5, no fragment bits (MF, offset, reserved), the total length
 * equal to the frame's (no padding), a valid header checksum; TCP with flags
 * exactly ACK or ACK|PSH (no reserved/AE bits); payload > 0; and a valid TCP
 * checksum — never merge a corrupted segment: the super-frame goes out with
 * a partial checksum the receiving kernel completes and does not verify.
 * A run A1..Ak (2 ≤ k ≤ MAX_RUN) has the same Ethernet header, TOS, DF,
 * TTL, addresses, ports, ack, window, data offset and byte-identical TCP
 * options; IP IDs that increment by one (or, with DF, all equal: Linux's
 * mangleid); seq of each = seq + payload of the one before; every payload
 * but the last equal to the first's (gsoSize), the last may be shorter; only
 * the last may carry PSH (a short or PSH frame ends the run); the merged IP
 * total length ≤ 65535 and the frame fits a large slot.
 *
 * The super-frame: the first frame's headers, IP total length = the sum,
 * IP ID the first's, header checksum recomputed, TCP flags the last's, the
 * TCP checksum field the folded pseudo-header sum (CHECKSUM_PARTIAL); meta
 * NEEDS_CSUM, GSO_TCPV4, gsoSize, hdrLen, csumStart 34, csumOffset 16;
 * inPort the first's. The frames absorbed are freed. No large slot left:
 * the frames are left as they are.
 *
 * Hot path: nothing allocates (locals only); each frame's TCP checksum is
 * summed at most once (a frame that ended a run because it failed a check
 * is remembered; one that only differed starts the next run).
 */
import { checksum, fold, sum32 } from '../wire/checksum.js';
import { type FramePool, GSO_TCPV4, M_CSUM_OFFSET, M_CSUM_START, M_GSO_SIZE, M_HDR_LEN, META_BYTES, META_DATA_VALID, META_NEEDS_CSUM, META_STRIDE } from './pool.js';

/** most segments in one super-frame (a bound, as Linux's 64 per GRO packet) */
export const GRO_MAX_RUN = 64;

const ACK = 0x10;
const ACK_PSH = 0x18;
const PSH = 0x08;
/** Ethernet 14 + IPv4 20 */
const L4 = 34;

/**
 * The structural checks (all but the TCP checksum) of a frame at b[off, off+len):
 * its payload length (> 0), or −1 when it may not be merged.
 */
function plainTcp4(b: Uint8Array, off: number, len: number): number {
  if (len < L4 + 20 || b[off + 12] !== 0x08 || b[off + 13] !== 0x00 || b[off + 14] !== 0x45) return -1;
  if ((b[off + 20] & 0xbf) !== 0 || b[off + 21] !== 0) return -1; // MF, offset, reserved bit
  if (((b[off + 16] << 8) | b[off + 17]) !== len - 14 || b[off + 23] !== 6) return -1;
  const f = b[off + 47];
  if (f !== ACK && f !== ACK_PSH) return -1;
  const d = b[off + 46];
  if ((d & 0x0f) !== 0 || d < 0x50) return -1;
  const pay = len - L4 - (d >>> 2);
  if (pay <= 0) return -1;
  // IPv4 header checksum (20 bytes)
  let s = 0;
  for (let i = off + 14; i < off + L4; i += 2) s += (b[i] << 8) | b[i + 1];
  return fold(s) === 0xffff ? pay : -1;
}

/** The TCP checksum of the (structurally checked) frame verifies. */
function tcpSumOk(v: DataView, b: Uint8Array, off: number, len: number): boolean {
  const tl = len - L4;
  const s = sum32(v, b, off + L4, tl, v.getUint32(off + 26) + v.getUint32(off + 30) + 6 + tl); // pseudo-header, then the segment
  return fold(s) === 0xffff;
}

/** Annotations say nothing (a plain frame with complete checksums). */
function plainMeta(m8: Uint8Array, h: number): boolean {
  const fi = h * META_BYTES;
  return (m8[fi] & ~META_DATA_VALID) === 0 && m8[fi + 1] === 0;
}

/** Same headers as the run's first frame where they must be equal (see the header comment). */
function sameFlow(b: Uint8Array, a: number, c: number, hl: number): boolean {
  for (let i = 0; i < 14; i++) if (b[a + i] !== b[c + i]) return false;
  if (b[a + 15] !== b[c + 15] || b[a + 20] !== b[c + 20] || b[a + 22] !== b[c + 22]) return false; // TOS, DF, TTL
  for (let i = 26; i < 38; i++) if (b[a + i] !== b[c + i]) return false; // addresses, ports
  for (let i = 42; i < 47; i++) if (b[a + i] !== b[c + i]) return false; // ack, data offset
  if (b[a + 48] !== b[c + 48] || b[a + 49] !== b[c + 49]) return false; // window
  for (let i = L4 + 20; i < L4 + hl; i++) if (b[a + i] !== b[c + i]) return false; // options
  return true;
}

function seqOf(b: Uint8Array, o: number): number {
  return ((b[o + 38] << 24) | (b[o + 39] << 16) | (b[o + 40] << 8) | b[o + 41]) >>> 0;
}

/**
 * Merge runs of hs[0..n) in place (see the header); hs[0..m) holds the
 * result in the original order. Returns m.
 */
export function groMerge(pool: FramePool, hs: Uint32Array, n: number): number {
  if (n < 2 || pool.largeAvailable === 0) return n;
  const b = pool.bytes;
  const v = pool.view;
  const m8 = pool.meta8;
  const offsets = pool.offsets;
  const lengths = pool.lengths;
  const maxFrame = pool.maxLargeFrame;
  // hs[known] ended a run because it may not be merged at all (checked once)
  let known = -1;
  let w = 0;
  let i = 0;
  while (i < n) {
    const h = hs[i];
    const off = offsets[h];
    const len = lengths[h];
    let gso: number;
    if (i === known) gso = -1;
    else {
      gso = plainMeta(m8, h) ? plainTcp4(b, off, len) : -1;
    }
    if (gso < 0 || b[off + 47] !== ACK || i + 1 === n) {
      hs[w++] = h;
      i++;
      continue;
    }
    const hl = b[off + 46] >>> 2;
    const hdr = L4 + hl;
    const dfSet = (b[off + 20] & 0x40) !== 0;
    let idMode = 0; // 1 increment, 2 all equal (DF)
    let prevId = (b[off + 18] << 8) | b[off + 19];
    let nextSeq = (seqOf(b, off) + gso) >>> 0;
    let total = gso;
    let lastFlags = ACK;
    let j = i + 1;
    while (j < n && j - i < GRO_MAX_RUN) {
      const g = hs[j];
      const go = offsets[g];
      const gl = lengths[g];
      const p = plainMeta(m8, g) ? plainTcp4(b, go, gl) : -1;
      if (p < 0) {
        known = j;
        break;
      }
      if (p > gso || 20 + hl + total + p > 0xffff || hdr + total + p > maxFrame) break;
      if (b[go + 46] >>> 2 !== hl || !sameFlow(b, off, go, hl) || seqOf(b, go) !== nextSeq) break;
      const id = (b[go + 18] << 8) | b[go + 19];
      if (idMode !== 2 && id === ((prevId + 1) & 0xffff)) idMode = 1;
      else if (idMode !== 1 && dfSet && id === prevId) idMode = 2;
      else break;
      // checksums are summed only for frames that would merge: the head once it has company
      if (j === i + 1 && !tcpSumOk(v, b, off, len)) break;
      if (!tcpSumOk(v, b, go, gl)) {
        known = j;
        break;
      }
      prevId = id;
      nextSeq = (nextSeq + p) >>> 0;
      total += p;
      lastFlags = b[go + 47];
      j++;
      if (p < gso || lastFlags !== ACK) break;
    }
    if (j - i < 2) {
      hs[w++] = h;
      i++;
      continue;
    }
    const s = pool.allocLarge();
    if (s < 0) {
      // no large slot: the rest goes out as it is
      while (i < n) hs[w++] = hs[i++];
      return w;
    }
    const so = offsets[s];
    b.copyWithin(so, off, off + len);
    let pos = so + len;
    for (let k = i + 1; k < j; k++) {
      const g = hs[k];
      const go = offsets[g];
      const gl = lengths[g];
      b.copyWithin(pos, go + hdr, go + gl);
      pos += gl - hdr;
      pool.free(g);
    }
    const flen = hdr + total;
    lengths[s] = flen;
    pool.inPort[s] = pool.inPort[h];
    pool.free(h);
    const tot = flen - 14;
    b[so + 16] = tot >>> 8;
    b[so + 17] = tot;
    b[so + 24] = 0;
    b[so + 25] = 0;
    const c = checksum(b, so + 14, 20);
    b[so + 24] = c >>> 8;
    b[so + 25] = c;
    b[so + 47] = lastFlags;
    const ps = fold(v.getUint16(so + 26) + v.getUint16(so + 28) + v.getUint16(so + 30) + v.getUint16(so + 32) + 6 + flen - L4);
    b[so + 50] = ps >>> 8;
    b[so + 51] = ps;
    const fi = s * META_BYTES;
    m8[fi] = META_NEEDS_CSUM;
    m8[fi + 1] = GSO_TCPV4;
    const mi = s * META_STRIDE;
    pool.meta[mi + M_HDR_LEN] = hdr;
    pool.meta[mi + M_GSO_SIZE] = gso;
    pool.meta[mi + M_CSUM_START] = L4;
    pool.meta[mi + M_CSUM_OFFSET] = 16;
    hs[w++] = s;
    i = j;
  }
  return w;
}
