import { afterEach, describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { Port } from '../dataplane/port.js';
import { Conntrack } from '../nat/conntrack.js';
import { NatRewriter } from '../nat/nat.js';
import { DhcpServer } from '../services/dhcp.js';
import { fromHex, toHex } from '../wire/bytes.js';
import { DhcpMsgType as T, DhcpRepr, DhcpView } from '../wire/dhcp.js';
import { EthernetRepr } from '../wire/ethernet.js';
import { IpProto, Ipv4Repr } from '../wire/ipv4.js';
import { UdpRepr } from '../wire/udp.js';
import { Router, type LocalUdpService } from './router.js';
import { A1, A_GW, B1, B_GW, HOST_IP, HOST_PEER, I1, I_GW, MAC, Testbed, ip, ipFrame, parse, pkt, udp, type IfName } from './testbed.js';

const BCAST = 0xffffffff;
const BMAC = 0xffffffffffff;

/**
 * Captured busybox 1.35 udhcpc frames (the same captures as
 * src/wire/dhcp.test.ts): client 52:54:00:12:34:56, 342 bytes each; the
 * REQUEST selects 172.17.0.103 from server 172.17.0.1.
 */
function cap(head: string, opts: string): Uint8Array {
  const f = new Uint8Array(342);
  f.set(fromHex(head));
  f.set(fromHex('63825363' + opts), 278);
  return f;
}
const CLIENT_MAC = 0x525400123456;
const UDHCPC_DISCOVER = cap(
  'ffffffffffff5254001234560800 4500014800000000401179a600000000ffffffff 0044004301340da8 010106005a16dd610000000000000000000000000000000000000000525400123456',
  '350101 39020240 3707 0103060c0f1c2a 0c03 766d31 3c0c 756468637020312e33352e30 3d07 01525400123456 ff',
);
const UDHCPC_REQUEST = cap(
  'ffffffffffff5254001234560800 4500014800000000401179a600000000ffffffff 00440043013477e5 010106005a16dd610002000000000000000000000000000000000000525400123456',
  '350103 3204ac110067 3604ac110001 39020240 3707 0103060c0f1c2a 0c03 766d31 3c0c 756468637020312e33352e30 3d07 01525400123456 ff',
);

/** A DHCP client message in a whole frame (checksums right). */
function dhcp(m: Partial<DhcpRepr> & { messageType: number; src: number; dst: number; dmac: number; sport?: number; smac?: number }): Uint8Array {
  const r: DhcpRepr = { op: 1, hops: 0, xid: 0x1234, secs: 0, flags: 0, ciaddr: 0, yiaddr: 0, siaddr: 0, giaddr: 0, chaddr: CLIENT_MAC, ...m };
  const body = new Uint8Array(600);
  const n = DhcpRepr.emit(r, body, 0);
  const f = new Uint8Array(42 + n);
  UdpRepr.emit({ srcPort: m.sport ?? 68, dstPort: 67, payload: body.slice(0, n) }, f, 34, m.src, m.dst);
  Ipv4Repr.emit({ tos: 0, ident: 0, flagsFrag: 0, ttl: 64, proto: IpProto.UDP, src: m.src, dst: m.dst, payloadLen: 8 + n, options: new Uint8Array(0) }, f, 14);
  EthernetRepr.emit({ dst: m.dmac, src: m.smac ?? CLIENT_MAC, ethertype: 0x0800, vlan: null }, f, 0);
  return f;
}

/** A fake service: records what it got; answers with `reply` (a new frame) when given. */
class Fake implements LocalUdpService {
  readonly got: Array<{ f: Uint8Array; now: number }> = [];
  constructor(private readonly pool: FramePool, private readonly reply: Uint8Array | null = null) {}
  handle(h: number, now: number): number {
    this.got.push({ f: this.pool.toBytes(h), now });
    return this.reply === null ? -1 : this.pool.fromBytes(this.reply);
  }
}

/** What a fake DHCP server on A answers: broadcast from A's gateway. */
const OFFERISH = ipFrame({ dmac: BMAC, smac: MAC.A, src: A_GW, dst: BCAST, proto: 17 }, udp(A_GW, BCAST, 67, 68, new Uint8Array(300).fill(7)));

let bed: Testbed;
afterEach(() => {
  bed.collect();
  for (const id of Object.values(bed.ids)) bed.router.removeInterface(id);
  expect(bed.pool.inUse).toBe(0);
});

function only(where: IfName): Uint8Array {
  const out = bed.run();
  expect(Testbed.counts(out)).toEqual({ [where]: 1 });
  return out[where][0];
}

describe('Router: local UDP services — DHCP broadcasts', () => {
  it('a DISCOVER from 0.0.0.0 reaches the port-67 service of its network; the reply leaves by that iface as built', () => {
    bed = new Testbed();
    const a = new Fake(bed.pool, OFFERISH);
    bed.router.setUdpService(bed.ids.A, 67, a);
    // Ethernet padding is trimmed before the service sees the frame
    const padded = new Uint8Array(UDHCPC_DISCOVER.length + 4).fill(0xee);
    padded.set(UDHCPC_DISCOVER);
    bed.send('A', padded);
    expect(toHex(only('A'))).toBe(toHex(OFFERISH));
    expect(a.got.map((g) => [toHex(g.f), g.now])).toEqual([[toHex(UDHCPC_DISCOVER), bed.now]]);
    expect(bed.drops()).toEqual({});
    expect(bed.router.stats()).toMatchObject({ udpDelivered: 1, udpSent: 1, udpServiceErrors: 0 });
    expect(bed.router.ifaceCounters(bed.ids.A).snapshot()).toMatchObject({ rxPackets: 1, txPackets: 1, drops: 0 });
    // a service that does not answer: nothing goes out, nothing is a drop
    bed.router.setUdpService(bed.ids.A, 67, new Fake(bed.pool));
    bed.send('A', UDHCPC_DISCOVER);
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({});
  });

  it('a DISCOVER on another network never reaches the first network’s service', () => {
    bed = new Testbed();
    const a = new Fake(bed.pool, OFFERISH);
    bed.router.setUdpService(bed.ids.A, 67, a);
    bed.send('B', UDHCPC_DISCOVER);
    bed.send('I', UDHCPC_DISCOVER);
    bed.send('HOST', UDHCPC_DISCOVER);
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(a.got).toHaveLength(0);
    expect(bed.drops()).toEqual({ notForUs: 3 });
    // with its own service, B's DISCOVER goes to B's only, and the answer out of B
    const bReply = ipFrame({ dmac: BMAC, smac: MAC.B, src: B_GW, dst: BCAST, proto: 17 }, udp(B_GW, BCAST, 67, 68));
    const b = new Fake(bed.pool, bReply);
    bed.router.setUdpService(bed.ids.B, 67, b);
    bed.send('B', UDHCPC_DISCOVER);
    expect(toHex(only('B'))).toBe(toHex(bReply));
    expect([a.got.length, b.got.length]).toEqual([0, 1]);
  });

  it('internal networks get DHCP too (it never leaves the network)', () => {
    bed = new Testbed();
    const reply = ipFrame({ dmac: CLIENT_MAC, smac: MAC.I, src: I_GW, dst: ip('172.20.0.100'), proto: 17 }, udp(I_GW, ip('172.20.0.100'), 67, 68));
    bed.router.setUdpService(bed.ids.I, 67, new Fake(bed.pool, reply));
    bed.send('I', UDHCPC_DISCOVER);
    expect(toHex(only('I'))).toBe(toHex(reply));
  });

  it('lets exactly the DHCP client pattern through: nothing else from 0.0.0.0 or to broadcast', () => {
    bed = new Testbed();
    const a = new Fake(bed.pool);
    bed.router.setUdpService(bed.ids.A, 67, a);
    bed.router.setUdpService(bed.ids.A, 53, a);
    const base = { messageType: T.DISCOVER, src: 0, dst: BCAST, dmac: BMAC };
    // from 0.0.0.0 unicast to the gateway (martian source, as before)
    bed.send('A', dhcp({ ...base, dst: A_GW, dmac: MAC.A }));
    // broadcast from 0.0.0.0 to another port, from another client port, to the subnet broadcast
    bed.send('A', ipFrame({ dmac: BMAC, smac: CLIENT_MAC, src: 0, dst: BCAST, proto: 17 }, udp(0, BCAST, 68, 53)));
    bed.send('A', dhcp({ ...base, sport: 67 }));
    bed.send('A', dhcp({ ...base, dst: ip('172.18.255.255') }));
    // from another network's address, from the gateway's own address
    bed.send('A', dhcp({ ...base, src: B1 }));
    bed.send('A', dhcp({ ...base, src: A_GW }));
    // the pattern with a bad IPv4 checksum, or as a fragment
    const bad = UDHCPC_DISCOVER.slice();
    bad[24] ^= 1;
    bed.send('A', bad);
    bed.send('A', ipFrame({ dmac: BMAC, smac: CLIENT_MAC, src: 0, dst: BCAST, proto: 17, flagsFrag: 0x2000 }, udp(0, BCAST, 68, 67)));
    // the pattern to our own MAC (martian source, as before), and other broadcast IPv4
    bed.send('A', dhcp({ ...base, dmac: MAC.A }));
    bed.send('A', pkt({ dmac: BMAC, smac: MAC.A1, src: A1, dst: ip('172.18.255.255'), proto: 17, sport: 137, dport: 137 }));
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(a.got).toHaveLength(0);
    expect(bed.drops()).toEqual({ malformed: 2, notForUs: 3, filtered: 3, badChecksum: 1, unsupported: 1 });
    // a rebinding client broadcasts from its own address on the network: delivered
    bed.send('A', dhcp({ ...base, messageType: T.REQUEST, src: A1, ciaddr: A1, smac: MAC.A1 }));
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(a.got).toHaveLength(1);
  });
});

describe('Router: local UDP services — unicast to the gateway', () => {
  it('renewals (to <gw>:67) and DNS (to <gw>:53) reach the services; other ports stay port unreachable', () => {
    bed = new Testbed();
    bed.learn('A', MAC.A1, A1);
    const d = new Fake(bed.pool, OFFERISH);
    const dns = new Fake(bed.pool);
    bed.router.setUdpService(bed.ids.A, 67, d);
    bed.router.setUdpService(bed.ids.A, 53, dns);
    const renew = dhcp({ messageType: T.REQUEST, src: A1, dst: A_GW, dmac: MAC.A, smac: MAC.A1, ciaddr: A1 });
    bed.send('A', renew);
    expect(toHex(only('A'))).toBe(toHex(OFFERISH));
    expect(toHex(d.got[0].f)).toBe(toHex(renew));
    const q = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 17, sport: 40000, dport: 53 });
    bed.send('A', q);
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(dns.got.map((g) => toHex(g.f))).toEqual([toHex(q)]);
    // an unregistered port: ICMP port unreachable from the gateway, as before
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 17, sport: 40000, dport: 5353 }));
    const err = parse(only('A'));
    expect([err.src, err.dst, err.icmpType, err.icmpCode, err.checksumsOk]).toEqual([A_GW, A1, 3, 3, true]);
    expect(bed.drops()).toEqual({ unsupported: 1 });
    // TCP to 53 is not UDP: RST
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 6, sport: 40000, dport: 53 }));
    expect(parse(only('A')).tcpFlags & 0x04).toBe(4);
    // removed: port unreachable again
    bed.router.setUdpService(bed.ids.A, 53, null);
    bed.send('A', q);
    expect(parse(only('A')).icmpType).toBe(3);
    expect(dns.got).toHaveLength(1);
  });

  it('the gateway address has no services from the host link or another network; other router addresses none at all', () => {
    bed = new Testbed();
    bed.learn('HOST', MAC.HOSTPEER, HOST_PEER);
    bed.learn('B', MAC.B1, B1);
    const dns = new Fake(bed.pool, OFFERISH);
    bed.router.setUdpService(bed.ids.A, 53, dns);
    bed.send('HOST', pkt({ dmac: MAC.HOST, smac: MAC.HOSTPEER, src: HOST_PEER, dst: A_GW, proto: 17, dport: 53 }));
    expect(parse(only('HOST')).icmpCode).toBe(3);
    bed.send('B', pkt({ dmac: MAC.B, smac: MAC.B1, src: B1, dst: A_GW, proto: 17, dport: 53 }));
    bed.send('B', pkt({ dmac: MAC.B, smac: MAC.B1, src: B1, dst: B_GW, proto: 17, dport: 53 }));
    bed.send('HOST', pkt({ dmac: MAC.HOST, smac: MAC.HOSTPEER, src: HOST_PEER, dst: HOST_IP, proto: 17, dport: 53 }));
    const out = bed.run();
    expect(Testbed.counts(out)).toEqual({ B: 1, HOST: 1 });
    expect(dns.got).toHaveLength(0);
    expect(bed.drops()).toMatchObject({ filtered: 1 });
  });

  it('only network ifaces take services; bad ports throw', () => {
    bed = new Testbed();
    const f = new Fake(bed.pool);
    expect(() => bed.router.setUdpService(bed.ids.UP, 53, f)).toThrow(/not a network/);
    expect(() => bed.router.setUdpService(bed.ids.HOST, 67, f)).toThrow(/not a network/);
    expect(() => bed.router.setUdpService(99, 67, f)).toThrow(/no router iface/);
    expect(() => bed.router.setUdpService(bed.ids.A, 0, f)).toThrow(/bad UDP port/);
    expect(() => bed.router.setUdpService(bed.ids.A, 65536, f)).toThrow(/bad UDP port/);
    bed.router.setUdpService(bed.ids.A, 53, null); // removing what is not there is fine
  });

  it('a service may answer in place by returning h itself', () => {
    bed = new Testbed();
    bed.router.setUdpService(bed.ids.A, 53, {
      handle: (h) => {
        const o = bed.pool.offsets[h];
        bed.pool.bytes[o + 14 + 20 + 8] ^= 0xff; // "answer": the router sends it as is
        return h;
      },
    });
    const q = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 17, dport: 53 });
    bed.send('A', q);
    const got = only('A');
    expect(got[42]).toBe(q[42] ^ 0xff);
    expect(toHex(got.subarray(43))).toBe(toHex(q.subarray(43)));
    expect(bed.drops()).toEqual({});
  });

  it('a service that throws: counted, the frame dropped, the loop goes on', () => {
    bed = new Testbed();
    bed.learn('A', MAC.A1, A1);
    bed.router.setUdpService(bed.ids.A, 53, {
      handle(): number {
        throw new Error('boom');
      },
    });
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 17, dport: 53 }));
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 1 }));
    expect(parse(only('A')).icmpType).toBe(0);
    expect(bed.router.stats()).toMatchObject({ udpDelivered: 1, udpSent: 0, udpServiceErrors: 1 });
    expect(bed.drops()).toEqual({ unsupported: 1 });
  });
});

describe('Router: sendFrom', () => {
  it('queues a frame built elsewhere and sends it, unchanged, at the next process()', () => {
    bed = new Testbed();
    const answer = ipFrame({ dmac: MAC.A1, smac: MAC.A, src: A_GW, dst: A1, proto: 17 }, udp(A_GW, A1, 53, 40000));
    bed.router.sendFrom(bed.ids.A, bed.pool.fromBytes(answer));
    bed.router.sendFrom(bed.ids.I, bed.pool.fromBytes(answer));
    expect(Testbed.counts(bed.tick(1000))).toEqual({}); // tick does not send it
    const out = bed.run();
    expect(Testbed.counts(out)).toEqual({ A: 1, I: 1 });
    expect(toHex(out.A[0])).toBe(toHex(answer));
    expect(bed.router.stats().udpSent).toBe(2);
    expect(bed.router.ifaceCounters(bed.ids.A).snapshot()).toMatchObject({ txPackets: 1, drops: 0 });
    expect(Testbed.counts(bed.run())).toEqual({});
  });

  it('bounded: a full queue, a gone iface and an oversize frame are drops', () => {
    bed = new Testbed({ sendQueueLen: 2, mtu: { B: 576 } });
    const f = ipFrame({ dmac: MAC.A1, smac: MAC.A, src: A_GW, dst: A1, proto: 17 }, udp(A_GW, A1, 53, 40000));
    for (let k = 0; k < 3; k++) bed.router.sendFrom(bed.ids.A, bed.pool.fromBytes(f));
    bed.router.sendFrom(77, bed.pool.fromBytes(f));
    const big = ipFrame({ dmac: MAC.B1, smac: MAC.B, src: B_GW, dst: B1, proto: 17 }, udp(B_GW, B1, 53, 40000, new Uint8Array(1000)));
    expect(Testbed.counts(bed.run())).toEqual({ A: 2 });
    bed.router.sendFrom(bed.ids.B, bed.pool.fromBytes(big));
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({ ringFull: 1, portDown: 1, oversize: 1 });
    // frames queued for an iface that is removed are freed with it
    bed.router.sendFrom(bed.ids.I, bed.pool.fromBytes(f));
    bed.router.removeInterface(bed.ids.I);
    expect(bed.pool.inUse).toBe(0);
  });
});

describe('Router + DhcpServer (src/services/dhcp.ts)', () => {
  it('answers the captured udhcpc DISCOVER with an OFFER and the REQUEST with an ACK, renewals unicast; nothing leaks', () => {
    bed = new Testbed(); // only for the shared afterEach; this test has its own docker0-like router
    const SRV = ip('172.17.0.1');
    const SRV_MAC = 0x02427e5c1a01;
    const pool = new FramePool({ capacity: 64 });
    const ct = new Conntrack({ capacity: 16, seed: 1 });
    const r = new Router(pool, ct, new NatRewriter(pool, ct), { seed: 1 });
    const port = new Port(3, 'docker0', 16);
    const other = new Port(4, 'br-other', 16);
    const id = r.addInterface({ kind: 'network', port, side: 'switch', ip: SRV, prefixLen: 16, mac: SRV_MAC, mtu: 1500 });
    r.addInterface({ kind: 'network', port: other, side: 'switch', ip: ip('172.21.0.1'), prefixLen: 16, mac: 0x020000000d01, mtu: 1500 });
    // IPAM: .100–.102 are containers', so the OFFER is .103 as in the capture
    const taken = new Map<number, number>([ip('172.17.0.100'), ip('172.17.0.101'), ip('172.17.0.102')].map((a) => [a, 0]));
    const srv = new DhcpServer(pool, {
      serverIp: SRV, serverMac: SRV_MAC, subnet: ip('172.17.0.0'), prefixLen: 16, router: SRV, dns: [SRV], leaseSeconds: 3600,
      isFree: (a) => !taken.has(a), claim: (a, m) => !taken.has(a) && taken.set(a, m) !== undefined, release: (a) => void taken.delete(a),
      rangeFirst: ip('172.17.0.100'), rangeLast: ip('172.17.0.200'),
    }, { seed: 7 });
    r.setUdpService(id, 67, srv);
    let now = 5000;
    const exchange = (f: Uint8Array, on: Port = port): Array<{ dmac: number; smac: number; src: number; dst: number; d: DhcpRepr }> => {
      on.tx.push(pool.fromBytes(f, 9));
      r.process(now);
      const got = [];
      for (let h = other.rx.pop(); h >= 0; h = other.rx.pop()) throw new Error(`frame ${toHex(pool.toBytes(h))} left by the other network`);
      for (let h = port.rx.pop(); h >= 0; h = port.rx.pop()) {
        const p = parse(pool.toBytes(h));
        pool.free(h);
        expect([p.proto, p.sport, p.dport, p.checksumsOk]).toEqual([17, 67, 68, true]);
        const v = new DhcpView();
        expect(v.wrap(p.l4, 8, p.l4.length - 8)).toBe(true);
        got.push({ dmac: p.dmac, smac: p.smac, src: p.src, dst: p.dst, d: DhcpRepr.parse(v) });
      }
      return got;
    };
    const YI = ip('172.17.0.103');
    // DISCOVER → OFFER of .103, unicast to yiaddr/chaddr (udhcpc sets no broadcast flag)
    const [offer, ...more] = exchange(UDHCPC_DISCOVER);
    expect(more).toHaveLength(0);
    expect([offer.dmac, offer.smac, offer.src, offer.dst]).toEqual([CLIENT_MAC, SRV_MAC, SRV, YI]);
    expect([offer.d.messageType, offer.d.yiaddr, offer.d.xid, offer.d.serverId, offer.d.leaseTime]).toEqual([T.OFFER, YI, 0x5a16dd61, SRV, 3600]);
    expect([offer.d.subnetMask, offer.d.router, offer.d.dns]).toEqual([ip('255.255.0.0'), [SRV], [SRV]]);
    // the same DISCOVER on the other network never reaches this server
    expect(exchange(UDHCPC_DISCOVER, other)).toHaveLength(0);
    expect(srv.stats.discover).toBe(1);
    // REQUEST (selecting, broadcast from 0.0.0.0) → ACK
    now += 1000;
    const [ack] = exchange(UDHCPC_REQUEST);
    expect([ack.d.messageType, ack.d.yiaddr, ack.dst, ack.dmac]).toEqual([T.ACK, YI, YI, CLIENT_MAC]);
    expect(srv.leases(now)).toEqual([{ mac: CLIENT_MAC, ip: YI, expiresInS: 3600, state: 'bound' }]);
    // renewing: unicast from the leased address to the gateway → ACK unicast
    now += 1_800_000;
    const [renewed] = exchange(dhcp({ messageType: T.REQUEST, src: YI, dst: SRV, dmac: SRV_MAC, ciaddr: YI, xid: 0x77 }));
    expect([renewed.d.messageType, renewed.d.yiaddr, renewed.d.ciaddr, renewed.d.xid, renewed.dst]).toEqual([T.ACK, YI, YI, 0x77, YI]);
    // RELEASE (unicast): no reply, the address goes back to IPAM
    expect(exchange(dhcp({ messageType: T.RELEASE, src: YI, dst: SRV, dmac: SRV_MAC, ciaddr: YI, serverId: SRV }))).toHaveLength(0);
    expect(taken.has(YI)).toBe(false);
    expect(srv.counters.drops).toBe(0);
    expect(r.counters.snapshot()).toMatchObject({ drops: 1, dropReasons: { notForUs: 1 } });
    expect(r.stats()).toMatchObject({ udpDelivered: 4, udpSent: 3 });
    expect(pool.inUse).toBe(0);
  });
});
