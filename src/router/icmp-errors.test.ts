import { describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { toHex, w16 } from '../wire/bytes.js';
import { checksum, verifyChecksum } from '../wire/checksum.js';
import { IcmpErrors, isMartianSource } from './icmp-errors.js';
import { ip, ipFrame, pkt } from './testbed.js';

const SRC = ip('172.18.0.2');
const DST = ip('93.184.216.34');
const GW = ip('172.18.0.1');

function load(pool: FramePool, f: Uint8Array): number {
  return pool.offsets[pool.fromBytes(f)] + 14;
}

describe('IcmpErrors', () => {
  it('builds an error quoting the IP header + 8 bytes, checksums right', () => {
    const pool = new FramePool({ capacity: 8 });
    const e = new IcmpErrors(pool);
    const f = pkt({ dmac: 1, smac: 2, src: SRC, dst: DST, proto: 17, ttl: 1, payload: new Uint8Array(100) });
    const l3 = load(pool, f);
    const h = e.build(l3, GW, 11, 0, 0);
    const b = pool.toBytes(h);
    expect(b.length).toBe(14 + 20 + 8 + 28);
    expect(toHex(b, 12, 2)).toBe('0800');
    expect(toHex(b, 14, 10)).toBe('45c00038' + toHex(b, 18, 2) + '0000' + '4001');
    expect(toHex(b, 26, 8)).toBe('ac120001ac120002');
    expect(verifyChecksum(b, 14, 20)).toBe(true);
    expect(verifyChecksum(b, 34, 36)).toBe(true);
    expect(toHex(b, 34, 8)).toBe('0b00' + toHex(b, 36, 2) + '00000000');
    expect(toHex(b, 42)).toBe(toHex(f, 14, 28));
    // frag needed carries the MTU in bytes 6..7
    const g = e.build(l3, GW, 3, 4, 1400);
    expect(toHex(pool.toBytes(g), 38, 4)).toBe('00000578');
    // a short packet is quoted whole
    const tiny = ipFrame({ dmac: 1, smac: 2, src: SRC, dst: DST, proto: 253 }, new Uint8Array(3));
    const k = e.build(load(pool, tiny), GW, 3, 2, 0);
    expect(pool.lengths[k]).toBe(14 + 20 + 8 + 23);
    expect(e.sent).toBe(3);
  });

  it('eligible: not about ICMP errors, later fragments, group destinations or martian sources', () => {
    const pool = new FramePool({ capacity: 16 });
    const e = new IcmpErrors(pool);
    const base = { dmac: 1, smac: 2, src: SRC, dst: DST };
    const ok = (f: Uint8Array, group = false) => e.eligible(pool.bytes, load(pool, f), group);
    expect(ok(pkt({ ...base, proto: 17 }))).toBe(true);
    expect(ok(pkt({ ...base, proto: 17 }), true)).toBe(false);
    expect(ok(pkt({ ...base, proto: 1, type: 8 }))).toBe(true);
    expect(ok(pkt({ ...base, proto: 1, type: 0 }))).toBe(true);
    for (const type of [3, 4, 5, 11, 12, 42]) expect(ok(pkt({ ...base, proto: 1, type }))).toBe(false);
    expect(ok(pkt({ ...base, proto: 17, flagsFrag: 0x2000 }))).toBe(true); // first fragment
    expect(ok(pkt({ ...base, proto: 17, flagsFrag: 0x0001 }))).toBe(false);
    expect(ok(pkt({ ...base, dst: ip('224.0.0.1'), proto: 17 }))).toBe(false);
    expect(ok(pkt({ ...base, src: 0, proto: 17 }))).toBe(false);
    expect(ok(pkt({ ...base, src: ip('127.0.0.1'), proto: 17 }))).toBe(false);
    expect(ok(pkt({ ...base, src: 0xffffffff, proto: 17 }))).toBe(false);
    expect(isMartianSource(ip('10.0.0.1'))).toBe(false);
    expect(isMartianSource(ip('240.0.0.1'))).toBe(true);
  });

  it('rate-limits with a token bucket', () => {
    const e = new IcmpErrors(new FramePool({ capacity: 1 }), { ratePerSec: 10, burst: 3 });
    e.refill(0);
    expect([e.take(), e.take(), e.take(), e.take()]).toEqual([true, true, true, false]);
    e.refill(99);
    expect(e.take()).toBe(false);
    e.refill(100);
    expect(e.take()).toBe(true);
    e.refill(100_000);
    expect([e.take(), e.take(), e.take(), e.take()]).toEqual([true, true, true, false]);
    expect(e.rateLimited).toBe(3);
  });

  it('gives each ingress interface its own bucket: a storm on one leaves the others their errors', () => {
    const e = new IcmpErrors(new FramePool({ capacity: 1 }), { ratePerSec: 10, burst: 3 });
    e.refill(0);
    for (let k = 0; k < 100; k++) e.take(5);
    expect(e.rateLimited).toBe(97);
    expect([e.take(6), e.take(6), e.take(6), e.take(6)]).toEqual([true, true, true, false]);
    e.refill(100);
    expect([e.take(5), e.take(5), e.take(7)]).toEqual([true, false, true]);
  });

  it('returns −1 when the pool is empty', () => {
    const pool = new FramePool({ capacity: 1 });
    const e = new IcmpErrors(pool);
    const f = pkt({ dmac: 1, smac: 2, src: SRC, dst: DST, proto: 17 });
    w16(f, 24, 0);
    w16(f, 24, checksum(f, 14, 20));
    expect(e.build(load(pool, f), GW, 11, 0, 0)).toBe(-1);
  });
});
