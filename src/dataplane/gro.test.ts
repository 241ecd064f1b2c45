import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checksum, fold, onesSum } from '../wire/checksum.js';
import { FX } from '../wire/fixtures.js';
import { fromHex } from '../wire/bytes.js';
import { completeChecksum } from '../wire/gso.js';
import { pcapGlobalHeader, pcapRecord } from '../control/pcap.js';
import { type SuperSpec, buildSuper } from '../wire/gso-fixtures.js';
import { GRO_MAX_RUN, groMerge } from './gro.js';
import { payloadBytes } from './super-frames.js';
import { FramePool, GSO_TCPV4, M_CSUM_OFFSET, M_CSUM_START, M_GSO_SIZE, M_HDR_LEN, META_NEEDS_CSUM } from './pool.js';
import { segmentFrame } from './segment.js';

const ACK = 0x10;
const PSH = 0x08;
const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
const eq = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

function newPool(largeCapacity = 16): FramePool {
  return new FramePool({ capacity: 1024, largeCapacity });
}

/** Super-frame h into the pool with its annotations, as a TAP with offloads hands it out. */
function loadSuper(pool: FramePool, spec: SuperSpec, gsoSize: number, inPort = 3): number {
  const f = buildSuper(spec);
  const h = pool.fromBytes(f.bytes, inPort);
  pool.meta8[h * 12] = META_NEEDS_CSUM;
  pool.meta8[h * 12 + 1] = GSO_TCPV4;
  pool.meta[h * 6 + M_HDR_LEN] = f.pay;
  pool.meta[h * 6 + M_GSO_SIZE] = gsoSize;
  pool.meta[h * 6 + M_CSUM_START] = f.csumStart;
  pool.meta[h * 6 + M_CSUM_OFFSET] = f.csumOffset;
  return h;
}

/** The ordinary segments of a TCPv4 flow (segmentFrame of a built super-frame). */
function flow(pool: FramePool, o: Partial<SuperSpec> & { len: number; gso: number }): number[] {
  const h = loadSuper(pool, { ipv: 4, proto: 6, payload: payloadBytes(o.len, o.seq ?? 7), ...o }, o.gso);
  const out = new Uint32Array(1024);
  const n = segmentFrame(pool, h, 0, out);
  expect(n).toBeGreaterThan(0);
  pool.free(h);
  return Array.from(out.subarray(0, n));
}

/** Recompute the IPv4 header and TCP checksums of plain frame h after an edit. */
function fix(pool: FramePool, h: number): void {
  const b = pool.bytes;
  const o = pool.offsets[h];
  const len = pool.lengths[h];
  b[o + 24] = b[o + 25] = 0;
  const c = checksum(b, o + 14, 20);
  b[o + 24] = c >>> 8;
  b[o + 25] = c;
  b[o + 50] = b[o + 51] = 0;
  const t = checksum(b, o + 34, len - 34, onesSum(b, o + 26, 8) + 6 + len - 34);
  b[o + 50] = t >>> 8;
  b[o + 51] = t;
}

type Want = number | number[];

/**
 * Run groMerge over `list`, then check the result against `want`: a number k
 * = frame list[k] passed unchanged (same handle, bytes, meta zero); an array
 * = those frames merged into one super-frame whose software segmentation
 * gives back exactly their bytes. Frees everything and checks the pool.
 */
function mergeAndCheck(pool: FramePool, list: number[], want: Want[]): number[] {
  const before = list.map((h) => pool.toBytes(h));
  const inPorts = list.map((h) => pool.inPort[h]);
  const hs = Uint32Array.from(list);
  const m = groMerge(pool, hs, hs.length);
  expect(m).toBe(want.length);
  const out = new Uint32Array(1024);
  const supers: number[] = [];
  for (let i = 0; i < m; i++) {
    const h = hs[i];
    const w = want[i];
    if (typeof w === 'number') {
      expect(h).toBe(list[w]);
      expect(eq(pool.toBytes(h), before[w])).toBe(true);
    } else {
      expect(pool.isLarge(h)).toBe(true);
      const fi = h * 12;
      const hdr = 34 + (pool.bytes[pool.offsets[h] + 46] >>> 2);
      expect([pool.meta8[fi], pool.meta8[fi + 1]]).toEqual([META_NEEDS_CSUM, GSO_TCPV4]);
      expect(pool.meta[h * 6 + M_HDR_LEN]).toBe(hdr);
      expect(pool.meta[h * 6 + M_GSO_SIZE]).toBe(before[w[0]].length - hdr);
      expect([pool.meta[h * 6 + M_CSUM_START], pool.meta[h * 6 + M_CSUM_OFFSET]]).toEqual([34, 16]);
      expect(pool.inPort[h]).toBe(inPorts[w[0]]);
      const b = pool.toBytes(h);
      // CHECKSUM_PARTIAL: the pseudo-header sum, folded, not complemented
      expect(u16(b, 50)).toBe(fold(onesSum(b, 26, 8) + 6 + b.length - 34));
      const n = segmentFrame(pool, h, 0, out);
      expect(n).toBe(w.length);
      for (let k = 0; k < n; k++) {
        expect(eq(pool.toBytes(out[k]), before[w[k]])).toBe(true);
        pool.free(out[k]);
      }
      supers.push(h);
    }
    pool.free(h);
  }
  expect(pool.inUse).toBe(0);
  return supers;
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

describe('groMerge (property): the inverse of segmentFrame', () => {
  it('segment a random TCPv4 super-frame, merge the segments: the same super-frame back', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 65000 }),
        fc.integer({ min: 536, max: 1800 }), // segments fit small slots
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.constantFrom(0, 4, 12, 20, 40),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 1, max: 255 }),
        fc.boolean(),
        fc.boolean(),
        (len, gsoArb, seed, tcpOpts, seq, ipId, ttl, df, psh) => {
          const gso = Math.max(gsoArb, Math.ceil(len / GRO_MAX_RUN));
          const pool = newPool(4);
          const spec: SuperSpec = { ipv: 4, proto: 6, payload: payloadBytes(len, seed), tcpOpts, seq, ipId, ttl, df, tcpFlags: psh ? ACK | PSH : ACK };
          const orig = buildSuper(spec).bytes;
          const segs = flow(pool, { ...spec, len, gso });
          const n = segs.length;
          expect(n).toBe(Math.ceil(len / gso));
          const segBytes = segs.map((h) => pool.toBytes(h));
          const hs = Uint32Array.from(segs);
          expect(groMerge(pool, hs, n)).toBe(1);
          const h = hs[0];
          if (n === 1) {
            expect(h).toBe(segs[0]);
            expect(pool.meta8.subarray(h * 12, h * 12 + 12).every((x) => x === 0)).toBe(true);
          } else {
            // byte for byte the super-frame Linux would have built: headers of the first,
            // total length, flags of the last (PSH), ID of the first, partial checksum
            const b = pool.toBytes(h);
            expect(eq(b, orig)).toBe(true);
            expect(u32(b, 38)).toBe(seq);
            expect(u16(b, 16)).toBe(orig.length - 14);
            expect(b[47]).toBe(psh ? ACK | PSH : ACK);
            expect(pool.meta[h * 6 + M_GSO_SIZE]).toBe(gso);
            expect(pool.meta[h * 6 + M_HDR_LEN]).toBe(54 + tcpOpts);
            expect(pool.inPort[h]).toBe(3);
            for (const s of segs) expect(() => pool.free(s)).toThrow(/double free/);
            // segmenting the merged frame again gives the same segments
            const out = new Uint32Array(GRO_MAX_RUN);
            expect(segmentFrame(pool, h, 0, out)).toBe(n);
            for (let k = 0; k < n; k++) {
              expect(eq(pool.toBytes(out[k]), segBytes[k])).toBe(true);
              pool.free(out[k]);
            }
          }
          pool.free(h);
          expect(pool.inUse).toBe(0);
        },
      ),
      { numRuns: 80 },
    );
  });

  it('DF set and every IP ID equal (mangleid) merges; without DF it does not', () => {
    for (const df of [true, false]) {
      const pool = newPool();
      const segs = flow(pool, { len: 5000, gso: 1000, df, ipId: 500 });
      for (const h of segs) {
        pool.bytes[pool.offsets[h] + 18] = 0x01;
        pool.bytes[pool.offsets[h] + 19] = 0xf4;
        fix(pool, h);
      }
      const hs = Uint32Array.from(segs);
      const m = groMerge(pool, hs, 5);
      expect(m).toBe(df ? 1 : 5);
      if (df) expect(u16(pool.toBytes(hs[0]), 18)).toBe(500);
      for (let i = 0; i < m; i++) pool.free(hs[i]);
      expect(pool.inUse).toBe(0);
    }
  });
});

describe('groMerge: what splits a run', () => {
  it('runs interleaved with other flows, ARP, UDP, ICMP and a super-frame keep their order', () => {
    const pool = newPool();
    const a = flow(pool, { len: 8000, gso: 1000, sport: 40000 });
    const b = flow(pool, { len: 3000, gso: 1000, sport: 40001, seq: 99 });
    const arp = pool.fromBytes(fromHex(FX.arpRequest));
    const udp = pool.fromBytes(fromHex(FX.udpDns));
    const icmp = pool.fromBytes(fromHex(FX.icmpEcho));
    const sup = loadSuper(pool, { ipv: 4, proto: 6, payload: new Uint8Array(3000) }, 1000);
    const list = [arp, ...a.slice(0, 5), udp, ...b, sup, ...a.slice(5), icmp];
    mergeAndCheck(pool, list, [0, range(1, 6), 6, range(7, 10), 10, range(11, 14), 14]);
  });

  it('the same two flows alternating frame by frame: nothing merges (consecutive only)', () => {
    const pool = newPool();
    const a = flow(pool, { len: 4000, gso: 1000, sport: 40000 });
    const b = flow(pool, { len: 4000, gso: 1000, sport: 40001 });
    mergeAndCheck(pool, [a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3]], range(0, 8));
  });

  it('a corrupted TCP checksum (or IP header checksum) splits the run, the bad frame passes as it is', () => {
    for (const at of [52 + 100, 22]) {
      const pool = newPool();
      const s = flow(pool, { len: 10000, gso: 1000 });
      pool.bytes[pool.offsets[s[4]] + at] ^= 0x40; // payload byte or TTL, checksums not fixed
      mergeAndCheck(pool, s, [range(0, 4), 4, range(5, 10)]);
    }
    const pool = newPool();
    const s = flow(pool, { len: 5000, gso: 1000 });
    pool.bytes[pool.offsets[s[0]] + 60] ^= 1;
    pool.bytes[pool.offsets[s[4]] + 60] ^= 1;
    mergeAndCheck(pool, s, [0, range(1, 4), 4]);
  });

  it('FIN, SYN, RST, URG, ECE, CWR (or no ACK) are never merged; PSH ends a run and is kept', () => {
    for (const f of [0x11, 0x12, 0x14, 0x30, 0x50, 0x90, 0x19, 0x00, 0x08]) {
      const pool = newPool();
      const s = flow(pool, { len: 10000, gso: 1000 });
      pool.bytes[pool.offsets[s[4]] + 47] = f;
      fix(pool, s[4]);
      mergeAndCheck(pool, s, [range(0, 4), 4, range(5, 10)]);
    }
    const pool = newPool();
    const s = flow(pool, { len: 10000, gso: 1000 });
    pool.bytes[pool.offsets[s[4]] + 47] = ACK | PSH;
    fix(pool, s[4]);
    mergeAndCheck(pool, s, [range(0, 5), range(5, 10)]);
    // a FIN on the last segment (as segmentFrame puts it) stays out
    const fin = flow(pool, { len: 5000, gso: 1000, tcpFlags: 0x19 });
    mergeAndCheck(pool, fin, [range(0, 4), 4]);
  });

  it('a changed MAC, TOS, DF, TTL, address, port, ack, window, option or IP ID splits the run', () => {
    // byte offset in the frame → the run is cut before and after the changed frame
    for (const at of [0, 8, 15, 20, 22, 27, 31, 35, 37, 43, 45, 48, 49, 55, 65, 19]) {
      const pool = newPool();
      const s = flow(pool, { len: 10000, gso: 1000, tcpOpts: 12 });
      pool.bytes[pool.offsets[s[4]] + at] ^= at === 20 ? 0x40 : at === 19 ? 0x80 : 0x01;
      fix(pool, s[4]);
      mergeAndCheck(pool, s, [range(0, 4), 4, range(5, 10)]);
    }
  });

  it('a gap in seq, a short segment, a longer one after a short first, a zero-payload ACK', () => {
    const pool = newPool();
    const s = flow(pool, { len: 10000, gso: 1000 });
    pool.free(s[4]);
    const gap = [...s.slice(0, 4), ...s.slice(5)];
    mergeAndCheck(pool, gap, [range(0, 4), range(4, 9)]);
    // 4500 bytes then the next 5000: the short 5th segment ends the first run
    const a = flow(pool, { len: 4500, gso: 1000, seq: 1000, ipId: 10 });
    const b = flow(pool, { len: 5000, gso: 1000, seq: 5500, ipId: 15 });
    mergeAndCheck(pool, [...a, ...b], [range(0, 5), range(5, 10)]);
    // a 500-byte first segment cannot take 1000-byte ones after it
    const c = flow(pool, { len: 500, gso: 1000, seq: 1000, ipId: 10 });
    const d = flow(pool, { len: 3000, gso: 1000, seq: 1500, ipId: 11 });
    mergeAndCheck(pool, [...c, ...d], [0, range(1, 4)]);
    // pure ACKs (no payload) pass
    const e = flow(pool, { len: 0, gso: 1000 });
    const f = flow(pool, { len: 0, gso: 1000 });
    mergeAndCheck(pool, [...e, ...f], [0, 1]);
  });

  it('a frame with annotations (NEEDS_CSUM) in the middle passes unmerged', () => {
    const pool = newPool();
    const s = flow(pool, { len: 6000, gso: 1000 });
    pool.meta8[s[3] * 12] = META_NEEDS_CSUM;
    pool.meta[s[3] * 6 + M_CSUM_START] = 34;
    pool.meta[s[3] * 6 + M_CSUM_OFFSET] = 16;
    const hs = Uint32Array.from(s);
    expect(groMerge(pool, hs, 6)).toBe(3);
    expect(hs[1]).toBe(s[3]);
    for (let i = 0; i < 3; i++) pool.free(hs[i]);
    expect(pool.inUse).toBe(0);
  });
});

describe('groMerge: bounds', () => {
  it('no large slot (none configured, or all taken): the frames stay as they are', () => {
    const none = newPool(0);
    mergeAndCheck(none, flow(none, { len: 1500, gso: 300 }), range(0, 5)); // the super-frame fits a small slot
    const pool = newPool(2);
    const taken = [pool.allocLarge(), pool.allocLarge()];
    const s = flow(pool, { len: 1500, gso: 300 });
    const hs = Uint32Array.from(s);
    expect(groMerge(pool, hs, 5)).toBe(5);
    expect(Array.from(hs)).toEqual(s);
    for (const h of [...taken, ...s]) pool.free(h);
    expect(pool.inUse).toBe(0);
  });

  it('running out of large slots half way: merged runs first, the rest unchanged, in order', () => {
    const pool = newPool(1);
    const a = flow(pool, { len: 3000, gso: 1000, sport: 1 });
    const b = flow(pool, { len: 3000, gso: 1000, sport: 2 });
    mergeAndCheck(pool, [...a, ...b], [range(0, 3), 3, 4, 5]);
  });

  it('at most 64 segments per super-frame', () => {
    const pool = newPool();
    const s = flow(pool, { len: 60000, gso: 600 });
    expect(s).toHaveLength(100);
    mergeAndCheck(pool, s, [range(0, GRO_MAX_RUN), range(GRO_MAX_RUN, 100)]);
  });

  it('the merged IP total length stays ≤ 65535 (45 × 1448 bytes, then a new run)', () => {
    const pool = newPool();
    const a = flow(pool, { len: 45 * 1448, gso: 1448, seq: 0, ipId: 0 });
    const b = flow(pool, { len: 10 * 1448, gso: 1448, seq: 45 * 1448, ipId: 45 });
    mergeAndCheck(pool, [...a, ...b], [range(0, 45), range(45, 55)]);
  });
});

describe('merged super-frames as tshark sees them', () => {
  it('IP header checksum good, lengths and seq as merged; the TCP checksum is good once completed, bad while partial', () => {
    const dir = mkdtempSync(join(tmpdir(), 'usernet-gro-'));
    const pool = newPool();
    try {
      const a = flow(pool, { len: 45 * 1448, gso: 1448, seq: 0xfffff000, tcpOpts: 12, tcpFlags: ACK | PSH });
      const b = flow(pool, { len: 2500, gso: 1000, sport: 50000, seq: 42 });
      const hs = Uint32Array.from([...a, ...b]);
      expect(groMerge(pool, hs, hs.length)).toBe(2);
      const frames: Uint8Array[] = [];
      for (let i = 0; i < 2; i++) {
        const f = pool.toBytes(hs[i]);
        frames.push(f.slice());
        completeChecksum(f, 0, f.length, 34, 16);
        frames.push(f);
        pool.free(hs[i]);
      }
      expect(pool.inUse).toBe(0);
      const file = join(dir, 'gro.pcap');
      writeFileSync(file, Buffer.concat([pcapGlobalHeader(), ...frames.map((f) => pcapRecord(f, 0, f.length, 1_700_000_000_000))]));
      const out = execFileSync(
        'tshark',
        ['-r', file, '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.relative_sequence_numbers:FALSE', '-T', 'fields', '-e', 'ip.checksum.status', '-e', 'tcp.checksum.status', '-e', 'ip.len', '-e', 'tcp.len', '-e', 'tcp.seq', '-e', 'tcp.flags'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
      );
      // 1 = good, 0 = bad (Wireshark's PROTO_CHECKSUM_E_*)
      expect(out.trim().split('\n')).toEqual([
        `1\t0\t${20 + 32 + 45 * 1448}\t${45 * 1448}\t${0xfffff000}\t0x0018`,
        `1\t1\t${20 + 32 + 45 * 1448}\t${45 * 1448}\t${0xfffff000}\t0x0018`,
        '1\t0\t2540\t2500\t42\t0x0010',
        '1\t1\t2540\t2500\t42\t0x0010',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
