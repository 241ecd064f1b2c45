import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getMeta, load, setMeta, superFrame } from './super-frames.js';
import { gsoSegments } from '../wire/gso.js';
import { FramePool } from './pool.js';
import { segmentsOf } from './segments-count.js';

const A = 0xac120002;
const S = 0x5db8d822;

describe('segmentsOf', () => {
  const pool = new FramePool({ capacity: 16, largeCapacity: 4 });

  it('is 1 for an ordinary frame and the segment count for a super-frame', () => {
    const plain = load(pool, superFrame({ src: A, dst: S, sport: 1, dport: 2, payload: 1000, gsoSize: 0 }).bytes, null);
    expect(segmentsOf(pool, plain)).toBe(1);
    pool.free(plain);
    const t = superFrame({ src: A, dst: S, sport: 1, dport: 2, payload: 40000, gsoSize: 1448 });
    const h = load(pool, t.bytes, t.meta);
    expect(segmentsOf(pool, h)).toBe(28);
    // hdrLen is only a hint (tun reports the skb's linear length): the headers are read from the bytes
    setMeta(pool, h, { ...getMeta(pool, h), hdrLen: 1500 });
    expect(segmentsOf(pool, h)).toBe(28);
    // gsoSize 0 (malformed) counts 1
    setMeta(pool, h, { ...getMeta(pool, h), gsoSize: 0 });
    expect(segmentsOf(pool, h)).toBe(1);
    pool.free(h);
    const u = superFrame({ proto: 'udp', src: A, dst: S, sport: 1, dport: 2, payload: 12001, gsoSize: 1200 });
    const hu = load(pool, u.bytes, u.meta);
    expect(segmentsOf(pool, hu)).toBe(11);
    pool.free(hu);
  });

  it('reads past an 802.1Q tag', () => {
    const t = superFrame({ src: A, dst: S, sport: 1, dport: 2, payload: 3000, gsoSize: 1000 });
    const b = new Uint8Array(t.bytes.length + 4);
    b.set(t.bytes.subarray(0, 12));
    b.set([0x81, 0x00, 0x00, 0x05], 12);
    b.set(t.bytes.subarray(12), 16);
    const h = load(pool, b, { ...t.meta, hdrLen: 0 });
    expect(segmentsOf(pool, h)).toBe(3);
    pool.free(h);
  });

  it('agrees with gsoSegments (src/wire/gso.ts) on any TCP/UDP super-frame', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65000 }), fc.integer({ min: 1, max: 9000 }), fc.boolean(), (pay, gs, udp) => {
        const t = superFrame({ proto: udp ? 'udp' : 'tcp', src: A, dst: S, sport: 1, dport: 2, payload: pay, gsoSize: gs });
        const h = load(pool, t.bytes, t.meta);
        try {
          expect(segmentsOf(pool, h)).toBe(gsoSegments(t.bytes, 0, t.bytes.length, gs));
        } finally {
          pool.free(h);
        }
      }),
      { numRuns: 200, seed: 4 },
    );
    expect(pool.inUse).toBe(0);
  });
});
