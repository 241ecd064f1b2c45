/**
 * UDP header (RFC 768).
 *
 *   srcPort(2) dstPort(2) length(2) checksum(2) data…
 *
 * wrap(bytes, off, len) takes the IP payload length and checks
 * 8 ≤ length field ≤ len. The checksum covers the IPv4 pseudo-header; a
 * checksum field of 0 means "none", and a computed 0 is sent as 0xffff.
 */
import { u16, w16 } from './bytes.js';
import { checksum, onesSum, fold, pseudoHeaderSum } from './checksum.js';

export const UDP = { SRC_PORT: 0, DST_PORT: 2, LENGTH: 4, CHECKSUM: 6, HLEN: 8 } as const;
const PROTO_UDP = 17;

export class UdpView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(bytes: Uint8Array, off: number, len: number): boolean {
    if (len < UDP.HLEN) return false;
    const l = u16(bytes, off + UDP.LENGTH);
    if (l < UDP.HLEN || l > len) return false;
    this.bytes = bytes;
    this.off = off;
    return true;
  }

  get srcPort(): number {
    return u16(this.bytes, this.off + UDP.SRC_PORT);
  }
  set srcPort(v: number) {
    w16(this.bytes, this.off + UDP.SRC_PORT, v);
  }
  get dstPort(): number {
    return u16(this.bytes, this.off + UDP.DST_PORT);
  }
  set dstPort(v: number) {
    w16(this.bytes, this.off + UDP.DST_PORT, v);
  }
  /** header + data, from the length field */
  get length(): number {
    return u16(this.bytes, this.off + UDP.LENGTH);
  }
  set length(v: number) {
    w16(this.bytes, this.off + UDP.LENGTH, v);
  }
  get checksum(): number {
    return u16(this.bytes, this.off + UDP.CHECKSUM);
  }
  set checksum(v: number) {
    w16(this.bytes, this.off + UDP.CHECKSUM, v);
  }
  get payloadOff(): number {
    return this.off + UDP.HLEN;
  }
  get payloadLen(): number {
    return this.length - UDP.HLEN;
  }

  /** True when the checksum is absent (0) or correct for these addresses. */
  verifyChecksum(src: number, dst: number): boolean {
    if (this.checksum === 0) return true;
    const l = this.length;
    return fold(onesSum(this.bytes, this.off, l, pseudoHeaderSum(src, dst, PROTO_UDP, l))) === 0xffff;
  }
  /** Compute and store the checksum (0 is written as 0xffff). */
  fillChecksum(src: number, dst: number): void {
    const l = this.length;
    this.checksum = 0;
    this.checksum = udpChecksum(this.bytes, this.off, l, src, dst);
  }
}

/** Full UDP checksum of [off, off+len) (checksum field zeroed) for the given addresses; never 0. */
export function udpChecksum(b: Uint8Array, off: number, len: number, src: number, dst: number): number {
  return checksum(b, off, len, pseudoHeaderSum(src, dst, PROTO_UDP, len)) || 0xffff;
}

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

export const UdpRepr = {
  parse(v: UdpView): UdpRepr {
    return { srcPort: v.srcPort, dstPort: v.dstPort, payload: v.bytes.slice(v.payloadOff, v.payloadOff + v.payloadLen) };
  },
  len(r: UdpRepr): number {
    return UDP.HLEN + r.payload.length;
  },
  /** Writes header + payload at `off`; the checksum is filled when addresses are given, else 0. Returns the length. */
  emit(r: UdpRepr, b: Uint8Array, off: number, src?: number, dst?: number): number {
    const n = UDP.HLEN + r.payload.length;
    w16(b, off + UDP.SRC_PORT, r.srcPort);
    w16(b, off + UDP.DST_PORT, r.dstPort);
    w16(b, off + UDP.LENGTH, n);
    w16(b, off + UDP.CHECKSUM, 0);
    b.set(r.payload, off + UDP.HLEN);
    if (src !== undefined && dst !== undefined) w16(b, off + UDP.CHECKSUM, udpChecksum(b, off, n, src, dst));
    return n;
  },
};
