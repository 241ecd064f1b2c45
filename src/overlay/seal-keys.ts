/**
 * Keys and replay protection of the encrypted overlay (see seal.ts for the
 * wire format): a network's KeyRing (the newest KEYRING_MAX keys, each
 * with its native AES-GCM contexts made once) and the replay windows of
 * (sender, key) pairs, bounded by a ReplayTable.
 */
import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { nativeKey } from './seal-native.js';

export const KEY_LEN = 32;
/** Keys a KeyRing keeps (the newest by activeFrom). */
export const KEYRING_MAX = 3;
/** Sequence numbers a replay window remembers below the highest seen. */
export const REPLAY_WINDOW = 1024;
/** Largest sequence number (sequences are doubles on the hot path). */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;
/** window words: one more than REPLAY_WINDOW/32 so sliding never clears a live bit */
const WORDS = REPLAY_WINDOW / 32 + 1;

/** A fresh random 256-bit key. */
export function randomKey(): Buffer {
  return randomBytes(KEY_LEN);
}

// ───────────────────────────── KeyRing ─────────────────────────────

export interface KeySpec {
  id: number;
  /** 32 bytes */
  key: Uint8Array;
  /** ms; senders start using the key at this time */
  activeFrom: number;
}

export interface RingKey {
  readonly id: number;
  readonly activeFrom: number;
  /** the AES-256 key (a copy of the bytes given to set()) */
  readonly secret: KeyObject;
  /** the addon's key slot (EVP contexts for this key), freed when `owner` is collected */
  readonly slot: number;
  readonly owner: object;
}

export class KeyRing {
  /** newest first (activeFrom descending, then id descending) */
  private keys: readonly RingKey[] = [];

  /** Cold: replace the whole set; only the newest KEYRING_MAX are kept. */
  set(keys: readonly KeySpec[]): void {
    const seen = new Set<number>();
    for (const k of keys) {
      if (!Number.isInteger(k.id) || k.id < 0 || k.id > 0xffffffff) throw new Error(`key id ${k.id} is not a uint32`);
      if (seen.has(k.id)) throw new Error(`duplicate key id ${k.id}`);
      seen.add(k.id);
      if (k.key.length !== KEY_LEN) throw new Error(`key ${k.id}: ${k.key.length} bytes, want ${KEY_LEN}`);
      if (!Number.isFinite(k.activeFrom)) throw new Error(`key ${k.id}: activeFrom must be a finite number`);
    }
    const next = [...keys]
      .sort((a, b) => b.activeFrom - a.activeFrom || b.id - a.id)
      .slice(0, KEYRING_MAX)
      .map((k): RingKey => {
        const secret = createSecretKey(Buffer.from(k.key));
        // the same id and key as before: keep its EVP contexts (they are made once per key)
        const old = this.keys.find((o) => o.id === k.id && o.secret.equals(secret));
        if (old !== undefined) return Object.freeze({ id: k.id, activeFrom: k.activeFrom, secret: old.secret, slot: old.slot, owner: old.owner });
        const owner = {};
        return Object.freeze({ id: k.id, activeFrom: k.activeFrom, secret, slot: nativeKey(k.key, owner), owner });
      });
    this.keys = Object.freeze(next);
  }

  /** The newest key with activeFrom ≤ now, or null. */
  sendKey(now: number): RingKey | null {
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) if (keys[i].activeFrom <= now) return keys[i];
    return null;
  }

  /** The key with this id, or null. Receivers accept any key in the ring (clock skew). */
  get(id: number): RingKey | null {
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) if (keys[i].id === id) return keys[i];
    return null;
  }

  /** Cold: ids held, newest first. */
  ids(): number[] {
    return this.keys.map((k) => k.id);
  }

  get size(): number {
    return this.keys.length;
  }
}

// ─────────────────────────── ReplayWindow ───────────────────────────

/**
 * RFC 6479 anti-replay window: accepts seq when it is above the highest
 * accepted (`top`), or within REPLAY_WINDOW below it and not yet seen.
 * Bit (seq mod 32) of word floor(seq/32) mod 33 marks seq as seen. Sliding
 * up clears the words of the blocks moved into (at most all 33), never a
 * bit still inside the window.
 */
export class ReplayWindow {
  private readonly bits = new Uint32Array(WORDS);
  /** highest accepted sequence number (0: none yet) */
  top = 0;
  /** owner pair and last use, kept by ReplayTable */
  sender = 0;
  keyId = 0;
  lastUsed = 0;

  /** Would seq be accepted? (no change) */
  check(seq: number): boolean {
    if (!(seq >= 1 && seq <= MAX_SEQ)) return false; // also NaN
    if (seq > this.top) return true;
    if (this.top - seq >= REPLAY_WINDOW) return false; // too old
    return (this.bits[Math.floor(seq / 32) % WORDS] & (1 << seq % 32)) === 0;
  }

  /** Mark seq as seen (call only after the tag verified). False if check(seq) fails. */
  accept(seq: number): boolean {
    if (!this.check(seq)) return false;
    if (seq > this.top) {
      const cur = Math.floor(this.top / 32);
      let diff = Math.floor(seq / 32) - cur;
      if (diff > WORDS) diff = WORDS;
      for (let i = 1; i <= diff; i++) this.bits[(cur + i) % WORDS] = 0;
      this.top = seq;
    }
    this.bits[Math.floor(seq / 32) % WORDS] |= 1 << seq % 32;
    return true;
  }

  reset(): void {
    this.bits.fill(0);
    this.top = 0;
  }
}

/**
 * Bounded map (sender id, key id) → ReplayWindow. A window is created only
 * by accept(), i.e. for a frame whose tag verified, so a sender without the
 * key cannot fill the table. When `capacity` windows exist, the least
 * recently used one (by the `now` given to accept) is reset and reused, and
 * `evictions` counts it.
 */
export class ReplayTable {
  readonly capacity: number;
  /** key id → sender id → window */
  private readonly byKey = new Map<number, Map<number, ReplayWindow>>();
  private readonly windows: ReplayWindow[] = [];
  evictions = 0;

  constructor(capacity = 4096) {
    if (!(capacity >= 1)) throw new Error('ReplayTable capacity must be ≥ 1');
    this.capacity = capacity;
  }

  get size(): number {
    return this.windows.length;
  }

  find(sender: number, keyId: number): ReplayWindow | undefined {
    return this.byKey.get(keyId)?.get(sender);
  }

  /** Would (sender, key, seq) be accepted? A pair without a window accepts any valid seq. */
  check(sender: number, keyId: number, seq: number): boolean {
    const w = this.find(sender, keyId);
    if (w !== undefined) return w.check(seq);
    return seq >= 1 && seq <= MAX_SEQ;
  }

  /** Mark seq seen for the pair (creating its window, evicting if full). */
  accept(sender: number, keyId: number, seq: number, now: number): boolean {
    let w = this.find(sender, keyId);
    if (w === undefined) {
      if (!(seq >= 1 && seq <= MAX_SEQ)) return false;
      w = this.create(sender, keyId);
    }
    if (!w.accept(seq)) return false;
    w.lastUsed = now;
    return true;
  }

  private create(sender: number, keyId: number): ReplayWindow {
    let w: ReplayWindow;
    if (this.windows.length < this.capacity) {
      w = new ReplayWindow();
      this.windows.push(w);
    } else {
      // full: evict the least recently used (a scan, only on this rare path)
      w = this.windows[0];
      for (let i = 1; i < this.windows.length; i++) if (this.windows[i].lastUsed < w.lastUsed) w = this.windows[i];
      const senders = this.byKey.get(w.keyId)!;
      senders.delete(w.sender);
      if (senders.size === 0) this.byKey.delete(w.keyId);
      w.reset();
      this.evictions++;
    }
    w.sender = sender;
    w.keyId = keyId;
    let senders = this.byKey.get(keyId);
    if (senders === undefined) this.byKey.set(keyId, (senders = new Map()));
    senders.set(sender, w);
    return w;
  }
}
