/**
 * TCP header (RFC 9293).
 *
 *   srcPort(2) dstPort(2) seq(4) ack(4) dataOffset/flags(2) window(2)
 *   checksum(2) urgent(2) [options] data…
 *
 * wrap(bytes, off, len) takes the segment length (ipv4.payloadLen) and
 * checks 5 ≤ data offset and header ≤ len. The checksum covers the IPv4
 * pseudo-header and the whole segment. mssOffset() finds the MSS option in
 * place (for MSS clamping); parseTcpOptions() is the cold-path decoder.
 */
import { u16, u32, w16, w32 } from './bytes.js';
import { checksum, pseudoHeaderSum, verifyChecksum } from './checksum.js';

export const TCP = {
  SRC_PORT: 0,
  DST_PORT: 2,
  SEQ: 4,
  ACK: 8,
  DATA_OFF: 12,
  FLAGS: 13,
  WINDOW: 14,
  CHECKSUM: 16,
  URGENT: 18,
  HLEN: 20,
} as const;
export const TcpFlags = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;
export const TcpOpt = { EOL: 0, NOP: 1, MSS: 2, WSCALE: 3, SACK_PERM: 4, SACK: 5, TIMESTAMP: 8 } as const;
const PROTO_TCP = 6;

export class TcpView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  /** segment length (header + data) */
  len = 0;
  /** data offset × 4 */
  headerLen = 0;

  wrap(bytes: Uint8Array, off: number, len: number): boolean {
    if (len < TCP.HLEN) return false;
    const hl = (bytes[off + TCP.DATA_OFF] >>> 4) << 2;
    if (hl < TCP.HLEN || hl > len) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    this.headerLen = hl;
    return true;
  }

  get srcPort(): number {
    return u16(this.bytes, this.off + TCP.SRC_PORT);
  }
  set srcPort(v: number) {
    w16(this.bytes, this.off + TCP.SRC_PORT, v);
  }
  get dstPort(): number {
    return u16(this.bytes, this.off + TCP.DST_PORT);
  }
  set dstPort(v: number) {
    w16(this.bytes, this.off + TCP.DST_PORT, v);
  }
  get seq(): number {
    return u32(this.bytes, this.off + TCP.SEQ);
  }
  set seq(v: number) {
    w32(this.bytes, this.off + TCP.SEQ, v);
  }
  get ack(): number {
    return u32(this.bytes, this.off + TCP.ACK);
  }
  set ack(v: number) {
    w32(this.bytes, this.off + TCP.ACK, v);
  }
  /** header length in 32-bit words */
  get dataOffset(): number {
    return this.bytes[this.off + TCP.DATA_OFF] >>> 4;
  }
  /** the 8 flag bits (CWR … FIN) */
  get flags(): number {
    return this.bytes[this.off + TCP.FLAGS];
  }
  set flags(v: number) {
    this.bytes[this.off + TCP.FLAGS] = v;
  }
  get window(): number {
    return u16(this.bytes, this.off + TCP.WINDOW);
  }
  set window(v: number) {
    w16(this.bytes, this.off + TCP.WINDOW, v);
  }
  get checksum(): number {
    return u16(this.bytes, this.off + TCP.CHECKSUM);
  }
  set checksum(v: number) {
    w16(this.bytes, this.off + TCP.CHECKSUM, v);
  }
  get urgent(): number {
    return u16(this.bytes, this.off + TCP.URGENT);
  }
  set urgent(v: number) {
    w16(this.bytes, this.off + TCP.URGENT, v);
  }
  get optionsOff(): number {
    return this.off + TCP.HLEN;
  }
  get optionsLen(): number {
    return this.headerLen - TCP.HLEN;
  }
  get payloadOff(): number {
    return this.off + this.headerLen;
  }
  get payloadLen(): number {
    return this.len - this.headerLen;
  }

  verifyChecksum(src: number, dst: number): boolean {
    return verifyChecksum(this.bytes, this.off, this.len, pseudoHeaderSum(src, dst, PROTO_TCP, this.len));
  }
  fillChecksum(src: number, dst: number): void {
    this.checksum = 0;
    this.checksum = checksum(this.bytes, this.off, this.len, pseudoHeaderSum(src, dst, PROTO_TCP, this.len));
  }

  /** Absolute offset of the 16-bit MSS value in the options, or −1 (absent or options malformed). */
  mssOffset(): number {
    const b = this.bytes;
    let i = this.off + TCP.HLEN;
    const end = this.off + this.headerLen;
    while (i < end) {
      const kind = b[i];
      if (kind === TcpOpt.EOL) return -1;
      if (kind === TcpOpt.NOP) {
        i++;
        continue;
      }
      if (i + 1 >= end) return -1;
      const l = b[i + 1];
      if (l < 2 || i + l > end) return -1;
      if (kind === TcpOpt.MSS) return l === 4 ? i + 2 : -1;
      i += l;
    }
    return -1;
  }
}

export interface TcpOptions {
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  tsval?: number;
  tsecr?: number;
}

/** Cold path: decode the common options; throws on a malformed option list. */
export function parseTcpOptions(opts: Uint8Array): TcpOptions {
  const r: TcpOptions = {};
  let i = 0;
  while (i < opts.length) {
    const kind = opts[i];
    if (kind === TcpOpt.EOL) break;
    if (kind === TcpOpt.NOP) {
      i++;
      continue;
    }
    const l = opts[i + 1];
    if (l === undefined || l < 2 || i + l > opts.length) throw new Error('malformed TCP options');
    if (kind === TcpOpt.MSS && l === 4) r.mss = u16(opts, i + 2);
    else if (kind === TcpOpt.WSCALE && l === 3) r.wscale = opts[i + 2];
    else if (kind === TcpOpt.SACK_PERM && l === 2) r.sackPermitted = true;
    else if (kind === TcpOpt.TIMESTAMP && l === 10) {
      r.tsval = u32(opts, i + 2);
      r.tsecr = u32(opts, i + 6);
    }
    i += l;
  }
  return r;
}

export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  /** raw options; emit pads them with zeros (EOL) to a multiple of 4 */
  options: Uint8Array;
  payload: Uint8Array;
}

export const TcpRepr = {
  parse(v: TcpView): TcpRepr {
    return {
      srcPort: v.srcPort,
      dstPort: v.dstPort,
      seq: v.seq,
      ack: v.ack,
      flags: v.flags,
      window: v.window,
      urgent: v.urgent,
      options: v.bytes.slice(v.optionsOff, v.payloadOff),
      payload: v.bytes.slice(v.payloadOff, v.off + v.len),
    };
  },
  headerLen(r: TcpRepr): number {
    return TCP.HLEN + ((r.options.length + 3) & ~3);
  },
  len(r: TcpRepr): number {
    return TcpRepr.headerLen(r) + r.payload.length;
  },
  /** Writes the segment at `off`; the checksum is filled when addresses are given, else 0. Returns the length. */
  emit(r: TcpRepr, b: Uint8Array, off: number, src?: number, dst?: number): number {
    const hl = TcpRepr.headerLen(r);
    if (hl > 60) throw new Error('TCP options longer than 40 bytes');
    const n = hl + r.payload.length;
    w16(b, off + TCP.SRC_PORT, r.srcPort);
    w16(b, off + TCP.DST_PORT, r.dstPort);
    w32(b, off + TCP.SEQ, r.seq);
    w32(b, off + TCP.ACK, r.ack);
    b[off + TCP.DATA_OFF] = (hl >>> 2) << 4;
    b[off + TCP.FLAGS] = r.flags;
    w16(b, off + TCP.WINDOW, r.window);
    w16(b, off + TCP.CHECKSUM, 0);
    w16(b, off + TCP.URGENT, r.urgent);
    b.fill(0, off + TCP.HLEN, off + hl);
    b.set(r.options, off + TCP.HLEN);
    b.set(r.payload, off + hl);
    if (src !== undefined && dst !== undefined) {
      w16(b, off + TCP.CHECKSUM, checksum(b, off, n, pseudoHeaderSum(src, dst, PROTO_TCP, n)));
    }
    return n;
  },
};
