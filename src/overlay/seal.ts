/**
 * Seal / open — AES-256-GCM protection of VXLAN tunnel payloads for overlay
 * networks created with `-o encrypted` (see docs/overlay-encryption.md).
 *
 * This module handles everything after the outer UDP header; another part
 * builds the outer Ethernet/IPv4/UDP headers. Wire format:
 *
 *   offset  size  field
 *   0       8     VXLAN header: flags 0x0A (0x08 "I" valid VNI | 0x02 usernet
 *                 "encrypted"), 3 zero bytes, 24-bit VNI, 1 zero byte
 *   8       4     key id     (uint32 BE)
 *   12      4     sender id  (uint32 BE, the sending VTEP's IPv4 address)
 *   16      8     sequence   (uint64 BE, from 1 per (sender, key), never reused)
 *   24      n     ciphertext of the inner Ethernet frame (n bytes)
 *   24+n    16    GCM tag
 *
 *   nonce = bytes 12..23 (sender id ‖ sequence), AAD = bytes 0..23.
 *   Overhead over plain VXLAN: 32 bytes (overlay MTU 1450 → 1418).
 *
 * Parts:
 *   KeyRing       the keys of one network (at most the newest 3); which key
 *                 sends now (newest with activeFrom ≤ now), lookup by id.
 *   ReplayWindow  one RFC 6479 sliding window of 1024 sequence numbers
 *                 (bitmap of 33 uint32 words; sequences as doubles < 2^53).
 *   ReplayTable   bounded map (sender id, key id) → ReplayWindow; when full,
 *                 the least recently used window is evicted (`evictions`).
 *   Sealer        seal(pool, h, vni, ring, senderId, now): encrypts frame h in
 *                 place, prepends the 24-byte header into headroom, appends the
 *                 tag into tailroom; sealBatch(pool, handles, count, …,
 *                 results) does the same for many frames (one send key, one
 *                 `now`). One per network: it keeps the sequence counter of
 *                 each key id.
 *   Opener        open(pool, h, ring, now): verifies and decrypts in place,
 *                 leaves offset/length on the inner Ethernet frame;
 *                 openBatch(pool, handles, count, ring, now, results) for many
 *                 frames (each with its own key id). One per network: it owns
 *                 that network's replay windows.
 *
 * Counters: Sealer — txPackets txBytes (sealed frames, bytes after sealing),
 * drops and reasons[SealDrop.*]. Opener — rxPackets rxBytes (opened frames,
 * inner bytes), drops and reasons[OpenResult.*] (reasons[ok] stays 0).
 *
 * Time is injected (`now`, ms): it picks the send key and orders replay
 * windows for eviction. Nothing here reads the clock.
 *
 * Crypto: the seal addon (./seal-native.ts, native/seal.cc) with OpenSSL
 * EVP AES-256-GCM contexts made once per key (when a KeyRing takes the key;
 * a ring given the same id and key again keeps them) and freed when the
 * ring's keys are collected. Key choice, sequence numbers, replay windows
 * and all drop decisions are here, in TS; the addon gets batches of frames
 * that passed every check (at most SCRATCH per call) and writes the header,
 * encrypts, or decrypts and verifies. The single-frame seal()/open() are
 * one-frame batches.
 *
 * Allocation: none per frame (handles pass through preallocated scratch
 * arrays bound to the addon). A frame that fails to open is left as it came
 * (the addon decrypts in place and encrypts back on a bad tag): plaintext
 * is exposed only after the tag verified.
 *
 * Replay in batches: open checks every frame of a batch against the windows
 * before any is decrypted, and marks the sequences seen after the tags
 * verified, in batch order; a frame whose mark then fails (a duplicate
 * inside the batch) is put back as it came and counted as a replay. The
 * result is what opening the frames one by one gives (a batch is never
 * more lenient; it can only differ when marking a frame evicts another
 * pair's window from a full ReplayTable).
 *
 * Safety rules the callers must keep (see the doc for why):
 *   - a key id names one key for ever: the control plane never reissues an id;
 *   - sender ids are unique among the daemons sharing a key;
 *   - a daemon that restarts must not send with a key it used before the
 *     restart (its counters restart at 1): rotate in a fresh key first.
 */
import type { FramePool } from '../dataplane/pool.js';
import { bindSealPool, SCR, SCRATCH, type SealAddon } from './seal-native.js';
import { KeyRing, MAX_SEQ, ReplayTable, type RingKey } from './seal-keys.js';

export { KEY_LEN, KEYRING_MAX, KeyRing, MAX_SEQ, randomKey, REPLAY_WINDOW, ReplayTable, ReplayWindow, type KeySpec, type RingKey } from './seal-keys.js';

/** VXLAN flags byte of an encrypted frame: I (0x08) | encrypted (0x02). */
export const VXLAN_FLAGS_ENCRYPTED = 0x0a;
/** Plain VXLAN header length. */
export const VXLAN_HEADER_LEN = 8;
/** VXLAN header + key id + sender id + sequence. */
export const SEAL_HEADER_LEN = 24;
export const SEAL_TAG_LEN = 16;
/** Bytes added around the inner frame (header + tag). */
export const SEAL_OVERHEAD = SEAL_HEADER_LEN + SEAL_TAG_LEN;
/** Extra bytes over plain VXLAN (16 header + 16 tag). */
export const SEAL_EXTRA_OVER_VXLAN = SEAL_OVERHEAD - VXLAN_HEADER_LEN;
/** Default MTU of an encrypted overlay network (1450 − 32). */
export const ENCRYPTED_OVERLAY_MTU = 1450 - SEAL_EXTRA_OVER_VXLAN;

const ETH_HEADER_LEN = 14;
const TWO32 = 4294967296;
/** openBatch: scratch position → index in the caller's handles */
const BATCH_INDEX = new Uint32Array(SCRATCH);
/** seal()/open(): a batch of one */
const ONE = new Uint32Array(1);
const ONE_RESULT = new Uint8Array(1);

// ───────────────────────────── Sealer ─────────────────────────────

/** Why seal() refused (index into Sealer.reasons). */
export const SealDrop = {
  noKey: 0, // no key with activeFrom ≤ now
  noRoom: 1, // fewer than 24 bytes of headroom or 16 of tailroom in the slot
  runt: 2, // inner frame shorter than an Ethernet header
  seqExhausted: 3, // the key's sequence reached MAX_SEQ (rotate keys)
} as const;
export type SealDropName = keyof typeof SealDrop;
const SEAL_DROP_NAMES = Object.keys(SealDrop) as SealDropName[];

/** Sequence counters kept before pruning ids no longer in the ring. */
const SEQ_TABLE_SOFT_MAX = 64;

export class Sealer {
  /** key id → last sequence number used */
  private readonly seqs = new Map<number, number>();
  txPackets = 0;
  txBytes = 0;
  drops = 0;
  readonly reasons = new Float64Array(SEAL_DROP_NAMES.length);

  /**
   * Seal frame h (the inner Ethernet frame at offsets[h], lengths[h]) in
   * place: header into the 24 bytes before it, ciphertext over it, tag after
   * it; offset −= 24, length += 40. False (frame untouched, reason counted)
   * when there is no send key, no room or the frame is a runt.
   */
  seal(pool: FramePool, h: number, vni: number, keyRing: KeyRing, senderId: number, now: number): boolean {
    ONE[0] = h;
    this.sealBatch(pool, ONE, 1, vni, keyRing, senderId, now, ONE_RESULT);
    return ONE_RESULT[0] === 0;
  }

  /**
   * Seal handles[0..count) as seal() does each, with the send key of `now`
   * and consecutive sequence numbers in handle order. results[i] is 0 when
   * frame i was sealed, else 1 + its SealDrop reason (the frame untouched).
   * Returns the number sealed.
   */
  sealBatch(pool: FramePool, handles: Uint32Array, count: number, vni: number, keyRing: KeyRing, senderId: number, now: number, results: Uint8Array): number {
    const key = keyRing.sendKey(now);
    if (key === null) {
      for (let i = 0; i < count; i++) results[i] = 1 + SealDrop.noKey;
      this.drops += count;
      this.reasons[SealDrop.noKey] += count;
      return 0;
    }
    const addon = bindSealPool(pool);
    const batch = SCR.handles;
    const offsets = pool.offsets;
    const lengths = pool.lengths;
    const last = this.seqs.get(key.id);
    if (last === undefined && this.seqs.size >= SEQ_TABLE_SOFT_MAX) this.prune(keyRing);
    let seq = last ?? 0;
    let k = 0;
    let sealed = 0;
    for (let i = 0; i < count; i++) {
      const h = handles[i];
      const off = offsets[h];
      const len = lengths[h];
      let why = -1;
      if (len < ETH_HEADER_LEN) why = SealDrop.runt;
      else if (off - SEAL_HEADER_LEN < pool.slotStart(h) || off + len + SEAL_TAG_LEN > pool.slotEnd(h)) why = SealDrop.noRoom;
      else if (seq >= MAX_SEQ) why = SealDrop.seqExhausted;
      if (why >= 0) {
        results[i] = 1 + why;
        this.refuse(why);
        continue;
      }
      results[i] = 0;
      seq++;
      this.txBytes += len + SEAL_OVERHEAD;
      batch[k++] = h;
      if (k === SCRATCH) {
        sealed += addon.sealBatch(k, key.slot, key.id, vni >>> 0, senderId >>> 0, seq - k + 1);
        k = 0;
      }
    }
    if (k > 0) sealed += addon.sealBatch(k, key.slot, key.id, vni >>> 0, senderId >>> 0, seq - k + 1);
    if (seq !== (last ?? 0)) this.seqs.set(key.id, seq);
    this.txPackets += sealed;
    return sealed;
  }

  /** Cold: last sequence number used with key id (0: none). */
  lastSeq(keyId: number): number {
    return this.seqs.get(keyId) ?? 0;
  }

  /** Cold: counters as a plain object (non-zero reasons only). */
  snapshot(): { txPackets: number; txBytes: number; drops: number; dropReasons: Record<string, number> } {
    return { txPackets: this.txPackets, txBytes: this.txBytes, drops: this.drops, dropReasons: named(this.reasons, SEAL_DROP_NAMES) };
  }

  private refuse(reason: number): false {
    this.drops++;
    this.reasons[reason]++;
    return false;
  }

  /** Forget counters of ids no longer in the ring (ids are never reissued). */
  private prune(keyRing: KeyRing): void {
    for (const id of [...this.seqs.keys()]) if (keyRing.get(id) === null) this.seqs.delete(id);
  }
}

// ───────────────────────────── Opener ─────────────────────────────

/** open() results; non-zero values are also indexes into Opener.reasons. */
export const OpenResult = {
  ok: 0,
  notEncrypted: 1, // flags byte is not 0x0A (plain VXLAN or garbage)
  unknownKey: 2, // key id not in the ring
  replay: 3, // duplicate, older than the window, or sequence 0 / ≥ 2^53
  badTag: 4, // authentication failed (tampered, wrong key, wrong AAD)
  short: 5, // too short for header + Ethernet header + tag
} as const;
export type OpenResultName = keyof typeof OpenResult;
export type OpenResultCode = (typeof OpenResult)[OpenResultName];
const OPEN_RESULT_NAMES = Object.keys(OpenResult) as OpenResultName[];

export interface OpenerOptions {
  /** (sender, key) replay windows kept (default 4096) */
  maxWindows?: number;
}

export class Opener {
  readonly replay: ReplayTable;
  rxPackets = 0;
  rxBytes = 0;
  drops = 0;
  readonly reasons = new Float64Array(OPEN_RESULT_NAMES.length);

  constructor(opts: OpenerOptions = {}) {
    this.replay = new ReplayTable(opts.maxWindows ?? 4096);
  }

  /**
   * Open frame h (starting at the VXLAN header). On success (0) the frame
   * is the inner Ethernet frame (offset += 24, length −= 40; the header stays
   * readable in the 24 bytes before it). Otherwise a reason code; the frame
   * is not decrypted (the caller frees it).
   */
  open(pool: FramePool, h: number, keyRing: KeyRing, now: number): number {
    ONE[0] = h;
    this.openBatch(pool, ONE, 1, keyRing, now, ONE_RESULT);
    return ONE_RESULT[0];
  }

  /**
   * Open handles[0..count) as open() does each, in handle order (each frame
   * with the key its key id names). results[i] is frame i's OpenResult
   * code. Returns the number opened.
   */
  openBatch(pool: FramePool, handles: Uint32Array, count: number, keyRing: KeyRing, now: number, results: Uint8Array): number {
    const addon = bindSealPool(pool);
    const batch = SCR.handles;
    const slots = SCR.keys;
    const b = pool.bytes;
    const v = pool.view;
    let k = 0;
    let opened = 0;
    for (let i = 0; i < count; i++) {
      const h = handles[i];
      const off = pool.offsets[h];
      const len = pool.lengths[h];
      let rc: OpenResultCode = OpenResult.ok;
      if (len < VXLAN_HEADER_LEN) rc = OpenResult.short;
      else if (b[off] !== VXLAN_FLAGS_ENCRYPTED) rc = OpenResult.notEncrypted;
      else if (len < SEAL_OVERHEAD + ETH_HEADER_LEN) rc = OpenResult.short;
      else {
        const keyId = v.getUint32(off + 8);
        const key = keyRing.get(keyId);
        if (key === null) rc = OpenResult.unknownKey;
        else {
          const hi = v.getUint32(off + 16);
          if (hi > 0x1fffff) rc = OpenResult.replay; // ≥ 2^53: never sent
          else if (!this.replay.check(v.getUint32(off + 12), keyId, hi * TWO32 + v.getUint32(off + 20))) rc = OpenResult.replay;
          else {
            batch[k] = h;
            slots[k] = key.slot;
            BATCH_INDEX[k++] = i;
            if (k === SCRATCH) {
              opened += this.finish(pool, addon, k, now, results);
              k = 0;
            }
            continue;
          }
        }
      }
      results[i] = this.reject(rc);
    }
    if (k > 0) opened += this.finish(pool, addon, k, now, results);
    return opened;
  }

  /** Decrypts the k frames in the scratch arrays, then marks their sequences seen in order. */
  private finish(pool: FramePool, addon: SealAddon, k: number, now: number, results: Uint8Array): number {
    addon.openBatch(k);
    const v = pool.view;
    let opened = 0;
    for (let j = 0; j < k; j++) {
      const i = BATCH_INDEX[j];
      if (SCR.results[j] === 0) {
        results[i] = this.reject(OpenResult.badTag);
        continue;
      }
      const h = SCR.handles[j];
      const hdr = pool.offsets[h] - SEAL_HEADER_LEN; // the header stays in front of the opened frame
      const seq = v.getUint32(hdr + 16) * TWO32 + v.getUint32(hdr + 20);
      if (!this.replay.accept(v.getUint32(hdr + 12), v.getUint32(hdr + 8), seq, now)) {
        addon.unopen(h, SCR.keys[j]); // a duplicate inside this batch: put it back as it came
        results[i] = this.reject(OpenResult.replay);
        continue;
      }
      results[i] = OpenResult.ok;
      this.rxPackets++;
      this.rxBytes += pool.lengths[h];
      opened++;
    }
    return opened;
  }

  /** Cold: counters as a plain object (non-zero reasons only). */
  snapshot(): { rxPackets: number; rxBytes: number; drops: number; dropReasons: Record<string, number>; replayWindows: number; replayEvictions: number } {
    return {
      rxPackets: this.rxPackets,
      rxBytes: this.rxBytes,
      drops: this.drops,
      dropReasons: named(this.reasons, OPEN_RESULT_NAMES),
      replayWindows: this.replay.size,
      replayEvictions: this.replay.evictions,
    };
  }

  private reject(reason: OpenResultCode): number {
    this.drops++;
    this.reasons[reason]++;
    return reason;
  }
}

function named(counts: Float64Array, names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < counts.length; i++) if (counts[i] > 0) out[names[i]] = counts[i];
  return out;
}
