/**
 * IPv4 header (RFC 791).
 *
 *   ver/ihl(1) tos(1) totalLen(2) ident(2) flags/fragOff(2)
 *   ttl(1) proto(1) checksum(2) src(4) dst(4) [options]
 *
 * Ipv4View.wrap(bytes, off, len) — len is what follows `off` in the frame —
 * checks version 4, IHL ≥ 5, the header fits, headerLen ≤ totalLen ≤ len.
 * payloadOff/payloadLen then describe the L4 data and exclude Ethernet
 * padding: pass them to the L4 views. Plain setters do not touch the
 * checksum; rewriteSrc/rewriteDst/decrementTtl update it incrementally
 * (RFC 1624), fillChecksum() recomputes it. Addresses are uint32 numbers.
 */
import { u16, u32, w16, w32 } from './bytes.js';
import { checksum, csumUpdate16, csumUpdate32, verifyChecksum } from './checksum.js';

export const IPV4 = {
  VER_IHL: 0,
  TOS: 1,
  TOTAL_LEN: 2,
  IDENT: 4,
  FLAGS_FRAG: 6,
  TTL: 8,
  PROTO: 9,
  CHECKSUM: 10,
  SRC: 12,
  DST: 16,
  HLEN: 20,
} as const;
export const IpProto = { ICMP: 1, TCP: 6, UDP: 17 } as const;
/** bits of the flags/fragment-offset word */
export const IPV4_DF = 0x4000;
export const IPV4_MF = 0x2000;
export const IPV4_FRAG_MASK = 0x1fff;

export class Ipv4View {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  /** IHL × 4 */
  headerLen = 0;

  wrap(bytes: Uint8Array, off: number, len: number): boolean {
    if (len < IPV4.HLEN) return false;
    const vi = bytes[off + IPV4.VER_IHL];
    if (vi >>> 4 !== 4) return false;
    const hl = (vi & 0x0f) << 2;
    if (hl < IPV4.HLEN || hl > len) return false;
    const total = u16(bytes, off + IPV4.TOTAL_LEN);
    if (total < hl || total > len) return false;
    this.bytes = bytes;
    this.off = off;
    this.headerLen = hl;
    return true;
  }

  get version(): number {
    return this.bytes[this.off + IPV4.VER_IHL] >>> 4;
  }
  get ihl(): number {
    return this.bytes[this.off + IPV4.VER_IHL] & 0x0f;
  }
  get tos(): number {
    return this.bytes[this.off + IPV4.TOS];
  }
  set tos(v: number) {
    this.bytes[this.off + IPV4.TOS] = v;
  }
  get dscp(): number {
    return this.tos >>> 2;
  }
  get ecn(): number {
    return this.tos & 3;
  }
  get totalLen(): number {
    return u16(this.bytes, this.off + IPV4.TOTAL_LEN);
  }
  set totalLen(v: number) {
    w16(this.bytes, this.off + IPV4.TOTAL_LEN, v);
  }
  get ident(): number {
    return u16(this.bytes, this.off + IPV4.IDENT);
  }
  set ident(v: number) {
    w16(this.bytes, this.off + IPV4.IDENT, v);
  }
  /** the whole flags/fragment-offset word */
  get flagsFrag(): number {
    return u16(this.bytes, this.off + IPV4.FLAGS_FRAG);
  }
  set flagsFrag(v: number) {
    w16(this.bytes, this.off + IPV4.FLAGS_FRAG, v);
  }
  get dontFrag(): boolean {
    return (this.flagsFrag & IPV4_DF) !== 0;
  }
  get moreFrags(): boolean {
    return (this.flagsFrag & IPV4_MF) !== 0;
  }
  /** fragment offset in 8-byte units */
  get fragOffset(): number {
    return this.flagsFrag & IPV4_FRAG_MASK;
  }
  /** MF set or a non-zero offset */
  get isFragment(): boolean {
    return (this.flagsFrag & (IPV4_MF | IPV4_FRAG_MASK)) !== 0;
  }
  get ttl(): number {
    return this.bytes[this.off + IPV4.TTL];
  }
  set ttl(v: number) {
    this.bytes[this.off + IPV4.TTL] = v;
  }
  get proto(): number {
    return this.bytes[this.off + IPV4.PROTO];
  }
  set proto(v: number) {
    this.bytes[this.off + IPV4.PROTO] = v;
  }
  get checksum(): number {
    return u16(this.bytes, this.off + IPV4.CHECKSUM);
  }
  set checksum(v: number) {
    w16(this.bytes, this.off + IPV4.CHECKSUM, v);
  }
  get src(): number {
    return u32(this.bytes, this.off + IPV4.SRC);
  }
  set src(v: number) {
    w32(this.bytes, this.off + IPV4.SRC, v);
  }
  get dst(): number {
    return u32(this.bytes, this.off + IPV4.DST);
  }
  set dst(v: number) {
    w32(this.bytes, this.off + IPV4.DST, v);
  }
  /** absolute offset of the L4 header */
  get payloadOff(): number {
    return this.off + this.headerLen;
  }
  /** totalLen − headerLen (Ethernet padding excluded) */
  get payloadLen(): number {
    return this.totalLen - this.headerLen;
  }

  verifyChecksum(): boolean {
    return verifyChecksum(this.bytes, this.off, this.headerLen);
  }
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.bytes, this.off, this.headerLen);
  }
  /** Set src and update the header checksum incrementally (L4 checksums are the caller's). */
  rewriteSrc(ip: number): void {
    this.checksum = csumUpdate32(this.checksum, this.src, ip);
    this.src = ip;
  }
  rewriteDst(ip: number): void {
    this.checksum = csumUpdate32(this.checksum, this.dst, ip);
    this.dst = ip;
  }
  /** TTL − 1 with an incremental checksum update; returns the new TTL (call only when ttl > 0). */
  decrementTtl(): number {
    const o = this.off + IPV4.TTL;
    const old = u16(this.bytes, o);
    this.bytes[o]--;
    this.checksum = csumUpdate16(this.checksum, old, old - 0x100);
    return this.bytes[o];
  }
}

export interface Ipv4Repr {
  tos: number;
  ident: number;
  /** flags (DF/MF) and fragment offset word */
  flagsFrag: number;
  ttl: number;
  proto: number;
  src: number;
  dst: number;
  /** L4 bytes after the header */
  payloadLen: number;
  /** raw options (a multiple of 4 bytes); empty when none */
  options: Uint8Array;
}

export const Ipv4Repr = {
  parse(v: Ipv4View): Ipv4Repr {
    return {
      tos: v.tos,
      ident: v.ident,
      flagsFrag: v.flagsFrag,
      ttl: v.ttl,
      proto: v.proto,
      src: v.src,
      dst: v.dst,
      payloadLen: v.payloadLen,
      options: v.bytes.slice(v.off + IPV4.HLEN, v.off + v.headerLen),
    };
  },
  headerLen(r: Ipv4Repr): number {
    return IPV4.HLEN + ((r.options.length + 3) & ~3);
  },
  /** Writes the header (options zero-padded to 4 bytes, checksum filled) at `off`; returns its length. */
  emit(r: Ipv4Repr, b: Uint8Array, off: number): number {
    const hl = Ipv4Repr.headerLen(r);
    if (hl > 60) throw new Error('IPv4 options longer than 40 bytes');
    b[off + IPV4.VER_IHL] = 0x40 | (hl >>> 2);
    b[off + IPV4.TOS] = r.tos;
    w16(b, off + IPV4.TOTAL_LEN, hl + r.payloadLen);
    w16(b, off + IPV4.IDENT, r.ident);
    w16(b, off + IPV4.FLAGS_FRAG, r.flagsFrag);
    b[off + IPV4.TTL] = r.ttl;
    b[off + IPV4.PROTO] = r.proto;
    w16(b, off + IPV4.CHECKSUM, 0);
    w32(b, off + IPV4.SRC, r.src);
    w32(b, off + IPV4.DST, r.dst);
    b.fill(0, off + IPV4.HLEN, off + hl);
    b.set(r.options, off + IPV4.HLEN);
    w16(b, off + IPV4.CHECKSUM, checksum(b, off, hl));
    return hl;
  },
};

/** Cold path: 0xac110001 → "172.17.0.1". */
export function ipv4ToString(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

/** Cold path: "172.17.0.1" → 0xac110001 (uint32); throws when malformed. */
export function parseIpv4(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s.trim());
  if (!m) throw new Error(`bad IPv4 address: ${s}`);
  let ip = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) throw new Error(`bad IPv4 address: ${s}`);
    ip = ip * 256 + o;
  }
  return ip >>> 0;
}
