/**
 * Conntrack.lookupBulk(): the batch lookup, in a file of its own (the hot
 * loops below must stay in step with Conntrack.find() and TupleIndex).
 *
 * Why it is shaped this way: at 100k flows the index (4 MB) and the flow
 * records (8 MB) miss the caches, and a lookup that waits for its index
 * line and then its record line costs two memory latencies. Over a batch,
 * the work is split into short loops — tag every key; touch every home
 * slot; probe by tag; touch every candidate's record; confirm — so each
 * touch loop has many independent misses in flight at once (V8 emits no
 * prefetch; short, unrolled loops let the out-of-order core run ahead).
 * Measured by bench/nat.ts against the same code in C.
 */
import type { Conntrack } from './conntrack.js';

const EMPTY = -1;
/** flow record: 16 int32 words, word 6 = meta (proto in the low byte) */
const W_META = 6;
/** int32 words per key (conntrack.ts exports it as KEY_STRIDE) */
const STRIDE = 8;

export function lookupBulk(ct: Conntrack, keys: Int32Array, n: number): number {
  const ix = ct.index;
  const idx = ct.idx;
  const rec = ct.rec;
  const mask = ix.mask | 0;
  const shift = ix.shift | 0;
  const k0 = ix.k0 | 0;
  const k1 = ix.k1 | 0;
  const k2 = ix.k2 | 0;
  // (STRIDE, not the exported KEY_STRIDE: V8 reloads and TDZ-checks an
  // exported binding on every use, a module-private const it folds)
  const end = n * STRIDE;
  let touched = 0;
  let hits = 0;
  // 1: tag of every key into word 4
  for (let b = 0; b < end; b += STRIDE) {
    const h = Math.imul(keys[b] ^ k0, 0x9e3779b1) ^ Math.imul(keys[b + 1] ^ k1, 0x85ebca77) ^ Math.imul(keys[b + 2] ^ k2, 0xc2b2ae3d) ^ keys[b + 3]; // prettier-ignore
    keys[b + 4] = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  }
  // 2: touch every home slot; short, unrolled loops keep many misses in flight
  let b2 = 4;
  for (; b2 + 3 * STRIDE < end; b2 += 4 * STRIDE) {
    touched ^=
      idx[((keys[b2] >>> shift) << 1) | 1] ^
      idx[((keys[b2 + STRIDE] >>> shift) << 1) | 1] ^
      idx[((keys[b2 + 2 * STRIDE] >>> shift) << 1) | 1] ^
      idx[((keys[b2 + 3 * STRIDE] >>> shift) << 1) | 1];
  }
  for (; b2 < end; b2 += STRIDE) touched ^= idx[((keys[b2] >>> shift) << 1) | 1];
  // 3: probe by tag; candidate ref into word 4, its slot into word 5
  for (let b = 0; b < end; b += STRIDE) {
    const tag = keys[b + 4];
    let i = tag >>> shift;
    let ref = -1;
    for (;;) {
      const r = idx[(i << 1) | 1];
      if (r === EMPTY) break;
      if (idx[i << 1] === tag) {
        ref = r;
        break;
      }
      i = (i + 1) & mask;
    }
    keys[b + 4] = ref;
    keys[b + 5] = i;
  }
  // 4: touch every candidate's flow record (a miss touches flow 0's)
  let b4 = 4;
  for (; b4 + 3 * STRIDE < end; b4 += 4 * STRIDE) {
    const f0 = keys[b4] >> 1;
    const f1 = keys[b4 + STRIDE] >> 1;
    const f2 = keys[b4 + 2 * STRIDE] >> 1;
    const f3 = keys[b4 + 3 * STRIDE] >> 1;
    touched ^=
      rec[((f0 < 0 ? 0 : f0) << 4) | W_META] ^
      rec[((f1 < 0 ? 0 : f1) << 4) | W_META] ^
      rec[((f2 < 0 ? 0 : f2) << 4) | W_META] ^
      rec[((f3 < 0 ? 0 : f3) << 4) | W_META];
  }
  for (; b4 < end; b4 += STRIDE) {
    const f = keys[b4] >> 1;
    touched ^= rec[((f < 0 ? 0 : f) << 4) | W_META];
  }
  // 5: confirm each candidate against its record
  for (let b = 0; b < end; b += STRIDE) {
    const ref = keys[b + 4];
    if (ref < 0) continue;
    const fb = (ref >> 1) << 4;
    const o = fb + (ref & 1) * 3;
    if (rec[o] === keys[b] && rec[o + 1] === keys[b + 1] && rec[o + 2] === keys[b + 2] && (rec[fb | W_META] & 0xff) === keys[b + 3]) hits++; // prettier-ignore
    else {
      // a tag collision (about 2^-32 a probe): go on probing after it
      const proto = keys[b + 3], s = keys[b], d = keys[b + 1], p = keys[b + 2]; // prettier-ignore
      const slot = ix.probeFrom(ix.hash(proto, s, d, p), keys[b + 5], proto, s, d, p);
      keys[b + 4] = slot < 0 ? -1 : idx[(slot << 1) | 1];
      if (slot >= 0) hits++;
    }
  }
  ct.touched = touched & 0x3fffffff; // a Smi: no heap number per call
  const c = ct.counters;
  c.searched += n;
  c.found += hits;
  return hits;
}
