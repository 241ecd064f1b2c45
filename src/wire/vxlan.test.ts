import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pcapGlobalHeader, pcapRecord } from '../control/pcap.js';
import { rng } from '../lab/rng.js';
import { fromHex, toHex } from './bytes.js';
import { verifyChecksum } from './checksum.js';
import { FX } from './fixtures.js';
import {
  flowSourcePortView,
  OUTER_IP_UDP_LEN,
  SRC_PORT_FIRST,
  VXLAN,
  VXLAN_FLAG_ENCRYPTED,
  VXLAN_FLAG_I,
  VXLAN_PORT,
  VxlanRepr,
  flowSourcePort,
  vxlanVni,
  writeOuterIpv4Udp,
  writeVxlanHeader,
} from './vxlan.js';

/** flags 0x08 (I), reserved 000000, VNI 0x123456, reserved 00 */
const VXLAN_HDR = '08000000 12345600';
const VNI = 0x123456;

const hasTshark = spawnSync('tshark', ['-v'], { stdio: 'ignore' }).status === 0;

/**
 * An outer IPv4 + UDP header written independently of vxlan.ts (DataView,
 * the checksum summed word by word here), to compare byte for byte.
 */
function expectedOuter(src: number, dst: number, sport: number, dport: number, payloadLen: number, id: number): Uint8Array {
  const out = new Uint8Array(28);
  const v = new DataView(out.buffer);
  v.setUint8(0, 0x45); // version 4, IHL 5
  v.setUint8(1, 0); // DSCP/ECN
  v.setUint16(2, 20 + 8 + payloadLen); // total length
  v.setUint16(4, id);
  v.setUint16(6, 0x4000); // DF, fragment offset 0
  v.setUint8(8, 64); // TTL
  v.setUint8(9, 17); // UDP
  v.setUint16(10, 0);
  v.setUint32(12, src);
  v.setUint32(16, dst);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += v.getUint16(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  v.setUint16(10, ~sum & 0xffff);
  v.setUint16(20, sport);
  v.setUint16(22, dport);
  v.setUint16(24, 8 + payloadLen); // UDP length
  v.setUint16(26, 0); // no UDP checksum
  return out;
}

/** an Ethernet/IPv4 frame with a TCP or UDP header (ports only matter) */
function ipFrame(opts: { src?: number; dst?: number; proto?: number; sport?: number; dport?: number; payload?: number; ihl?: number; frag?: number } = {}): Uint8Array {
  const ihl = opts.ihl ?? 5;
  const f = new Uint8Array(14 + ihl * 4 + 20 + (opts.payload ?? 10));
  const v = new DataView(f.buffer);
  f.set(fromHex('02427e5c1a01 0242ac110002 0800'));
  v.setUint8(14, 0x40 | ihl);
  v.setUint16(16, f.length - 14);
  v.setUint16(20, opts.frag ?? 0x4000);
  v.setUint8(22, 64);
  v.setUint8(23, opts.proto ?? 6);
  v.setUint32(26, opts.src ?? 0xac110002);
  v.setUint32(30, opts.dst ?? 0x5db8d822);
  const l4 = 14 + ihl * 4;
  v.setUint16(l4, opts.sport ?? 45678);
  v.setUint16(l4 + 2, opts.dport ?? 80);
  return f;
}

describe('VXLAN header', () => {
  it('deconstructs flags and a 24-bit VNI', () => {
    const b = fromHex(VXLAN_HDR);
    expect(vxlanVni(b, 0)).toBe(VNI);
    expect(b[VXLAN.FLAGS] & VXLAN_FLAG_I).toBe(VXLAN_FLAG_I);
    expect(VxlanRepr.parse(b)).toEqual({ flags: 0x08, vni: VNI });
    // at an offset, inside a bigger buffer
    const c = fromHex('aabbcc' + VXLAN_HDR.replace(/ /g, '') + 'ddee');
    expect(VxlanRepr.parse(c, 3)).toEqual({ flags: 0x08, vni: VNI });
    expect(vxlanVni(c, 3)).toBe(VNI);
  });

  it('ignores the reserved bytes when reading the VNI', () => {
    const b = fromHex('08ffffff 123456ff');
    expect(vxlanVni(b, 0)).toBe(VNI);
    expect(VxlanRepr.parse(b)).toEqual({ flags: 0x08, vni: VNI });
    expect(vxlanVni(fromHex('08000000 ffffff00'), 0)).toBe(0xffffff);
    expect(vxlanVni(fromHex('08000000 00000100'), 0)).toBe(1);
  });

  it('refuses a truncated header', () => {
    expect(VxlanRepr.parse(fromHex('08000000123456'))).toBeNull();
    expect(VxlanRepr.parse(fromHex(VXLAN_HDR), 1)).toBeNull();
    expect(VxlanRepr.parse(new Uint8Array(0))).toBeNull();
  });

  it('constructs the fixture (reserved fields zero) and round-trips', () => {
    const out = VxlanRepr.emit({ flags: 0x08, vni: VNI });
    expect(toHex(out)).toBe(VXLAN_HDR.replace(/ /g, ''));
    expect(VxlanRepr.parse(out)).toEqual({ flags: 0x08, vni: VNI });
    // writeVxlanHeader overwrites garbage, defaults to flags 0x08, masks the VNI to 24 bits
    const b = new Uint8Array(12).fill(0xee);
    writeVxlanHeader(b, 2, 0x7f123456);
    expect(toHex(b)).toBe('eeee' + '0800000012345600' + 'eeee');
    writeVxlanHeader(b, 2, 1, VXLAN_FLAG_I | VXLAN_FLAG_ENCRYPTED);
    expect(toHex(b, 2, 8)).toBe('0a00000000000100');
    for (const vni of [0, 1, 0xff, 0x100, 0xabcdef, 0xffffff]) {
      expect(VxlanRepr.parse(VxlanRepr.emit({ flags: 0x08, vni }))).toEqual({ flags: 0x08, vni });
    }
  });
});

describe('writeOuterIpv4Udp', () => {
  it('writes the fixture header byte for byte', () => {
    // 10.0.0.1 → 10.0.0.2, 50000 → 4789, VXLAN + 42-byte ARP request, id 0x1234
    const b = new Uint8Array(28);
    writeOuterIpv4Udp(b, 0, 0x0a000001, 0x0a000002, 50000, VXLAN_PORT, 50, 0x1234);
    // worked by hand: sum 4500+004e+1234+4000+4011+0a00+0001+0a00+0002 = eb96 → ~ = 1469
    expect(toHex(b)).toBe('4500004e12344000401114690a0000010a000002' + 'c35012b5003a0000');
    expect(toHex(b)).toBe(toHex(expectedOuter(0x0a000001, 0x0a000002, 50000, VXLAN_PORT, 50, 0x1234)));
  });

  it('matches an independent header field by field (carries in the checksum, at an offset)', () => {
    const cases = [
      { src: 0xc0a80101, dst: 0xac1f0fe3, sport: 65535, dport: 4789, payload: 1458, id: 0xffff },
      { src: 0xffffffff, dst: 0xfffffffe, sport: SRC_PORT_FIRST, dport: 8472, payload: 8 + 14, id: 0 },
      { src: 0, dst: 0x0a610002, sport: 51234, dport: 4790, payload: 8 + 60, id: 0x8001 },
    ];
    for (const c of cases) {
      const b = new Uint8Array(40).fill(0xa5);
      writeOuterIpv4Udp(b, 7, c.src, c.dst, c.sport, c.dport, c.payload, c.id);
      const want = expectedOuter(c.src, c.dst, c.sport, c.dport, c.payload, c.id);
      expect(toHex(b, 7, 28)).toBe(toHex(want));
      // nothing outside [7, 35) touched
      expect(toHex(b, 0, 7)).toBe('a5'.repeat(7));
      expect(toHex(b, 35)).toBe('a5'.repeat(5));
      const o = 7;
      const v = new DataView(b.buffer);
      expect(b[o]).toBe(0x45);
      expect(v.getUint16(o + 2)).toBe(OUTER_IP_UDP_LEN + c.payload);
      expect(v.getUint16(o + 4)).toBe(c.id);
      expect(v.getUint16(o + 6)).toBe(0x4000);
      expect(b[o + 8]).toBe(64);
      expect(b[o + 9]).toBe(17);
      expect(verifyChecksum(b, o, 20)).toBe(true);
      expect(v.getUint32(o + 12)).toBe(c.src >>> 0);
      expect(v.getUint32(o + 16)).toBe(c.dst >>> 0);
      expect(v.getUint16(o + 20)).toBe(c.sport);
      expect(v.getUint16(o + 22)).toBe(c.dport);
      expect(v.getUint16(o + 24)).toBe(8 + c.payload);
      expect(v.getUint16(o + 26)).toBe(0);
      // a flipped bit breaks the checksum
      b[o + 15] ^= 1;
      expect(verifyChecksum(b, o, 20)).toBe(false);
    }
  });

  it('computes the header checksum over garbage left in the buffer (checksum field zeroed first)', () => {
    const b = new Uint8Array(28).fill(0xff);
    writeOuterIpv4Udp(b, 0, 0x0a000001, 0x0a000002, 50000, VXLAN_PORT, 50, 0x1234);
    expect(toHex(b)).toBe('4500004e12344000401114690a0000010a000002c35012b5003a0000');
  });

  it.skipIf(!hasTshark)('a whole encapsulated packet decodes as VXLAN with the right VNI (tshark)', () => {
    const inner = fromHex(FX.arpRequest);
    const pkt = new Uint8Array(14 + OUTER_IP_UDP_LEN + VXLAN.HLEN + inner.length);
    pkt.set(fromHex('020000000002 020000000001 0800'));
    writeOuterIpv4Udp(pkt, 14, 0x0a000001, 0x0a000002, 50000, VXLAN_PORT, VXLAN.HLEN + inner.length, 7);
    writeVxlanHeader(pkt, 42, VNI);
    pkt.set(inner, 50);
    const dir = mkdtempSync(join(tmpdir(), 'usernet-vxlan-'));
    try {
      const file = join(dir, 'vxlan.pcap');
      writeFileSync(file, Buffer.concat([pcapGlobalHeader(), pcapRecord(pkt, 0, pkt.length, 1_700_000_000_000)]));
      const t = execFileSync(
        'tshark',
        ['-r', file, '-o', 'ip.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=,',
          '-e', 'ip.flags.df', '-e', 'ip.checksum.status', '-e', 'udp.dstport', '-e', 'vxlan.flags', '-e', 'vxlan.vni',
          '-e', 'arp.src.proto_ipv4', '-e', 'arp.dst.proto_ipv4'],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: dir } },
      ).toString();
      const [df, sum, dport, flags, vni, spa, tpa] = t.trim().split(',');
      expect(df).toBe('1');
      expect(sum).toBe('1'); // good
      expect(dport).toBe('4789');
      expect(Number(flags)).toBe(0x0800);
      expect(Number(vni)).toBe(VNI);
      expect([spa, tpa]).toEqual(['172.17.0.2', '172.17.0.1']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('flowSourcePort', () => {
  const SEED = 0x5eed;

  it('the DataView version (the hot path) gives the same port as the byte version', () => {
    const r = rng(77);
    const buf = new Uint8Array(256);
    const view = new DataView(buf.buffer);
    for (let i = 0; i < 2000; i++) {
      for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(r() * 256);
      if (i % 2 === 0) {
        buf[12] = 0x08;
        buf[13] = 0x00;
        buf[14] = 0x45;
        buf[23] = i % 4 === 0 ? 6 : 17;
        buf[20] = 0;
        buf[21] = 0;
      }
      const len = 14 + Math.floor(r() * 100);
      expect(flowSourcePortView(view, 0, len, i)).toBe(flowSourcePort(buf, 0, len, i));
    }
  });

  it('always lands in 49152..65535', () => {
    const r = rng(1);
    const b = new Uint8Array(200);
    for (let i = 0; i < 20000; i++) {
      for (let j = 0; j < b.length; j++) b[j] = (r() * 256) | 0;
      if (i % 2 === 0) {
        b[12] = 0x08;
        b[13] = 0x00;
      }
      const len = (r() * 201) | 0;
      const p = flowSourcePort(b, 0, len, (r() * 2 ** 32) | 0);
      expect(p >= SRC_PORT_FIRST && p <= 65535, `port ${p}`).toBe(true);
      expect(Number.isInteger(p)).toBe(true);
    }
  });

  it('gives one flow the same port every time, wherever the frame sits', () => {
    const f = ipFrame({ sport: 40000, dport: 443 });
    const p = flowSourcePort(f, 0, f.length, SEED);
    expect(flowSourcePort(f, 0, f.length, SEED)).toBe(p);
    const big = new Uint8Array(f.length + 33).fill(0x77);
    big.set(f, 21);
    expect(flowSourcePort(big, 21, f.length, SEED)).toBe(p);
    // payload, TTL, IP id and length changes are not part of the flow
    const g = ipFrame({ sport: 40000, dport: 443, payload: 300 });
    g[22] = 3;
    g[18] = 0x12;
    g[60] = 0x99;
    expect(flowSourcePort(g, 0, g.length, SEED)).toBe(p);
  });

  it('spreads different TCP/UDP ports and addresses over many ports', () => {
    const ports = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const f = ipFrame({ sport: 32768 + i, dport: 80 });
      ports.add(flowSourcePort(f, 0, f.length, SEED));
    }
    expect(ports.size).toBeGreaterThan(500);

    const byDport = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const f = ipFrame({ proto: 17, sport: 5353, dport: 1024 + i });
      byDport.add(flowSourcePort(f, 0, f.length, SEED));
    }
    expect(byDport.size).toBeGreaterThan(500);

    const byAddr = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const f = ipFrame({ src: 0x0a000000 + i });
      byAddr.add(flowSourcePort(f, 0, f.length, SEED));
    }
    expect(byAddr.size).toBeGreaterThan(500);

    const byDst = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const f = ipFrame({ dst: 0xc0a80000 + i * 7 });
      byDst.add(flowSourcePort(f, 0, f.length, SEED));
    }
    expect(byDst.size).toBeGreaterThan(500);
  });

  it('depends on the MACs and on the seed', () => {
    const macs = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const f = ipFrame();
      f[11] = i & 0xff;
      f[10] = i >> 8;
      macs.add(flowSourcePort(f, 0, f.length, SEED));
    }
    expect(macs.size).toBeGreaterThan(500);

    let differ = 0;
    for (let i = 0; i < 1000; i++) {
      const f = ipFrame({ sport: 1000 + i });
      if (flowSourcePort(f, 0, f.length, 1) !== flowSourcePort(f, 0, f.length, 2)) differ++;
    }
    expect(differ).toBeGreaterThan(950);
    const seeds = new Set<number>();
    const f = ipFrame();
    for (let s = 0; s < 1000; s++) seeds.add(flowSourcePort(f, 0, f.length, s * 0x9e3779b1));
    expect(seeds.size).toBeGreaterThan(500);
  });

  it('ignores ports of non-TCP/UDP and of non-first fragments', () => {
    const icmp = (sport: number) => ipFrame({ proto: 1, sport });
    const a = icmp(1);
    expect(flowSourcePort(icmp(2), 0, a.length, SEED)).toBe(flowSourcePort(a, 0, a.length, SEED));
    const frag = (sport: number) => ipFrame({ sport, frag: 0x0010 }); // offset 16×8
    expect(flowSourcePort(frag(1), 0, a.length, SEED)).toBe(flowSourcePort(frag(2), 0, a.length, SEED));
    // a first fragment (MF, offset 0) still has ports
    const first = (sport: number) => ipFrame({ sport, frag: 0x2000 });
    const ports = new Set<number>();
    for (let i = 0; i < 100; i++) ports.add(flowSourcePort(first(i), 0, a.length, SEED));
    expect(ports.size).toBeGreaterThan(50);
    // IP options: the L4 header is found behind them
    const opt = (sport: number) => ipFrame({ sport, ihl: 7 });
    const optPorts = new Set<number>();
    for (let i = 0; i < 100; i++) optPorts.add(flowSourcePort(opt(i), 0, opt(i).length, SEED));
    expect(optPorts.size).toBeGreaterThan(50);
  });

  it('works on non-IPv4 frames (ARP, IPv6, VLAN): MACs only, in range, stable', () => {
    const arp = fromHex(FX.arpRequest);
    const p = flowSourcePort(arp, 0, arp.length, SEED);
    expect(p).toBeGreaterThanOrEqual(SRC_PORT_FIRST);
    expect(p).toBeLessThanOrEqual(65535);
    expect(flowSourcePort(arp, 0, arp.length, SEED)).toBe(p);
    // everything after the ethertype is ignored
    const arp2 = arp.slice();
    arp2[41] ^= 0xff;
    arp2[20] ^= 0xff;
    expect(flowSourcePort(arp2, 0, arp2.length, SEED)).toBe(p);
    const v6 = new Uint8Array(80);
    v6.set(fromHex('333300000001 0242ac110002 86dd 60'));
    const q = flowSourcePort(v6, 0, v6.length, SEED);
    expect(q).toBeGreaterThanOrEqual(SRC_PORT_FIRST);
    v6[30] = 1;
    expect(flowSourcePort(v6, 0, v6.length, SEED)).toBe(q);
    const vlan = fromHex(FX.vlanIcmpEcho);
    expect(flowSourcePort(vlan, 0, vlan.length, SEED)).toBeGreaterThanOrEqual(SRC_PORT_FIRST);
  });

  it('does not read past the frame when it is too short for the L3/L4 fields', () => {
    // a frame in a buffer with bytes after it: changing those bytes must not change the port
    const check = (frame: Uint8Array, len: number) => {
      const buf = new Uint8Array(frame.length + 64);
      buf.set(frame.subarray(0, len), 10);
      const p = flowSourcePort(buf, 10, len, SEED);
      expect(p).toBeGreaterThanOrEqual(SRC_PORT_FIRST);
      for (let k = 0; k < 8; k++) {
        buf.fill((k * 37 + 1) & 0xff, 10 + len);
        expect(flowSourcePort(buf, 10, len, SEED), `len ${len}`).toBe(p);
      }
    };
    const tcp = ipFrame();
    for (const len of [14, 20, 33, 34, 35, 37, 38]) check(tcp, len);
    // options make the header longer: 14 + 28 + 4 needed for the ports
    const withOpts = ipFrame({ ihl: 7 });
    for (const len of [34, 41, 45, 46]) check(withOpts, len);
    // IHL 15 (60-byte header) with only 40 bytes there
    const big = ipFrame({ ihl: 15 });
    for (const len of [34, 40, 77]) check(big, len);
    // exactly at the end of the array: never throws, stays in range
    const exact = tcp.slice(0, 34);
    expect(flowSourcePort(exact, 0, 34, SEED)).toBeGreaterThanOrEqual(SRC_PORT_FIRST);
    const t38 = tcp.slice(0, 38);
    expect(flowSourcePort(t38, 0, 38, SEED)).toBe(flowSourcePort(tcp, 0, tcp.length, SEED));
  });
});
