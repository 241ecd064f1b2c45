/**
 * TupleIndex — Conntrack's hash index: tuple → ref (flow << 1 | dir).
 *
 * Open addressing with linear probing over one preallocated Int32Array of
 * 8-byte slots (eight to a cache line):
 *   idx[2i]     tag: the key's full 32-bit hash (its top bits are the home
 *               slot, so backward-shift deletion needs no rehash)
 *   idx[2i + 1] ref = flow << 1 | dir; −1 = empty slot
 * The key itself is not copied into the index: it lives in the flow record
 * (`rec`, owned by Conntrack: words dir·3 + 0..2 of record ref >> 1 are
 * src, dst, srcPort << 16 | dstPort; word 6's low byte is the protocol). A
 * tag match is confirmed against the record — the line translate()/seen()
 * read next anyway — so a hit touches two cache lines in all, and the
 * index costs 8 bytes a slot. `slots` is a power of two chosen by the owner
 * (Conntrack: ≥ 4 × flows, two entries a flow, so the load stays ≤ 0.5 and
 * every chain ends soon).
 *
 * The hash is keyed (three 32-bit keys derived from the seed): the three
 * key words are xored with their keys, multiplied by odd constants and xored
 * together with the protocol, then h ^ h >>> 16 is multiplied once more so
 * every input bit reaches the top bits, which pick the slot (multiply-
 * shift). Not a cryptographic PRF, but without the seed the slots of chosen
 * tuples cannot be predicted, and the table is bounded anyway.
 *
 * Deletion is backward-shift (no tombstones): after emptying a slot, every
 * later entry of the chain whose home is not in (hole, j] moves back.
 *
 * Conntrack.find()/lookupBulk() probe `idx` inline with the same code as
 * slotOf(); keep them in step with hash().
 */

const EMPTY = -1;
/** flow record stride (int32 words) and the word holding the protocol */
const REC_WORDS_LOG2 = 4;
const W_META = 6;

/** 32-bit key from a seed (murmur3 finaliser). */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) | 0;
}

export class TupleIndex {
  readonly slots: number;
  readonly mask: number;
  /** 32 − log2(slots): home slot = tag >>> shift */
  readonly shift: number;
  readonly k0: number;
  readonly k1: number;
  readonly k2: number;
  readonly idx: Int32Array;
  /** the owner's flow records, where keys are confirmed */
  readonly rec: Int32Array;
  /** entries held */
  size = 0;

  constructor(slots: number, seed: number, rec: Int32Array) {
    if (slots < 2 || (slots & (slots - 1)) !== 0 || slots > 1 << 26) throw new Error('index slots must be a power of two ≤ 2^26');
    this.slots = slots;
    this.mask = slots - 1;
    this.shift = 32 - Math.log2(slots);
    this.idx = new Int32Array(slots * 2);
    for (let i = 0; i < slots; i++) this.idx[2 * i + 1] = EMPTY;
    this.rec = rec;
    this.k0 = mix(seed ^ 0x243f6a88);
    this.k1 = mix(seed ^ 0x85a308d3);
    this.k2 = mix(seed ^ 0x13198a2e);
  }

  /** Tag (full 32-bit hash, int32) of (proto, s, d, p) — s, d, p as int32. */
  hash(proto: number, s: number, d: number, p: number): number {
    const h = Math.imul(s ^ this.k0, 0x9e3779b1) ^ Math.imul(d ^ this.k1, 0x85ebca77) ^ Math.imul(p ^ this.k2, 0xc2b2ae3d) ^ proto; // prettier-ignore
    return Math.imul(h ^ (h >>> 16), 0x7feb352d);
  }

  /** The flow record behind `ref` holds this key. */
  matches(ref: number, proto: number, s: number, d: number, p: number): boolean {
    const rec = this.rec;
    const b = ((ref >> 1) << REC_WORDS_LOG2) + (ref & 1) * 3;
    return rec[b] === s && rec[b + 1] === d && rec[b + 2] === p && (rec[((ref >> 1) << REC_WORDS_LOG2) | W_META] & 0xff) === proto; // prettier-ignore
  }

  /** ref of the key, or −1. */
  find(proto: number, s: number, d: number, p: number): number {
    const i = this.slotOf(proto, s, d, p);
    return i < 0 ? -1 : this.idx[(i << 1) | 1];
  }

  /** Slot holding the key, or −1. */
  slotOf(proto: number, s: number, d: number, p: number): number {
    return this.probeFrom(this.hash(proto, s, d, p), -1, proto, s, d, p);
  }

  /**
   * Slot holding the key, probing from the slot after `after` (−1: from the
   * home slot of `tag`), or −1. Used by Conntrack when a tag matched but the
   * record did not.
   */
  probeFrom(tag: number, after: number, proto: number, s: number, d: number, p: number): number {
    const idx = this.idx;
    let i = after < 0 ? tag >>> this.shift : (after + 1) & this.mask;
    for (;;) {
      const ref = idx[(i << 1) | 1];
      if (ref === EMPTY) return -1;
      if (idx[i << 1] === tag && this.matches(ref, proto, s, d, p)) return i;
      i = (i + 1) & this.mask;
    }
  }

  /** Add an entry (the key is absent, there is room, and record ref >> 1 already holds it). */
  insert(proto: number, s: number, d: number, p: number, ref: number): void {
    const idx = this.idx;
    const tag = this.hash(proto, s, d, p);
    let i = tag >>> this.shift;
    while (idx[(i << 1) | 1] !== EMPTY) i = (i + 1) & this.mask;
    idx[i << 1] = tag;
    idx[(i << 1) | 1] = ref;
    this.size++;
  }

  /** Remove the entry `ref` of key (proto, s, d, p). */
  remove(proto: number, s: number, d: number, p: number, ref: number): void {
    const idx = this.idx;
    const mask = this.mask;
    const shift = this.shift;
    let i = this.hash(proto, s, d, p) >>> shift;
    for (;;) {
      const r = idx[(i << 1) | 1];
      if (r === EMPTY) throw new Error(`tuple index lost ref ${ref}`);
      if (r === ref) break;
      i = (i + 1) & mask;
    }
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (idx[(j << 1) | 1] === EMPTY) break;
      const home = idx[j << 1] >>> shift;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        idx[hole << 1] = idx[j << 1];
        idx[(hole << 1) | 1] = idx[(j << 1) | 1];
        hole = j;
      }
    }
    idx[(hole << 1) | 1] = EMPTY;
    this.size--;
  }
}
