import { describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { toHex } from '../wire/bytes.js';
import { fragment } from './fragment.js';
import { ip, ipFrame, parse } from './testbed.js';

const SRC = ip('192.168.1.2');
const DST = ip('93.184.216.34');

describe('fragment', () => {
  it('splits into 8-byte-aligned pieces, MF on all but the last, and they reassemble', () => {
    const pool = new FramePool({ capacity: 8 });
    const data = new Uint8Array(1000).map((_, i) => i);
    const h = pool.fromBytes(ipFrame({ dmac: 1, smac: 2, src: SRC, dst: DST, proto: 17, flagsFrag: 0, ident: 9 }, data));
    const out = new Int32Array(8);
    const n = fragment(pool, h, 420, out);
    expect(n).toBe(3);
    expect(out[0]).toBe(h);
    const ps = Array.from(out.subarray(0, n)).map((x) => parse(pool.toBytes(x)));
    expect(ps.map((p) => [p.totalLen, p.flagsFrag, p.ident, p.checksumsOk])).toEqual([
      [420, 0x2000, 9, true],
      [420, 0x2000 | 50, 9, true],
      [220, 100, 9, true],
    ]);
    expect(toHex(new Uint8Array(ps.flatMap((p) => Array.from(p.l4))))).toBe(toHex(data));
    for (let k = 0; k < n; k++) pool.free(out[k]);
    expect(pool.inUse).toBe(0);
  });

  it('fragments a fragment (offsets add, the last keeps MF) and copies only "copied" options', () => {
    const pool = new FramePool({ capacity: 8 });
    // options: record route (7, not copied, 7 bytes) + NOP, then a copied option (0x83 LSRR-like, 7 bytes) + EOL
    const options = new Uint8Array([7, 7, 4, 0, 0, 0, 0, 1, 0x83, 7, 4, 1, 2, 3, 4, 0]);
    const data = new Uint8Array(64).fill(0xab);
    const h = pool.fromBytes(ipFrame({ dmac: 1, smac: 2, src: SRC, dst: DST, proto: 17, flagsFrag: 0x2000 | 10, options }, data));
    const out = new Int32Array(8);
    const n = fragment(pool, h, 36 + 32, out);
    expect(n).toBe(2);
    const [a, b] = [parse(pool.toBytes(out[0])), parse(pool.toBytes(out[1]))];
    expect([a.hl, a.totalLen, a.flagsFrag, a.checksumsOk]).toEqual([36, 36 + 32, 0x2000 | 10, true]);
    expect([b.hl, b.totalLen, b.flagsFrag, b.checksumsOk]).toEqual([28, 28 + 32, 0x2000 | 14, true]);
    expect(toHex(pool.toBytes(out[1]), 34, 8)).toBe('8307040102030400');
    for (let k = 0; k < n; k++) pool.free(out[k]);
  });

  it('refuses an MTU too small for 8 bytes, and an empty pool (nothing leaks, h untouched)', () => {
    const pool = new FramePool({ capacity: 2 });
    const f = ipFrame({ dmac: 1, smac: 2, src: SRC, dst: DST, proto: 17, flagsFrag: 0 }, new Uint8Array(100));
    const h = pool.fromBytes(f);
    const out = new Int32Array(8);
    expect(fragment(pool, h, 27, out)).toBe(-1);
    expect(fragment(pool, h, 40, out)).toBe(-1); // needs 6 frames, pool has 1 left
    expect(pool.inUse).toBe(1);
    expect(toHex(pool.toBytes(h))).toBe(toHex(f));
    pool.free(h);
  });
});
