import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { checksum, verifyChecksum } from './checksum.js';
import { CLIENT_IP, FX, GATEWAY_IP } from './fixtures.js';
import { IPV4, IpProto, Ipv4Repr, Ipv4View, ipv4ToString, parseIpv4 } from './ipv4.js';

const L3 = 14;

describe('IPv4 address strings', () => {
  it('formats and parses', () => {
    expect(ipv4ToString(GATEWAY_IP)).toBe('172.17.0.1');
    expect(ipv4ToString(0xffffffff)).toBe('255.255.255.255');
    expect(parseIpv4('172.17.0.2')).toBe(CLIENT_IP);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIpv4('0.0.0.0')).toBe(0);
    expect(() => parseIpv4('256.1.1.1')).toThrow(/bad IPv4/);
    expect(() => parseIpv4('1.2.3')).toThrow(/bad IPv4/);
  });
});

describe('Ipv4View', () => {
  const v = new Ipv4View();

  it('deconstructs the header of a captured echo request', () => {
    const f = fromHex(FX.icmpEcho);
    expect(v.wrap(f, L3, f.length - L3)).toBe(true);
    expect([v.version, v.ihl, v.headerLen, v.tos, v.dscp, v.ecn]).toEqual([4, 5, 20, 0, 0, 0]);
    expect(v.totalLen).toBe(84);
    expect(v.ident).toBe(0x4a3b);
    expect([v.dontFrag, v.moreFrags, v.fragOffset, v.isFragment]).toEqual([true, false, 0, false]);
    expect(v.ttl).toBe(64);
    expect(v.proto).toBe(IpProto.ICMP);
    expect(v.checksum).toBe(0x9848);
    expect(v.src).toBe(CLIENT_IP);
    expect(v.dst).toBe(GATEWAY_IP);
    expect(v.payloadOff).toBe(34);
    expect(v.payloadLen).toBe(56 + 8);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('excludes Ethernet padding from the payload', () => {
    const f = new Uint8Array(fromHex(FX.udpDns).length + 9);
    f.set(fromHex(FX.udpDns));
    expect(v.wrap(f, L3, f.length - L3)).toBe(true);
    expect(v.payloadLen).toBe(v.totalLen - 20);
  });

  it('rewrites addresses and TTL with incremental checksum updates', () => {
    const f = fromHex(FX.tcpSyn);
    v.wrap(f, L3, f.length - L3);
    v.rewriteSrc(0xc0a80a0b);
    v.rewriteDst(0x0a000001);
    expect(v.decrementTtl()).toBe(63);
    expect(v.verifyChecksum()).toBe(true);
    const c = v.checksum;
    v.fillChecksum();
    expect(v.checksum).toBe(c);
  });

  it('refuses malformed headers', () => {
    const f = fromHex(FX.icmpEcho);
    const n = f.length - L3;
    expect(v.wrap(f, L3, 19)).toBe(false); // truncated header
    expect(v.wrap(f, L3, 83)).toBe(false); // total length 84 > buffer
    const ihl4 = f.slice();
    ihl4[L3] = 0x44;
    expect(v.wrap(ihl4, L3, n)).toBe(false); // IHL < 5
    const v6 = f.slice();
    v6[L3] = 0x65;
    expect(v.wrap(v6, L3, n)).toBe(false); // version 6
    const longIhl = f.slice();
    longIhl[L3] = 0x4f; // 60-byte header
    expect(v.wrap(longIhl, L3, 40)).toBe(false); // header does not fit
    const shortTotal = f.slice();
    shortTotal[L3 + IPV4.TOTAL_LEN + 1] = 19; // total < header
    shortTotal[L3 + IPV4.TOTAL_LEN] = 0;
    expect(v.wrap(shortTotal, L3, n)).toBe(false);
    const bad = f.slice();
    bad[L3 + IPV4.CHECKSUM] ^= 1;
    expect(v.wrap(bad, L3, n)).toBe(true);
    expect(v.verifyChecksum()).toBe(false);
  });
});

describe('Ipv4Repr', () => {
  it('constructs the captured header byte for byte, and round-trips', () => {
    const f = fromHex(FX.udpDns);
    const r: Ipv4Repr = {
      tos: 0,
      ident: 0x9c41,
      flagsFrag: 0x4000,
      ttl: 64,
      proto: IpProto.UDP,
      src: CLIENT_IP,
      dst: GATEWAY_IP,
      payloadLen: 37,
      options: new Uint8Array(0),
    };
    const out = new Uint8Array(20);
    expect(Ipv4Repr.emit(r, out, 0)).toBe(20);
    expect(toHex(out)).toBe(toHex(f, L3, 20));
    const v = new Ipv4View();
    expect(v.wrap(f, L3, f.length - L3)).toBe(true);
    expect(Ipv4Repr.parse(v)).toEqual(r);
  });

  it('emits options (padded) with a correct IHL and checksum', () => {
    const r: Ipv4Repr = {
      tos: 0xb8,
      ident: 1,
      flagsFrag: 0x2000 | 185,
      ttl: 1,
      proto: 200,
      src: 0x0a000001,
      dst: 0xe0000016,
      payloadLen: 4,
      options: fromHex('940400'), // router alert, missing one byte of padding
    };
    const out = new Uint8Array(28);
    expect(Ipv4Repr.emit(r, out, 0)).toBe(24);
    const v = new Ipv4View();
    expect(v.wrap(out, 0, 28)).toBe(true);
    expect([v.ihl, v.totalLen, v.moreFrags, v.fragOffset, v.isFragment, v.dscp]).toEqual([6, 28, true, 185, true, 46]);
    expect(verifyChecksum(out, 0, 24)).toBe(true);
    expect(checksum(out, 0, 24)).toBe(0);
    expect(Ipv4Repr.parse(v).options).toEqual(fromHex('94040000'));
  });
});
