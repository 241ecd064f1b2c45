/**
 * The seal addon (native/seal.cc, node-gyp target `usernet_seal`): AES-256-GCM
 * seal/open of encrypted-overlay frames in place in a FramePool, in
 * batches, with OpenSSL EVP contexts made once per key. Only crypto and
 * header bytes: key choice, sequence numbers, replay windows and drop
 * decisions are in ./seal.ts, which is the only user of this module.
 *
 * Contract:
 * - bindPool(buffer, offsets, lengths, capacity, slotSize, largeBase,
 *   largeSlotSize, handles): the FramePool's geometry (handles ≥ capacity
 *   are large slots, as FramePool.slotStart/slotEnd). Raw pointers are kept
 *   (and references, so the GC keeps the arrays alive); calling it again
 *   rebinds (bindSealPool does so when the pool changes). Never detach a
 *   bound buffer.
 * - bindScratch(handles, keys, results): three arrays of the same length
 *   (SCRATCH) through which batches pass: frame handles, key slots (open),
 *   per-frame results (open). Bound once at load.
 * - addKey(key32) → slot: a key slot holding one encrypt and one decrypt
 *   EVP_CIPHER_CTX (AES-256-GCM, 12-byte IV, key set). dropKey(slot) frees
 *   them (unknown slots ignored); keyCount() counts live slots.
 * - sealBatch(count, slot, keyId, vni, sender, firstSeq) → sealed: frame
 *   handles[i] (an inner Ethernet frame) becomes header ‖ ciphertext ‖ tag
 *   in place with sequence firstSeq + i (offset −= 24, length += 40). Every
 *   frame is checked first (handle in range, 24 bytes of headroom and 16 of
 *   tailroom inside its slot, length > 0), else RangeError before any frame
 *   is touched; sequences must lie in [1, 2^53 − 1].
 * - openBatch(count) → opened: frame handles[i] (starting at its VXLAN
 *   header, length ≥ 40, inside its slot, else RangeError first) is opened
 *   with the key in slot keys[i]. results[i] = 1: the tag verified, the
 *   frame is now the inner frame (offset += 24, length −= 40). results[i] =
 *   0: it did not; the frame is unchanged (decrypted in place, then
 *   encrypted back: GCM's keystream is the same both ways).
 * - unopen(h, slot): undo a successful open of frame h (ciphertext back,
 *   offset and length as before), for a frame the replay check refuses
 *   after it opened (a duplicate inside one batch).
 * Nothing here allocates per frame or creates JS objects.
 *
 * The addon is built by `npm run build` with the main one; if it is
 * missing, loading fails loudly (there is no node:crypto fallback).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FramePool } from '../dataplane/pool.js';

export interface SealAddon {
  bindPool(
    buffer: ArrayBuffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    capacity: number,
    slotSize: number,
    largeBase: number,
    largeSlotSize: number,
    handles: number,
  ): void;
  bindScratch(handles: Uint32Array, keys: Uint32Array, results: Uint8Array): void;
  addKey(key: Uint8Array): number;
  dropKey(slot: number): void;
  keyCount(): number;
  sealBatch(count: number, slot: number, keyId: number, vni: number, sender: number, firstSeq: number): number;
  openBatch(count: number): number;
  unopen(h: number, slot: number): void;
}

/** Frames per native call (batches longer than this are cut into chunks). */
export const SCRATCH = 256;

/** The scratch arrays bound to the addon (see bindScratch); made here, bound when the addon loads. */
export const SCR = {
  handles: new Uint32Array(SCRATCH),
  keys: new Uint32Array(SCRATCH),
  results: new Uint8Array(SCRATCH),
} as const;

let addon: SealAddon | null = null;
let boundPool: FramePool | null = null;

/** Loads build/Release/usernet_seal.node (found from this file's location upwards) and binds the scratch arrays. */
export function loadSealNative(): SealAddon {
  if (addon) return addon;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'build', 'Release', 'usernet_seal.node');
    if (existsSync(candidate)) {
      const require = createRequire(import.meta.url);
      const a = require(candidate) as SealAddon;
      a.bindScratch(SCR.handles, SCR.keys, SCR.results);
      addon = a;
      return a;
    }
    dir = dirname(dir);
  }
  throw new Error('seal addon (usernet_seal.node) not built: run `npm run build` (node-gyp) first');
}

/** Binds pool to the addon unless it is the one bound already (a pointer compare on the hot path). */
export function bindSealPool(pool: FramePool): SealAddon {
  const a = addon ?? loadSealNative();
  if (boundPool !== pool) {
    a.bindPool(pool.buffer, pool.offsets, pool.lengths, pool.capacity, pool.slotSize, pool.largeBase, pool.largeSlotSize, pool.handles);
    boundPool = pool;
  }
  return a;
}

// Key slots are freed when the object owning them is collected.
const keyOwners = new FinalizationRegistry<number>((slot) => addon?.dropKey(slot));

/** Cold: a native key slot for key (32 bytes), freed when `owner` is garbage-collected. */
export function nativeKey(key: Uint8Array, owner: object): number {
  const slot = loadSealNative().addKey(key);
  keyOwners.register(owner, slot);
  return slot;
}
