/**
 * Test fixtures (cold; test code only, no test-runner imports): IPv4
 * super-frames as a container's kernel hands them to a TAP with offloads
 * on — Ethernet + IPv4 + TCP (or UDP) + up to ~64 KiB of payload, the IP
 * total length covering it all, META_NEEDS_CSUM with the L4 checksum field
 * holding the folded, non-complemented pseudo-header sum (Linux
 * CHECKSUM_PARTIAL) — and helpers to put them in a pool with their
 * annotations and to check checksums from scratch.
 */
import { GSO_TCPV4, GSO_UDP_L4, M_CSUM_OFFSET, M_CSUM_START, M_GSO_SIZE, M_HDR_LEN, META_BYTES, META_NEEDS_CSUM, META_STRIDE, type FramePool } from './pool.js';
import { u16, u32, w16, w32 } from '../wire/bytes.js';
import { checksum, fold, onesSum, pseudoHeaderSum } from '../wire/checksum.js';

export interface FrameMeta {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export interface SuperOpts {
  dmac?: number;
  smac?: number;
  src: number;
  dst: number;
  sport: number;
  dport: number;
  /** payload bytes */
  payload: number;
  gsoSize: number;
  /** 'tcp' (default) or 'udp' (GSO_UDP_L4) */
  proto?: 'tcp' | 'udp';
  seq?: number;
  ack?: number;
  /** TCP flags (default ACK|PSH) */
  flags?: number;
  df?: boolean;
  ttl?: number;
  ident?: number;
  /** payload pattern seed */
  seed?: number;
}

function writeMac(b: Uint8Array, o: number, mac: number): void {
  for (let i = 0; i < 6; i++) b[o + i] = Math.floor(mac / 2 ** (8 * (5 - i))) & 0xff;
}

/** Deterministic payload bytes. */
export function payloadBytes(n: number, seed = 1): Uint8Array {
  const p = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    p[i] = x & 0xff;
  }
  return p;
}

/** A super-frame and its annotations (see the header). */
export function superFrame(o: SuperOpts): { bytes: Uint8Array; meta: FrameMeta } {
  const tcp = (o.proto ?? 'tcp') === 'tcp';
  const l4h = tcp ? 20 : 8;
  const l4len = l4h + o.payload;
  const f = new Uint8Array(14 + 20 + l4len);
  writeMac(f, 0, o.dmac ?? 0x020000000a01);
  writeMac(f, 6, o.smac ?? 0x0242ac120002);
  w16(f, 12, 0x0800);
  const ip = 14;
  f[ip] = 0x45;
  w16(f, ip + 2, 20 + l4len);
  w16(f, ip + 4, o.ident ?? 0x4242);
  w16(f, ip + 6, o.df === false ? 0 : 0x4000);
  f[ip + 8] = o.ttl ?? 64;
  f[ip + 9] = tcp ? 6 : 17;
  w32(f, ip + 12, o.src);
  w32(f, ip + 16, o.dst);
  w16(f, ip + 10, checksum(f, ip, 20));
  const l4 = ip + 20;
  w16(f, l4, o.sport);
  w16(f, l4 + 2, o.dport);
  if (tcp) {
    w32(f, l4 + 4, o.seq ?? 1_000_000);
    w32(f, l4 + 8, o.ack ?? 77);
    f[l4 + 12] = 5 << 4;
    f[l4 + 13] = o.flags ?? 0x18;
    w16(f, l4 + 14, 65535);
  } else w16(f, l4 + 4, l4len > 0xffff ? 0 : l4len);
  f.set(payloadBytes(o.payload, o.seed), l4 + l4h);
  // CHECKSUM_PARTIAL: the folded pseudo-header sum, not complemented
  w16(f, l4 + (tcp ? 16 : 6), fold(pseudoHeaderSum(o.src, o.dst, tcp ? 6 : 17, l4len)));
  return {
    bytes: f,
    meta: { flags: META_NEEDS_CSUM, gsoType: tcp ? GSO_TCPV4 : GSO_UDP_L4, hdrLen: l4 + l4h, gsoSize: o.gsoSize, csumStart: l4, csumOffset: tcp ? 16 : 6 },
  };
}

/** Write annotations onto frame h. */
export function setMeta(pool: FramePool, h: number, m: FrameMeta): void {
  pool.meta8[h * META_BYTES] = m.flags;
  pool.meta8[h * META_BYTES + 1] = m.gsoType;
  const k = h * META_STRIDE;
  pool.meta[k + M_HDR_LEN] = m.hdrLen;
  pool.meta[k + M_GSO_SIZE] = m.gsoSize;
  pool.meta[k + M_CSUM_START] = m.csumStart;
  pool.meta[k + M_CSUM_OFFSET] = m.csumOffset;
}

export function getMeta(pool: FramePool, h: number): FrameMeta {
  const k = h * META_STRIDE;
  return {
    flags: pool.meta8[h * META_BYTES],
    gsoType: pool.meta8[h * META_BYTES + 1],
    hdrLen: pool.meta[k + M_HDR_LEN],
    gsoSize: pool.meta[k + M_GSO_SIZE],
    csumStart: pool.meta[k + M_CSUM_START],
    csumOffset: pool.meta[k + M_CSUM_OFFSET],
  };
}

/** Frame bytes plus annotations into the pool (a large slot when needed). */
export function load(pool: FramePool, bytes: Uint8Array, meta: FrameMeta | null, inPort = 0): number {
  const h = pool.fromBytes(bytes, inPort);
  if (h < 0) throw new Error('pool empty');
  if (meta) setMeta(pool, h, meta);
  return h;
}

/** The L4 checksum of the IPv4 TCP/UDP packet in frame f (Ethernet at 0), computed from scratch over the whole packet. */
export function scratchL4Checksum(f: Uint8Array): number {
  const ip = 14;
  const hl = (f[ip] & 15) << 2;
  const total = u16(f, ip + 2);
  const proto = f[ip + 9];
  const l4 = ip + hl;
  const co = l4 + (proto === 6 ? 16 : 6);
  const c = f.slice(0, ip + total);
  w16(c, co, 0);
  const v = ~fold(onesSum(c, l4, total - hl, pseudoHeaderSum(u32(f, ip + 12), u32(f, ip + 16), proto, total - hl))) & 0xffff;
  return proto === 17 && v === 0 ? 0xffff : v;
}

/** The L4 checksum field of frame f (IPv4 at 14). */
export function l4ChecksumField(f: Uint8Array): number {
  const hl = (f[14] & 15) << 2;
  return u16(f, 14 + hl + (f[23] === 6 ? 16 : 6));
}

/** The IPv4 header checksum of frame f verifies. */
export function ipHeaderOk(f: Uint8Array): boolean {
  const hl = (f[14] & 15) << 2;
  return fold(onesSum(f, 14, hl)) === 0xffff;
}
