/**
 * NAT of super-frames with a partial checksum (translatePartial): after the
 * rewrite, completing the checksum (completeChecksum, src/wire/gso.ts) must
 * give exactly the checksum of the rewritten packet computed from scratch,
 * and every segment software GSO cuts from it must verify (also checked by
 * tshark when it is installed).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { segmentFrame } from '../dataplane/segment.js';
import { u16, u32 } from '../wire/bytes.js';
import { checksum, verifyChecksum } from '../wire/checksum.js';
import { completeChecksum } from '../wire/gso.js';
import { parseIpv4 } from '../wire/ipv4.js';
import { CT_ORIGINAL, CT_REPLY, Conntrack } from './conntrack.js';
import { NatRewriter } from './nat.js';
import { getMeta, ipHeaderOk, l4ChecksumField, load, payloadBytes, scratchL4Checksum, superFrame, type SuperOpts } from '../dataplane/super-frames.js';

const A = parseIpv4('172.18.0.2'); // container
const B = parseIpv4('172.18.0.3'); // container with a published port
const GW = parseIpv4('172.18.0.1');
const S = parseIpv4('93.184.216.34');
const C = parseIpv4('198.51.100.7');
const G = parseIpv4('192.168.1.2'); // uplink address

function bed() {
  const pool = new FramePool({ capacity: 2048, largeCapacity: 64 });
  const ct = new Conntrack({ capacity: 64, seed: 5 });
  return { pool, ct, nat: new NatRewriter(pool, ct) };
}

/** The frame's bytes with its partial checksum completed (a copy). */
function completed(pool: FramePool, h: number): Uint8Array {
  const f = pool.toBytes(h);
  const m = getMeta(pool, h);
  completeChecksum(f, 0, f.length, m.csumStart, m.csumOffset);
  return f;
}

/** Segment h (not freed) and return every segment's bytes; every segment is checked to verify. */
function segmentsOk(pool: FramePool, h: number): Uint8Array[] {
  const out = new Uint32Array(1024);
  const n = segmentFrame(pool, h, 0, out);
  expect(n).toBeGreaterThan(0);
  const segs: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const f = pool.toBytes(out[k]);
    pool.free(out[k]);
    expect(ipHeaderOk(f)).toBe(true);
    const hl = (f[14] & 15) << 2;
    const total = u16(f, 16);
    const proto = f[23];
    const l4 = 14 + hl;
    const ph = (u32(f, 26) >>> 16) + (u32(f, 26) & 0xffff) + (u32(f, 30) >>> 16) + (u32(f, 30) & 0xffff) + proto + (total - hl);
    expect(verifyChecksum(f, l4, total - hl, ph)).toBe(true);
    segs.push(f);
  }
  return segs;
}

/** Write frames to a pcap and ask tshark how many have a bad IP/TCP/UDP checksum (null: no tshark). */
function tsharkBad(frames: Uint8Array[]): number | null {
  if (spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status !== 0) return null;
  const dir = mkdtempSync(join(tmpdir(), 'usernet-nat-'));
  try {
    const parts: Buffer[] = [];
    const gh = Buffer.alloc(24);
    gh.writeUInt32LE(0xa1b2c3d4, 0);
    gh.writeUInt16LE(2, 4);
    gh.writeUInt16LE(4, 6);
    gh.writeUInt32LE(262144, 16);
    gh.writeUInt32LE(1, 20);
    parts.push(gh);
    frames.forEach((f, i) => {
      const rh = Buffer.alloc(16);
      rh.writeUInt32LE(1, 0);
      rh.writeUInt32LE(i, 4);
      rh.writeUInt32LE(f.length, 8);
      rh.writeUInt32LE(f.length, 12);
      parts.push(rh, Buffer.from(f));
    });
    const file = join(dir, 'f.pcap');
    writeFileSync(file, Buffer.concat(parts));
    // per frame: IP, TCP and UDP checksum status (1 good, 0 bad, absent: no such header)
    const r = spawnSync('tshark', ['-n', '-r', file, '--disable-heuristic', 'quic', '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=,', '-e', 'ip.checksum.status', '-e', 'tcp.checksum.status', '-e', 'udp.checksum.status'], { encoding: 'utf8' }); // prettier-ignore
    if (r.status !== 0) throw new Error(`tshark failed: ${r.stderr}`);
    const rows = r.stdout.trim().split('\n');
    expect(rows.length).toBe(frames.length);
    return rows.filter((l) => !/^1,(1,|,1)$/.test(l)).length;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** NAT one super-frame of `flow` in `dir` and check it every way; returns the rewritten (completed) frame. Its segments go to `segs`. */
function natAndCheck(env: ReturnType<typeof bed>, o: SuperOpts, flow: number, dir: number, all: Uint8Array[] = []): Uint8Array {
  const { pool, nat } = env;
  const { bytes, meta } = superFrame(o);
  const h = load(pool, bytes, meta);
  expect(pool.isLarge(h)).toBe(o.payload + 54 > pool.maxFrame);
  expect(nat.translatePartial(pool.bytes, pool.offsets[h] + 14, flow, dir)).toBe(true);
  // still partial: the field holds the pseudo-header sum of the new addresses (not complemented)
  expect(getMeta(pool, h)).toEqual(meta);
  const f = completed(pool, h);
  expect(ipHeaderOk(f)).toBe(true);
  expect(l4ChecksumField(f)).toBe(scratchL4Checksum(f));
  // the payload is untouched
  expect(f.subarray(meta.hdrLen)).toEqual(payloadBytes(o.payload, o.seed));
  const segs = segmentsOk(pool, h);
  expect(segs.length).toBe(Math.ceil(o.payload / o.gsoSize));
  all.push(...segs);
  pool.free(h);
  expect(pool.inUse).toBe(0);
  return f;
}

const tuple = (f: Uint8Array) => ({ src: u32(f, 26), dst: u32(f, 30), sport: u16(f, 34), dport: u16(f, 36) });

describe('NAT of super-frames with a partial checksum', () => {
  it('masquerade (SNAT) out and its replies back: the completed checksum is the one computed from scratch', () => {
    const env = bed();
    const segs: Uint8Array[] = [];
    const f = env.ct.create(6, A, 40000, S, 80, S, 80, G, 50001, 0);
    const out = natAndCheck(env, { src: A, dst: S, sport: 40000, dport: 80, payload: 40000, gsoSize: 1448 }, f, CT_ORIGINAL, segs);
    expect(tuple(out)).toEqual({ src: G, dst: S, sport: 50001, dport: 80 });
    const back = natAndCheck(env, { src: S, dst: G, sport: 80, dport: 50001, payload: 62000, gsoSize: 1448, seed: 9 }, f, CT_REPLY, segs);
    expect(tuple(back)).toEqual({ src: S, dst: A, sport: 80, dport: 40000 });
    expect(segs.length).toBe(28 + 43);
    // one corrupted copy rides along: tshark must count exactly that one
    const broken = segs[5].slice();
    broken[100] ^= 0x10;
    const bad = tsharkBad([...segs, broken]);
    if (bad !== null) expect(bad).toBe(1);
  });

  it('DNAT to a published port, and hairpin (both addresses and both ports change)', () => {
    const env = bed();
    const segs: Uint8Array[] = [];
    const d = env.ct.create(6, C, 5555, G, 8080, B, 80, C, 5555, 0);
    expect(tuple(natAndCheck(env, { src: C, dst: G, sport: 5555, dport: 8080, payload: 30000, gsoSize: 1400 }, d, CT_ORIGINAL, segs))).toEqual({ src: C, dst: B, sport: 5555, dport: 80 });
    expect(tuple(natAndCheck(env, { src: B, dst: C, sport: 80, dport: 5555, payload: 20001, gsoSize: 1448 }, d, CT_REPLY, segs))).toEqual({ src: G, dst: C, sport: 8080, dport: 5555 });
    const hp = env.ct.create(6, A, 41000, G, 8080, B, 80, GW, 41000, 0);
    expect(tuple(natAndCheck(env, { src: A, dst: G, sport: 41000, dport: 8080, payload: 9000, gsoSize: 1448 }, hp, CT_ORIGINAL, segs))).toEqual({ src: GW, dst: B, sport: 41000, dport: 80 });
    const bad = tsharkBad(segs);
    if (bad !== null) expect(bad).toBe(0);
  });

  it('UDP super-frames (GSO_UDP_L4) too', () => {
    const env = bed();
    const segs: Uint8Array[] = [];
    const f = env.ct.create(17, A, 5000, S, 4433, S, 4433, G, 33000, 0);
    expect(tuple(natAndCheck(env, { proto: 'udp', src: A, dst: S, sport: 5000, dport: 4433, payload: 12000, gsoSize: 1200 }, f, CT_ORIGINAL, segs))).toEqual({ src: G, dst: S, sport: 33000, dport: 4433 });
    expect(segs.map((s) => u16(s, 38))).toEqual(new Array(10).fill(1208));
    const broken = segs[3].slice();
    broken[26] ^= 1; // the source address: IP and UDP checksums both wrong
    const bad = tsharkBad([...segs, broken]);
    if (bad !== null) expect(bad).toBe(1);
  });

  it('the complete-checksum update (translate) would be wrong on a partial checksum: the test can tell', () => {
    const env = bed();
    const { pool, nat, ct } = env;
    const f = ct.create(6, A, 40000, S, 80, S, 80, G, 50001, 0);
    const { bytes, meta } = superFrame({ src: A, dst: S, sport: 40000, dport: 80, payload: 5000, gsoSize: 1448 });
    const h = load(pool, bytes, meta);
    nat.translate(pool.bytes, pool.offsets[h] + 14, f, CT_ORIGINAL);
    const c = completed(pool, h);
    expect(l4ChecksumField(c)).not.toBe(scratchL4Checksum(c));
    pool.free(h);
  });

  it('a partial ICMP echo keeps its checksum field (no pseudo-header), the IP checksum is updated', () => {
    const env = bed();
    const { pool, nat, ct } = env;
    const f = ct.create(1, A, 7, S, 7, S, 9, G, 9, 0);
    const { bytes } = superFrame({ src: A, dst: S, sport: 0, dport: 0, payload: 40, gsoSize: 100 });
    // turn it into an echo request with id 7 and a partial checksum field of 0
    bytes[23] = 1;
    bytes.fill(0, 34, 42);
    bytes[34] = 8;
    bytes[38] = 0;
    bytes[39] = 7;
    bytes[24] = bytes[25] = 0;
    const ipc = checksum(bytes, 14, 20);
    bytes[24] = ipc >>> 8;
    bytes[25] = ipc & 0xff;
    const h = load(pool, bytes, { flags: 1, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 34, csumOffset: 2 });
    expect(nat.translatePartial(pool.bytes, pool.offsets[h] + 14, f, CT_ORIGINAL)).toBe(true);
    const out = pool.toBytes(h);
    expect(u16(out, 36)).toBe(0);
    expect(u16(out, 38)).toBe(9);
    expect(u32(out, 26)).toBe(G);
    expect(ipHeaderOk(out)).toBe(true);
    completeChecksum(out, 0, out.length, 34, 2);
    expect(verifyChecksum(out, 34, out.length - 34)).toBe(true);
    pool.free(h);
  });

  it('property: any addresses, ports, sizes — completed checksum = from-scratch checksum, and every segment verifies', () => {
    const env = bed();
    const addr = fc.integer({ min: 0x01000000, max: 0xdfffffff });
    const port = fc.integer({ min: 1, max: 65535 });
    fc.assert(
      fc.property(
        fc.record({ s: addr, d: addr, sp: port, dp: port, ns: addr, nd: addr, nsp: port, ndp: port, pay: fc.integer({ min: 1, max: 60000 }), gs: fc.integer({ min: 100, max: 9000 }), udp: fc.boolean(), dir: fc.integer({ min: 0, max: 1 }), seed: fc.integer({ min: 1, max: 1e9 }) }), // prettier-ignore
        (r) => {
          fc.pre(r.s !== r.ns || r.d !== r.nd || r.sp !== r.nsp || r.dp !== r.ndp);
          fc.pre(Math.ceil(r.pay / r.gs) <= 1024);
          const proto = r.udp ? 17 : 6;
          // a flow whose packets in `dir` look like (s:sp → d:dp) and leave as (ns:nsp → nd:ndp)
          const f = r.dir === CT_ORIGINAL ? env.ct.create(proto, r.s, r.sp, r.d, r.dp, r.nd, r.ndp, r.ns, r.nsp, 0) : env.ct.create(proto, r.nd, r.ndp, r.ns, r.nsp, r.d, r.dp, r.s, r.sp, 0); // prettier-ignore
          fc.pre(f >= 0);
          const { bytes, meta } = superFrame({ proto: r.udp ? 'udp' : 'tcp', src: r.s, dst: r.d, sport: r.sp, dport: r.dp, payload: r.pay, gsoSize: r.gs, seed: r.seed });
          const h = load(env.pool, bytes, meta);
          try {
            env.nat.translatePartial(env.pool.bytes, env.pool.offsets[h] + 14, f, r.dir);
            const c = completed(env.pool, h);
            expect(tuple(c)).toEqual({ src: r.ns >>> 0, dst: r.nd >>> 0, sport: r.nsp, dport: r.ndp });
            expect(l4ChecksumField(c)).toBe(scratchL4Checksum(c));
            segmentsOk(env.pool, h);
          } finally {
            env.pool.free(h);
            env.ct.remove(f);
          }
        },
      ),
      { numRuns: 150, seed: 12 },
    );
    expect(env.pool.inUse).toBe(0);
  });
});
