import { describe, expect, it } from 'vitest';
import { DropReason } from '../dataplane/counters.js';
import { FramePool } from '../dataplane/pool.js';
import { fromHex, toHex, u16, w16 } from '../wire/bytes.js';
import { checksum } from '../wire/checksum.js';
import { BOOTP, BOOTP_BROADCAST, DhcpMsgType as T, DhcpRepr, DhcpView } from '../wire/dhcp.js';
import { EthernetRepr, mac48 } from '../wire/ethernet.js';
import { IPV4, IpProto, Ipv4Repr, parseIpv4 as ip } from '../wire/ipv4.js';
import { UDP, UdpRepr, udpChecksum } from '../wire/udp.js';
import { DhcpServer, type DhcpConfig, type DhcpOptions } from './dhcp.js';

const SRV_MAC = 0x02427e5c1a01;
const SRV = ip('172.17.0.1');
const MAC_A = 0x525400123456; // the captured client
const MAC_B = 0x5254000000bb;
const MAC_C = 0x5254000000cc;
const BCAST = 0xffffffff;
const S = 1000; // ms per second

/** A captured 342-byte frame (see src/wire/dhcp.test.ts): 76 header bytes, zeros, cookie + options, zeros. */
function cap(head: string, opts: string): Uint8Array {
  const f = new Uint8Array(342);
  f.set(fromHex(head));
  f.set(fromHex('63825363' + opts), 278);
  return f;
}
/** busybox udhcpc: DISCOVER and the REQUEST (selecting 172.17.0.103 from 172.17.0.1); flags 0, client id 01+MAC */
const UDHCPC_DISCOVER = cap(
  'ffffffffffff5254001234560800 4500014800000000401179a600000000ffffffff 0044004301340da8 010106005a16dd610000000000000000000000000000000000000000525400123456',
  '350101 39020240 3707 0103060c0f1c2a 0c03 766d31 3c0c 756468637020312e33352e30 3d07 01525400123456 ff',
);
const UDHCPC_REQUEST = cap(
  'ffffffffffff5254001234560800 4500014800000000401179a600000000ffffffff 00440043013477e5 010106005a16dd610002000000000000000000000000000000000000525400123456',
  '350103 3204ac110067 3604ac110001 39020240 3707 0103060c0f1c2a 0c03 766d31 3c0c 756468637020312e33352e30 3d07 01525400123456 ff',
);
/** ISC dhclient -r: RELEASE of 172.17.0.103, unicast, with the UDP checksum left to veth offload (CHECKSUM_PARTIAL) */
const DHCLIENT_RELEASE = cap(
  '02427e5c1a015254001234560800 450001485b2f4000401185ebac110067ac110001 00440043013459d0 01010600c6d1395e00000000ac110067000000000000000000000000525400123456',
  '350107 3604ac110001 0c02766d ff',
);

/** A network's IPAM stand-in: taken addresses and who claimed them. */
function ipam(taken: number[] = []) {
  const owner = new Map<number, number>(taken.map((t) => [t, 0]));
  return {
    owner,
    isFree: (a: number) => !owner.has(a),
    claim: (a: number, mac: number) => !owner.has(a) && owner.set(a, mac) !== undefined,
    release: (a: number) => void owner.delete(a),
  };
}

function setup(opts: DhcpOptions = {}, taken: number[] = [], cfg: Partial<DhcpConfig> = {}) {
  const pool = new FramePool({ capacity: 64 });
  const ipm = ipam(taken);
  const c: DhcpConfig = {
    serverIp: SRV, serverMac: SRV_MAC, subnet: ip('172.17.0.0'), prefixLen: 16, router: SRV, dns: [SRV], leaseSeconds: 3600,
    isFree: ipm.isFree, claim: ipm.claim, release: ipm.release, rangeFirst: ip('172.17.0.100'), rangeLast: ip('172.17.0.200'), ...cfg,
  };
  const srv = new DhcpServer(pool, c, { seed: 7, ...opts });
  /** feed a frame, return the parsed reply (freed) or null; checks the input frame is neither freed nor changed */
  const send = (f: Uint8Array, now = 0): Reply | null => {
    const h = pool.fromBytes(f);
    const r = srv.handle(h, now);
    expect(toHex(pool.toBytes(h))).toBe(toHex(f));
    pool.free(h);
    if (r < 0) return null;
    const out = parse(pool.toBytes(r));
    pool.free(r);
    expect(pool.inUse).toBe(0);
    return out;
  };
  return { pool, ipm, srv, send };
}

interface Msg extends Partial<DhcpRepr> {
  messageType: number;
  mac?: number;
  src?: number;
  dst?: number;
  dmac?: number;
  sport?: number;
}

/** A client message in a whole frame (Ethernet, IPv4, UDP with checksums). */
function msg(m: Msg): Uint8Array {
  const mac = m.mac ?? MAC_A;
  const r: DhcpRepr = { op: 1, hops: 0, xid: 0x1234, secs: 0, flags: 0, ciaddr: 0, yiaddr: 0, siaddr: 0, giaddr: 0, chaddr: mac, ...m };
  const body = new Uint8Array(600);
  const n = DhcpRepr.emit(r, body, 0);
  const src = m.src ?? r.ciaddr;
  const dst = m.dst ?? BCAST;
  const f = new Uint8Array(42 + n);
  UdpRepr.emit({ srcPort: m.sport ?? 68, dstPort: 67, payload: body.slice(0, n) }, f, 34, src, dst);
  Ipv4Repr.emit({ tos: 0, ident: 0, flagsFrag: 0, ttl: 64, proto: IpProto.UDP, src, dst, payloadLen: 8 + n, options: new Uint8Array(0) }, f, 14);
  EthernetRepr.emit({ dst: m.dmac ?? (dst === BCAST ? 0xffffffffffff : SRV_MAC), src: mac, ethertype: 0x0800, vlan: null }, f, 0);
  return f;
}

interface Reply {
  f: Uint8Array;
  dmac: number;
  smac: number;
  src: number;
  dst: number;
  d: DhcpRepr;
}

/** Parse a reply and check its headers and both checksums by full recomputation. */
function parse(f: Uint8Array): Reply {
  expect(u16(f, 12)).toBe(0x0800);
  expect(toHex(f, 14, 2)).toBe('4500'); // v4, IHL 5, TOS 0
  expect(u16(f, 14 + IPV4.TOTAL_LEN)).toBe(f.length - 14);
  expect(u16(f, 14 + IPV4.FLAGS_FRAG)).toBe(0);
  expect([f[14 + IPV4.TTL], f[14 + IPV4.PROTO]]).toEqual([64, IpProto.UDP]);
  const g = f.slice();
  w16(g, 14 + IPV4.CHECKSUM, 0);
  expect(u16(f, 14 + IPV4.CHECKSUM)).toBe(checksum(g, 14, 20));
  const dv = new DataView(f.buffer, f.byteOffset);
  const sip = dv.getUint32(26);
  const dip = dv.getUint32(30);
  expect([u16(f, 34 + UDP.SRC_PORT), u16(f, 34 + UDP.DST_PORT), u16(f, 34 + UDP.LENGTH)]).toEqual([67, 68, f.length - 34]);
  w16(g, 34 + UDP.CHECKSUM, 0);
  expect(u16(f, 34 + UDP.CHECKSUM)).toBe(udpChecksum(g, 34, f.length - 34, sip, dip));
  expect(f.length - 42).toBeGreaterThanOrEqual(BOOTP.PAD_TO);
  const v = new DhcpView();
  expect(v.wrap(f, 42, f.length - 42)).toBe(true);
  expect([v.htype, v.hlen, v.hops, v.secs, v.siaddr, v.giaddr]).toEqual([1, 6, 0, 0, 0, 0]);
  expect(f.subarray(42 + BOOTP.CHADDR + 6, 42 + BOOTP.COOKIE).every((x) => x === 0)).toBe(true); // chaddr padding, sname, file
  expect(f.subarray(v.optionsEnd).every((x) => x === 0)).toBe(true);
  return { f, dmac: mac48(f, 0), smac: mac48(f, 6), src: sip, dst: dip, d: DhcpRepr.parse(v) };
}

const discover = (mac = MAC_A, extra: Partial<Msg> = {}) => msg({ messageType: T.DISCOVER, mac, ...extra });
const request = (mac: number, want: number, extra: Partial<Msg> = {}) => msg({ messageType: T.REQUEST, mac, requestedIp: want, serverId: SRV, ...extra });

describe('DhcpServer: the exchange', () => {
  it('answers the captured udhcpc DISCOVER with an OFFER (every field and option)', () => {
    const { send, srv, ipm } = setup();
    const r = send(UDHCPC_DISCOVER, 5 * S)!;
    const yi = ip('172.17.0.100');
    // flags 0 and no ciaddr: unicast to yiaddr and chaddr (RFC 2131 4.1)
    expect([r.dmac, r.smac, r.src, r.dst]).toEqual([MAC_A, SRV_MAC, SRV, yi]);
    expect(toHex(r.f, 14 + IPV4.IDENT, 2)).toBe('0001');
    expect(r.f.length).toBe(342);
    expect(toHex(r.f, 42, 34)).toBe('02010600' + '5a16dd61' + '0000' + '0000' + '00000000' + 'ac110064' + '00000000' + '00000000' + '525400123456');
    // 53 OFFER, 54 server, 51 lease 3600, 58 T1 1800, 59 T2 3150, 1 mask, 3 router, 6 DNS, 61 client id echoed, END
    expect(toHex(r.f, 42 + BOOTP.COOKIE, 4 + 3 + 6 * 6 + 6 + 9 + 1)).toBe(
      '63825363 350102 3604ac110001 330400000e10 3a0400000708 3b0400000c4e 0104ffff0000 0304ac110001 0604ac110001 3d0701525400123456 ff'.replace(/ /g, ''),
    );
    expect(r.d).toMatchObject({ op: 2, messageType: T.OFFER, yiaddr: yi, serverId: SRV, leaseTime: 3600, renewalTime: 1800, rebindingTime: 3150, subnetMask: 0xffff0000, router: [SRV], dns: [SRV] });
    expect(ipm.owner.get(yi)).toBe(MAC_A);
    expect(srv.leases(5 * S)).toEqual([{ mac: MAC_A, ip: yi, expiresInS: 30, state: 'offered' }]);
    expect(srv.counters.snapshot()).toMatchObject({ rxPackets: 1, rxBytes: 342, txPackets: 1, txBytes: 342, drops: 0 });
    expect(srv.stats).toMatchObject({ discover: 1, offer: 1 });
  });

  it('REQUEST → ACK binds the lease (mask, router, DNS, lease and T1/T2)', () => {
    const { send, srv, ipm } = setup();
    const yi = send(discover())!.d.yiaddr;
    const r = send(request(MAC_A, yi, { flags: BOOTP_BROADCAST }), 2 * S)!;
    expect([r.dmac, r.dst]).toEqual([0xffffffffffff, BCAST]);
    expect(r.d).toMatchObject({ messageType: T.ACK, yiaddr: yi, ciaddr: 0, flags: BOOTP_BROADCAST, xid: 0x1234, serverId: SRV, leaseTime: 3600, renewalTime: 1800, rebindingTime: 3150, subnetMask: 0xffff0000, router: [SRV], dns: [SRV] });
    expect(r.d.clientId).toBeUndefined();
    expect(srv.leases(2 * S)).toEqual([{ mac: MAC_A, ip: yi, expiresInS: 3600, state: 'bound' }]);
    expect(ipm.owner.get(yi)).toBe(MAC_A);
    expect(srv.stats).toMatchObject({ request: 1, ack: 1, nak: 0 });
  });

  it('ACKs the captured udhcpc REQUEST, even without a prior offer (authoritative)', () => {
    const { send, srv } = setup();
    const r = send(UDHCPC_REQUEST)!;
    const yi = ip('172.17.0.103');
    expect([r.dmac, r.dst, r.d.messageType, r.d.xid, r.d.yiaddr, r.d.ciaddr]).toEqual([MAC_A, yi, T.ACK, 0x5a16dd61, yi, 0]);
    expect(r.d.clientId).toEqual(fromHex('01525400123456'));
    expect(srv.leases(0)).toEqual([{ mac: MAC_A, ip: yi, expiresInS: 3600, state: 'bound' }]);
  });

  it('INFORM → ACK without a lease, unicast to ciaddr', () => {
    const { send, srv } = setup();
    const c = ip('172.17.5.5');
    const r = send(msg({ messageType: T.INFORM, ciaddr: c, dst: SRV }))!;
    expect([r.dmac, r.dst, r.d.messageType, r.d.ciaddr, r.d.yiaddr]).toEqual([MAC_A, c, T.ACK, c, 0]);
    expect([r.d.leaseTime, r.d.renewalTime, r.d.rebindingTime, r.d.subnetMask, r.d.dns]).toEqual([undefined, undefined, undefined, 0xffff0000, [SRV]]);
    expect(srv.leases(0)).toEqual([]);
  });
});

describe('DhcpServer: choosing addresses', () => {
  it('gives the same MAC the same address: again, after RELEASE and after expiry', () => {
    const { send, srv, ipm } = setup();
    const a = send(discover())!.d.yiaddr;
    expect(send(discover())!.d.yiaddr).toBe(a);
    send(request(MAC_A, a));
    expect(send(discover())!.d.yiaddr).toBe(a); // while bound
    send(msg({ messageType: T.RELEASE, ciaddr: a, serverId: SRV, dst: SRV }));
    expect(ipm.owner.has(a)).toBe(false);
    expect(srv.leases(0)).toEqual([]);
    expect(send(discover(MAC_B))!.d.yiaddr).not.toBe(a); // others get never-used addresses first
    expect(send(discover())!.d.yiaddr).toBe(a);
    send(request(MAC_A, a));
    srv.tick(3601 * S);
    expect(ipm.owner.has(a)).toBe(false);
    expect(send(discover(), 4000 * S)!.d.yiaddr).toBe(a);
  });

  it('gives a remembered client a new address when its old one was taken meanwhile', () => {
    const { send, srv, ipm } = setup();
    const a = send(discover())!.d.yiaddr;
    srv.tick(31 * S);
    ipm.claim(a, 0x0242ac110099); // a container took it
    const b = send(discover(), 32 * S)!.d.yiaddr;
    expect(b).not.toBe(a);
    expect(ipm.owner.get(b)).toBe(MAC_A);
  });

  it('gives two MACs different addresses, skipping taken ones', () => {
    const { send } = setup({}, [ip('172.17.0.100')]);
    const a = send(discover(MAC_A))!.d.yiaddr;
    const b = send(discover(MAC_B))!.d.yiaddr;
    expect([a, b]).toEqual([ip('172.17.0.101'), ip('172.17.0.102')]);
  });

  it('honours a requested address when free and in range', () => {
    const { send } = setup({}, [ip('172.17.0.150')]);
    expect(send(discover(MAC_A, { requestedIp: ip('172.17.0.160') }))!.d.yiaddr).toBe(ip('172.17.0.160'));
    expect(send(discover(MAC_B, { requestedIp: ip('172.17.0.150') }))!.d.yiaddr).toBe(ip('172.17.0.100')); // taken
    expect(send(discover(MAC_C, { requestedIp: ip('172.17.0.50') }))!.d.yiaddr).toBe(ip('172.17.0.101')); // outside the range
  });

  it('lets another client take a released address', () => {
    const { send, ipm } = setup();
    const a = send(discover())!.d.yiaddr;
    send(request(MAC_A, a));
    send(msg({ messageType: T.RELEASE, ciaddr: a, serverId: SRV, dst: SRV }));
    const r = send(request(MAC_B, a))!;
    expect([r.d.messageType, r.d.yiaddr]).toEqual([T.ACK, a]);
    expect(ipm.owner.get(a)).toBe(MAC_B);
    expect(send(discover())!.d.yiaddr).not.toBe(a); // A's memory of it is gone
  });

  it('marks a DECLINEd address unusable for a while', () => {
    const { send, srv, ipm } = setup({ declineSeconds: 60 });
    const a = send(discover())!.d.yiaddr;
    send(request(MAC_A, a));
    expect(send(msg({ messageType: T.DECLINE, requestedIp: a, serverId: SRV }))).toBeNull();
    expect(srv.leases(0)).toEqual([]);
    expect(ipm.owner.has(a)).toBe(true); // someone else uses it: IPAM keeps it away from containers too
    const b = send(discover())!.d.yiaddr;
    expect(b).not.toBe(a);
    expect(send(discover(MAC_B, { requestedIp: a }))!.d.yiaddr).not.toBe(a);
    srv.tick(61 * S);
    expect(ipm.owner.has(a)).toBe(false);
    expect(send(discover(MAC_C, { requestedIp: a }), 61 * S)!.d.yiaddr).toBe(a);
  });
});

describe('DhcpServer: REQUEST states and NAK', () => {
  it('forgets its offer when the client chose another server (no reply)', () => {
    const { send, srv, ipm } = setup();
    const a = send(discover())!.d.yiaddr;
    expect(send(request(MAC_A, ip('172.17.0.77'), { serverId: ip('172.17.0.2') }))).toBeNull();
    expect(ipm.owner.has(a)).toBe(false);
    expect(srv.leases(0)).toEqual([]);
    expect(srv.stats.otherServer).toBe(1);
  });

  it('NAKs a foreign address, broadcast, with a message', () => {
    const { send, srv } = setup();
    const r = send(msg({ messageType: T.REQUEST, requestedIp: ip('192.168.1.50') }))!; // INIT-REBOOT elsewhere
    expect([r.dmac, r.dst, r.d.messageType, r.d.yiaddr, r.d.ciaddr, r.d.serverId, r.d.leaseTime, r.d.subnetMask]).toEqual([0xffffffffffff, BCAST, T.NAK, 0, 0, SRV, undefined, undefined]);
    expect(r.d.message).toBe('address not available');
    expect(srv.stats.nak).toBe(1);
  });

  it('NAKs an address bound to another MAC, the server or outside the range', () => {
    const { send } = setup();
    const a = send(discover())!.d.yiaddr;
    send(request(MAC_A, a));
    for (const want of [a, SRV, ip('172.17.0.201'), ip('172.17.255.255')]) expect(send(request(MAC_B, want))!.d.messageType).toBe(T.NAK);
  });

  it('renews (unicast, ciaddr) and rebinds; replies unicast to ciaddr', () => {
    const { send, srv } = setup();
    const a = send(discover())!.d.yiaddr;
    send(request(MAC_A, a));
    const renew = send(msg({ messageType: T.REQUEST, ciaddr: a, dst: SRV }), 1800 * S)!;
    expect([renew.d.messageType, renew.d.yiaddr, renew.d.ciaddr, renew.dst, renew.dmac]).toEqual([T.ACK, a, a, a, MAC_A]);
    expect(srv.leases(1800 * S)[0]).toMatchObject({ expiresInS: 3600, state: 'bound' });
    const rebind = send(msg({ messageType: T.REQUEST, ciaddr: a }), 3000 * S)!;
    expect([rebind.d.messageType, rebind.dst]).toEqual([T.ACK, a]);
    expect(send(msg({ messageType: T.REQUEST, ciaddr: ip('10.9.9.9'), dst: SRV }), 3001 * S)!.d.messageType).toBe(T.NAK);
  });
});

describe('DhcpServer: time and bounds', () => {
  it('expires offers after offerSeconds and leases after leaseSeconds', () => {
    const { send, srv, ipm } = setup({ offerSeconds: 10 });
    const a = send(discover())!.d.yiaddr;
    srv.tick(9 * S);
    expect(ipm.owner.has(a)).toBe(true);
    srv.tick(10 * S);
    expect(ipm.owner.has(a)).toBe(false);
    expect(srv.leases(10 * S)).toEqual([]);
    send(request(MAC_A, a), 20 * S);
    srv.tick(3619 * S);
    expect(srv.leases(3619 * S)).toEqual([{ mac: MAC_A, ip: a, expiresInS: 1, state: 'bound' }]);
    // handle() expires lazily too, without a tick
    expect(send(msg({ messageType: T.REQUEST, ciaddr: a, dst: SRV, mac: MAC_B }), 3620 * S)!.d.messageType).toBe(T.ACK);
    expect(ipm.owner.get(a)).toBe(MAC_B);
  });

  it('refuses new clients when the lease table is full, and counts it', () => {
    const { send, srv } = setup({ maxLeases: 2, offerSeconds: 10 });
    expect(send(discover(MAC_A))).not.toBeNull();
    expect(send(discover(MAC_B))).not.toBeNull();
    expect(send(discover(MAC_C))).toBeNull();
    expect(send(request(MAC_C, ip('172.17.0.150')))!.d.messageType).toBe(T.NAK);
    expect(srv.stats.tableFull).toBe(2);
    expect(send(discover(MAC_A))).not.toBeNull(); // known clients still served
    srv.tick(11 * S); // both offers lapse: remembered slots make room
    expect(send(discover(MAC_C), 11 * S)!.d.yiaddr).toBe(ip('172.17.0.102'));
    expect(srv.leases(11 * S).length).toBe(1);
  });

  it('keeps table, indexes and IPAM consistent under random traffic', () => {
    const { send, srv, ipm } = setup({ maxLeases: 8, offerSeconds: 5 }, [], { rangeLast: ip('172.17.0.111'), leaseSeconds: 20 });
    let seed = 12345;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
    let now = 0;
    for (let step = 0; step < 3000; step++) {
      const mac = 0x525400000000 + rnd(24);
      const addr = ip('172.17.0.98') + rnd(16);
      const op = rnd(10);
      if (op < 4) send(discover(mac, rnd(2) ? { requestedIp: addr } : {}), now);
      else if (op < 7) send(request(mac, srv.leases(now).find((l) => l.mac === mac)?.ip ?? addr), now);
      else if (op < 8) send(msg({ messageType: T.RELEASE, mac, ciaddr: addr, serverId: SRV, dst: SRV }), now);
      else now += rnd(4000);
      srv.tick(now);
      const rows = srv.leases(now);
      expect(new Set(rows.map((l) => l.ip)).size).toBe(rows.length);
      expect(new Set(rows.map((l) => l.mac)).size).toBe(rows.length);
      expect(new Map(rows.map((l) => [l.ip, l.mac]))).toEqual(ipm.owner);
      expect(rows.length).toBeLessThanOrEqual(8);
    }
    expect(srv.stats.ack).toBeGreaterThan(100);
    expect(srv.stats.tableFull + srv.stats.noAddress).toBeGreaterThan(0);
  });

  it('says nothing when the range is exhausted', () => {
    const { send, srv } = setup({ maxLeases: 4 }, [], { rangeFirst: ip('172.17.0.100'), rangeLast: ip('172.17.0.100') });
    expect(send(discover(MAC_A))!.d.yiaddr).toBe(ip('172.17.0.100'));
    expect(send(discover(MAC_B))).toBeNull();
    expect(srv.stats.noAddress).toBe(1);
  });

  it('counts a pool with no free frame and leaks nothing', () => {
    const pool = new FramePool({ capacity: 1 });
    const ipm = ipam();
    const srv = new DhcpServer(pool, { serverIp: SRV, serverMac: SRV_MAC, subnet: ip('172.17.0.0'), prefixLen: 16, router: SRV, dns: [], leaseSeconds: 60, ...ipm, rangeFirst: ip('172.17.0.2'), rangeLast: ip('172.17.0.9') });
    const h = pool.fromBytes(discover());
    expect(srv.handle(h, 0)).toBe(-1);
    expect(srv.counters.reasons[DropReason.poolEmpty]).toBe(1);
    pool.free(h);
    expect(pool.inUse).toBe(0);
  });

  it('rejects impossible configurations', () => {
    const ipm = ipam();
    const base: DhcpConfig = { serverIp: SRV, serverMac: SRV_MAC, subnet: ip('172.17.0.0'), prefixLen: 16, router: SRV, dns: [], leaseSeconds: 60, ...ipm, rangeFirst: ip('172.17.0.2'), rangeLast: ip('172.17.0.9') };
    expect(() => new DhcpServer(new FramePool({ capacity: 1 }), { ...base, rangeFirst: ip('10.0.0.1') })).toThrow(/range/);
    expect(() => new DhcpServer(new FramePool({ capacity: 1 }), { ...base, prefixLen: 31 })).toThrow(/prefix/);
    expect(() => new DhcpServer(new FramePool({ capacity: 1, slotSize: 512, headroom: 0 }), base)).toThrow(/pool/);
  });
});

describe('DhcpServer: bad input', () => {
  it('counts and drops malformed and foreign frames', () => {
    const { send, srv, pool } = setup();
    const good = discover();
    const cases: Array<[string, Uint8Array, keyof typeof DropReason]> = [];
    const edit = (name: string, why: keyof typeof DropReason, fn: (f: Uint8Array) => Uint8Array | void, base = good) => {
      const f = base.slice();
      cases.push([name, fn(f) ?? f, why]);
    };
    /** recompute the UDP checksum after an edit of the DHCP bytes */
    const fix = (f: Uint8Array): Uint8Array => {
      w16(f, 34 + UDP.CHECKSUM, 0);
      w16(f, 34 + UDP.CHECKSUM, udpChecksum(f, 34, u16(f, 34 + UDP.LENGTH), 0, BCAST));
      return f;
    };
    edit('runt', 'runt', (f) => f.slice(0, 10));
    edit('ARP', 'unsupported', (f) => void w16(f, 12, 0x0806));
    edit('cut IPv4', 'malformed', (f) => f.slice(0, 30));
    edit('IP checksum', 'badChecksum', (f) => void (f[14 + IPV4.CHECKSUM] ^= 1));
    edit('UDP checksum', 'badChecksum', (f) => void (f[34 + UDP.CHECKSUM] ^= 1));
    edit('port', 'notForUs', (f) => fix(((f[34 + UDP.DST_PORT + 1] = 68), f)));
    edit('other MAC', 'notForUs', (f) => void (f[0] = 0x02));
    edit('cut BOOTP', 'malformed', (f) => {
      const g = f.slice(0, 42 + 200);
      w16(g, 14 + IPV4.TOTAL_LEN, 228);
      w16(g, 14 + IPV4.CHECKSUM, 0);
      w16(g, 14 + IPV4.CHECKSUM, checksum(g, 14, 20));
      w16(g, 34 + UDP.LENGTH, 208);
      return fix(g);
    });
    edit('cookie', 'malformed', (f) => fix(((f[42 + BOOTP.COOKIE] = 0x99), f)));
    edit('op', 'malformed', (f) => fix(((f[42 + BOOTP.OP] = 2), f)));
    edit('no type', 'malformed', (f) => fix(((f[42 + BOOTP.OPTIONS] = 12), f))); // 53 → hostname
    edit('option overrun', 'malformed', (f) => fix(((f[42 + BOOTP.OPTIONS + 1] = 250), f)));
    edit('htype', 'unsupported', (f) => fix(((f[42 + BOOTP.HTYPE] = 6), f)));
    edit('relayed', 'unsupported', (f) => fix(((f[42 + BOOTP.GIADDR] = 10), f)));
    edit('multicast chaddr', 'badSrcMac', (f) => fix(((f[42 + BOOTP.CHADDR] = 0x01), f)));
    edit('OFFER from a client', 'unsupported', (f) => fix(((f[42 + BOOTP.OPTIONS + 2] = T.OFFER), f)));
    for (const [name, f, why] of cases) {
      const before = srv.counters.reasons[DropReason[why]];
      expect(send(f), name).toBeNull();
      expect(srv.counters.reasons[DropReason[why]], name).toBe(before + 1);
    }
    expect(srv.counters.drops).toBe(cases.length);
    expect(srv.stats.offer).toBe(0);
    expect(pool.inUse).toBe(0);
    expect(send(good)!.d.messageType).toBe(T.OFFER); // the untouched frame still works
  });

  it('accepts the RELEASE once its offloaded checksum is completed', () => {
    const { send, srv } = setup();
    send(request(MAC_A, ip('172.17.0.103')));
    const f = DHCLIENT_RELEASE.slice();
    expect(send(f)).toBeNull();
    expect(srv.counters.reasons[DropReason.badChecksum]).toBe(1);
    expect(srv.leases(0).length).toBe(1);
    w16(f, 34 + UDP.CHECKSUM, 0);
    w16(f, 34 + UDP.CHECKSUM, udpChecksum(f, 34, 308, ip('172.17.0.103'), SRV));
    expect(send(f)).toBeNull();
    expect(srv.leases(0)).toEqual([]);
    expect(srv.stats.release).toBe(1);
  });
});
