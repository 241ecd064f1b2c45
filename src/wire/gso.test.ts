import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type SuperSpec, buildSuper, refSum, refVerify } from './gso-fixtures.js';
import { GH, GSO_MAX_SEGS, GsoError, completeChecksum, gsoCheck, gsoHdr, gsoSegments, ipEnd } from './gso.js';

const NEEDS = 1;
const TCPV4 = 1;
const UDP = 3;
const TCPV6 = 4;
const UDP_L4 = 5;
const ECN = 0x80;

function pay(n: number): Uint8Array {
  const p = new Uint8Array(n);
  for (let i = 0; i < n; i++) p[i] = (i * 31 + 7) & 0xff;
  return p;
}

function check(bytes: Uint8Array, type: number, gsoSize: number, cs: number, co: number, flags = NEEDS, hdrLen = 0): number {
  return gsoCheck(bytes, 0, bytes.length, flags, type, hdrLen, gsoSize, cs, co);
}

describe('gsoCheck', () => {
  it('accepts TCPv4 (VLAN, IP and TCP options), TCPv6 and UDP_L4 super-frames and reports their headers', () => {
    const a = buildSuper({ ipv: 4, proto: 6, payload: pay(5000), vlan: 7, ipOpts: 8, tcpOpts: 12 });
    expect(check(a.bytes, TCPV4, 1448, a.csumStart, a.csumOffset, NEEDS, a.pay)).toBe(0);
    expect([gsoHdr[GH.L3], gsoHdr[GH.L4], gsoHdr[GH.PAY], gsoHdr[GH.IPV], gsoHdr[GH.PROTO], gsoHdr[GH.PAYLEN]]).toEqual([18, 46, 78, 4, 6, 5000]);
    expect(check(a.bytes, TCPV4 | ECN, 1448, a.csumStart, a.csumOffset)).toBe(0);
    const b = buildSuper({ ipv: 6, proto: 6, payload: pay(3000) });
    expect(check(b.bytes, TCPV6, 1428, b.csumStart, b.csumOffset)).toBe(0);
    expect([gsoHdr[GH.L4], gsoHdr[GH.PAY], gsoHdr[GH.PAYLEN]]).toEqual([54, 74, 3000]);
    const c = buildSuper({ ipv: 4, proto: 17, payload: pay(4000) });
    expect(check(c.bytes, UDP_L4, 1400, c.csumStart, c.csumOffset)).toBe(0);
    const d = buildSuper({ ipv: 6, proto: 17, payload: pay(4000) });
    expect(check(d.bytes, UDP_L4, 1400, d.csumStart, d.csumOffset)).toBe(0);
  });

  it('refuses a type that does not match L3/L4, UFO and unknown types', () => {
    const v4 = buildSuper({ ipv: 4, proto: 6, payload: pay(3000) });
    const v6 = buildSuper({ ipv: 6, proto: 6, payload: pay(3000) });
    const u4 = buildSuper({ ipv: 4, proto: 17, payload: pay(3000) });
    expect(check(v4.bytes, TCPV6, 1000, v4.csumStart, 16)).toBe(GsoError.WRONG_PROTO);
    expect(check(v6.bytes, TCPV4, 1000, v6.csumStart, 16)).toBe(GsoError.WRONG_PROTO);
    expect(check(v4.bytes, UDP_L4, 1000, v4.csumStart, 16)).toBe(GsoError.WRONG_PROTO);
    expect(check(u4.bytes, TCPV4, 1000, u4.csumStart, 6)).toBe(GsoError.WRONG_PROTO);
    expect(check(u4.bytes, UDP, 1000, u4.csumStart, 6)).toBe(GsoError.BAD_TYPE);
    expect(check(v4.bytes, 2, 1000, v4.csumStart, 16)).toBe(GsoError.BAD_TYPE);
    const arp = new Uint8Array(60);
    arp[12] = 0x08;
    arp[13] = 0x06;
    expect(check(arp, TCPV4, 1000, 34, 16)).toBe(GsoError.WRONG_PROTO);
  });

  it('refuses gsoSize 0, inconsistent lengths, bad checksum fields, truncation, fragments, IPv6 extension headers, too many segments', () => {
    const f = buildSuper({ ipv: 4, proto: 6, payload: pay(3000) });
    const cs = f.csumStart;
    expect(check(f.bytes, TCPV4, 0, cs, 16)).toBe(GsoError.ZERO_SIZE);
    // IP total length larger / smaller than the frame
    expect(check(f.bytes.subarray(0, f.bytes.length - 1), TCPV4, 1000, cs, 16)).toBe(GsoError.BAD_LENGTH);
    const longer = new Uint8Array(f.bytes.length + 4);
    longer.set(f.bytes);
    expect(check(longer, TCPV4, 1000, cs, 16)).toBe(GsoError.BAD_LENGTH);
    // hdrLen past the end
    expect(check(f.bytes, TCPV4, 1000, cs, 16, NEEDS, f.bytes.length + 1)).toBe(GsoError.BAD_LENGTH);
    // checksum start/offset not at the TCP checksum, or outside the frame, or no NEEDS_CSUM
    expect(check(f.bytes, TCPV4, 1000, cs, 6)).toBe(GsoError.BAD_CSUM);
    expect(check(f.bytes, TCPV4, 1000, 60000, 16)).toBe(GsoError.BAD_CSUM);
    expect(check(f.bytes, TCPV4, 1000, cs, 16, 0)).toBe(GsoError.BAD_CSUM);
    // truncated headers
    for (const cut of [10, 14, 30, f.l4 + 10]) expect(check(f.bytes.subarray(0, cut), TCPV4, 1000, cs, 16)).toBe(GsoError.TRUNCATED);
    // IHL < 5, data offset < 5
    const ihl = f.bytes.slice();
    ihl[14] = 0x44;
    expect(check(ihl, TCPV4, 1000, cs, 16)).toBe(GsoError.BAD_LENGTH);
    const doff = f.bytes.slice();
    doff[f.l4 + 12] = 0x40;
    expect(check(doff, TCPV4, 1000, cs, 16)).toBe(GsoError.BAD_LENGTH);
    // fragment (MF)
    const frag = f.bytes.slice();
    frag[20] |= 0x20;
    expect(check(frag, TCPV4, 1000, cs, 16)).toBe(GsoError.FRAGMENT);
    // IPv6 with a hop-by-hop header
    const v6 = buildSuper({ ipv: 6, proto: 6, payload: pay(3000) });
    v6.bytes[20] = 0;
    expect(check(v6.bytes, TCPV6, 1000, v6.csumStart, 16)).toBe(GsoError.IPV6_EXT);
    // IPv6 payload length wrong
    const v6b = buildSuper({ ipv: 6, proto: 6, payload: pay(3000) });
    v6b.bytes[19] ^= 1;
    expect(check(v6b.bytes, TCPV6, 1000, v6b.csumStart, 16)).toBe(GsoError.BAD_LENGTH);
    // a super-frame that would make more than GSO_MAX_SEGS segments
    const big = buildSuper({ ipv: 4, proto: 6, payload: pay(GSO_MAX_SEGS * 2 + 1) });
    expect(check(big.bytes, TCPV4, 2, big.csumStart, 16)).toBe(GsoError.TOO_MANY_SEGS);
    expect(check(big.bytes, TCPV4, 3, big.csumStart, 16)).toBe(0);
  });

  it('checks only the checksum field bounds of a plain frame', () => {
    const f = buildSuper({ ipv: 4, proto: 17, payload: pay(100) });
    expect(check(f.bytes, 0, 0, f.csumStart, 6)).toBe(0);
    expect(check(f.bytes, 0, 0, f.bytes.length - 1, 0)).toBe(GsoError.BAD_CSUM);
    expect(check(f.bytes, 0, 0, f.bytes.length - 1, 0, 0)).toBe(0); // no NEEDS_CSUM: nothing to check
  });
});

describe('gsoSegments', () => {
  it('is ceil(payload / gsoSize), at least 1; −1 on garbage', () => {
    for (const [n, g, want] of [
      [1, 1448, 1],
      [1448, 1448, 1],
      [1449, 1448, 2],
      [65000, 88, 739],
      [0, 1448, 1],
    ]) {
      const f = buildSuper({ ipv: 4, proto: 6, payload: pay(n) });
      expect(gsoSegments(f.bytes, 0, f.bytes.length, g)).toBe(want);
    }
    expect(gsoSegments(new Uint8Array(20), 0, 20, 1000)).toBe(-1);
  });
});

describe('completeChecksum', () => {
  it('turns a partial TCP/UDP checksum into one that verifies independently (v4/v6, odd lengths, padding excluded)', () => {
    fc.assert(
      fc.property(
        fc.record({
          ipv: fc.constantFrom(4 as const, 6 as const),
          proto: fc.constantFrom(6 as const, 17 as const),
          n: fc.integer({ min: 0, max: 3000 }),
          pad: fc.integer({ min: 0, max: 20 }),
          seed: fc.integer({ min: 0, max: 255 }),
        }),
        ({ ipv, proto, n, pad, seed }) => {
          const p = pay(n).map((x) => x ^ seed);
          const spec: SuperSpec = { ipv, proto, payload: p };
          const f = buildSuper(spec);
          const framed = new Uint8Array(f.bytes.length + pad).fill(0xee);
          framed.set(f.bytes);
          const end = ipEnd(framed, 0, framed.length);
          expect(end).toBe(f.bytes.length);
          completeChecksum(framed, 0, end, f.csumStart, f.csumOffset);
          const r = refVerify(framed.subarray(0, end), f.l3);
          expect(r.l4).toBe(true);
          const field = (framed[f.l4 + f.csumOffset] << 8) | framed[f.l4 + f.csumOffset + 1];
          expect(field).not.toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('writes 0xffff where the sum complements to 0 (UDP)', () => {
    // build a UDP frame, then pick payload bytes that make the checksum 0
    const f = buildSuper({ ipv: 4, proto: 17, payload: new Uint8Array(2) });
    completeChecksum(f.bytes, 0, f.bytes.length, f.csumStart, 6);
    const c = (f.bytes[f.l4 + 6] << 8) | f.bytes[f.l4 + 7];
    // adding ~c... as payload word makes the total sum 0xffff, i.e. a checksum of 0
    const g = buildSuper({ ipv: 4, proto: 17, payload: new Uint8Array([c >>> 8, c & 0xff]) });
    completeChecksum(g.bytes, 0, g.bytes.length, g.csumStart, 6);
    expect((g.bytes[g.l4 + 6] << 8) | g.bytes[g.l4 + 7]).toBe(0xffff);
    expect(refSum(g.bytes, g.l4, g.bytes.length - g.l4, 0)).toBeGreaterThan(0);
    expect(refVerify(g.bytes, g.l3).l4).toBe(true);
  });
});
