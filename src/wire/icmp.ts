/**
 * ICMPv4 (RFC 792).
 *
 *   type(1) code(1) checksum(2) rest-of-header(4) data…
 *
 * For echo request/reply the rest of the header is identifier(2) and
 * sequence(2); for "fragmentation needed" (3/4) the low half is the
 * next-hop MTU. The checksum covers the whole message, so wrap() takes the
 * message length (ipv4.payloadLen) and keeps it.
 */
import { u16, u32, w16, w32 } from './bytes.js';
import { checksum, verifyChecksum } from './checksum.js';

export const ICMP = { TYPE: 0, CODE: 1, CHECKSUM: 2, REST: 4, IDENT: 4, SEQ: 6, MTU: 6, HLEN: 8 } as const;
export const IcmpType = {
  ECHO_REPLY: 0,
  DEST_UNREACH: 3,
  REDIRECT: 5,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
  PARAM_PROBLEM: 12,
} as const;
export const IcmpUnreachCode = { NET: 0, HOST: 1, PROTOCOL: 2, PORT: 3, FRAG_NEEDED: 4 } as const;

export class IcmpView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  /** whole message length (header + data) */
  len = 0;

  wrap(bytes: Uint8Array, off: number, len: number): boolean {
    if (len < ICMP.HLEN) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    return true;
  }

  get type(): number {
    return this.bytes[this.off + ICMP.TYPE];
  }
  set type(v: number) {
    this.bytes[this.off + ICMP.TYPE] = v;
  }
  get code(): number {
    return this.bytes[this.off + ICMP.CODE];
  }
  set code(v: number) {
    this.bytes[this.off + ICMP.CODE] = v;
  }
  get checksum(): number {
    return u16(this.bytes, this.off + ICMP.CHECKSUM);
  }
  set checksum(v: number) {
    w16(this.bytes, this.off + ICMP.CHECKSUM, v);
  }
  /** bytes 4..7 as one uint32 */
  get rest(): number {
    return u32(this.bytes, this.off + ICMP.REST);
  }
  set rest(v: number) {
    w32(this.bytes, this.off + ICMP.REST, v);
  }
  /** echo identifier */
  get ident(): number {
    return u16(this.bytes, this.off + ICMP.IDENT);
  }
  set ident(v: number) {
    w16(this.bytes, this.off + ICMP.IDENT, v);
  }
  /** echo sequence number */
  get seq(): number {
    return u16(this.bytes, this.off + ICMP.SEQ);
  }
  set seq(v: number) {
    w16(this.bytes, this.off + ICMP.SEQ, v);
  }
  /** next-hop MTU of a "fragmentation needed" message */
  get mtu(): number {
    return u16(this.bytes, this.off + ICMP.MTU);
  }
  set mtu(v: number) {
    w16(this.bytes, this.off + ICMP.MTU, v);
  }
  get payloadOff(): number {
    return this.off + ICMP.HLEN;
  }
  get payloadLen(): number {
    return this.len - ICMP.HLEN;
  }

  verifyChecksum(): boolean {
    return verifyChecksum(this.bytes, this.off, this.len);
  }
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.bytes, this.off, this.len);
  }
}

export interface IcmpRepr {
  type: number;
  code: number;
  /** bytes 4..5 (echo identifier; unused for most errors) */
  ident: number;
  /** bytes 6..7 (echo sequence; next-hop MTU for frag-needed) */
  seq: number;
  /** data after the 8-byte header (echo payload, or the offending IP header + 8 bytes) */
  payload: Uint8Array;
}

export const IcmpRepr = {
  parse(v: IcmpView): IcmpRepr {
    return {
      type: v.type,
      code: v.code,
      ident: v.ident,
      seq: v.seq,
      payload: v.bytes.slice(v.payloadOff, v.off + v.len),
    };
  },
  len(r: IcmpRepr): number {
    return ICMP.HLEN + r.payload.length;
  },
  /** Writes the message with its checksum at `off`; returns its length. */
  emit(r: IcmpRepr, b: Uint8Array, off: number): number {
    const n = ICMP.HLEN + r.payload.length;
    b[off + ICMP.TYPE] = r.type;
    b[off + ICMP.CODE] = r.code;
    w16(b, off + ICMP.CHECKSUM, 0);
    w16(b, off + ICMP.IDENT, r.ident);
    w16(b, off + ICMP.SEQ, r.seq);
    b.set(r.payload, off + ICMP.HLEN);
    w16(b, off + ICMP.CHECKSUM, checksum(b, off, n));
    return n;
  },
};
