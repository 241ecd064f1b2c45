import { createDecipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import {
  ENCRYPTED_OVERLAY_MTU,
  KeyRing,
  MAX_SEQ,
  OpenResult,
  Opener,
  REPLAY_WINDOW,
  ReplayTable,
  ReplayWindow,
  SEAL_OVERHEAD,
  SealDrop,
  Sealer,
  randomKey,
} from './seal.js';

const SENDER = 0x0a000001; // 10.0.0.1
const VNI = 0x001234;
const K1 = Buffer.alloc(32, 0x11);
const K2 = Buffer.alloc(32, 0x22);
const K3 = Buffer.alloc(32, 0x33);
const K4 = Buffer.alloc(32, 0x44);

/** an inner Ethernet frame: dst, src, type 0x0800, recognisable payload */
function innerFrame(payloadLen = 86, tag = 'usernet-secret-payload'): Uint8Array {
  const f = new Uint8Array(14 + payloadLen);
  f.set([0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00]);
  const text = Buffer.from(tag);
  for (let i = 0; i < payloadLen; i++) f[14 + i] = text[i % text.length];
  return f;
}

function ring(...keys: { id: number; key: Buffer; activeFrom: number }[]): KeyRing {
  const r = new KeyRing();
  r.set(keys);
  return r;
}

/** seal a fresh copy of `inner` and return the sealed bytes (the frame is freed) */
function sealBytes(pool: FramePool, sealer: Sealer, keys: KeyRing, inner: Uint8Array, now = 0, vni = VNI, sender = SENDER): Uint8Array {
  const h = pool.fromBytes(inner);
  expect(sealer.seal(pool, h, vni, keys, sender, now)).toBe(true);
  const out = pool.toBytes(h);
  pool.free(h);
  return out;
}

/** open a copy of `sealed`; returns the result code and the frame's bytes afterwards */
function openBytes(pool: FramePool, opener: Opener, keys: KeyRing, sealed: Uint8Array, now = 0): { rc: number; bytes: Uint8Array } {
  const h = pool.fromBytes(sealed);
  const rc = opener.open(pool, h, keys, now);
  const bytes = pool.toBytes(h);
  pool.free(h);
  return { rc, bytes };
}

function seqOf(sealed: Uint8Array): number {
  const v = new DataView(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  return v.getUint32(16) * 2 ** 32 + v.getUint32(20);
}

describe('seal / open', () => {
  it('round-trips in place on a real FramePool', () => {
    const pool = new FramePool({ capacity: 8 });
    const keys = ring({ id: 7, key: K1, activeFrom: 0 });
    const sealer = new Sealer();
    const opener = new Opener();
    const inner = innerFrame(1418 - 0); // an MTU-sized inner frame (14 + 1418)
    const h = pool.fromBytes(inner);
    const off0 = pool.offsets[h];

    expect(sealer.seal(pool, h, VNI, keys, SENDER, 1000)).toBe(true);
    expect(pool.offsets[h]).toBe(off0 - 24);
    expect(pool.lengths[h]).toBe(inner.length + SEAL_OVERHEAD);
    expect(sealer.txPackets).toBe(1);

    expect(opener.open(pool, h, keys, 1000)).toBe(OpenResult.ok);
    expect(pool.offsets[h]).toBe(off0);
    expect(pool.lengths[h]).toBe(inner.length);
    expect(pool.toBytes(h)).toEqual(inner);
    expect(opener.rxPackets).toBe(1);
    expect(opener.rxBytes).toBe(inner.length);
    expect(opener.drops).toBe(0);
    pool.free(h);
    expect(pool.inUse).toBe(0);
    expect(ENCRYPTED_OVERLAY_MTU).toBe(1418);
  });

  it('writes the header exactly as documented', () => {
    const pool = new FramePool({ capacity: 4 });
    const keys = ring({ id: 0xdeadbeef, key: K1, activeFrom: 0 });
    const sealer = new Sealer();
    const inner = innerFrame(50);
    const s1 = sealBytes(pool, sealer, keys, inner, 0, 0xabcdef, 0xc0a80102);
    const s2 = sealBytes(pool, sealer, keys, inner, 0, 0xabcdef, 0xc0a80102);
    const hex = (u: Uint8Array, a: number, b: number) => Buffer.from(u.subarray(a, b)).toString('hex');
    // VXLAN: flags 0x0A, 3 reserved, VNI, 1 reserved
    expect(hex(s1, 0, 8)).toBe('0a000000abcdef00');
    expect(hex(s1, 8, 12)).toBe('deadbeef'); // key id
    expect(hex(s1, 12, 16)).toBe('c0a80102'); // sender id (192.168.1.2)
    expect(hex(s1, 16, 24)).toBe('0000000000000001'); // first sequence is 1
    expect(hex(s2, 16, 24)).toBe('0000000000000002');
    expect(s1.length).toBe(24 + inner.length + 16);
    expect(sealer.lastSeq(0xdeadbeef)).toBe(2);
  });

  it('is the documented format: node:crypto decrypts it independently', () => {
    const pool = new FramePool({ capacity: 4 });
    const key = randomKey();
    expect(key.length).toBe(32);
    const keys = ring({ id: 3, key, activeFrom: 0 });
    const sealer = new Sealer();
    const inner = innerFrame(200);
    sealBytes(pool, sealer, keys, inner); // seq 1
    const sealed = sealBytes(pool, sealer, keys, inner); // seq 2
    const n = inner.length;

    const nonce = Buffer.alloc(12);
    nonce.writeUInt32BE(SENDER, 0);
    nonce.writeBigUInt64BE(2n, 4);
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
    d.setAAD(Buffer.from(sealed.subarray(0, 24)));
    d.setAuthTag(Buffer.from(sealed.subarray(24 + n, 24 + n + 16)));
    const pt = Buffer.concat([d.update(Buffer.from(sealed.subarray(24, 24 + n))), d.final()]);
    expect(new Uint8Array(pt)).toEqual(inner);
  });

  it('leaves no plaintext bytes of the inner frame in the sealed output', () => {
    const pool = new FramePool({ capacity: 4 });
    const keys = ring({ id: 1, key: K1, activeFrom: 0 });
    const inner = innerFrame(400, 'TOP-SECRET:0123456789');
    const sealed = Buffer.from(sealBytes(pool, new Sealer(), keys, inner));
    const body = sealed.subarray(24); // ciphertext + tag
    // no 6-byte run of the inner frame (headers or payload) survives
    for (let i = 0; i + 6 <= inner.length; i++) expect(body.indexOf(Buffer.from(inner.subarray(i, i + 6)))).toBe(-1);
    expect(sealed.indexOf('TOP-SECRET')).toBe(-1);
  });

  it('rejects a flipped ciphertext bit, a flipped AAD bit and a wrong key, without accepting the frame', () => {
    const pool = new FramePool({ capacity: 4 });
    const keys = ring({ id: 1, key: K1, activeFrom: 0 });
    const opener = new Opener();
    const inner = innerFrame(60);
    const sealed = sealBytes(pool, new Sealer(), keys, inner);

    const ct = sealed.slice();
    ct[24 + 20] ^= 0x01;
    const r1 = openBytes(pool, opener, keys, ct);
    expect(r1.rc).toBe(OpenResult.badTag);
    expect(r1.bytes).toEqual(ct); // not decrypted, offset/length unchanged

    const vni = sealed.slice();
    vni[6] ^= 0x01; // VNI low bit (AAD)
    expect(openBytes(pool, opener, keys, vni).rc).toBe(OpenResult.badTag);

    const tag = sealed.slice();
    tag[tag.length - 1] ^= 0x80;
    expect(openBytes(pool, opener, keys, tag).rc).toBe(OpenResult.badTag);

    const seq = sealed.slice();
    seq[23] ^= 0x04; // sequence (AAD and nonce)
    expect(openBytes(pool, opener, keys, seq).rc).toBe(OpenResult.badTag);

    const wrong = ring({ id: 1, key: K2, activeFrom: 0 }); // same id, other key
    expect(openBytes(pool, opener, wrong, sealed).rc).toBe(OpenResult.badTag);
    expect(openBytes(pool, opener, ring({ id: 2, key: K1, activeFrom: 0 }), sealed).rc).toBe(OpenResult.unknownKey);

    expect(opener.reasons[OpenResult.badTag]).toBe(5);
    expect(opener.reasons[OpenResult.unknownKey]).toBe(1);
    expect(opener.rxPackets).toBe(0);
    expect(opener.replay.size).toBe(0); // nothing accepted: no window made

    // the genuine frame (same sequence) still opens: the forgeries marked nothing
    const ok = openBytes(pool, opener, keys, sealed);
    expect(ok.rc).toBe(OpenResult.ok);
    expect(ok.bytes).toEqual(inner);
    expect(opener.drops).toBe(6);
    expect(opener.snapshot().dropReasons).toEqual({ unknownKey: 1, badTag: 5 });
    expect(pool.inUse).toBe(0);
  });

  it('rejects replays through the Opener, accepts reordering within the window', () => {
    const pool = new FramePool({ capacity: 4 });
    const keys = ring({ id: 1, key: K1, activeFrom: 0 });
    const sealer = new Sealer();
    const opener = new Opener();
    const frames = [1, 2, 3, 4, 5].map(() => sealBytes(pool, sealer, keys, innerFrame(30)));
    for (const i of [4, 2, 3, 0, 1]) expect(openBytes(pool, opener, keys, frames[i]).rc).toBe(OpenResult.ok);
    expect(openBytes(pool, opener, keys, frames[2]).rc).toBe(OpenResult.replay);
    expect(openBytes(pool, opener, keys, frames[4]).rc).toBe(OpenResult.replay);
    expect(opener.reasons[OpenResult.replay]).toBe(2);

    // another sender with the same key has its own window
    const other = sealBytes(pool, new Sealer(), keys, innerFrame(30), 0, VNI, 0x0a000002);
    expect(seqOf(other)).toBe(1);
    expect(openBytes(pool, opener, keys, other).rc).toBe(OpenResult.ok);
  });

  it('classifies plain VXLAN and short frames', () => {
    const pool = new FramePool({ capacity: 4 });
    const keys = ring({ id: 1, key: K1, activeFrom: 0 });
    const opener = new Opener();
    const plain = new Uint8Array(8 + 60);
    plain.set([0x08, 0, 0, 0, 0x00, 0x12, 0x34, 0]);
    expect(openBytes(pool, opener, keys, plain).rc).toBe(OpenResult.notEncrypted);
    expect(openBytes(pool, opener, keys, new Uint8Array([0x0a, 0, 0])).rc).toBe(OpenResult.short);
    const tiny = new Uint8Array(24 + 16 + 13);
    tiny[0] = 0x0a;
    expect(openBytes(pool, opener, keys, tiny).rc).toBe(OpenResult.short);
    const bigSeq = sealBytes(pool, new Sealer(), keys, innerFrame(20));
    bigSeq[16] = 0x00;
    bigSeq[17] = 0x20; // hi word 0x00200000: sequence ≥ 2^53
    expect(openBytes(pool, opener, keys, bigSeq).rc).toBe(OpenResult.replay);
    expect(opener.snapshot().dropReasons).toEqual({ notEncrypted: 1, short: 2, replay: 1 });
  });

  it('refuses to seal without a key, headroom or tailroom and leaves the frame untouched', () => {
    const pool = new FramePool({ capacity: 4 });
    const sealer = new Sealer();
    const inner = innerFrame(40);

    const h = pool.fromBytes(inner);
    expect(sealer.seal(pool, h, VNI, new KeyRing(), SENDER, 0)).toBe(false);
    const future = ring({ id: 1, key: K1, activeFrom: 5000 });
    expect(sealer.seal(pool, h, VNI, future, SENDER, 4999)).toBe(false);
    expect(pool.toBytes(h)).toEqual(inner);

    const keys = ring({ id: 1, key: K1, activeFrom: 0 });
    expect(pool.prepend(h, pool.headroom - 23)).toBe(true); // 23 bytes of headroom left
    const before = pool.toBytes(h);
    const off = pool.offsets[h];
    expect(sealer.seal(pool, h, VNI, keys, SENDER, 0)).toBe(false);
    expect(pool.offsets[h]).toBe(off);
    expect(pool.toBytes(h)).toEqual(before);
    pool.free(h);

    const full = pool.fromBytes(new Uint8Array(pool.maxFrame - 15).fill(7)); // 15 bytes of tailroom
    expect(sealer.seal(pool, full, VNI, keys, SENDER, 0)).toBe(false);
    pool.lengths[full] -= 1; // now exactly 16
    expect(sealer.seal(pool, full, VNI, keys, SENDER, 0)).toBe(true);
    pool.free(full);

    const runt = pool.fromBytes(new Uint8Array(13));
    expect(sealer.seal(pool, runt, VNI, keys, SENDER, 0)).toBe(false);
    pool.free(runt);

    expect(sealer.reasons[SealDrop.noKey]).toBe(2);
    expect(sealer.reasons[SealDrop.noRoom]).toBe(2);
    expect(sealer.reasons[SealDrop.runt]).toBe(1);
    expect(sealer.snapshot()).toMatchObject({ txPackets: 1, drops: 5 });
    expect(sealer.lastSeq(1)).toBe(1); // refusals burn no sequence number
    expect(pool.inUse).toBe(0);
  });
});

describe('key rotation', () => {
  it('sends with the newest active key, not a future one, and keeps a counter per key', () => {
    const keys = ring({ id: 1, key: K1, activeFrom: 0 }, { id: 2, key: K2, activeFrom: 1000 }, { id: 3, key: K3, activeFrom: 5000 });
    expect(keys.sendKey(-1)).toBeNull();
    expect(keys.sendKey(999)!.id).toBe(1);
    expect(keys.sendKey(1000)!.id).toBe(2);
    expect(keys.sendKey(4999)!.id).toBe(2);
    expect(keys.sendKey(5000)!.id).toBe(3);

    const pool = new FramePool({ capacity: 4 });
    const sealer = new Sealer();
    const a = sealBytes(pool, sealer, keys, innerFrame(), 500);
    const b = sealBytes(pool, sealer, keys, innerFrame(), 500);
    const c = sealBytes(pool, sealer, keys, innerFrame(), 2000);
    const view = (u: Uint8Array) => new DataView(u.buffer, u.byteOffset);
    expect([view(a).getUint32(8), seqOf(a)]).toEqual([1, 1]);
    expect([view(b).getUint32(8), seqOf(b)]).toEqual([1, 2]);
    expect([view(c).getUint32(8), seqOf(c)]).toEqual([2, 1]); // new key starts at 1
  });

  it('opens frames of the previous key while it is in the ring, and not after', () => {
    const pool = new FramePool({ capacity: 4 });
    const sender = new KeyRing();
    const receiver = new KeyRing();
    const sealer = new Sealer();
    const opener = new Opener();
    const both = (k: { id: number; key: Buffer; activeFrom: number }[]) => {
      sender.set(k);
      receiver.set(k);
    };
    both([{ id: 1, key: K1, activeFrom: 0 }]);
    const old = sealBytes(pool, sealer, sender, innerFrame(), 100);
    const old2 = sealBytes(pool, sealer, sender, innerFrame(), 100);

    both([{ id: 1, key: K1, activeFrom: 0 }, { id: 2, key: K2, activeFrom: 1000 }]);
    const early = sealBytes(pool, sealer, sender, innerFrame(), 999);
    expect(new DataView(early.buffer).getUint32(8)).toBe(1); // future key not used yet
    const fresh = sealBytes(pool, sealer, sender, innerFrame(), 1000);
    expect(new DataView(fresh.buffer).getUint32(8)).toBe(2);

    // in flight under the old key: still opens; the new key too
    expect(openBytes(pool, opener, receiver, old, 1001).rc).toBe(OpenResult.ok);
    expect(openBytes(pool, opener, receiver, fresh, 1001).rc).toBe(OpenResult.ok);
    // a receiver whose clock is behind still accepts the new key
    expect(openBytes(pool, opener, receiver, early, 10).rc).toBe(OpenResult.ok);

    // ring keeps the newest 3: key 1 falls out after two more rotations
    both([
      { id: 1, key: K1, activeFrom: 0 },
      { id: 2, key: K2, activeFrom: 1000 },
      { id: 3, key: K3, activeFrom: 2000 },
      { id: 4, key: K4, activeFrom: 3000 },
    ]);
    expect(receiver.ids()).toEqual([4, 3, 2]);
    expect(receiver.get(1)).toBeNull();
    expect(openBytes(pool, opener, receiver, old2, 3001).rc).toBe(OpenResult.unknownKey);
    expect(pool.inUse).toBe(0);
  });

  it('validates keys', () => {
    const r = new KeyRing();
    expect(() => r.set([{ id: 1, key: Buffer.alloc(16), activeFrom: 0 }])).toThrow(/32/);
    expect(() => r.set([{ id: -1, key: K1, activeFrom: 0 }])).toThrow();
    expect(() => r.set([{ id: 1, key: K1, activeFrom: 0 }, { id: 1, key: K2, activeFrom: 5 }])).toThrow(/duplicate/);
    expect(r.size).toBe(0);
  });

  it('copies key bytes: later changes to the caller’s buffer do not affect the ring', () => {
    const pool = new FramePool({ capacity: 4 });
    const raw = Buffer.from(K1);
    const keys = ring({ id: 1, key: raw, activeFrom: 0 });
    const sealed = sealBytes(pool, new Sealer(), keys, innerFrame());
    raw.fill(0);
    expect(openBytes(pool, new Opener(), ring({ id: 1, key: K1, activeFrom: 0 }), sealed).rc).toBe(OpenResult.ok);
  });
});

describe('ReplayWindow', () => {
  it('accepts in order and out of order within the window, rejects duplicates', () => {
    const w = new ReplayWindow();
    expect(w.check(0)).toBe(false);
    expect(w.check(NaN)).toBe(false);
    expect(w.check(MAX_SEQ + 1)).toBe(false);
    for (const s of [1, 2, 3, 10, 5, 4, 9]) expect(w.accept(s)).toBe(true);
    for (const s of [1, 2, 3, 4, 5, 9, 10]) {
      expect(w.check(s)).toBe(false);
      expect(w.accept(s)).toBe(false);
    }
    for (const s of [6, 7, 8]) expect(w.check(s)).toBe(true);
    expect(w.top).toBe(10);
  });

  it('rejects sequences REPLAY_WINDOW or more below the top', () => {
    const w = new ReplayWindow();
    expect(w.accept(5000)).toBe(true);
    expect(w.check(5000 - REPLAY_WINDOW + 1)).toBe(true); // oldest still inside
    expect(w.check(5000 - REPLAY_WINDOW)).toBe(false); // too old
    expect(w.accept(5000 - REPLAY_WINDOW + 1)).toBe(true);
    expect(w.accept(5000 - REPLAY_WINDOW + 1)).toBe(false);
    expect(w.accept(1)).toBe(false);
  });

  it('slides across word boundaries without losing bits inside the window', () => {
    const w = new ReplayWindow();
    const seen = new Set<number>();
    // mark every third sequence, stepping the top across many 32-bit words
    for (let s = 1; s <= 5000; s += 3) {
      expect(w.accept(s)).toBe(true);
      seen.add(s);
      if (s % 301 === 0 || s === 31 || s === 32 || s === 33) {
        for (let q = Math.max(1, s - REPLAY_WINDOW - 40); q <= s + 40; q++) {
          const inWindow = q > s - REPLAY_WINDOW;
          expect(w.check(q), `top ${s} q ${q}`).toBe(q > s || (inWindow && !seen.has(q)));
        }
      }
    }
    // the words at and around the boundaries: 31|32, 63|64
    const v = new ReplayWindow();
    for (const s of [31, 32, 63, 64, 65]) expect(v.accept(s)).toBe(true);
    for (const s of [31, 32, 63, 64, 65]) expect(v.check(s)).toBe(false);
    for (const s of [30, 33, 62, 66]) expect(v.check(s)).toBe(true);
  });

  it('matches a reference model on random traffic', () => {
    let x = 12345;
    const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const w = new ReplayWindow();
    const seen = new Set<number>();
    let top = 0;
    for (let i = 0; i < 20000; i++) {
      const r = rnd();
      const s = r < 0.05 ? top + 1 + Math.floor(rnd() * 3000) : Math.max(1, top + 50 - Math.floor(rnd() * 1200));
      const want = s > top || (top - s < REPLAY_WINDOW && !seen.has(s));
      expect(w.check(s)).toBe(want);
      expect(w.accept(s)).toBe(want);
      if (want) {
        seen.add(s);
        if (s > top) top = s;
      }
    }
  });

  it('handles big jumps (clears the whole bitmap) and large sequences', () => {
    const w = new ReplayWindow();
    for (let s = 1; s <= 1024; s++) w.accept(s);
    const big = 2 ** 40 + 7;
    expect(w.accept(big)).toBe(true);
    for (let q = big - REPLAY_WINDOW + 1; q < big; q++) expect(w.check(q)).toBe(true); // none left over
    expect(w.check(big)).toBe(false);
    expect(w.check(1024)).toBe(false);
    // 33 words ahead: exactly one full turn of the ring
    const t = big + 33 * 32;
    expect(w.accept(t)).toBe(true);
    expect(w.check(big)).toBe(false); // too old now
    expect(w.check(t - 1)).toBe(true);
    expect(w.accept(MAX_SEQ)).toBe(true);
    expect(w.check(MAX_SEQ)).toBe(false);
    expect(w.check(MAX_SEQ - 1)).toBe(true);
  });
});

describe('ReplayTable', () => {
  it('keeps one window per (sender, key) and creates windows only on accept', () => {
    const t = new ReplayTable(8);
    expect(t.check(1, 1, 5)).toBe(true);
    expect(t.size).toBe(0);
    expect(t.accept(1, 1, 5, 0)).toBe(true);
    expect(t.accept(1, 2, 5, 0)).toBe(true); // other key
    expect(t.accept(2, 1, 5, 0)).toBe(true); // other sender
    expect(t.accept(1, 1, 5, 0)).toBe(false);
    expect(t.check(1, 1, 5)).toBe(false);
    expect(t.size).toBe(3);
  });

  it('evicts the least recently used window when full and counts it', () => {
    const t = new ReplayTable(2);
    t.accept(1, 1, 10, 100);
    t.accept(2, 1, 10, 200);
    t.accept(1, 1, 11, 300); // sender 1 used again: sender 2 is now the oldest
    t.accept(3, 1, 10, 400);
    expect(t.evictions).toBe(1);
    expect(t.size).toBe(2);
    expect(t.find(2, 1)).toBeUndefined();
    expect(t.check(1, 1, 11)).toBe(false); // sender 1 kept its window
    expect(t.check(2, 1, 10)).toBe(true); // forgotten (the cost of eviction)
  });

  it('bounds the Opener’s windows', () => {
    const pool = new FramePool({ capacity: 4 });
    const keys = ring({ id: 1, key: K1, activeFrom: 0 });
    const opener = new Opener({ maxWindows: 2 });
    for (let s = 1; s <= 3; s++) {
      const f = sealBytes(pool, new Sealer(), keys, innerFrame(), 0, VNI, 0x0a000000 + s);
      expect(openBytes(pool, opener, keys, f, s).rc).toBe(OpenResult.ok);
    }
    expect(opener.snapshot()).toMatchObject({ rxPackets: 3, replayWindows: 2, replayEvictions: 1 });
  });
});
