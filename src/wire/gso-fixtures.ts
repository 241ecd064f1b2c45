/**
 * Test data for the GSO tests (cold; allocates freely): builds super-frames
 * as a Linux TAP with TSO/USO hands them out — one IP header whose length
 * covers everything, TCP or UDP whose checksum field holds the folded,
 * non-complemented pseudo-header sum (CHECKSUM_PARTIAL) — and checks
 * checksums with its own plain implementation (independent of checksum.ts).
 */

export interface SuperSpec {
  ipv: 4 | 6;
  /** 6 TCP, 17 UDP */
  proto: 6 | 17;
  payload: Uint8Array;
  vlan?: number;
  /** IPv4 options bytes (multiple of 4, ≤ 40) */
  ipOpts?: number;
  /** TCP options bytes (multiple of 4, ≤ 40) */
  tcpOpts?: number;
  tcpFlags?: number;
  seq?: number;
  ipId?: number;
  ttl?: number;
  df?: boolean;
  sport?: number;
  dport?: number;
}

export interface SuperFrame {
  bytes: Uint8Array;
  l3: number;
  l4: number;
  pay: number;
  csumStart: number;
  csumOffset: number;
}

/** Plain RFC 1071 sum (folded, not complemented) of bytes, starting from `init`. */
export function refSum(b: Uint8Array, off: number, len: number, init = 0): number {
  let s = init;
  for (let i = 0; i < len; i++) s += i % 2 === 0 ? b[off + i] * 256 : b[off + i];
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}

/** The pseudo-header sum (unfolded is fine) for an L4 segment of l4len bytes. */
export function refPseudo(b: Uint8Array, l3: number, ipv: number, proto: number, l4len: number): number {
  const a = ipv === 4 ? refSum(b, l3 + 12, 8) : refSum(b, l3 + 8, 32);
  return a + proto + l4len;
}

export function buildSuper(s: SuperSpec): SuperFrame {
  const l3 = s.vlan !== undefined ? 18 : 14;
  const ipHl = s.ipv === 4 ? 20 + (s.ipOpts ?? 0) : 40;
  const l4 = l3 + ipHl;
  const l4hl = s.proto === 6 ? 20 + (s.tcpOpts ?? 0) : 8;
  const pay = l4 + l4hl;
  const len = pay + s.payload.length;
  const b = new Uint8Array(len);
  const v = new DataView(b.buffer);
  b.set([0x02, 0x42, 0xac, 0x14, 0x00, 0x03, 0x02, 0x42, 0xac, 0x14, 0x00, 0x02], 0);
  if (s.vlan !== undefined) {
    v.setUint16(12, 0x8100);
    v.setUint16(14, s.vlan);
  }
  v.setUint16(l3 - 2, s.ipv === 4 ? 0x0800 : 0x86dd);
  if (s.ipv === 4) {
    b[l3] = 0x40 | (ipHl / 4);
    v.setUint16(l3 + 2, len - l3);
    v.setUint16(l3 + 4, s.ipId ?? 0x1234);
    v.setUint16(l3 + 6, s.df === false ? 0 : 0x4000);
    b[l3 + 8] = s.ttl ?? 64;
    b[l3 + 9] = s.proto;
    v.setUint32(l3 + 12, 0x0a140002);
    v.setUint32(l3 + 16, 0x0a140003);
    for (let i = 20; i < ipHl; i++) b[l3 + i] = i === ipHl - 1 ? 0 : 1; // NOPs then EOL
    v.setUint16(l3 + 10, ~refSum(b, l3, ipHl) & 0xffff);
  } else {
    v.setUint32(l3, 0x60012345);
    v.setUint16(l3 + 4, len - l3 - 40);
    b[l3 + 6] = s.proto;
    b[l3 + 7] = s.ttl ?? 64;
    b.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], l3 + 8);
    b.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3], l3 + 24);
  }
  v.setUint16(l4, s.sport ?? 40000);
  v.setUint16(l4 + 2, s.dport ?? 5201);
  if (s.proto === 6) {
    v.setUint32(l4 + 4, s.seq ?? 1000);
    v.setUint32(l4 + 8, 0xa0b0c0d0);
    b[l4 + 12] = (l4hl / 4) << 4;
    b[l4 + 13] = s.tcpFlags ?? 0x10;
    v.setUint16(l4 + 14, 502);
    for (let i = 20; i < l4hl; i++) b[l4 + i] = 1;
  } else {
    v.setUint16(l4 + 4, len - l4);
  }
  b.set(s.payload, pay);
  const csumOffset = s.proto === 6 ? 16 : 6;
  v.setUint16(l4 + csumOffset, refSum(new Uint8Array(0), 0, 0, refPseudo(b, l3, s.ipv, s.proto, len - l4)));
  return { bytes: b, l3, l4, pay, csumStart: l4, csumOffset };
}

/** True when the IPv4 header at l3 and the L4 checksum of the packet in `f` verify (independent check). */
export function refVerify(f: Uint8Array, l3: number): { ip: boolean; l4: boolean; ipv: number; proto: number; l4off: number } {
  const ipv = f[l3] >>> 4;
  let l4: number;
  let proto: number;
  let end: number;
  let ip = true;
  if (ipv === 4) {
    const ihl = (f[l3] & 15) * 4;
    ip = refSum(f, l3, ihl) === 0xffff;
    l4 = l3 + ihl;
    proto = f[l3 + 9];
    end = l3 + ((f[l3 + 2] << 8) | f[l3 + 3]);
  } else {
    l4 = l3 + 40;
    proto = f[l3 + 6];
    end = l4 + ((f[l3 + 4] << 8) | f[l3 + 5]);
  }
  const l4len = end - l4;
  const okLen = end === f.length;
  const l4ok = okLen && refSum(f, l4, l4len, refPseudo(f, l3, ipv, proto, l4len)) === 0xffff;
  return { ip: ip && okLen, l4: l4ok, ipv, proto, l4off: l4 };
}
