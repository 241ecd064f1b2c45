import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { fold, pseudoHeaderSum } from './checksum.js';
import {
  BOOTP,
  BOOTP_BROADCAST,
  BootpOp,
  DhcpMsgType,
  DhcpOpt,
  DhcpRepr,
  DhcpView,
  dhcpOptions,
  putOptBytes,
  putOptIps,
  putOptU16,
  putOptU32,
  putOptU8,
} from './dhcp.js';
import { EthernetRepr } from './ethernet.js';
import { IpProto, Ipv4Repr, Ipv4View } from './ipv4.js';
import { UdpRepr, UdpView } from './udp.js';

/**
 * Real exchanges, captured with tcpdump on the server side of a veth pair
 * between two throwaway namespaces: busybox 1.35 `udhcpc -x hostname:vm1`
 * and ISC dhclient 4.4.3 against busybox udhcpd (172.17.0.1/16, range
 * .100–.200, lease 3600 s). Client 52:54:00:12:34:56, server
 * 02:42:7e:5c:1a:01. tshark decodes every frame as DHCP with correct IP and
 * UDP checksums. Each frame is 342 bytes: the first 76 (Ethernet, IPv4, UDP,
 * BOOTP up to chaddr's six octets) are `head`; zeros follow up to the magic
 * cookie, then `opts` (through END), then zeros to 342.
 */
function frame(head: string, opts: string): Uint8Array {
  const f = new Uint8Array(342);
  f.set(fromHex(head));
  f.set(fromHex('63825363' + opts), 14 + 20 + 8 + BOOTP.COOKIE);
  return f;
}
const CLI = '5254001234560800';
const SRV = '02427e5c1a010800';
const DHCP_FX = {
  udhcpcDiscover: frame(
    `ffffffffffff${CLI} 4500014800000000401179a600000000ffffffff 0044004301340da8 010106005a16dd610000000000000000000000000000000000000000525400123456`,
    '350101 39020240 3707 0103060c0f1c2a 0c03 766d31 3c0c 756468637020312e33352e30 3d07 01525400123456 ff',
  ),
  udhcpdOffer: frame(
    `ffffffffffff${SRV} 45000148000000004011cd93ac110001ffffffff 00430044013492d3 020106005a16dd610000000000000000ac1100670000000000000000525400123456`,
    '350102 3604ac110001 330400000e10 0104ffff0000 0304ac110001 0604ac110001 ff',
  ),
  udhcpcRequest: frame(
    `ffffffffffff${CLI} 4500014800000000401179a600000000ffffffff 00440043013477e5 010106005a16dd610002000000000000000000000000000000000000525400123456`,
    '350103 3204ac110067 3604ac110001 39020240 3707 0103060c0f1c2a 0c03 766d31 3c0c 756468637020312e33352e30 3d07 01525400123456 ff',
  ),
  udhcpdAck: frame(
    `ffffffffffff${SRV} 45000148000000004011cd93ac110001ffffffff 0043004401348fd3 020106005a16dd610000000000000000ac1100670000000000000000525400123456`,
    '350105 3604ac110001 330400000e10 0104ffff0000 0304ac110001 0604ac110001 ff',
  ),
  dhclientDiscover: frame(
    `ffffffffffff${CLI} 45100148000000008011399600000000ffffffff 0044004301345ad3 0101060003b9ce1a0000000000000000000000000000000000000000525400123456`,
    '350101 0c02766d 370d 011c02030f06770c2c2f1a792a ff',
  ),
  dhclientRequest: frame(
    `ffffffffffff${CLI} 45100148000000008011399600000000ffffffff 004400430134c512 0101060003b9ce1a0000000000000000000000000000000000000000525400123456`,
    '350103 3604ac110001 3204ac110067 0c02766d 370d 011c02030f06770c2c2f1a792a ff',
  ),
  /**
   * dhclient -r, unicast from the bound address to the server through a
   * kernel UDP socket: the veth offloads the UDP checksum, so the captured
   * field holds only the folded pseudo-header sum (CHECKSUM_PARTIAL, which
   * tshark flags as bad). The io layer completes such checksums on receive.
   */
  dhclientRelease: frame(
    `02427e5c1a01${CLI} 450001485b2f4000401185ebac110067ac110001 00440043013459d0 01010600c6d1395e00000000ac110067000000000000000000000000525400123456`,
    '350107 3604ac110001 0c02766d ff',
  ),
};

const MAC = 0x525400123456;
const SRV_IP = 0xac110001;
const YI = 0xac110067; // 172.17.0.103

/** The DHCP view of a captured frame (after checking its IPv4/UDP layers). */
function dhcpOf(f: Uint8Array): DhcpView {
  if (f === DHCP_FX.dhclientRelease) f = completed(f);
  const ip = new Ipv4View();
  const udp = new UdpView();
  expect(ip.wrap(f, 14, f.length - 14)).toBe(true);
  expect(ip.verifyChecksum()).toBe(true);
  expect(udp.wrap(f, ip.payloadOff, ip.payloadLen)).toBe(true);
  expect(udp.verifyChecksum(ip.src, ip.dst)).toBe(true);
  const v = new DhcpView();
  expect(v.wrap(f, udp.payloadOff, udp.payloadLen)).toBe(true);
  return v;
}

/** A copy of a CHECKSUM_PARTIAL frame with its UDP checksum completed (what the io layer does). */
function completed(f: Uint8Array): Uint8Array {
  const g = f.slice();
  const ip = new Ipv4View();
  const udp = new UdpView();
  ip.wrap(g, 14, g.length - 14);
  udp.wrap(g, ip.payloadOff, ip.payloadLen);
  udp.fillChecksum(ip.src, ip.dst);
  return g;
}

describe('DhcpView', () => {
  it('sees the offloaded (partial) UDP checksum of the captured RELEASE', () => {
    const f = DHCP_FX.dhclientRelease;
    const ip = new Ipv4View();
    const udp = new UdpView();
    ip.wrap(f, 14, f.length - 14);
    udp.wrap(f, ip.payloadOff, ip.payloadLen);
    expect(udp.verifyChecksum(ip.src, ip.dst)).toBe(false);
    expect(udp.checksum).toBe(fold(pseudoHeaderSum(ip.src, ip.dst, IpProto.UDP, udp.length)));
    udp.wrap(completed(f), ip.payloadOff, ip.payloadLen);
    expect(udp.verifyChecksum(ip.src, ip.dst)).toBe(true);
  });

  it('deconstructs udhcpc DISCOVER', () => {
    const v = dhcpOf(DHCP_FX.udhcpcDiscover);
    expect([v.op, v.htype, v.hlen, v.hops, v.xid, v.secs, v.flags, v.broadcast]).toEqual([1, 1, 6, 0, 0x5a16dd61, 0, 0, false]);
    expect([v.ciaddr, v.yiaddr, v.siaddr, v.giaddr, v.chaddr]).toEqual([0, 0, 0, 0, MAC]);
    expect([v.msgType, v.requestedIp, v.serverId, v.leaseTime, v.maxMsgSize, v.overload]).toEqual([DhcpMsgType.DISCOVER, 0, 0, -1, 576, 0]);
    expect(toHex(v.bytes, v.clientIdOff, v.clientIdLen)).toBe('01525400123456');
    expect(Array.from(v.bytes.subarray(v.paramsOff, v.paramsOff + v.paramsLen))).toEqual([1, 3, 6, 12, 15, 28, 42]);
    expect(toHex(v.bytes, v.hostnameOff, v.hostnameLen)).toBe('766d31');
    expect(v.optionsEnd - v.off).toBe(240 + 45);
  });

  it('deconstructs REQUESTs (selecting) from both clients and the dhclient RELEASE', () => {
    const u = dhcpOf(DHCP_FX.udhcpcRequest);
    expect([u.msgType, u.requestedIp, u.serverId, u.secs, u.ciaddr]).toEqual([DhcpMsgType.REQUEST, YI, SRV_IP, 2, 0]);
    const d = dhcpOf(DHCP_FX.dhclientRequest);
    expect([d.msgType, d.requestedIp, d.serverId, d.clientIdLen, d.maxMsgSize]).toEqual([DhcpMsgType.REQUEST, YI, SRV_IP, 0, 0]);
    const r = dhcpOf(DHCP_FX.dhclientRelease);
    expect([r.msgType, r.ciaddr, r.serverId, r.requestedIp]).toEqual([DhcpMsgType.RELEASE, YI, SRV_IP, 0]);
  });

  it('deconstructs the server side (udhcpd OFFER/ACK)', () => {
    const v = dhcpOf(DHCP_FX.udhcpdOffer);
    expect([v.op, v.msgType, v.yiaddr, v.serverId, v.leaseTime]).toEqual([BootpOp.REPLY, DhcpMsgType.OFFER, YI, SRV_IP, 3600]);
    expect(dhcpOf(DHCP_FX.udhcpdAck).msgType).toBe(DhcpMsgType.ACK);
  });

  it('refuses truncated messages, a bad cookie and options that overrun', () => {
    const v = new DhcpView();
    const f = DHCP_FX.udhcpcDiscover;
    expect(v.wrap(f, 42, 239)).toBe(false);
    expect(v.wrap(f, 42, 240)).toBe(true); // fixed part only: no options at all
    expect(v.msgType).toBe(0);
    const bad = f.slice();
    bad[42 + BOOTP.COOKIE + 3] ^= 1;
    expect(v.wrap(bad, 42, 300)).toBe(false);
    // cut inside the vendor class option (it starts at 240 + 16)
    expect(v.wrap(f, 42, 240 + 20)).toBe(false);
    // a known option with the wrong length
    const wrong = f.slice();
    wrong[42 + 240 + 1] = 2; // 53 len 2
    expect(v.wrap(wrong, 42, 300)).toBe(false);
    // ending without END is tolerated
    const noEnd = f.slice();
    noEnd[42 + 240 + 44] = 0;
    expect(v.wrap(noEnd, 42, 300)).toBe(true);
    expect(v.msgType).toBe(1);
  });

  it('reads options overloaded into file and sname (option 52)', () => {
    const b = new Uint8Array(300);
    DhcpRepr.emit({ op: 1, hops: 0, xid: 1, secs: 0, flags: 0, ciaddr: 0, yiaddr: 0, siaddr: 0, giaddr: 0, chaddr: MAC, other: [{ code: 52, data: Uint8Array.of(3) }] }, b, 0);
    putOptU32(b, BOOTP.FILE, DhcpOpt.REQUESTED_IP, YI);
    b[BOOTP.FILE + 6] = DhcpOpt.END;
    putOptU8(b, BOOTP.SNAME, DhcpOpt.MSG_TYPE, DhcpMsgType.DISCOVER);
    const v = new DhcpView();
    expect(v.wrap(b, 0, 300)).toBe(true);
    expect([v.overload, v.msgType, v.requestedIp]).toEqual([3, 1, YI]);
    expect(dhcpOptions(v).map((o) => o.code)).toEqual([52, 50, 53]);
    b[BOOTP.SNAME + 1] = 200; // runs past sname
    expect(v.wrap(b, 0, 300)).toBe(false);
  });
});

describe('option writers', () => {
  it('write code, length and data', () => {
    const b = new Uint8Array(64);
    let o = putOptU8(b, 0, 53, 2);
    o = putOptU16(b, o, 57, 1500);
    o = putOptU32(b, o, 51, 3600);
    o = putOptIps(b, o, 6, [SRV_IP, 0x08080808]);
    o = putOptIps(b, o, 3, []);
    o = putOptBytes(b, o, 61, Uint8Array.of(1, 2, 3), 1, 2);
    expect(toHex(b, 0, o)).toBe('350102' + '390205dc' + '330400000e10' + '0608ac11000108080808' + '3d020203');
  });
});

describe('DhcpRepr', () => {
  it('parses udhcpc DISCOVER', () => {
    expect(DhcpRepr.parse(dhcpOf(DHCP_FX.udhcpcDiscover))).toEqual({
      op: 1, hops: 0, xid: 0x5a16dd61, secs: 0, flags: 0, ciaddr: 0, yiaddr: 0, siaddr: 0, giaddr: 0, chaddr: MAC,
      messageType: 1, maxMessageSize: 576, paramRequestList: [1, 3, 6, 12, 15, 28, 42], hostname: 'vm1',
      clientId: fromHex('01525400123456'), other: [{ code: 60, data: new TextEncoder().encode('udhcp 1.35.0') }],
    });
  });

  it('constructs the udhcpd OFFER and ACK byte for byte, whole frames included', () => {
    for (const [fx, type] of [[DHCP_FX.udhcpdOffer, DhcpMsgType.OFFER], [DHCP_FX.udhcpdAck, DhcpMsgType.ACK]] as const) {
      const r: DhcpRepr = {
        op: 2, hops: 0, xid: 0x5a16dd61, secs: 0, flags: 0, ciaddr: 0, yiaddr: YI, siaddr: 0, giaddr: 0, chaddr: MAC,
        messageType: type, serverId: SRV_IP, leaseTime: 3600, subnetMask: 0xffff0000, router: [SRV_IP], dns: [SRV_IP],
      };
      expect(DhcpRepr.parse(dhcpOf(fx))).toEqual(r);
      expect(DhcpRepr.len(r)).toBe(240 + 33 + 1);
      const out = new Uint8Array(342);
      const n = DhcpRepr.emit(r, out, 42);
      expect(n).toBe(300);
      UdpRepr.emit({ srcPort: 67, dstPort: 68, payload: out.slice(42, 342) }, out, 34, SRV_IP, 0xffffffff);
      Ipv4Repr.emit({ tos: 0, ident: 0, flagsFrag: 0, ttl: 64, proto: IpProto.UDP, src: SRV_IP, dst: 0xffffffff, payloadLen: 308, options: new Uint8Array(0) }, out, 14);
      EthernetRepr.emit({ dst: 0xffffffffffff, src: 0x02427e5c1a01, ethertype: 0x0800, vlan: null }, out, 0);
      expect(toHex(out)).toBe(toHex(fx));
    }
  });

  it('round-trips every captured message', () => {
    for (const [name, fx] of Object.entries(DHCP_FX)) {
      const r = DhcpRepr.parse(dhcpOf(fx));
      const out = new Uint8Array(600);
      const n = DhcpRepr.emit(r, out, 0, 0);
      const v = new DhcpView();
      expect(v.wrap(out, 0, n), name).toBe(true);
      expect(DhcpRepr.parse(v), name).toEqual(r);
      expect(v.optionsEnd, name).toBe(n);
    }
  });

  it('emits NAK fields and the broadcast flag', () => {
    const out = new Uint8Array(300);
    DhcpRepr.emit({ op: 2, hops: 0, xid: 7, secs: 0, flags: BOOTP_BROADCAST, ciaddr: 0, yiaddr: 0, siaddr: 0, giaddr: 0, chaddr: MAC, messageType: DhcpMsgType.NAK, serverId: SRV_IP, message: 'no' }, out, 0);
    const v = new DhcpView();
    expect(v.wrap(out, 0, 300)).toBe(true);
    expect([v.broadcast, v.msgType]).toEqual([true, DhcpMsgType.NAK]);
    expect(DhcpRepr.parse(v).message).toBe('no');
  });
});
