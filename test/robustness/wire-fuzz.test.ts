/**
 * Robustness: every wire view (src/wire) fed random bytes and mutated valid
 * frames.
 *
 * Views: wrap() either refuses, or every accessor, verifyChecksum() and
 * Repr.parse() run without throwing and read only the bytes wrap() was
 * given — checked by placing the input between two different fills (0x00
 * and 0xff) and requiring identical results. emit(parse(x)) is a fixed
 * point for accepted inputs; emit of a random Repr parses back to it and its
 * checksums verify.
 *
 * FC_SEED=<n> reproduces a run (fast-check prints the seed of a failure).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArpRepr, ArpView } from '../../src/wire/arp.js';
import { u16, w16 } from '../../src/wire/bytes.js';
import { checksum, csumUpdate16, csumUpdate32, verifyChecksum } from '../../src/wire/checksum.js';
import { BOOTP, DhcpRepr, DhcpView } from '../../src/wire/dhcp.js';
import { EthernetRepr, EthernetView } from '../../src/wire/ethernet.js';
import { IcmpRepr, IcmpView } from '../../src/wire/icmp.js';
import { Ipv4Repr, Ipv4View } from '../../src/wire/ipv4.js';
import { TcpRepr, TcpView } from '../../src/wire/tcp.js';
import { UdpRepr, UdpView } from '../../src/wire/udp.js';
import { OUTER_IP_UDP_LEN, SRC_PORT_FIRST, VxlanRepr, flowSourcePort, flowSourcePortView, writeOuterIpv4Udp } from '../../src/wire/vxlan.js';
import { FRAME_FIELDS, anyOf, arpRepr, ethRepr, fcParams, garbage, icmpRepr, ipv4Repr, tcpRepr, u16a, u32a, udpRepr } from './frames.js';
import { DST, SRC, anyFrame, arpSeen, dhcpBytes, dhcpRepr, dhcpSeen, frameSeen, icmpSeen, inBounds, ipSeen, tcpSeen, udpSeen, validFrame } from './views.js';

// ------------------------------------------------------------ tests

describe('wire views under random and mutated input', () => {
  it('a frame through the whole view chain: refused, or every accessor in bounds and parse never throws', () => {
    fc.assert(
      fc.property(anyFrame, (x) => {
        inBounds(x, frameSeen);
      }),
      fcParams(1500),
    );
  });

  it('each view on its own layer: random and mutated bytes stay in bounds', () => {
    const ipv4 = fc.tuple(ipv4Repr(), fc.uint8Array({ maxLength: 40 })).map(([r, extra]) => {
      const b = new Uint8Array(Ipv4Repr.headerLen(r) + r.payloadLen + extra.length);
      Ipv4Repr.emit(r, b, 0);
      return b;
    });
    const l4 = (emit: (b: Uint8Array) => number, n: number): Uint8Array => {
      const b = new Uint8Array(n);
      emit(b);
      return b;
    };
    const icmp = icmpRepr.map((r) => l4((b) => IcmpRepr.emit(r, b, 0), IcmpRepr.len(r)));
    const udp = udpRepr.map((r) => l4((b) => UdpRepr.emit(r, b, 0, SRC, DST), UdpRepr.len(r)));
    const tcp = tcpRepr.map((r) => l4((b) => TcpRepr.emit(r, b, 0, SRC, DST), TcpRepr.len(r)));
    const arp = arpRepr.map((r) => l4((b) => ArpRepr.emit(r, b, 0), 28));
    const dhcp = dhcpRepr.map(dhcpBytes);
    const cases: Array<[string, fc.Arbitrary<Uint8Array>, number[], (b: Uint8Array, o: number, l: number) => unknown]> = [
      ['arp', arp, [0, 2, 4, 6], arpSeen],
      ['ipv4', ipv4, [0, 2, 6, 8], ipSeen],
      ['icmp', icmp, [0, 2], icmpSeen],
      ['udp', udp, [4, 6], udpSeen],
      ['tcp', tcp, [12, 20, 22, 24], tcpSeen],
      ['dhcp', dhcp, [2, 236, 238, 240, 242, 244, 246, 248], dhcpSeen],
    ];
    for (const [, valid, fields, seen] of cases) {
      fc.assert(
        fc.property(anyOf(valid, fields, 300), (x) => {
          inBounds(x, seen);
        }),
        fcParams(400),
      );
    }
  });

  it('DHCP options that run past their field, overloads and lengths at the edges are refused, never read past', () => {
    // a valid message whose option area is replaced by random option-ish bytes (codes from the ones the view knows)
    const code = fc.constantFrom(0, 1, 3, 6, 12, 50, 51, 52, 53, 54, 55, 57, 61, 255, 77);
    const optBytes = fc.array(fc.tuple(code, fc.integer({ min: 0, max: 8 }), fc.uint8Array({ maxLength: 8 })), { maxLength: 12 }).map((os) => Uint8Array.from(os.flatMap(([c, n, d]) => [c, n, ...d])));
    const msg = fc.tuple(dhcpRepr, optBytes, optBytes, fc.boolean()).map(([r, main, file, cut]) => {
      const b = dhcpBytes({ ...r, other: undefined });
      const out = new Uint8Array(BOOTP.OPTIONS + main.length);
      out.set(b.subarray(0, BOOTP.OPTIONS));
      out.set(main, BOOTP.OPTIONS);
      out.set(file.subarray(0, 128), BOOTP.FILE);
      return cut ? out.slice(0, BOOTP.OPTIONS + (main.length >> 1)) : out;
    });
    fc.assert(
      fc.property(msg, (x) => {
        inBounds(x, dhcpSeen);
      }),
      fcParams(800),
    );
  });

  it('flowSourcePort and its DataView twin agree on any inner frame, in 49152..65535, in bounds', () => {
    fc.assert(
      fc.property(anyOf(validFrame, FRAME_FIELDS, 200).filter((x) => x.length >= 14), u32a, (x, seed) => {
        const p = inBounds(x, (b, o, l) => flowSourcePort(b, o, l, seed));
        const q = inBounds(x, (b, o, l) => flowSourcePortView(new DataView(b.buffer), o, l, seed));
        expect(q).toBe(p);
        expect(p).toBeGreaterThanOrEqual(SRC_PORT_FIRST);
        expect(p).toBeLessThanOrEqual(0xffff);
      }),
      fcParams(600),
    );
  });

  it('VxlanRepr parses any bytes without throwing (null when short) and emit/parse round-trips', () => {
    fc.assert(
      fc.property(garbage(20), fc.nat(24), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffffff }), (x, o, flags, vni) => {
        const r = VxlanRepr.parse(x, o);
        if (x.length - o < 8) expect(r).toBeNull();
        else expect(r).toEqual({ flags: x[o], vni: ((x[o + 4] << 16) | (x[o + 5] << 8) | x[o + 6]) >>> 0 });
        expect(VxlanRepr.parse(VxlanRepr.emit({ flags, vni }))).toEqual({ flags, vni });
      }),
      fcParams(500),
    );
  });
});

describe('wire Repr round trips and checksums', () => {
  it('emit(r) parses back to r, re-emits the same bytes, and every checksum verifies', () => {
    const buf = (n: number): Uint8Array => new Uint8Array(n);
    fc.assert(
      fc.property(ethRepr, fc.uint8Array({ maxLength: 46 }), (r, pl) => {
        const b = buf(EthernetRepr.headerLen(r) + pl.length);
        const n = EthernetRepr.emit(r, b, 0);
        b.set(pl, n);
        const v = new EthernetView();
        expect(v.wrap(b, 0, b.length)).toBe(true);
        const p = EthernetRepr.parse(v);
        expect(p).toEqual(r);
        const c = b.slice();
        EthernetRepr.emit(p, c, 0);
        expect(c).toEqual(b);
      }),
      fcParams(300),
    );
    fc.assert(
      fc.property(arpRepr, (r) => {
        const b = buf(28);
        ArpRepr.emit(r, b, 0);
        const v = new ArpView();
        expect(v.wrap(b, 0, 28)).toBe(true);
        expect(ArpRepr.parse(v)).toEqual(r);
      }),
      fcParams(200),
    );
    fc.assert(
      fc.property(ipv4Repr(), fc.nat(30), (r, pad) => {
        const hl = Ipv4Repr.headerLen(r);
        const b = buf(hl + r.payloadLen + pad);
        Ipv4Repr.emit(r, b, 0);
        const v = new Ipv4View();
        expect(v.wrap(b, 0, b.length)).toBe(true);
        expect(v.verifyChecksum()).toBe(true);
        const p = Ipv4Repr.parse(v);
        expect(p).toEqual(r);
        const c = b.slice();
        Ipv4Repr.emit(p, c, 0);
        expect(c).toEqual(b);
      }),
      fcParams(300),
    );
    fc.assert(
      fc.property(icmpRepr, (r) => {
        const b = buf(IcmpRepr.len(r));
        IcmpRepr.emit(r, b, 0);
        const v = new IcmpView();
        expect(v.wrap(b, 0, b.length)).toBe(true);
        expect(v.verifyChecksum()).toBe(true);
        expect(IcmpRepr.parse(v)).toEqual(r);
      }),
      fcParams(300),
    );
    fc.assert(
      fc.property(udpRepr, u32a, u32a, (r, s, d) => {
        const b = buf(UdpRepr.len(r));
        UdpRepr.emit(r, b, 0, s, d);
        const v = new UdpView();
        expect(v.wrap(b, 0, b.length)).toBe(true);
        expect(v.checksum).not.toBe(0);
        expect(v.verifyChecksum(s, d)).toBe(true);
        expect(UdpRepr.parse(v)).toEqual(r);
      }),
      fcParams(300),
    );
    fc.assert(
      fc.property(tcpRepr, u32a, u32a, (r, s, d) => {
        const b = buf(TcpRepr.len(r));
        TcpRepr.emit(r, b, 0, s, d);
        const v = new TcpView();
        expect(v.wrap(b, 0, b.length)).toBe(true);
        expect(v.verifyChecksum(s, d)).toBe(true);
        expect(TcpRepr.parse(v)).toEqual(r);
      }),
      fcParams(300),
    );
    fc.assert(
      fc.property(dhcpRepr, (r) => {
        const b = dhcpBytes(r);
        const v = new DhcpView();
        expect(v.wrap(b, 0, b.length)).toBe(true);
        const want = { ...r };
        if (want.other?.length === 0) delete want.other; // no unknown options: none parsed back
        expect(DhcpRepr.parse(v)).toEqual(want);
      }),
      fcParams(300),
    );
  });

  it('parse → emit → parse is a fixed point for every accepted (mutated) input', () => {
    const big = (): Uint8Array => new Uint8Array(4096);
    fc.assert(
      fc.property(anyFrame, (x) => {
        const eth = new EthernetView();
        if (!eth.wrap(x, 0, x.length)) return;
        const ip = new Ipv4View();
        if (eth.l3Type !== 0x0800 || !ip.wrap(x, eth.l3Offset, x.length - eth.l3Offset)) return;
        const r = Ipv4Repr.parse(ip);
        const b = big();
        Ipv4Repr.emit(r, b, 0);
        const ip2 = new Ipv4View();
        expect(ip2.wrap(b, 0, Ipv4Repr.headerLen(r) + r.payloadLen)).toBe(true);
        expect(ip2.verifyChecksum()).toBe(true);
        expect(Ipv4Repr.parse(ip2)).toEqual(r);
        const l4 = ip.payloadOff;
        const n = ip.payloadLen;
        if (ip.proto === 6) {
          const t = new TcpView();
          if (!t.wrap(x, l4, n)) return;
          const tr = TcpRepr.parse(t);
          const tb = big();
          const tn = TcpRepr.emit(tr, tb, 0, ip.src, ip.dst);
          const t2 = new TcpView();
          expect(t2.wrap(tb, 0, tn)).toBe(true);
          expect(t2.verifyChecksum(ip.src, ip.dst)).toBe(true);
          expect(TcpRepr.parse(t2)).toEqual(tr);
        } else if (ip.proto === 1) {
          const c = new IcmpView();
          if (!c.wrap(x, l4, n)) return;
          const cr = IcmpRepr.parse(c);
          const cb = big();
          const cn = IcmpRepr.emit(cr, cb, 0);
          const c2 = new IcmpView();
          expect(c2.wrap(cb, 0, cn)).toBe(true);
          expect(c2.verifyChecksum()).toBe(true);
          expect(IcmpRepr.parse(c2)).toEqual(cr);
        } else if (ip.proto === 17) {
          const u = new UdpView();
          if (!u.wrap(x, l4, n)) return;
          const ur = UdpRepr.parse(u);
          const ub = big();
          const un = UdpRepr.emit(ur, ub, 0, ip.src, ip.dst);
          const u2 = new UdpView();
          expect(u2.wrap(ub, 0, un)).toBe(true);
          expect(u2.verifyChecksum(ip.src, ip.dst)).toBe(true);
          expect(UdpRepr.parse(u2)).toEqual(ur);
          const d = new DhcpView();
          if (!d.wrap(x, u.payloadOff, u.payloadLen)) return;
          const dr = DhcpRepr.parse(d);
          const db = big();
          const dn = DhcpRepr.emit(dr, db, 0);
          const d2 = new DhcpView();
          expect(d2.wrap(db, 0, dn)).toBe(true);
          expect(DhcpRepr.parse(d2)).toEqual(dr);
        }
      }),
      fcParams(1500),
    );
  });

  it('incremental checksum updates equal a full recomputation; rewrites keep a header valid', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 80 }), fc.nat(), u16a, u32a, (data, at, v16, v32) => {
        const b = data.length % 2 === 0 ? data.slice() : Uint8Array.from([...data, 0]);
        const p = (at % (b.length >> 1)) * 2;
        const before = checksum(b, 0, b.length);
        const old = u16(b, p);
        w16(b, p, v16);
        // all-zero data is the one case where eqn. 3 gives 0x0000 and recomputation 0xffff (both "zero"; no real header is all zero)
        if (b.every((x) => x === 0)) return;
        expect(csumUpdate16(before, old, v16)).toBe(checksum(b, 0, b.length));
        if (b.length >= 4) {
          const q = (at % ((b.length >> 1) - 1)) * 2;
          const c0 = checksum(b, 0, b.length);
          const o32 = ((u16(b, q) << 16) | u16(b, q + 2)) >>> 0;
          w16(b, q, v32 >>> 16);
          w16(b, q + 2, v32 & 0xffff);
          if (b.every((x) => x === 0)) return;
          expect(csumUpdate32(c0, o32, v32)).toBe(checksum(b, 0, b.length));
        }
      }),
      fcParams(800),
    );
    fc.assert(
      fc.property(ipv4Repr(undefined, 0).filter((r) => r.ttl > 0), u32a, u32a, (r, s, d) => {
        const b = new Uint8Array(Ipv4Repr.headerLen(r));
        Ipv4Repr.emit(r, b, 0);
        const v = new Ipv4View();
        expect(v.wrap(b, 0, b.length)).toBe(true);
        v.rewriteSrc(s);
        v.rewriteDst(d);
        expect(v.decrementTtl()).toBe(r.ttl - 1);
        expect(v.verifyChecksum()).toBe(true);
        expect(verifyChecksum(b, 0, b.length)).toBe(true);
      }),
      fcParams(500),
    );
  });

  it('writeOuterIpv4Udp writes a header IPv4View and UdpView accept, with a valid checksum', () => {
    fc.assert(
      fc.property(u32a, u32a, u16a, u16a, fc.integer({ min: 8, max: 1500 }), u16a, (s, d, sp, dp, n, id) => {
        const b = new Uint8Array(OUTER_IP_UDP_LEN + n);
        writeOuterIpv4Udp(b, 0, s, d, sp, dp, n, id);
        const ip = new Ipv4View();
        expect(ip.wrap(b, 0, b.length)).toBe(true);
        expect(ip.verifyChecksum()).toBe(true);
        expect([ip.src, ip.dst, ip.proto, ip.ttl, ip.dontFrag, ip.ident]).toEqual([s, d, 17, 64, true, id]);
        const u = new UdpView();
        expect(u.wrap(b, ip.payloadOff, ip.payloadLen)).toBe(true);
        expect([u.srcPort, u.dstPort, u.payloadLen, u.checksum]).toEqual([sp, dp, n, 0]);
      }),
      fcParams(300),
    );
  });
});
