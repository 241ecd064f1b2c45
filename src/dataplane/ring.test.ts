import { describe, expect, it } from 'vitest';
import { Ring } from './ring.js';
import { FramePool } from './pool.js';

describe('Ring', () => {
  it('is FIFO, refuses when full, and wraps', () => {
    const r = new Ring(4);
    for (let round = 0; round < 3; round++) {
      expect(r.push(1)).toBe(true);
      expect(r.push(2)).toBe(true);
      expect(r.push(3)).toBe(true);
      expect(r.push(4)).toBe(true);
      expect(r.push(5)).toBe(false);
      expect(r.full).toBe(true);
      expect([r.pop(), r.pop(), r.pop(), r.pop(), r.pop()]).toEqual([1, 2, 3, 4, -1]);
    }
  });
  it('popInto and unshiftFrom keep order', () => {
    const r = new Ring(8);
    for (let i = 10; i < 15; i++) r.push(i);
    const out = new Uint32Array(8);
    expect(r.popInto(out, 3)).toBe(3);
    expect(Array.from(out.subarray(0, 3))).toEqual([10, 11, 12]);
    r.unshiftFrom(out, 1, 3);
    expect([r.pop(), r.pop(), r.pop(), r.pop(), r.pop()]).toEqual([11, 12, 13, 14, -1]);
  });
  it('rejects sizes that are not powers of two', () => {
    expect(() => new Ring(6)).toThrow(/power of two/);
  });
});

describe('FramePool', () => {
  it('allocates with headroom, clones, prepends and frees', () => {
    const p = new FramePool({ capacity: 4, slotSize: 256, headroom: 32 });
    const a = p.fromBytes(Uint8Array.of(1, 2, 3), 7);
    expect(p.offsets[a] % 256).toBe(32);
    const b = p.clone(a);
    expect(Array.from(p.toBytes(b))).toEqual([1, 2, 3]);
    expect(p.inPort[b]).toBe(7);
    expect(p.prepend(a, 32)).toBe(true);
    expect(p.prepend(a, 1)).toBe(false);
    expect(p.lengths[a]).toBe(35);
    p.consume(a, 32);
    expect(Array.from(p.toBytes(a))).toEqual([1, 2, 3]);
    expect(p.inUse).toBe(2);
    p.free(a);
    p.free(b);
    expect(() => p.free(b)).toThrow(/double free/);
    expect(() => p.free(-1)).toThrow(/bad frame handle -1/);
    expect(() => p.free(4)).toThrow(/bad frame handle 4/);
    expect(p.available).toBe(4);
  });
  it('counts exhaustion instead of growing', () => {
    const p = new FramePool({ capacity: 2, slotSize: 128, headroom: 0 });
    expect(p.alloc()).toBeGreaterThanOrEqual(0);
    expect(p.alloc()).toBeGreaterThanOrEqual(0);
    expect(p.alloc()).toBe(-1);
    expect(p.exhausted).toBe(1);
  });
});
