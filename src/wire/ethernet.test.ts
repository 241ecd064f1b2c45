import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import {
  ETH,
  ETHERTYPE,
  EthernetRepr,
  EthernetView,
  MAC_BROADCAST,
  VLAN,
  ethL3Offset,
  ethL3Type,
  isBroadcastMac,
  isMulticastMac,
  mac48,
  macToString,
  parseMac,
  popVlanTag,
  pushVlanTag,
  writeMac48,
} from './ethernet.js';
import { CLIENT_MAC, FX, GATEWAY_MAC } from './fixtures.js';

describe('MAC addresses as 48-bit numbers', () => {
  it('reads, writes, formats and parses', () => {
    const b = new Uint8Array(8);
    writeMac48(b, 1, 0xfedcba987654);
    expect(toHex(b)).toBe('00fedcba98765400');
    expect(mac48(b, 1)).toBe(0xfedcba987654);
    writeMac48(b, 1, MAC_BROADCAST);
    expect(mac48(b, 1)).toBe(MAC_BROADCAST);
    expect(macToString(0x0242ac110002)).toBe('02:42:ac:11:00:02');
    expect(macToString(0x000000000001)).toBe('00:00:00:00:00:01');
    expect(parseMac('02:42:AC:11:00:02')).toBe(0x0242ac110002);
    expect(parseMac('ff-ff-ff-ff-ff-ff')).toBe(MAC_BROADCAST);
    expect(() => parseMac('02:42:ac:11:00')).toThrow(/bad MAC/);
    expect(() => parseMac('02:42:ac:11:00:0g')).toThrow(/bad MAC/);
  });
  it('classifies group addresses', () => {
    expect(isMulticastMac(MAC_BROADCAST)).toBe(true);
    expect(isBroadcastMac(MAC_BROADCAST)).toBe(true);
    expect(isMulticastMac(0x01005e000001)).toBe(true);
    expect(isMulticastMac(0x333300000001)).toBe(true);
    expect(isMulticastMac(CLIENT_MAC)).toBe(false);
    expect(isBroadcastMac(CLIENT_MAC)).toBe(false);
  });
});

describe('EthernetView', () => {
  const v = new EthernetView();

  it('deconstructs an untagged ARP request', () => {
    const f = fromHex(FX.arpRequest);
    expect(v.wrap(f, 0, f.length)).toBe(true);
    expect(v.dst).toBe(MAC_BROADCAST);
    expect(v.src).toBe(CLIENT_MAC);
    expect(v.ethertype).toBe(ETHERTYPE.ARP);
    expect(v.tagged).toBe(false);
    expect(v.l3Type).toBe(ETHERTYPE.ARP);
    expect(v.l3Offset).toBe(ETH.HLEN);
    expect(v.headerLen).toBe(14);
    expect(v.payloadLen).toBe(28);
  });

  it('deconstructs an 802.1Q-tagged frame at a non-zero offset', () => {
    const raw = fromHex(FX.vlanIcmpEcho);
    const f = new Uint8Array(raw.length + 10);
    f.set(raw, 10);
    expect(v.wrap(f, 10, raw.length)).toBe(true);
    expect(v.dst).toBe(GATEWAY_MAC);
    expect(v.ethertype).toBe(ETHERTYPE.VLAN);
    expect(v.tagged).toBe(true);
    expect(v.tci).toBe(0xa064);
    expect([v.pcp, v.dei, v.vid]).toEqual([5, 0, 100]);
    expect(v.l3Type).toBe(ETHERTYPE.IPV4);
    expect(v.l3Offset).toBe(10 + VLAN.HLEN);
    expect(ethL3Offset(f, 10, raw.length)).toBe(28);
    expect(ethL3Type(f, 10)).toBe(ETHERTYPE.IPV4);
    v.vid = 4095;
    v.dei = 1;
    expect([v.pcp, v.dei, v.vid, v.tci]).toEqual([5, 1, 4095, 0xbfff]);
    v.pcp = 0;
    expect(v.tci).toBe(0x1fff);
  });

  it('writes fields in place', () => {
    const f = fromHex(FX.icmpEcho);
    v.wrap(f, 0, f.length);
    v.dst = CLIENT_MAC;
    v.src = GATEWAY_MAC;
    expect(toHex(f, 0, 14)).toBe('0242ac11000202427e5c1a010800');
  });

  it('refuses truncated frames', () => {
    const f = fromHex(FX.vlanIcmpEcho);
    expect(v.wrap(f, 0, 13)).toBe(false);
    expect(v.wrap(f, 0, 17)).toBe(false); // tag present but cut
    expect(ethL3Offset(f, 0, 17)).toBe(-1);
    expect(v.wrap(f, 0, 18)).toBe(true);
    expect(v.payloadLen).toBe(0);
  });
});

describe('EthernetRepr', () => {
  it('parses, emits the same bytes and round-trips (untagged and tagged)', () => {
    for (const hex of [FX.arpRequest, FX.vlanIcmpEcho]) {
      const f = fromHex(hex);
      const v = new EthernetView();
      expect(v.wrap(f, 0, f.length)).toBe(true);
      const r = EthernetRepr.parse(v);
      const out = new Uint8Array(EthernetRepr.headerLen(r));
      expect(EthernetRepr.emit(r, out, 0)).toBe(v.headerLen);
      expect(toHex(out)).toBe(toHex(f, 0, v.headerLen));
      const v2 = new EthernetView();
      expect(v2.wrap(out, 0, out.length)).toBe(true);
      expect(EthernetRepr.parse(v2)).toEqual(r);
    }
  });
  it('constructs a tagged header', () => {
    const out = new Uint8Array(18);
    EthernetRepr.emit({ dst: GATEWAY_MAC, src: CLIENT_MAC, ethertype: 0x0800, vlan: { pcp: 5, dei: 0, vid: 100 } }, out, 0);
    expect(toHex(out)).toBe(toHex(fromHex(FX.vlanIcmpEcho), 0, 18));
  });
});

describe('VLAN tag push/pop in place', () => {
  it('tags an untagged frame into the headroom and untags it back', () => {
    const raw = fromHex(FX.icmpEcho);
    const headroom = 8;
    const buf = new Uint8Array(headroom + raw.length);
    buf.set(raw, headroom);
    pushVlanTag(buf, headroom, 0xa064);
    const tagged = buf.subarray(headroom - 4);
    const v = new EthernetView();
    expect(v.wrap(tagged, 0, tagged.length)).toBe(true);
    expect([v.tagged, v.vid, v.pcp, v.l3Type, v.src, v.dst]).toEqual([true, 100, 5, 0x0800, CLIENT_MAC, GATEWAY_MAC]);
    expect(toHex(tagged, 18)).toBe(toHex(raw, 14));
    popVlanTag(buf, headroom - 4);
    expect(toHex(buf, headroom)).toBe(toHex(raw));
  });
});
