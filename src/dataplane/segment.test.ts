import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pcapGlobalHeader, pcapRecord } from '../control/pcap.js';
import { type SuperFrame, type SuperSpec, buildSuper, refVerify } from '../wire/gso-fixtures.js';
import { GsoError } from '../wire/gso.js';
import { payloadBytes } from './super-frames.js';
import { FramePool, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, M_CSUM_OFFSET, M_CSUM_START, M_GSO_SIZE, M_HDR_LEN, META_NEEDS_CSUM } from './pool.js';
import { completeFrame, segmentFrame } from './segment.js';

const FIN = 0x01;
const PSH = 0x08;
const URG = 0x20;
const CWR = 0x80;

function newPool(capacity = 1024, largeCapacity = 48): FramePool {
  return new FramePool({ capacity, largeCapacity });
}

/** Put a super-frame into the pool with its annotations, as a TAP with offloads would. */
function load(pool: FramePool, f: SuperFrame, gsoType: number, gsoSize: number, inPort = 3): number {
  const h = pool.fromBytes(f.bytes, inPort);
  expect(h).toBeGreaterThanOrEqual(0);
  const m = h * 6;
  pool.meta8[h * 12] = META_NEEDS_CSUM;
  pool.meta8[h * 12 + 1] = gsoType;
  pool.meta[m + M_HDR_LEN] = f.pay;
  pool.meta[m + M_GSO_SIZE] = gsoSize;
  pool.meta[m + M_CSUM_START] = f.csumStart;
  pool.meta[m + M_CSUM_OFFSET] = f.csumOffset;
  return h;
}

function typeOf(s: SuperSpec): number {
  return s.proto === 17 ? GSO_UDP_L4 : s.ipv === 4 ? GSO_TCPV4 : GSO_TCPV6;
}

const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

/** Segment, then check everything the contract promises; returns the segments' bytes. */
function segmentAndCheck(spec: SuperSpec, gsoSize: number, mss = 0): Uint8Array[] {
  const pool = newPool();
  const f = buildSuper(spec);
  const h = load(pool, f, typeOf(spec), gsoSize);
  const out = new Uint32Array(1024);
  const n = segmentFrame(pool, h, mss, out);
  const seg = mss > 0 && mss < gsoSize ? mss : gsoSize;
  const plen = spec.payload.length;
  expect(n).toBe(Math.max(1, Math.ceil(plen / seg)));
  expect(pool.inUse).toBe(1 + n);
  // the super-frame is untouched
  expect(Buffer.from(pool.toBytes(h)).equals(Buffer.from(f.bytes))).toBe(true);
  pool.free(h);
  const segs: Uint8Array[] = [];
  const whole = new Uint8Array(plen);
  let p = 0;
  const id0 = spec.ipv === 4 ? u16(f.bytes, f.l3 + 4) : 0;
  const seq0 = spec.proto === 6 ? u32(f.bytes, f.l4 + 4) : 0;
  const flags0 = spec.proto === 6 ? f.bytes[f.l4 + 13] : 0;
  for (let i = 0; i < n; i++) {
    const s = out[i];
    for (let k = 0; k < 12; k++) expect(pool.meta8[s * 12 + k]).toBe(0);
    expect(pool.inPort[s]).toBe(3);
    const b = pool.toBytes(s);
    pool.free(s);
    segs.push(b);
    expect(b.length).toBeLessThanOrEqual(f.pay + seg);
    // headers before L3 identical (MACs, VLAN)
    expect(Buffer.from(b.subarray(0, f.l3)).equals(Buffer.from(f.bytes.subarray(0, f.l3)))).toBe(true);
    const r = refVerify(b, f.l3);
    expect(r.ip).toBe(true);
    expect(r.l4).toBe(true);
    if (spec.ipv === 4) {
      expect(u16(b, f.l3 + 4)).toBe((id0 + i) & 0xffff);
      expect(b[f.l3 + 8]).toBe(f.bytes[f.l3 + 8]); // TTL
      expect(u16(b, f.l3 + 6)).toBe(u16(f.bytes, f.l3 + 6)); // DF
    } else {
      expect(b[f.l3 + 7]).toBe(f.bytes[f.l3 + 7]);
    }
    if (spec.proto === 6) {
      expect(u32(b, f.l4 + 4)).toBe((seq0 + p) >>> 0);
      const fl = b[f.l4 + 13];
      const last = i === n - 1;
      expect(fl & (FIN | PSH)).toBe(last ? flags0 & (FIN | PSH) : 0);
      expect(fl & CWR).toBe(i === 0 ? flags0 & CWR : 0);
      expect(fl & ~(FIN | PSH | CWR)).toBe(flags0 & ~(FIN | PSH | CWR));
      // ack, data offset, window, urgent pointer and options as in the super-frame
      for (const [a, z] of [[8, 13], [14, 16], [18, f.pay - f.l4]]) {
        expect(Buffer.from(b.subarray(f.l4 + a, f.l4 + z)).equals(Buffer.from(f.bytes.subarray(f.l4 + a, f.l4 + z)))).toBe(true);
      }
    } else {
      expect(u16(b, f.l4 + 4)).toBe(b.length - f.l4);
    }
    whole.set(b.subarray(f.pay), p);
    p += b.length - f.pay;
  }
  expect(p).toBe(plen);
  expect(Buffer.from(whole).equals(Buffer.from(spec.payload))).toBe(true);
  expect(pool.inUse).toBe(0);
  return segs;
}

const specArb = (ipv: 4 | 6, proto: 6 | 17) =>
  fc.record({
    ipv: fc.constant(ipv),
    proto: fc.constant(proto),
    payload: fc.tuple(fc.integer({ min: 1, max: 65000 }), fc.integer({ min: 1, max: 0x7fffffff })).map(([n, seed]) => payloadBytes(n, seed)),
    vlan: fc.option(fc.integer({ min: 0, max: 0xffff }), { nil: undefined }),
    ipOpts: fc.constantFrom(0, 4, 12, 40),
    tcpOpts: fc.constantFrom(0, 12, 40),
    tcpFlags: fc.integer({ min: 0, max: 255 }).map((f) => (f & ~0x07) | 0x10), // no SYN/RST/FIN by default…
    fin: fc.boolean(),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    ipId: fc.integer({ min: 0, max: 0xffff }),
    ttl: fc.integer({ min: 1, max: 255 }),
    df: fc.boolean(),
  });

describe('segmentFrame (property)', () => {
  for (const [ipv, proto, name] of [
    [4, 6, 'TCPv4'],
    [6, 6, 'TCPv6'],
    [4, 17, 'UDP_L4 over IPv4'],
    [6, 17, 'UDP_L4 over IPv6'],
  ] as const) {
    it(`${name}: reassembles byte for byte, every checksum verifies, seq/ID/flags as the kernel writes them`, () => {
      fc.assert(
        fc.property(specArb(ipv, proto), fc.integer({ min: 88, max: 9000 }), fc.constantFrom(0, 0, 536, 1398), (s, gsoSize, mss) => {
          const spec: SuperSpec = { ...s, tcpFlags: s.tcpFlags | (s.fin ? FIN : 0) };
          segmentAndCheck(spec, gsoSize, mss);
        }),
        { numRuns: ipv === 4 && proto === 6 ? 120 : 60 },
      );
    });
  }

  it('FIN+PSH+CWR+URG: FIN/PSH only on the last, CWR only on the first, URG kept', () => {
    const segs = segmentAndCheck({ ipv: 4, proto: 6, payload: new Uint8Array(4000).fill(9), tcpFlags: FIN | PSH | CWR | URG | 0x10 }, 1448);
    expect(segs.map((b) => b[34 + 13])).toEqual([0x10 | CWR | URG, 0x10 | URG, 0x10 | URG | FIN | PSH]);
    expect(segs.map((b) => b.length)).toEqual([54 + 1448, 54 + 1448, 54 + 1104]);
  });

  it('wraps the sequence number and the IP ID', () => {
    const segs = segmentAndCheck({ ipv: 4, proto: 6, payload: new Uint8Array(3000), seq: 0xffffff00, ipId: 0xffff }, 1000);
    expect(segs.map((b) => u32(b, 38))).toEqual([0xffffff00, 0x000002e8, 0x000006d0]);
    expect(segs.map((b) => u16(b, 18))).toEqual([0xffff, 0, 1]);
  });

  it('a super-frame whose payload fits one segment gives one frame; an empty one gives its headers', () => {
    expect(segmentAndCheck({ ipv: 4, proto: 6, payload: new Uint8Array(100) }, 1448)).toHaveLength(1);
    expect(segmentAndCheck({ ipv: 6, proto: 6, payload: new Uint8Array(0), tcpFlags: 0x11 }, 1448)[0].length).toBe(74);
  });
});

describe('segmentFrame (bad input, nothing leaks)', () => {
  function expectErr(bytes: Uint8Array, f: SuperFrame, type: number, gsoSize: number, want: number, patch?: (pool: FramePool, h: number) => void): void {
    const pool = newPool();
    const h = load(pool, { ...f, bytes }, type, gsoSize);
    patch?.(pool, h);
    const out = new Uint32Array(1024);
    expect(segmentFrame(pool, h, 0, out)).toBe(-want);
    expect(pool.inUse).toBe(1);
    pool.free(h);
  }
  const f = buildSuper({ ipv: 4, proto: 6, payload: new Uint8Array(5000).fill(1) });
  const v6 = buildSuper({ ipv: 6, proto: 6, payload: new Uint8Array(5000).fill(1) });

  it('gsoSize 0', () => expectErr(f.bytes, f, GSO_TCPV4, 0, GsoError.ZERO_SIZE));
  it('a GSO type that does not match L3/L4', () => {
    expectErr(f.bytes, f, GSO_TCPV6, 1448, GsoError.WRONG_PROTO);
    expectErr(v6.bytes, v6, GSO_TCPV4, 1448, GsoError.WRONG_PROTO);
    expectErr(f.bytes, f, GSO_UDP_L4, 1448, GsoError.WRONG_PROTO);
    expectErr(f.bytes, f, 3, 1448, GsoError.BAD_TYPE);
  });
  it('IP total length larger / smaller than the frame', () => {
    const big = f.bytes.slice();
    big[17] += 1;
    expectErr(big, f, GSO_TCPV4, 1448, GsoError.BAD_LENGTH);
    const small = f.bytes.slice();
    small[17] -= 1;
    expectErr(small, f, GSO_TCPV4, 1448, GsoError.BAD_LENGTH);
  });
  it('checksum offset outside the frame / not at the L4 field / no NEEDS_CSUM', () => {
    expectErr(f.bytes, f, GSO_TCPV4, 1448, GsoError.BAD_CSUM, (pool, h) => {
      pool.meta[h * 6 + M_CSUM_OFFSET] = 0xfff0;
    });
    expectErr(f.bytes, f, GSO_TCPV4, 1448, GsoError.BAD_CSUM, (pool, h) => {
      pool.meta[h * 6 + M_CSUM_START] = 60000;
    });
    expectErr(f.bytes, f, GSO_TCPV4, 1448, GsoError.BAD_CSUM, (pool, h) => {
      pool.meta8[h * 12] = 0;
    });
  });
  it('truncated headers', () => {
    for (const cut of [12, 20, 40, 50]) expectErr(f.bytes.slice(0, cut), f, GSO_TCPV4, 1448, GsoError.TRUNCATED);
    expectErr(v6.bytes.slice(0, 60), v6, GSO_TCPV6, 1448, GsoError.TRUNCATED);
  });
  it('not a super-frame', () => expectErr(f.bytes, f, 0, 1448, GsoError.NOT_GSO));
  it('out too small', () => {
    const pool = newPool();
    const h = load(pool, f, GSO_TCPV4, 1000);
    expect(segmentFrame(pool, h, 0, new Uint32Array(4))).toBe(-GsoError.OUT_TOO_SMALL);
    expect(pool.inUse).toBe(1);
    expect(segmentFrame(pool, h, 0, new Uint32Array(5))).toBe(5);
    expect(pool.inUse).toBe(6);
  });
  it('pool runs dry midway: frees what it made', () => {
    const pool = new FramePool({ capacity: 4, largeCapacity: 1 });
    const h = load(pool, f, GSO_TCPV4, 500); // 10 segments, 4 small slots
    expect(segmentFrame(pool, h, 0, new Uint32Array(16))).toBe(-GsoError.POOL_EMPTY);
    expect(pool.inUse).toBe(1);
    expect(pool.available).toBe(4);
    pool.free(h);
  });
});

describe('completeFrame', () => {
  it('completes a NEEDS_CSUM plain frame (padding excluded) and clears the flag; refuses bad fields and super-frames', () => {
    for (const proto of [6, 17] as const) {
      const f = buildSuper({ ipv: 4, proto, payload: new Uint8Array([1, 2, 3]) });
      const padded = new Uint8Array(f.bytes.length + 7).fill(0x55);
      padded.set(f.bytes);
      const pool = newPool();
      const h = pool.fromBytes(padded);
      pool.meta8[h * 12] = META_NEEDS_CSUM;
      pool.meta[h * 6 + M_CSUM_START] = f.csumStart;
      pool.meta[h * 6 + M_CSUM_OFFSET] = f.csumOffset;
      expect(completeFrame(pool, h)).toBe(0);
      expect(pool.meta8[h * 12]).toBe(0);
      expect(refVerify(pool.toBytes(h).subarray(0, f.bytes.length), f.l3)).toMatchObject({ ip: true, l4: true });
      expect(completeFrame(pool, h)).toBe(0); // nothing to do twice
      pool.meta8[h * 12] = META_NEEDS_CSUM;
      pool.meta[h * 6 + M_CSUM_START] = 200;
      expect(completeFrame(pool, h)).toBe(GsoError.BAD_CSUM);
      pool.meta[h * 6 + M_CSUM_START] = f.csumStart;
      pool.meta8[h * 12 + 1] = GSO_TCPV4;
      expect(completeFrame(pool, h)).toBe(GsoError.BAD_TYPE);
      pool.free(h);
      expect(pool.inUse).toBe(0);
    }
  });
});

describe('segments as tshark sees them', () => {
  it('every IPv4/TCP/UDP checksum of segmented frames decodes as good (and a corrupted one as bad)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'usernet-gso-'));
    try {
      const frames: Uint8Array[] = [
        ...segmentAndCheck({ ipv: 4, proto: 6, payload: new Uint8Array(10000).map((_, i) => i * 13), vlan: 5, ipOpts: 4, tcpOpts: 12, tcpFlags: 0x18 }, 1448),
        ...segmentAndCheck({ ipv: 6, proto: 6, payload: new Uint8Array(5000).map((_, i) => i * 7) }, 1428),
        ...segmentAndCheck({ ipv: 4, proto: 17, payload: new Uint8Array(4001).map((_, i) => i * 3) }, 1400),
      ];
      const bad = frames[1].slice();
      bad[bad.length - 1] ^= 0xff;
      frames.push(bad);
      const chunks = [pcapGlobalHeader(), ...frames.map((b) => pcapRecord(b, 0, b.length, 1_700_000_000_000))];
      const file = join(dir, 'segs.pcap');
      writeFileSync(file, Buffer.concat(chunks));
      const out = execFileSync(
        'tshark',
        ['-r', file, '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-e', 'ip.checksum.status', '-e', 'tcp.checksum.status', '-e', 'udp.checksum.status'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
      );
      const rows = out.replace(/\n$/, '').split('\n');
      expect(rows).toHaveLength(frames.length);
      // 1 = good, 0 = bad (Wireshark's PROTO_CHECKSUM_E_*); IPv6 has no header checksum
      expect(rows.slice(0, 7)).toEqual(Array(7).fill('1\t1\t'));
      expect(rows.slice(7, 11)).toEqual(Array(4).fill('\t1\t'));
      expect(rows.slice(11, 14)).toEqual(Array(3).fill('1\t\t1'));
      expect(rows[14]).toBe('1\t0\t');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
