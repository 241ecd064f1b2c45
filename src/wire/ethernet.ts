/**
 * Ethernet II header, with an optional 802.1Q VLAN tag.
 *
 *   untagged: dst(6) src(6) type(2)                       → L3 at 14
 *   tagged:   dst(6) src(6) 0x8100(2) TCI(2) type(2)      → L3 at 18
 *   TCI = PCP(3 bits) DEI(1) VID(12)
 *
 * MAC addresses are 48-bit numbers (exact in a double): mac48()/writeMac48().
 * EthernetView.wrap() checks lengths once (and the tag when present);
 * l3Offset/l3Type give where the network header starts and its ethertype.
 * pushVlanTag()/popVlanTag() insert/remove a tag in place by moving the 12
 * address bytes (the caller moves the frame start with pool.prepend/consume).
 */
import { u16, w16 } from './bytes.js';

export const ETH = { DST: 0, SRC: 6, TYPE: 12, HLEN: 14 } as const;
/** Offsets in a tagged frame (from the frame start). */
export const VLAN = { TPID: 12, TCI: 14, TYPE: 16, HLEN: 18, TAG_LEN: 4 } as const;
export const ETHERTYPE = { IPV4: 0x0800, ARP: 0x0806, VLAN: 0x8100, QINQ: 0x88a8, IPV6: 0x86dd } as const;

export const MAC_BROADCAST = 0xffffffffffff;
const TWO32 = 0x100000000;
const TWO40 = 0x10000000000;

export function mac48(b: Uint8Array, o: number): number {
  return ((b[o] << 8) | b[o + 1]) * TWO32 + (((b[o + 2] << 24) | (b[o + 3] << 16) | (b[o + 4] << 8) | b[o + 5]) >>> 0);
}

export function writeMac48(b: Uint8Array, o: number, mac: number): void {
  const hi = Math.floor(mac / TWO32);
  const lo = mac >>> 0;
  b[o] = hi >>> 8;
  b[o + 1] = hi;
  b[o + 2] = lo >>> 24;
  b[o + 3] = lo >>> 16;
  b[o + 4] = lo >>> 8;
  b[o + 5] = lo;
}

/** Group bit set (multicast or broadcast). */
export function isMulticastMac(mac: number): boolean {
  return (Math.floor(mac / TWO40) & 1) === 1;
}

export function isBroadcastMac(mac: number): boolean {
  return mac === MAC_BROADCAST;
}

/** Cold path: 0x0242ac110002 → "02:42:ac:11:00:02". */
export function macToString(mac: number): string {
  return mac.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
}

/** Cold path: "02:42:ac:11:00:02" (or with '-') → number; throws when malformed. */
export function parseMac(s: string): number {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(s.trim());
  if (!m) throw new Error(`bad MAC address: ${s}`);
  return parseInt(m.slice(1).join(''), 16);
}

/** Absolute offset of the L3 header after an optional 802.1Q tag, or −1 if the frame is too short. */
export function ethL3Offset(b: Uint8Array, off: number, len: number): number {
  if (len < ETH.HLEN) return -1;
  if (u16(b, off + ETH.TYPE) !== ETHERTYPE.VLAN) return off + ETH.HLEN;
  return len < VLAN.HLEN ? -1 : off + VLAN.HLEN;
}

/** Ethertype of the L3 payload (inner type when tagged). Call after ethL3Offset() ≥ 0. */
export function ethL3Type(b: Uint8Array, off: number): number {
  const t = u16(b, off + ETH.TYPE);
  return t === ETHERTYPE.VLAN ? u16(b, off + VLAN.TYPE) : t;
}

/**
 * Insert an 802.1Q tag in place. The frame starts at `off`; the 4 bytes
 * before it must be free (pool headroom). Afterwards it starts at off − 4;
 * the caller then does pool.prepend(h, 4).
 */
export function pushVlanTag(b: Uint8Array, off: number, tci: number): void {
  b.copyWithin(off - VLAN.TAG_LEN, off, off + 12);
  w16(b, off - VLAN.TAG_LEN + VLAN.TPID, ETHERTYPE.VLAN);
  w16(b, off - VLAN.TAG_LEN + VLAN.TCI, tci);
}

/** Remove the 802.1Q tag of a tagged frame in place; afterwards it starts at off + 4 (pool.consume(h, 4)). */
export function popVlanTag(b: Uint8Array, off: number): void {
  b.copyWithin(off + VLAN.TAG_LEN, off, off + 12);
}

export class EthernetView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  len = 0;
  /** absolute offset of the L3 header (off + 14 or off + 18) */
  l3Offset = 0;

  wrap(bytes: Uint8Array, off: number, len: number): boolean {
    const l3 = ethL3Offset(bytes, off, len);
    if (l3 < 0) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    this.l3Offset = l3;
    return true;
  }

  get dst(): number {
    return mac48(this.bytes, this.off + ETH.DST);
  }
  set dst(mac: number) {
    writeMac48(this.bytes, this.off + ETH.DST, mac);
  }
  get src(): number {
    return mac48(this.bytes, this.off + ETH.SRC);
  }
  set src(mac: number) {
    writeMac48(this.bytes, this.off + ETH.SRC, mac);
  }
  /** The outer ethertype (0x8100 when tagged). */
  get ethertype(): number {
    return u16(this.bytes, this.off + ETH.TYPE);
  }
  set ethertype(t: number) {
    w16(this.bytes, this.off + ETH.TYPE, t);
  }
  get tagged(): boolean {
    return this.l3Offset - this.off === VLAN.HLEN;
  }
  /** Header length: 14, or 18 when tagged. */
  get headerLen(): number {
    return this.l3Offset - this.off;
  }
  /** Ethertype of the payload (the inner type when tagged). */
  get l3Type(): number {
    return u16(this.bytes, this.l3Offset - 2);
  }
  set l3Type(t: number) {
    w16(this.bytes, this.l3Offset - 2, t);
  }
  /** Tag accessors: valid only when `tagged`. */
  get tci(): number {
    return u16(this.bytes, this.off + VLAN.TCI);
  }
  set tci(v: number) {
    w16(this.bytes, this.off + VLAN.TCI, v);
  }
  get vid(): number {
    return this.tci & 0x0fff;
  }
  set vid(v: number) {
    this.tci = (this.tci & 0xf000) | (v & 0x0fff);
  }
  get pcp(): number {
    return this.tci >>> 13;
  }
  set pcp(v: number) {
    this.tci = (this.tci & 0x1fff) | ((v & 7) << 13);
  }
  get dei(): number {
    return (this.tci >>> 12) & 1;
  }
  set dei(v: number) {
    this.tci = (this.tci & 0xefff) | ((v & 1) << 12);
  }
  get payloadLen(): number {
    return this.len - (this.l3Offset - this.off);
  }
}

export interface VlanTag {
  pcp: number;
  dei: number;
  vid: number;
}

export interface EthernetRepr {
  dst: number;
  src: number;
  /** the L3 ethertype (inner type when tagged) */
  ethertype: number;
  vlan: VlanTag | null;
}

export const EthernetRepr = {
  parse(v: EthernetView): EthernetRepr {
    return {
      dst: v.dst,
      src: v.src,
      ethertype: v.l3Type,
      vlan: v.tagged ? { pcp: v.pcp, dei: v.dei, vid: v.vid } : null,
    };
  },
  headerLen(r: EthernetRepr): number {
    return r.vlan ? VLAN.HLEN : ETH.HLEN;
  },
  /** Writes the header at `off`; returns its length. */
  emit(r: EthernetRepr, b: Uint8Array, off: number): number {
    writeMac48(b, off + ETH.DST, r.dst);
    writeMac48(b, off + ETH.SRC, r.src);
    if (!r.vlan) {
      w16(b, off + ETH.TYPE, r.ethertype);
      return ETH.HLEN;
    }
    w16(b, off + VLAN.TPID, ETHERTYPE.VLAN);
    w16(b, off + VLAN.TCI, ((r.vlan.pcp & 7) << 13) | ((r.vlan.dei & 1) << 12) | (r.vlan.vid & 0xfff));
    w16(b, off + VLAN.TYPE, r.ethertype);
    return VLAN.HLEN;
  },
};
