import { createCipheriv, createDecipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { KeyRing, OpenResult, Opener, SEAL_HEADER_LEN, SEAL_OVERHEAD, SEAL_TAG_LEN, SealDrop, Sealer, randomKey } from './seal.js';
import { loadSealNative } from './seal-native.js';

const SENDER = 0x0a000001;
const VNI = 0x00abcd;

/** fast byte comparison (vitest's deep equality is slow on 300 × 1.4 kB) */
const hex = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');

function ring(...keys: { id: number; key: Uint8Array; activeFrom: number }[]): KeyRing {
  const r = new KeyRing();
  r.set(keys);
  return r;
}

/** inner Ethernet frame i: its length and bytes depend on i */
function inner(i: number, payload = 1400): Uint8Array {
  const f = new Uint8Array(14 + payload - (i % 7));
  f.set([0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00]);
  for (let j = 14; j < f.length; j++) f[j] = (i * 31 + j * 7) & 0xff;
  return f;
}

/** the documented format, built with node:crypto only */
function nodeSeal(key: Uint8Array, keyId: number, sender: number, seq: number, vni: number, pt: Uint8Array): Uint8Array {
  const hdr = Buffer.alloc(SEAL_HEADER_LEN);
  hdr.set([0x0a, 0, 0, 0, (vni >>> 16) & 0xff, (vni >>> 8) & 0xff, vni & 0xff, 0]);
  hdr.writeUInt32BE(keyId, 8);
  hdr.writeUInt32BE(sender, 12);
  hdr.writeBigUInt64BE(BigInt(seq), 16);
  const c = createCipheriv('aes-256-gcm', key, hdr.subarray(12), { authTagLength: SEAL_TAG_LEN });
  c.setAAD(hdr);
  const ct = Buffer.concat([c.update(pt), c.final()]);
  return new Uint8Array(Buffer.concat([hdr, ct, c.getAuthTag()]));
}

function nodeOpen(key: Uint8Array, sealed: Uint8Array): Uint8Array {
  const n = sealed.length - SEAL_OVERHEAD;
  const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(12, 24), { authTagLength: SEAL_TAG_LEN });
  d.setAAD(sealed.subarray(0, 24));
  d.setAuthTag(sealed.subarray(24 + n));
  return new Uint8Array(Buffer.concat([d.update(sealed.subarray(24, 24 + n)), d.final()]));
}

function load(pool: FramePool, frames: Uint8Array[]): Uint32Array {
  const hs = new Uint32Array(frames.length);
  frames.forEach((f, i) => {
    hs[i] = pool.fromBytes(f);
    expect(hs[i]).toBeGreaterThanOrEqual(0);
  });
  return hs;
}

describe('sealBatch / openBatch (native EVP)', () => {
  it('seals a batch of 300 frames that node:crypto opens, in sequence order, with the documented header', () => {
    const pool = new FramePool({ capacity: 320 });
    const key = randomKey();
    const keys = ring({ id: 9, key, activeFrom: 0 });
    const sealer = new Sealer();
    const frames = Array.from({ length: 300 }, (_, i) => inner(i));
    const hs = load(pool, frames);
    const results = new Uint8Array(300).fill(77);
    expect(sealer.sealBatch(pool, hs, 300, VNI, keys, SENDER, 0, results)).toBe(300);
    expect([...results].every((r) => r === 0)).toBe(true);
    for (let i = 0; i < 300; i++) {
      const sealed = pool.toBytes(hs[i]);
      expect(sealed.length).toBe(frames[i].length + SEAL_OVERHEAD);
      const v = new DataView(sealed.buffer);
      expect(Buffer.from(sealed.subarray(0, 8)).toString('hex')).toBe('0a00000000abcd00');
      expect([v.getUint32(8), v.getUint32(12), v.getUint32(16), v.getUint32(20)]).toEqual([9, SENDER, 0, i + 1]);
      expect(hex(nodeOpen(key, sealed))).toBe(hex(frames[i]));
      pool.free(hs[i]);
    }
    expect(sealer.lastSeq(9)).toBe(300);
    expect(sealer.snapshot()).toMatchObject({ txPackets: 300, drops: 0 });
    expect(pool.inUse).toBe(0);
  });

  it('opens a batch of 300 frames sealed by node:crypto (two senders, out of order) and leaves them in place', () => {
    const pool = new FramePool({ capacity: 320 });
    const key = randomKey();
    const keys = ring({ id: 4, key, activeFrom: 0 });
    const frames = Array.from({ length: 300 }, (_, i) => inner(i, 200 + i));
    // sender A sends seq 1..150, sender B 1..150; delivered interleaved, each half reversed in pairs
    const sealed = frames.map((f, i) => nodeSeal(key, 4, i % 2 ? 0x0a000002 : SENDER, (i >> 1) + 1, VNI, f));
    const order = Array.from({ length: 300 }, (_, i) => (i % 4 === 0 ? i + 2 : i % 4 === 2 ? i - 2 : i));
    const hs = load(pool, order.map((i) => sealed[i]));
    const offs = Array.from(hs, (h) => pool.offsets[h]);
    const opener = new Opener();
    const results = new Uint8Array(300).fill(77);
    expect(opener.openBatch(pool, hs, 300, keys, 5, results)).toBe(300);
    for (let j = 0; j < 300; j++) {
      expect(results[j]).toBe(OpenResult.ok);
      expect(pool.offsets[hs[j]]).toBe(offs[j] + SEAL_HEADER_LEN);
      expect(hex(pool.toBytes(hs[j]))).toBe(hex(frames[order[j]]));
      pool.free(hs[j]);
    }
    expect(opener.snapshot()).toMatchObject({ rxPackets: 300, drops: 0, replayWindows: 2 });
  });

  it('refuses a tampered tag or ciphertext inside a batch, leaves those frames as they came and marks nothing', () => {
    const pool = new FramePool({ capacity: 16 });
    const key = randomKey();
    const keys = ring({ id: 1, key, activeFrom: 0 });
    const frames = Array.from({ length: 6 }, (_, i) => inner(i, 100));
    const sealed = frames.map((f, i) => nodeSeal(key, 1, SENDER, i + 1, VNI, f));
    const bad = sealed.map((s) => s.slice());
    bad[1][bad[1].length - 1] ^= 0x01; // tag
    bad[3][30] ^= 0x80; // ciphertext
    bad[4][5] ^= 0x01; // VNI (AAD)
    const hs = load(pool, bad);
    const opener = new Opener();
    const results = new Uint8Array(6);
    expect(opener.openBatch(pool, hs, 6, keys, 0, results)).toBe(3);
    expect([...results]).toEqual([0, OpenResult.badTag, 0, OpenResult.badTag, OpenResult.badTag, 0]);
    for (const j of [1, 3, 4]) expect(hex(pool.toBytes(hs[j]))).toBe(hex(bad[j])); // ciphertext back, offset/length unchanged
    for (const j of [0, 2, 5]) expect(hex(pool.toBytes(hs[j]))).toBe(hex(frames[j]));
    hs.forEach((h) => pool.free(h));
    // the genuine frames with the forged sequences still open: the forgeries marked nothing
    const again = load(pool, [sealed[1], sealed[3], sealed[4], sealed[0]]);
    expect(opener.openBatch(pool, again, 4, keys, 0, results)).toBe(3);
    expect([...results.subarray(0, 4)]).toEqual([0, 0, 0, OpenResult.replay]);
    expect(hex(pool.toBytes(again[3]))).toBe(hex(sealed[0]));
    again.forEach((h) => pool.free(h));
    expect(opener.snapshot().dropReasons).toEqual({ badTag: 3, replay: 1 });
  });

  it('opens a batch that crosses a key rotation (old and new key interleaved) and refuses a duplicate inside the batch', () => {
    const pool = new FramePool({ capacity: 16 });
    const k1 = randomKey();
    const k2 = randomKey();
    const sendRing = ring({ id: 1, key: k1, activeFrom: 0 });
    const recvRing = ring({ id: 1, key: k1, activeFrom: 0 }, { id: 2, key: k2, activeFrom: 1000 });
    const sealer = new Sealer();
    const frames = Array.from({ length: 8 }, (_, i) => inner(i, 64));
    const seal = (i: number, now: number) => {
      const h = pool.fromBytes(frames[i]);
      expect(sealer.seal(pool, h, VNI, sendRing, SENDER, now)).toBe(true);
      const out = pool.toBytes(h);
      pool.free(h);
      return out;
    };
    const before = [0, 1, 2, 3].map((i) => seal(i, 500)); // key 1
    const live = loadSealNative().keyCount();
    sendRing.set([{ id: 1, key: k1, activeFrom: 0 }, { id: 2, key: k2, activeFrom: 1000 }]); // rotation
    expect(loadSealNative().keyCount()).toBe(live + 1); // key 1 kept its contexts; only key 2 is new
    const after = [4, 5, 6, 7].map((i) => seal(i, 1000)); // key 2, sequences from 1 again
    expect(after.map((s) => new DataView(s.buffer).getUint32(8))).toEqual([2, 2, 2, 2]);
    expect(hex(nodeOpen(k2, after[0]))).toBe(hex(frames[4]));

    const batch = [before[0], after[0], before[1], after[1], before[2], after[2], after[2], before[3], after[3]];
    const hs = load(pool, batch);
    const opener = new Opener();
    const results = new Uint8Array(batch.length);
    expect(opener.openBatch(pool, hs, batch.length, recvRing, 1001, results)).toBe(8);
    expect([...results]).toEqual([0, 0, 0, 0, 0, 0, OpenResult.replay, 0, 0]);
    const want = [0, 4, 1, 5, 2, 6, -1, 3, 7];
    want.forEach((f, j) => expect(hex(pool.toBytes(hs[j]))).toBe(hex(f < 0 ? batch[j] : frames[f]))); // the duplicate is put back sealed
    hs.forEach((h) => pool.free(h));
    expect(opener.snapshot()).toMatchObject({ rxPackets: 8, replayWindows: 2, dropReasons: { replay: 1 } });
    expect(pool.inUse).toBe(0);
  });

  it('seals and opens super-frames in large slots, and refuses runts and frames without room inside a batch', () => {
    const pool = new FramePool({ capacity: 8, largeCapacity: 2 });
    const key = randomKey();
    const keys = ring({ id: 3, key, activeFrom: 0 });
    const big = inner(1, 60000);
    const hBig = pool.fromBytes(big);
    expect(pool.isLarge(hBig)).toBe(true);
    const runt = pool.fromBytes(new Uint8Array(13));
    const full = pool.fromBytes(new Uint8Array(pool.maxFrame - 15)); // 15 bytes of tailroom
    const small = pool.fromBytes(inner(2, 50));
    const hs = Uint32Array.of(hBig, runt, full, small);
    const sealer = new Sealer();
    const results = new Uint8Array(4);
    expect(sealer.sealBatch(pool, hs, 4, VNI, keys, SENDER, 0, results)).toBe(2);
    expect([...results]).toEqual([0, 1 + SealDrop.runt, 1 + SealDrop.noRoom, 0]);
    expect(pool.lengths[full]).toBe(pool.maxFrame - 15); // untouched
    const sealedBig = pool.toBytes(hBig);
    expect(new DataView(sealedBig.buffer).getUint32(20)).toBe(1);
    expect(new DataView(pool.toBytes(small).buffer).getUint32(20)).toBe(2); // refusals burn no sequence
    expect(hex(nodeOpen(key, sealedBig))).toBe(hex(big));
    const opener = new Opener();
    expect(opener.openBatch(pool, Uint32Array.of(hBig, small), 2, keys, 0, results)).toBe(2);
    expect(hex(pool.toBytes(hBig))).toBe(hex(big));
    expect(hex(pool.toBytes(small))).toBe(hex(inner(2, 50)));
    hs.forEach((h) => pool.free(h));
    expect(sealer.snapshot()).toMatchObject({ txPackets: 2, drops: 2, dropReasons: { runt: 1, noRoom: 1 } });
  });

  it('refuses to seal with no send key, and works across pools (rebinding the addon)', () => {
    const a = new FramePool({ capacity: 4 });
    const b = new FramePool({ capacity: 4, slotSize: 4096 });
    const key = randomKey();
    const keys = ring({ id: 1, key, activeFrom: 100 });
    const sealer = new Sealer();
    const ha = Uint32Array.of(a.fromBytes(inner(0, 80)), a.fromBytes(inner(1, 80)));
    const results = new Uint8Array(2);
    expect(sealer.sealBatch(a, ha, 2, VNI, keys, SENDER, 99, results)).toBe(0);
    expect([...results]).toEqual([1 + SealDrop.noKey, 1 + SealDrop.noKey]);
    expect(a.toBytes(ha[0])).toEqual(inner(0, 80));
    const hb = b.fromBytes(inner(5, 3000));
    expect(sealer.seal(a, ha[0], VNI, keys, SENDER, 100)).toBe(true);
    expect(sealer.seal(b, hb, VNI, keys, SENDER, 100)).toBe(true);
    expect(sealer.seal(a, ha[1], VNI, keys, SENDER, 100)).toBe(true);
    expect(hex(nodeOpen(key, a.toBytes(ha[0])))).toBe(hex(inner(0, 80)));
    expect(hex(nodeOpen(key, b.toBytes(hb)))).toBe(hex(inner(5, 3000)));
    expect(hex(nodeOpen(key, a.toBytes(ha[1])))).toBe(hex(inner(1, 80)));
    expect(sealer.lastSeq(1)).toBe(3);
  });
});
