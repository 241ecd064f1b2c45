import { describe, expect, it } from 'vitest';
import { fromHex, u16, u32, w16, w32 } from './bytes.js';
import { checksum, csumUpdate16, csumUpdate32, fold, onesSum, pseudoHeaderSum, verifyChecksum } from './checksum.js';
import { FX } from './fixtures.js';
import { rng } from '../lab/rng.js';


/** a random 20-byte "header" whose first word is never zero (as in every real header), checksum at 10 */
function randomHeader(r: () => number): Uint8Array {
  const h = new Uint8Array(20);
  for (let i = 0; i < 20; i++) h[i] = Math.floor(r() * 256);
  h[0] = 0x45;
  w16(h, 10, 0);
  w16(h, 10, checksum(h, 0, 20));
  return h;
}

describe('checksum', () => {
  it('matches the RFC 1071 example', () => {
    const b = fromHex('0001f203f4f5f6f7');
    expect(fold(onesSum(b, 0, 8))).toBe(0xddf2);
    expect(checksum(b, 0, 8)).toBe(0x220d);
  });

  it('pads an odd last byte with zero and honours the initial sum', () => {
    const b = fromHex('0001f203f4f5f6');
    expect(onesSum(b, 0, 7)).toBe(onesSum(fromHex('0001f203f4f5f600'), 0, 8));
    expect(checksum(b, 2, 4, 0x0001)).toBe(~fold(0x0001 + 0xf203 + 0xf4f5) & 0xffff);
  });

  it('verifies the IPv4 header and ICMP message of a real echo request', () => {
    const f = fromHex(FX.icmpEcho);
    expect(verifyChecksum(f, 14, 20)).toBe(true);
    expect(verifyChecksum(f, 34, 64)).toBe(true);
    f[14 + 8]--; // TTL
    expect(verifyChecksum(f, 14, 20)).toBe(false);
  });

  it('pseudo-header sum + segment verifies the UDP fixture', () => {
    const f = fromHex(FX.udpDns);
    const len = u16(f, 34 + 4);
    expect(verifyChecksum(f, 34, len, pseudoHeaderSum(u32(f, 26), u32(f, 30), 17, len))).toBe(true);
  });

  it('RFC 1624 worked example: the update yields 0x0000 where eqn. 2 gives 0xffff', () => {
    // rest of header sums to 0xcd7a; field changes 0x5555 → 0x3285
    const hc = ~fold(0xcd7a + 0x5555) & 0xffff;
    expect(hc).toBe(0xdd2f);
    expect(csumUpdate16(hc, 0x5555, 0x3285)).toBe(0x0000);
    expect(checksum(fromHex('cd7a3285'), 0, 4)).toBe(0x0000);
  });

  it('16-bit incremental update equals full recomputation on random rewrites', () => {
    const r = rng(1624);
    for (let n = 0; n < 20000; n++) {
      const h = randomHeader(r);
      const field = 2 * Math.floor(r() * 10);
      if (field === 10 || field === 0) continue; // the checksum itself / the fixed first word
      const old = u16(h, field);
      const pick = r();
      // a quarter of the cases hit 0x0000 / 0xffff values of the field
      const nv = pick < 0.125 ? 0 : pick < 0.25 ? 0xffff : Math.floor(r() * 0x10000);
      const inc = csumUpdate16(u16(h, 10), old, nv);
      w16(h, field, nv);
      w16(h, 10, 0);
      expect(inc).toBe(checksum(h, 0, 20));
    }
  });

  it('16-bit update lands on a 0x0000 checksum and leaves it correctly', () => {
    const r = rng(7);
    for (let n = 0; n < 2000; n++) {
      const h = randomHeader(r);
      w16(h, 4, 0);
      w16(h, 10, 0);
      const rest = fold(onesSum(h, 0, 20));
      const nv = 0xffff - rest; // makes the full sum 0xffff → checksum 0x0000
      w16(h, 10, checksum(h, 0, 20));
      const hc = csumUpdate16(u16(h, 10), 0, nv);
      expect(hc).toBe(0x0000);
      w16(h, 4, nv);
      w16(h, 10, hc);
      expect(verifyChecksum(h, 0, 20)).toBe(true);
      // and back again from a 0x0000 checksum
      const back = csumUpdate16(hc, nv, 0);
      w16(h, 4, 0);
      w16(h, 10, 0);
      expect(back).toBe(checksum(h, 0, 20));
    }
  });

  it('32-bit incremental update equals full recomputation (address rewrites)', () => {
    const r = rng(32);
    for (let n = 0; n < 20000; n++) {
      const h = randomHeader(r);
      const field = r() < 0.5 ? 12 : 16;
      const old = u32(h, field);
      const pick = r();
      const nv = pick < 0.1 ? 0 : pick < 0.2 ? 0xffffffff : pick < 0.3 ? 0xffff0000 : Math.floor(r() * 0x100000000) >>> 0;
      const inc = csumUpdate32(u16(h, 10), old, nv);
      w32(h, field, nv);
      w16(h, 10, 0);
      expect(inc).toBe(checksum(h, 0, 20));
    }
  });

  it('an unchanged field leaves the checksum as it was', () => {
    expect(csumUpdate16(0x1234, 0xabcd, 0xabcd)).toBe(0x1234);
    expect(csumUpdate32(0x0000, 0xdeadbeef, 0xdeadbeef)).toBe(0x0000);
  });
});
