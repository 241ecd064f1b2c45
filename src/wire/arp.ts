/**
 * ARP for Ethernet/IPv4 (RFC 826), the only kind the dataplane speaks.
 *
 *   htype(2)=1 ptype(2)=0x0800 hlen(1)=6 plen(1)=4 oper(2)
 *   sha(6) spa(4) tha(6) tpa(4)                              = 28 bytes
 *
 * ArpView.wrap() fails on a truncated packet and on any other hardware or
 * protocol type / address length (the fixed offsets would not hold).
 */
import { u16, u32, w16, w32 } from './bytes.js';
import { mac48, writeMac48 } from './ethernet.js';

export const ARP = { HTYPE: 0, PTYPE: 2, HLEN: 4, PLEN: 5, OPER: 6, SHA: 8, SPA: 14, THA: 18, TPA: 24, LEN: 28 } as const;
export const ArpOp = { REQUEST: 1, REPLY: 2 } as const;
export const ARP_HTYPE_ETHERNET = 1;
export const ARP_PTYPE_IPV4 = 0x0800;

export class ArpView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(bytes: Uint8Array, off: number, len: number): boolean {
    if (len < ARP.LEN) return false;
    if (u16(bytes, off + ARP.HTYPE) !== ARP_HTYPE_ETHERNET || u16(bytes, off + ARP.PTYPE) !== ARP_PTYPE_IPV4) return false;
    if (bytes[off + ARP.HLEN] !== 6 || bytes[off + ARP.PLEN] !== 4) return false;
    this.bytes = bytes;
    this.off = off;
    return true;
  }

  get htype(): number {
    return u16(this.bytes, this.off + ARP.HTYPE);
  }
  get ptype(): number {
    return u16(this.bytes, this.off + ARP.PTYPE);
  }
  get hlen(): number {
    return this.bytes[this.off + ARP.HLEN];
  }
  get plen(): number {
    return this.bytes[this.off + ARP.PLEN];
  }
  get oper(): number {
    return u16(this.bytes, this.off + ARP.OPER);
  }
  set oper(v: number) {
    w16(this.bytes, this.off + ARP.OPER, v);
  }
  /** sender hardware address */
  get sha(): number {
    return mac48(this.bytes, this.off + ARP.SHA);
  }
  set sha(v: number) {
    writeMac48(this.bytes, this.off + ARP.SHA, v);
  }
  /** sender protocol address */
  get spa(): number {
    return u32(this.bytes, this.off + ARP.SPA);
  }
  set spa(v: number) {
    w32(this.bytes, this.off + ARP.SPA, v);
  }
  /** target hardware address */
  get tha(): number {
    return mac48(this.bytes, this.off + ARP.THA);
  }
  set tha(v: number) {
    writeMac48(this.bytes, this.off + ARP.THA, v);
  }
  /** target protocol address */
  get tpa(): number {
    return u32(this.bytes, this.off + ARP.TPA);
  }
  set tpa(v: number) {
    w32(this.bytes, this.off + ARP.TPA, v);
  }
}

export interface ArpRepr {
  op: number;
  sha: number;
  spa: number;
  tha: number;
  tpa: number;
}

export const ArpRepr = {
  parse(v: ArpView): ArpRepr {
    return { op: v.oper, sha: v.sha, spa: v.spa, tha: v.tha, tpa: v.tpa };
  },
  /** Writes the 28-byte packet at `off`; returns its length. */
  emit(r: ArpRepr, b: Uint8Array, off: number): number {
    w16(b, off + ARP.HTYPE, ARP_HTYPE_ETHERNET);
    w16(b, off + ARP.PTYPE, ARP_PTYPE_IPV4);
    b[off + ARP.HLEN] = 6;
    b[off + ARP.PLEN] = 4;
    w16(b, off + ARP.OPER, r.op);
    writeMac48(b, off + ARP.SHA, r.sha);
    w32(b, off + ARP.SPA, r.spa);
    writeMac48(b, off + ARP.THA, r.tha);
    w32(b, off + ARP.TPA, r.tpa);
    return ARP.LEN;
  },
};
