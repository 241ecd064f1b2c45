/**
 * VXLAN (RFC 7348) and the outer IPv4/UDP headers that carry it.
 *
 *   outer IPv4 (20, DF, TTL 64, proto 17) | UDP (8, dst 4789, checksum 0)
 *   | VXLAN (8): flags(1) reserved(3) VNI(3) reserved(1) | inner Ethernet frame
 *
 * Flags: 0x08 (I) says the VNI is valid; usernet also sets 0x02 on
 * encrypted payloads (see docs/overlay-encryption.md). Receivers must
 * ignore the other reserved bits.
 *
 * The UDP source port is a hash of the inner flow (MACs, and for IPv4 the
 * addresses, protocol and, for TCP/UDP, the ports) in 49152–65535, so
 * ECMP and RSS in the underlay spread flows while keeping each one in
 * order. The UDP checksum is sent as zero (allowed for IPv4 by RFC 7348).
 *
 * Hot helpers work on (bytes, offset) and allocate nothing; VxlanRepr is the
 * cold parse/emit pair for tests.
 */
import { u16, u32, w32 } from './bytes.js';

export const VXLAN = { FLAGS: 0, VNI: 4, HLEN: 8 } as const;
export const VXLAN_FLAG_I = 0x08;
export const VXLAN_FLAG_ENCRYPTED = 0x02;
export const VXLAN_PORT = 4789;
/** outer IPv4 + UDP, written in front of the VXLAN header */
export const OUTER_IP_UDP_LEN = 28;
/** what encapsulation adds on the underlay: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 */
export const VXLAN_OVERHEAD = 50;
export const VNI_MAX = 0xffffff;
/** outer UDP source ports come from this range (RFC 7348 recommends the dynamic range) */
export const SRC_PORT_FIRST = 49152;

export function vxlanVni(b: Uint8Array, o: number): number {
  return u32(b, o + VXLAN.VNI) >>> 8;
}

export function writeVxlanHeader(b: Uint8Array, o: number, vni: number, flags = VXLAN_FLAG_I): void {
  w32(b, o, (flags & 0xff) << 24);
  w32(b, o + VXLAN.VNI, (vni & VNI_MAX) << 8);
}

/**
 * Outer IPv4 (DF, TTL 64, UDP, header checksum) and UDP (checksum 0) at `o`;
 * `payloadLen` is what follows the UDP header (VXLAN header included).
 * Word stores and a checksum summed from the fields (nothing is read back):
 * this is the encapsulation hot path.
 */
export function writeOuterIpv4UdpView(
  v: DataView,
  o: number,
  src: number,
  dst: number,
  srcPort: number,
  dstPort: number,
  payloadLen: number,
  id: number,
): void {
  const total = OUTER_IP_UDP_LEN + payloadLen;
  id &= 0xffff;
  let sum = 0x4500 + total + id + 0x4000 + 0x4011 + (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  v.setInt32(o, 0x45000000 | total);
  v.setInt32(o + 4, (id << 16) | 0x4000);
  v.setInt32(o + 8, 0x40110000 | (~sum & 0xffff));
  v.setInt32(o + 12, src | 0);
  v.setInt32(o + 16, dst | 0);
  v.setInt32(o + 20, ((srcPort & 0xffff) << 16) | (dstPort & 0xffff));
  v.setInt32(o + 24, (8 + payloadLen) << 16); // length, checksum 0
}

/** writeOuterIpv4UdpView on a byte array (cold paths, tests). */
export function writeOuterIpv4Udp(
  b: Uint8Array,
  o: number,
  src: number,
  dst: number,
  srcPort: number,
  dstPort: number,
  payloadLen: number,
  id: number,
): void {
  writeOuterIpv4UdpView(new DataView(b.buffer, b.byteOffset, b.byteLength), o, src, dst, srcPort, dstPort, payloadLen, id);
}

/**
 * The outer UDP source port for an inner frame at (o, len): a keyed hash
 * of its flow, in SRC_PORT_FIRST..65535. Frames of one flow always get the
 * same port.
 */
export function flowSourcePort(b: Uint8Array, o: number, len: number, seed: number): number {
  let h = seed | 0;
  h = mix(h, (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
  h = mix(h, (b[o + 4] << 24) | (b[o + 5] << 16) | (b[o + 6] << 8) | b[o + 7]);
  h = mix(h, (b[o + 8] << 24) | (b[o + 9] << 16) | (b[o + 10] << 8) | b[o + 11]);
  const type = (b[o + 12] << 8) | b[o + 13];
  if (type === 0x0800 && len >= 34) {
    const ip = o + 14;
    const ihl = (b[ip] & 0x0f) << 2;
    const proto = b[ip + 9];
    h = mix(h, u32(b, ip + 12) | 0);
    h = mix(h, u32(b, ip + 16) | 0);
    h = mix(h, proto);
    const fragOff = u16(b, ip + 6) & 0x1fff;
    if ((proto === 6 || proto === 17) && fragOff === 0 && len >= 14 + ihl + 4) h = mix(h, u32(b, ip + ihl) | 0);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return SRC_PORT_FIRST + (h & 0x3fff);
}

/** flowSourcePort on a DataView of the same bytes (word loads; the same result). */
export function flowSourcePortView(v: DataView, o: number, len: number, seed: number): number {
  let h = seed | 0;
  h = mix(h, v.getInt32(o));
  h = mix(h, v.getInt32(o + 4));
  h = mix(h, v.getInt32(o + 8));
  if (v.getUint16(o + 12) === 0x0800 && len >= 34) {
    const ip = o + 14;
    const ihl = (v.getUint8(ip) & 0x0f) << 2;
    const proto = v.getUint8(ip + 9);
    h = mix(h, v.getInt32(ip + 12));
    h = mix(h, v.getInt32(ip + 16));
    h = mix(h, proto);
    const fragOff = v.getUint16(ip + 6) & 0x1fff;
    if ((proto === 6 || proto === 17) && fragOff === 0 && len >= 14 + ihl + 4) h = mix(h, v.getInt32(ip + ihl));
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return SRC_PORT_FIRST + (h & 0x3fff);
}

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

export interface VxlanRepr {
  flags: number;
  vni: number;
}

export const VxlanRepr = {
  parse(b: Uint8Array, o = 0): VxlanRepr | null {
    if (b.length - o < VXLAN.HLEN) return null;
    return { flags: b[o], vni: vxlanVni(b, o) };
  },
  emit(r: VxlanRepr): Uint8Array {
    const out = new Uint8Array(VXLAN.HLEN);
    writeVxlanHeader(out, 0, r.vni, r.flags);
    return out;
  },
};
