import { describe, expect, it } from 'vitest';
import { DropReason } from '../dataplane/counters.js';
import { FramePool, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, M_CSUM_OFFSET, M_CSUM_START, M_GSO_SIZE, M_HDR_LEN, META_NEEDS_CSUM } from '../dataplane/pool.js';
import { Port } from '../dataplane/port.js';
import type { Ring } from '../dataplane/ring.js';
import { rng } from '../lab/rng.js';
import { toHex, u16, u32, w32 } from '../wire/bytes.js';
import { verifyChecksum } from '../wire/checksum.js';
import { mac48, writeMac48 } from '../wire/ethernet.js';
import { type SuperFrame, type SuperSpec, buildSuper, refPseudo, refSum, refVerify } from '../wire/gso-fixtures.js';
import { SRC_PORT_FIRST, flowSourcePort } from '../wire/vxlan.js';
import { KeyRing, randomKey } from './seal.js';
import { Vtep, type VtepOptions } from './vtep.js';

const LOCAL = 0x0a000001; // 10.0.0.1
const V2 = 0x0a000002;
const V3 = 0x0a000003;
const V4 = 0x0a000004;
const UDP_PORT = 4790;
const SEED = 0x1234abcd;
const AGING = 1000;

const VNI_A = 0x00a0a0;
const VNI_B = 0x00b0b0;
const VNI_E = 0x00e0e0; // encrypted

const GW_IP = 0x0a140001; // 10.20.0.1
const GW_MAC = 0x02427e5c1a01;
const L1_MAC = 0x0242ac140002; // a local container
const L1_IP = 0x0a140002;
const R1_MAC = 0x0242ac140010; // remote endpoints
const R1_IP = 0x0a140010;
const R2_MAC = 0x0242ac140011;
const R2_IP = 0x0a140011;
const R5_MAC = 0x0242ac140015;
const UNKNOWN_IP = 0x0a140063;

// ------------------------------------------------------------ frames

function macBytes(mac: number): Uint8Array {
  const b = new Uint8Array(6);
  writeMac48(b, 0, mac);
  return b;
}

/** Ethernet + IPv4 + UDP with a recognisable payload */
function udpFrame(dst: number, src: number, sport = 40000, dport = 53, payload = 40): Uint8Array {
  const f = new Uint8Array(14 + 20 + 8 + payload);
  const v = new DataView(f.buffer);
  writeMac48(f, 0, dst);
  writeMac48(f, 6, src);
  v.setUint16(12, 0x0800);
  v.setUint8(14, 0x45);
  v.setUint16(16, 28 + payload);
  v.setUint8(22, 64);
  v.setUint8(23, 17);
  v.setUint32(26, L1_IP);
  v.setUint32(30, R1_IP);
  v.setUint16(34, sport);
  v.setUint16(36, dport);
  v.setUint16(38, 8 + payload);
  for (let i = 0; i < payload; i++) f[42 + i] = (i * 7 + sport) & 0xff;
  return f;
}

/** ARP request (broadcast) from (mac, ip) for `target`, padded to `len` */
function arpRequest(mac: number, ip: number, target: number, len = 42, op = 1): Uint8Array {
  const f = new Uint8Array(len);
  const v = new DataView(f.buffer);
  f.fill(0xff, 0, 6);
  writeMac48(f, 6, mac);
  v.setUint16(12, 0x0806);
  v.setUint16(14, 1);
  v.setUint16(16, 0x0800);
  f[18] = 6;
  f[19] = 4;
  v.setUint16(20, op);
  writeMac48(f, 22, mac);
  v.setUint32(28, ip);
  v.setUint32(38, target);
  return f;
}

/** VXLAN header + inner frame */
function datagram(vni: number, inner: Uint8Array, flags = 0x08): Uint8Array {
  const d = new Uint8Array(8 + inner.length);
  d[0] = flags;
  d[4] = vni >>> 16;
  d[5] = vni >>> 8;
  d[6] = vni;
  d.set(inner, 8);
  return d;
}

// ------------------------------------------------------------ rig

interface Rig {
  pool: FramePool;
  tunnel: Port;
  vtep: Vtep;
  ports: Map<number, Port>;
  keys: KeyRing | null;
  /** the switch sends frame bytes out through a network's port */
  out(vni: number, bytes: Uint8Array): number;
  /** a datagram from the underlay (sender written where TunnelDevice.senderOf reads it) */
  inject(bytes: Uint8Array, sender: number): number;
  /** everything waiting in a ring, as bytes; the frames are freed */
  take(ring: Ring): Uint8Array[];
  /** every ring empty, pool back to where it started */
  expectClean(): void;
}

function rig(opts: Partial<VtepOptions> = {}, keys: KeyRing | null = null, localIp = LOCAL): Rig {
  const pool = new FramePool({ capacity: 512, largeCapacity: 8 });
  const start = pool.inUse;
  const tunnel = new Port(1, 'vxlan0', 256);
  const vtep = new Vtep(pool, tunnel, { localIp, udpPort: UDP_PORT, seed: SEED, agingMs: AGING, ...opts });
  const ports = new Map<number, Port>();
  let nextId = 2;
  for (const vni of [VNI_A, VNI_B, VNI_E]) {
    const port = new Port(nextId++, `ov${vni.toString(16)}`, 256);
    ports.set(vni, port);
    const k = vni === VNI_E ? keys : null;
    if (vni === VNI_E && k === null) continue;
    vtep.addNetwork({ vni, port, gatewayIp: GW_IP, gatewayMac: GW_MAC, keys: k, sendKeys: k });
  }
  const r: Rig = {
    pool,
    tunnel,
    vtep,
    ports,
    keys,
    out(vni, bytes) {
      const port = ports.get(vni)!;
      const h = pool.fromBytes(bytes, 99);
      expect(port.tx.push(h)).toBe(true);
      return h;
    },
    inject(bytes, sender) {
      const h = pool.fromBytes(bytes);
      w32(pool.bytes, pool.offsets[h] - 8, sender);
      expect(tunnel.rx.push(h)).toBe(true);
      return h;
    },
    take(ring) {
      const out: Uint8Array[] = [];
      while (!ring.empty) {
        const h = ring.pop();
        out.push(pool.toBytes(h));
        pool.free(h);
      }
      return out;
    },
    expectClean() {
      const rings = [tunnel.rx, tunnel.tx, ...[...ports.values()].flatMap((p) => [p.rx, p.tx])];
      for (const ring of rings) expect(ring.empty).toBe(true);
      expect(pool.inUse).toBe(start);
    },
  };
  return r;
}

/** An outer packet from tunnel.tx, checked and taken apart. */
function parseOuter(p: Uint8Array): { src: number; dst: number; sport: number; dport: number; flags: number; vni: number; inner: Uint8Array } {
  expect(p.length).toBeGreaterThanOrEqual(36);
  expect(p[0]).toBe(0x45);
  expect(p[1]).toBe(0);
  expect(u16(p, 2)).toBe(p.length); // total length
  expect(u16(p, 6)).toBe(0x4000); // DF, offset 0
  expect(p[8]).toBe(64);
  expect(p[9]).toBe(17);
  expect(verifyChecksum(p, 0, 20)).toBe(true);
  expect(u16(p, 24)).toBe(p.length - 20); // UDP length
  expect(u16(p, 26)).toBe(0); // UDP checksum
  const sport = u16(p, 20);
  expect(sport).toBeGreaterThanOrEqual(SRC_PORT_FIRST);
  expect(sport).toBeLessThanOrEqual(65535);
  // VXLAN reserved fields are zero
  expect([p[29], p[30], p[31], p[35]]).toEqual([0, 0, 0, 0]);
  return { src: u32(p, 12), dst: u32(p, 16), sport, dport: u16(p, 22), flags: p[28], vni: u32(p, 32) >>> 8, inner: p.subarray(36) };
}

const reasons = (p: Port): Record<string, number> => p.counters.snapshot().dropReasons;

// ------------------------------------------------------------ tests

describe('Vtep encap', () => {
  it('encapsulates a unicast frame to the VTEP of its endpoint, in headroom, without a copy', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    r.vtep.setFlood(VNI_A, [V2, V3]);
    const inner = udpFrame(R1_MAC, L1_MAC);
    const h = r.out(VNI_A, inner);
    const off0 = r.pool.offsets[h];
    r.vtep.process(0);

    expect(r.tunnel.tx.length).toBe(1);
    const h2 = r.tunnel.tx.pop();
    expect(h2).toBe(h); // same slot
    expect(r.pool.offsets[h]).toBe(off0 - 36);
    expect(r.pool.lengths[h]).toBe(inner.length + 36);
    expect(r.pool.inUse).toBe(1); // no clone, no copy
    const bytes = r.pool.toBytes(h);
    r.pool.free(h);

    const o = parseOuter(bytes);
    expect(o.src).toBe(LOCAL);
    expect(o.dst).toBe(V2);
    expect(o.dport).toBe(UDP_PORT);
    expect(o.sport).toBe(flowSourcePort(inner, 0, inner.length, SEED));
    expect(o.flags).toBe(0x08);
    expect(o.vni).toBe(VNI_A);
    expect(toHex(o.inner)).toBe(toHex(inner));

    expect(portA.counters.snapshot()).toMatchObject({ txPackets: 1, txBytes: inner.length, drops: 0 });
    expect(r.tunnel.counters.snapshot()).toMatchObject({ txPackets: 1, txBytes: inner.length + 36, drops: 0 });
    r.expectClean();
  });

  it('keeps one flow on one source port and spreads flows; bumps the IP id', () => {
    const r = rig();
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    r.out(VNI_A, udpFrame(R1_MAC, L1_MAC, 40000));
    r.out(VNI_A, udpFrame(R1_MAC, L1_MAC, 40000, 53, 300));
    for (let i = 0; i < 50; i++) r.out(VNI_A, udpFrame(R1_MAC, L1_MAC, 41000 + i));
    r.vtep.process(0);
    const pkts = r.take(r.tunnel.tx).map((p) => ({ ...parseOuter(p), id: u16(p, 4) }));
    expect(pkts.length).toBe(52);
    expect(pkts[0].sport).toBe(pkts[1].sport);
    expect(new Set(pkts.slice(2).map((p) => p.sport)).size).toBeGreaterThan(40);
    expect(new Set(pkts.map((p) => p.id)).size).toBe(52);
    r.expectClean();
  });

  it('replicates broadcast, multicast and unknown unicast to every VTEP of the flood list', () => {
    const r = rig();
    r.vtep.setFlood(VNI_A, [V2, V3, V4, LOCAL, V3, 0]);
    expect(r.vtep.floodList(VNI_A).sort()).toEqual([V2, V3, V4]); // no self, no 0, no duplicate
    const frames = [
      udpFrame(0xffffffffffff, L1_MAC), // broadcast
      udpFrame(0x01005e000001, L1_MAC), // IPv4 multicast
      udpFrame(R2_MAC, L1_MAC), // unknown unicast
    ];
    for (const f of frames) {
      r.out(VNI_A, f);
      r.vtep.process(0);
      expect(r.tunnel.tx.length).toBe(3);
      expect(r.pool.inUse).toBe(3); // n−1 clones and the original
      const got = r.take(r.tunnel.tx).map(parseOuter);
      expect(got.map((g) => g.dst).sort()).toEqual([V2, V3, V4]);
      for (const g of got) {
        expect(g.vni).toBe(VNI_A);
        expect(g.src).toBe(LOCAL);
        expect(toHex(g.inner)).toBe(toHex(f));
      }
      expect(new Set(got.map((g) => g.sport)).size).toBe(1); // same flow, same port
      expect(r.pool.inUse).toBe(0);
    }
    expect(r.tunnel.counters.txPackets).toBe(9);
    expect(r.ports.get(VNI_A)!.counters.txPackets).toBe(3);
    // a known unicast still goes to its VTEP alone
    r.vtep.setEndpoint(VNI_A, R2_MAC, R2_IP, V4);
    r.out(VNI_A, udpFrame(R2_MAC, L1_MAC));
    r.vtep.process(0);
    expect(r.take(r.tunnel.tx).map((p) => parseOuter(p).dst)).toEqual([V4]);
    r.expectClean();
  });

  it('drops flooded frames with noRoute when the flood list is empty', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.out(VNI_A, udpFrame(0xffffffffffff, L1_MAC));
    r.out(VNI_A, udpFrame(R2_MAC, L1_MAC));
    r.out(VNI_A, arpRequest(L1_MAC, L1_IP, UNKNOWN_IP));
    r.vtep.process(0);
    expect(r.tunnel.tx.empty).toBe(true);
    expect(reasons(portA)).toEqual({ noRoute: 3 });
    // setFlood replaces the list: back to empty
    r.vtep.setFlood(VNI_A, [V2]);
    r.vtep.setFlood(VNI_A, []);
    r.out(VNI_A, udpFrame(0xffffffffffff, L1_MAC));
    r.vtep.process(0);
    expect(reasons(portA)).toEqual({ noRoute: 4 });
    expect(r.tunnel.counters.txPackets).toBe(0);
    r.expectClean();
  });

  it('counts poolEmpty when clones run out and still sends the original', () => {
    const pool = new FramePool({ capacity: 3 });
    const tunnel = new Port(1, 't', 16);
    const port = new Port(2, 'a', 16);
    const vtep = new Vtep(pool, tunnel, { localIp: LOCAL, udpPort: UDP_PORT });
    vtep.addNetwork({ vni: VNI_A, port, gatewayIp: 0, gatewayMac: GW_MAC, keys: null, sendKeys: null });
    vtep.setFlood(VNI_A, [V2, V3, V4, 0x0a000005]);
    const hold = [pool.alloc()]; // one slot taken elsewhere
    port.tx.push(pool.fromBytes(udpFrame(0xffffffffffff, L1_MAC)));
    vtep.process(0);
    expect(tunnel.tx.length).toBe(2); // one clone fitted, plus the original
    expect(port.counters.snapshot().dropReasons).toEqual({ poolEmpty: 2 });
    while (!tunnel.tx.empty) pool.free(tunnel.tx.pop());
    for (const h of hold) pool.free(h);
    expect(pool.inUse).toBe(0);
  });

  it('drops runts (malformed) and frames from the gateway MAC (filtered), never sending them', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    r.vtep.setFlood(VNI_A, [V2, V3]);
    r.out(VNI_A, new Uint8Array(13).fill(0xff));
    r.out(VNI_A, new Uint8Array(0));
    r.out(VNI_A, udpFrame(R1_MAC, GW_MAC)); // known unicast
    r.out(VNI_A, udpFrame(0xffffffffffff, GW_MAC)); // broadcast
    r.out(VNI_A, udpFrame(R2_MAC, GW_MAC)); // unknown unicast
    r.out(VNI_A, arpRequest(GW_MAC, GW_IP, R1_IP)); // the router's own ARP
    r.vtep.process(0);
    expect(r.tunnel.tx.empty).toBe(true);
    expect(r.ports.get(VNI_A)!.rx.empty).toBe(true);
    expect(reasons(portA)).toEqual({ malformed: 2, filtered: 4 });
    expect(portA.counters.txPackets).toBe(6);
    r.expectClean();
  });
});

describe('Vtep proxy ARP', () => {
  it('answers an ARP request for a remote endpoint on the network port, nothing crosses the tunnel', () => {
    for (const len of [42, 60]) {
      const r = rig();
      const portA = r.ports.get(VNI_A)!;
      r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
      r.vtep.setFlood(VNI_A, [V2, V3]);
      const req = arpRequest(L1_MAC, L1_IP, R1_IP, len);
      const h = r.out(VNI_A, req);
      r.vtep.process(0);
      expect(r.tunnel.tx.empty).toBe(true);
      expect(portA.rx.length).toBe(1);
      expect(portA.rx.pop()).toBe(h); // written in place
      expect(r.pool.inPort[h]).toBe(portA.id);
      const rep = r.pool.toBytes(h);
      r.pool.free(h);
      expect(rep.length).toBe(len);
      // independently: eth dst = asker, src = endpoint, 0806; reply; sha/spa = endpoint; tha/tpa = asker
      const want =
        toHex(macBytes(L1_MAC)) + toHex(macBytes(R1_MAC)) + '0806' + '0001' + '0800' + '06' + '04' + '0002' +
        toHex(macBytes(R1_MAC)) + '0a140010' + toHex(macBytes(L1_MAC)) + '0a140002';
      expect(toHex(rep, 0, 42)).toBe(want);
      expect(mac48(rep, 0)).toBe(L1_MAC);
      expect(mac48(rep, 6)).toBe(R1_MAC);
      expect(u16(rep, 12)).toBe(0x0806);
      expect([u16(rep, 14), u16(rep, 16), rep[18], rep[19], u16(rep, 20)]).toEqual([1, 0x0800, 6, 4, 2]);
      expect(mac48(rep, 22)).toBe(R1_MAC);
      expect(u32(rep, 28)).toBe(R1_IP);
      expect(mac48(rep, 32)).toBe(L1_MAC);
      expect(u32(rep, 38)).toBe(L1_IP);
      expect(portA.counters.snapshot()).toMatchObject({ rxPackets: 1, rxBytes: len, txPackets: 1, drops: 0 });
      expect(r.tunnel.counters.txPackets).toBe(0);
      r.expectClean();
    }
  });

  it('drops ARP for the gateway (filtered) and floods ARP for an unknown address', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    r.vtep.setFlood(VNI_A, [V2, V3]);
    r.out(VNI_A, arpRequest(L1_MAC, L1_IP, GW_IP));
    r.vtep.process(0);
    expect(r.tunnel.tx.empty).toBe(true);
    expect(portA.rx.empty).toBe(true);
    expect(reasons(portA)).toEqual({ filtered: 1 });

    const unknown = arpRequest(L1_MAC, L1_IP, UNKNOWN_IP);
    r.out(VNI_A, unknown);
    r.vtep.process(0);
    expect(portA.rx.empty).toBe(true);
    const got = r.take(r.tunnel.tx).map(parseOuter);
    expect(got.map((g) => g.dst).sort()).toEqual([V2, V3]);
    for (const g of got) expect(toHex(g.inner)).toBe(toHex(unknown)); // unchanged request

    // not a request (gratuitous reply), or not Ethernet/IPv4: flooded as is
    const grat = arpRequest(L1_MAC, L1_IP, R1_IP, 42, 2);
    const odd = arpRequest(L1_MAC, L1_IP, R1_IP);
    odd[18] = 8; // hlen 8
    r.out(VNI_A, grat);
    r.out(VNI_A, odd);
    r.vtep.process(0);
    expect(portA.rx.empty).toBe(true);
    const flooded = r.take(r.tunnel.tx).map((p) => toHex(parseOuter(p).inner));
    expect(flooded.sort()).toEqual([toHex(grat), toHex(grat), toHex(odd), toHex(odd)].sort());

    // after removeEndpoint the address is unknown again
    r.vtep.removeEndpoint(VNI_A, R1_MAC, R1_IP);
    r.out(VNI_A, arpRequest(L1_MAC, L1_IP, R1_IP));
    r.vtep.process(0);
    expect(portA.rx.empty).toBe(true);
    expect(r.take(r.tunnel.tx).length).toBe(2);
    r.expectClean();
  });
});

describe('Vtep decap and learning', () => {
  it('hands a datagram to its network and learns the inner source against the sender', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.vtep.setFlood(VNI_A, [V2, V4]);
    const inner = udpFrame(L1_MAC, R5_MAC);
    const h = r.inject(datagram(VNI_A, inner), V3);
    r.vtep.process(100);
    expect(portA.rx.length).toBe(1);
    expect(portA.rx.pop()).toBe(h);
    expect(r.pool.inPort[h]).toBe(portA.id);
    expect(toHex(r.pool.toBytes(h))).toBe(toHex(inner));
    r.pool.free(h);
    expect(r.tunnel.counters.snapshot()).toMatchObject({ rxPackets: 1, rxBytes: inner.length + 8, drops: 0 });
    expect(portA.counters.snapshot()).toMatchObject({ rxPackets: 1, rxBytes: inner.length, drops: 0 });
    expect(r.vtep.entries(VNI_A)).toEqual([{ mac: R5_MAC, vtep: V3, static: false }]);
    expect(r.vtep.entries(VNI_B)).toEqual([]);

    // a later unicast to that MAC goes to the sender alone, not to the flood list
    r.out(VNI_A, udpFrame(R5_MAC, L1_MAC));
    r.vtep.process(200);
    expect(r.take(r.tunnel.tx).map((p) => parseOuter(p).dst)).toEqual([V3]);

    // the MAC moves with its sender
    r.inject(datagram(VNI_A, udpFrame(L1_MAC, R5_MAC)), V4);
    r.vtep.process(300);
    r.take(portA.rx);
    expect(r.vtep.entries(VNI_A)).toEqual([{ mac: R5_MAC, vtep: V4, static: false }]);
    r.expectClean();
  });

  it('senders never use up the VTEP slots the control plane needs: learning stops at half, aged ones are reclaimed', () => {
    const r = rig({ maxVteps: 8 });
    const portA = r.ports.get(VNI_A)!;
    for (let i = 0; i < 20; i++) {
      r.inject(datagram(VNI_A, udpFrame(L1_MAC, 0x024200000100 + i)), 0x0b000000 + i);
      r.vtep.process(100);
      r.take(portA.rx);
    }
    expect(r.vtep.entries(VNI_A).length).toBe(4); // half of 8
    // a VTEP from the control plane still gets a slot
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    r.vtep.setFlood(VNI_A, [V2, V3]);
    expect(r.vtep.floodList(VNI_A)).toEqual([V2, V3]);
    // once the learned entries age out their slots come back
    r.vtep.tick(100 + AGING + 1);
    expect(r.vtep.entries(VNI_A)).toEqual([{ mac: R1_MAC, vtep: V2, static: true }]);
    for (let i = 0; i < 3; i++) {
      r.inject(datagram(VNI_A, udpFrame(L1_MAC, 0x024200000200 + i)), 0x0c000000 + i);
      r.vtep.process(3000);
      r.take(portA.rx);
    }
    expect(r.vtep.entries(VNI_A).filter((e) => !e.static).length).toBe(2); // V2 and V3 hold two of the four
    r.expectClean();
  });

  it('ages learned entries in tick(now); traffic refreshes them', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.vtep.setFlood(VNI_A, [V2, V4]);
    r.inject(datagram(VNI_A, udpFrame(L1_MAC, R5_MAC)), V3);
    r.vtep.process(100);
    r.take(portA.rx);
    r.vtep.tick(100 + AGING - 1);
    expect(r.vtep.entries(VNI_A).length).toBe(1);
    // seen again at 800: still there at 100 + AGING
    r.inject(datagram(VNI_A, udpFrame(L1_MAC, R5_MAC)), V3);
    r.vtep.process(800);
    r.take(portA.rx);
    r.vtep.tick(100 + AGING);
    expect(r.vtep.entries(VNI_A).length).toBe(1);
    r.vtep.tick(800 + AGING);
    expect(r.vtep.entries(VNI_A)).toEqual([]);
    // gone: unicast to it is flooded again
    r.out(VNI_A, udpFrame(R5_MAC, L1_MAC));
    r.vtep.process(2000);
    expect(r.take(r.tunnel.tx).map((p) => parseOuter(p).dst).sort()).toEqual([V2, V4]);
    r.expectClean();
  });

  it('never moves or ages static entries on learning', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    r.inject(datagram(VNI_A, udpFrame(L1_MAC, R1_MAC)), V3); // claims R1 from elsewhere
    r.vtep.process(100);
    expect(r.take(portA.rx).length).toBe(1); // still delivered
    expect(r.vtep.entries(VNI_A)).toEqual([{ mac: R1_MAC, vtep: V2, static: true }]);
    r.vtep.tick(1e9);
    expect(r.vtep.entries(VNI_A)).toEqual([{ mac: R1_MAC, vtep: V2, static: true }]);
    r.out(VNI_A, udpFrame(R1_MAC, L1_MAC));
    r.vtep.process(1e9);
    expect(r.take(r.tunnel.tx).map((p) => parseOuter(p).dst)).toEqual([V2]);
    // setEndpoint replaces a learned entry with a static one
    r.inject(datagram(VNI_A, udpFrame(L1_MAC, R2_MAC)), V3);
    r.vtep.process(1e9);
    r.take(portA.rx);
    r.vtep.setEndpoint(VNI_A, R2_MAC, R2_IP, V4);
    expect(r.vtep.entries(VNI_A).find((e) => e.mac === R2_MAC)).toEqual({ mac: R2_MAC, vtep: V4, static: true });
    r.expectClean();
  });

  it('ignores the reserved bits of the flags and header', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    const d = datagram(VNI_A, udpFrame(L1_MAC, R5_MAC), 0x88);
    d[1] = d[2] = d[3] = d[7] = 0xff;
    r.inject(d, V3);
    r.vtep.process(0);
    expect(r.take(portA.rx).length).toBe(1);
    expect(r.tunnel.counters.drops).toBe(0);
    r.expectClean();
  });
});

describe('Vtep drops', () => {
  it('counts runts, bad flags and unknown VNIs on the tunnel port', () => {
    const r = rig();
    const inner = udpFrame(L1_MAC, R5_MAC);
    r.inject(new Uint8Array(0), V2);
    r.inject(new Uint8Array(3).fill(0x08), V2);
    r.inject(datagram(VNI_A, inner.subarray(0, 13)), V2); // 8 + 13 bytes
    r.inject(datagram(VNI_A, inner, 0x00), V2); // no I flag
    r.inject(datagram(VNI_A, inner, 0xf7), V2); // everything but I
    r.inject(datagram(0x777777, inner), V2);
    r.inject(datagram(VNI_E, inner), V2); // no encrypted network on this rig
    r.vtep.process(0);
    for (const p of r.ports.values()) expect(p.rx.empty).toBe(true);
    expect(r.tunnel.counters.snapshot()).toMatchObject({ rxPackets: 7, drops: 7, dropReasons: { malformed: 5, notForUs: 2 } });
    expect(r.vtep.entries(VNI_A)).toEqual([]);
    r.expectClean();
  });

  it('drops wrong encryption both ways (filtered)', () => {
    const keys = new KeyRing();
    keys.set([{ id: 1, key: randomKey(), activeFrom: 0 }]);
    const r = rig({}, keys);
    const inner = udpFrame(L1_MAC, R5_MAC);
    r.inject(datagram(VNI_E, inner, 0x08), V2); // plain on an encrypted network
    r.inject(datagram(VNI_A, new Uint8Array(inner.length + 32).fill(0x42), 0x0a), V2); // "encrypted" on a plain one
    r.vtep.process(0);
    for (const p of r.ports.values()) expect(p.rx.empty).toBe(true);
    expect(r.tunnel.counters.snapshot()).toMatchObject({ rxPackets: 2, drops: 2, dropReasons: { filtered: 2 } });
    r.expectClean();
  });

  it('drops inner frames from a multicast, zero or gateway source MAC (badSrcMac), without learning', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    for (const src of [0x01005e000001, 0xffffffffffff, 0x030000000001, GW_MAC, 0]) r.inject(datagram(VNI_A, udpFrame(L1_MAC, src)), V2);
    r.vtep.process(0);
    expect(portA.rx.empty).toBe(true);
    expect(portA.counters.snapshot()).toMatchObject({ rxPackets: 0, drops: 5, dropReasons: { badSrcMac: 5 } });
    expect(r.tunnel.counters.snapshot()).toMatchObject({ rxPackets: 5, drops: 0 });
    expect(r.vtep.entries(VNI_A)).toEqual([]);
    r.expectClean();
  });

  it('survives 10,000 random datagrams (and random frames to send) without throwing or leaking', () => {
    const keys = new KeyRing();
    keys.set([{ id: 1, key: randomKey(), activeFrom: 0 }]);
    const r = rig({ macCapacity: 64 }, keys);
    r.vtep.setFlood(VNI_A, [V2, V3]);
    r.vtep.setFlood(VNI_E, [V2]);
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    const rand = rng(0xf00d);
    const byte = () => (rand() * 256) | 0;
    const vnis = [VNI_A, VNI_B, VNI_E, 0x777777];
    const drainAll = () => {
      for (const p of r.ports.values()) r.take(p.rx);
      r.take(r.tunnel.tx);
    };
    const N = 10_000;
    for (let i = 0; i < N; i++) {
      const big = rand() < 0.05;
      const len = big ? (rand() * 1500) | 0 : (rand() * 120) | 0;
      const d = new Uint8Array(len);
      for (let j = 0; j < len; j++) d[j] = byte();
      // most datagrams look enough like VXLAN to get past the first checks
      if (len >= 8 && rand() < 0.8) {
        d[0] = rand() < 0.5 ? 0x08 : rand() < 0.5 ? 0x0a : d[0];
        const vni = vnis[(rand() * vnis.length) | 0];
        d[4] = vni >>> 16;
        d[5] = vni >>> 8;
        d[6] = vni;
        if (len >= 20 && rand() < 0.5) d[14] &= 0xfe; // unicast source
      }
      r.inject(d, rand() < 0.5 ? V2 : (byte() << 24) | (byte() << 16) | (byte() << 8) | byte());
      if (i % 16 === 0) {
        const f = new Uint8Array((rand() * 80) | 0);
        for (let j = 0; j < f.length; j++) f[j] = byte();
        if (f.length >= 14 && rand() < 0.3) {
          f[12] = 0x08;
          f[13] = 0x06;
        }
        r.out(rand() < 0.5 ? VNI_A : VNI_E, f);
      }
      if (i % 50 === 49) {
        expect(() => r.vtep.process(i)).not.toThrow();
        if (i % 1000 === 999) r.vtep.tick(i);
        drainAll();
      }
    }
    r.vtep.process(N);
    drainAll();
    const tc = r.tunnel.counters;
    expect(tc.rxPackets).toBe(N);
    // every datagram is accounted for exactly once: dropped on the tunnel, dropped on a network, or delivered
    let netRx = 0;
    let netDecapDrops = 0;
    for (const p of r.ports.values()) {
      netRx += p.counters.rxPackets;
      netDecapDrops += p.counters.reasons[DropReason.badSrcMac] + p.counters.reasons[DropReason.ringFull];
    }
    expect(tc.reasons[DropReason.ringFull]).toBe(0); // so every tunnel drop is a decap drop
    expect(tc.drops + netDecapDrops + netRx).toBe(N);
    expect(netRx).toBeGreaterThan(100); // the fuzz reached delivery, not only the first checks
    expect(r.pool.inUse).toBe(0);
    r.expectClean();
  });
});

describe('Vtep isolation and reconfiguration', () => {
  it('keeps networks apart: a VNI A frame never shows up on B, nor A’s tables in B', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    const portB = r.ports.get(VNI_B)!;
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    r.vtep.setFlood(VNI_B, [V3]);
    const inner = udpFrame(L1_MAC, R5_MAC);
    r.inject(datagram(VNI_A, inner), V4);
    r.inject(datagram(VNI_B, udpFrame(L1_MAC, R2_MAC)), V3);
    r.vtep.process(0);
    expect(r.take(portA.rx).map((b) => toHex(b))).toEqual([toHex(inner)]);
    expect(r.take(portB.rx).map((b) => mac48(b, 6))).toEqual([R2_MAC]);
    expect(r.vtep.entries(VNI_A).map((e) => e.mac).sort()).toEqual([R1_MAC, R5_MAC].sort());
    expect(r.vtep.entries(VNI_B)).toEqual([{ mac: R2_MAC, vtep: V3, static: false }]);
    // B knows nothing of A's R1: its ARP is flooded on B with B's VNI, unicast flooded too
    r.out(VNI_B, arpRequest(L1_MAC, L1_IP, R1_IP));
    r.out(VNI_B, udpFrame(R1_MAC, L1_MAC));
    r.vtep.process(0);
    expect(portB.rx.empty).toBe(true);
    const got = r.take(r.tunnel.tx).map(parseOuter);
    expect(got.map((g) => [g.vni, g.dst])).toEqual([
      [VNI_B, V3],
      [VNI_B, V3],
    ]);
    // A's frames carry A's VNI
    r.out(VNI_A, udpFrame(R1_MAC, L1_MAC));
    r.vtep.process(0);
    expect(r.take(r.tunnel.tx).map((p) => parseOuter(p).vni)).toEqual([VNI_A]);
    r.expectClean();
  });

  it('forgetVtep drops static and learned entries pointing at it and takes it off every flood list', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    r.vtep.setEndpoint(VNI_A, R2_MAC, R2_IP, V3);
    r.inject(datagram(VNI_A, udpFrame(L1_MAC, R5_MAC)), V2);
    r.inject(datagram(VNI_B, udpFrame(L1_MAC, R5_MAC)), V2);
    r.vtep.process(0);
    r.take(portA.rx);
    r.take(r.ports.get(VNI_B)!.rx);
    r.vtep.setFlood(VNI_A, [V2, V3]);
    r.vtep.setFlood(VNI_B, [V2]);
    expect(r.vtep.entries(VNI_A).length).toBe(3);

    r.vtep.forgetVtep(V2);
    expect(r.vtep.entries(VNI_A)).toEqual([{ mac: R2_MAC, vtep: V3, static: true }]);
    expect(r.vtep.entries(VNI_B)).toEqual([]);
    expect(r.vtep.floodList(VNI_A)).toEqual([V3]);
    expect(r.vtep.floodList(VNI_B)).toEqual([]);
    r.out(VNI_A, udpFrame(R1_MAC, L1_MAC));
    r.out(VNI_A, udpFrame(R5_MAC, L1_MAC));
    r.vtep.process(0);
    expect(r.take(r.tunnel.tx).map((p) => parseOuter(p).dst)).toEqual([V3, V3]);
    r.vtep.forgetVtep(0x0a0000ff); // unknown: no-op

    // its index is reused for a new VTEP without confusion
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V4);
    expect(r.vtep.entries(VNI_A).find((e) => e.mac === R1_MAC)).toEqual({ mac: R1_MAC, vtep: V4, static: true });
    r.out(VNI_A, udpFrame(R1_MAC, L1_MAC));
    r.vtep.process(0);
    expect(r.take(r.tunnel.tx).map((p) => parseOuter(p).dst)).toEqual([V4]);
    r.expectClean();
  });

  it('removeEndpoint forgets the MAC and its ARP record (only if it still names that MAC)', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    r.vtep.setEndpoint(VNI_A, R2_MAC, R1_IP, V3); // the IP moved to R2
    r.vtep.removeEndpoint(VNI_A, R1_MAC, R1_IP); // R1's removal must not take R2's record
    expect(r.vtep.entries(VNI_A)).toEqual([{ mac: R2_MAC, vtep: V3, static: true }]);
    r.out(VNI_A, arpRequest(L1_MAC, L1_IP, R1_IP));
    r.vtep.process(0);
    expect(r.take(portA.rx).map((b) => mac48(b, 22))).toEqual([R2_MAC]);
    r.vtep.removeEndpoint(VNI_A, R2_MAC, R1_IP);
    expect(r.vtep.entries(VNI_A)).toEqual([]);
    r.vtep.removeEndpoint(0x424242, R2_MAC, R1_IP); // unknown network: no-op
    r.out(VNI_A, arpRequest(L1_MAC, L1_IP, R1_IP));
    r.vtep.process(0);
    expect(portA.rx.empty).toBe(true);
    expect(reasons(portA)).toEqual({ noRoute: 1 });
    r.expectClean();
  });

  it('removeNetwork frees what waits to be sent and makes its VNI unknown', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    expect(r.vtep.networkCount).toBe(2);
    expect(() => r.vtep.addNetwork({ vni: VNI_A, port: portA, gatewayIp: 0, gatewayMac: 0, keys: null, sendKeys: null })).toThrow(/already/);
    r.vtep.setFlood(VNI_A, [V2]);
    r.out(VNI_A, udpFrame(0xffffffffffff, L1_MAC));
    r.out(VNI_A, udpFrame(0xffffffffffff, L1_MAC));
    r.vtep.removeNetwork(VNI_A);
    expect(r.vtep.hasNetwork(VNI_A)).toBe(false);
    expect(r.vtep.networkCount).toBe(1);
    expect(portA.tx.empty).toBe(true);
    expect(r.pool.inUse).toBe(0);
    r.inject(datagram(VNI_A, udpFrame(L1_MAC, R5_MAC)), V2);
    r.vtep.process(0);
    expect(portA.rx.empty).toBe(true);
    expect(r.tunnel.counters.snapshot().dropReasons).toEqual({ notForUs: 1 });
    expect(r.vtep.entries(VNI_A)).toEqual([]);
    expect(r.vtep.floodList(VNI_A)).toEqual([]);
    r.vtep.removeNetwork(VNI_A); // twice: no-op
    // cold calls on a missing network do nothing
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    r.vtep.setFlood(VNI_A, [V2]);
    expect(r.vtep.entries(VNI_A)).toEqual([]);
    r.expectClean();
  });
});

describe('Vtep encrypted networks', () => {
  it('round-trips between two VTEPs; a tampered byte is dropped (badChecksum)', () => {
    const material = [{ id: 7, key: randomKey(), activeFrom: 0 }];
    const ringA = new KeyRing();
    ringA.set(material);
    const ringB = new KeyRing();
    ringB.set(material);
    const a = rig({}, ringA, V2);
    const b = rig({}, ringB, V3);
    a.vtep.setEndpoint(VNI_E, R1_MAC, R1_IP, V3);
    const inner = udpFrame(R1_MAC, L1_MAC, 40000, 53, 100);

    const send = (): Uint8Array => {
      a.out(VNI_E, inner);
      a.vtep.process(10);
      const pkts = a.take(a.tunnel.tx);
      expect(pkts.length).toBe(1);
      return pkts[0];
    };
    const pkt = send();
    const o = parseOuter(pkt);
    expect(o.src).toBe(V2);
    expect(o.dst).toBe(V3);
    expect(o.flags).toBe(0x0a);
    expect(o.vni).toBe(VNI_E);
    expect(o.sport).toBe(flowSourcePort(inner, 0, inner.length, SEED));
    expect(pkt.length).toBe(28 + 24 + inner.length + 16);
    expect(Buffer.from(pkt).includes(Buffer.from(inner.subarray(42)))).toBe(false); // payload not in clear

    // the underlay hands B what follows the outer UDP header, sender in front
    b.inject(pkt.subarray(28), V2);
    b.vtep.process(20);
    const portE = b.ports.get(VNI_E)!;
    expect(b.take(portE.rx).map((x) => toHex(x))).toEqual([toHex(inner)]);
    expect(b.vtep.entries(VNI_E)).toEqual([{ mac: L1_MAC, vtep: V2, static: false }]);

    // replayed: dropped (the opener's replay window)
    b.inject(pkt.subarray(28), V2);
    // tampered: a byte of ciphertext, of the tag, of the header (AAD)
    for (const at of [28 + 24 + 30, pkt.length - 1, 28 + 14]) {
      const t = send().slice();
      t[at] ^= 0x01;
      b.inject(t.subarray(28), V2);
    }
    b.vtep.process(30);
    expect(portE.rx.empty).toBe(true);
    expect(b.tunnel.counters.snapshot()).toMatchObject({ rxPackets: 5, drops: 4, dropReasons: { badChecksum: 4 } });

    // an untampered later one still opens
    b.inject(send().subarray(28), V2);
    b.vtep.process(40);
    expect(b.take(portE.rx).map((x) => toHex(x))).toEqual([toHex(inner)]);

    // a VTEP with another key cannot open it
    const other = new KeyRing();
    other.set([{ id: 7, key: randomKey(), activeFrom: 0 }]);
    const c = rig({}, other, V4);
    c.inject(send().subarray(28), V2);
    c.vtep.process(50);
    expect(c.ports.get(VNI_E)!.rx.empty).toBe(true);
    expect(c.tunnel.counters.snapshot().dropReasons).toEqual({ badChecksum: 1 });

    a.expectClean();
    b.expectClean();
    c.expectClean();
  });

  it('floods encrypted broadcast to every VTEP and refuses to send without a send key (unsupported)', () => {
    const ring = new KeyRing();
    ring.set([{ id: 1, key: randomKey(), activeFrom: 1000 }]); // not active before t=1000
    const r = rig({}, ring);
    const portE = r.ports.get(VNI_E)!;
    r.vtep.setFlood(VNI_E, [V2, V3]);
    r.out(VNI_E, udpFrame(0xffffffffffff, L1_MAC));
    r.vtep.process(0);
    expect(r.tunnel.tx.empty).toBe(true);
    expect(reasons(portE)).toEqual({ unsupported: 2 });
    r.out(VNI_E, udpFrame(0xffffffffffff, L1_MAC));
    r.vtep.process(1000);
    const got = r.take(r.tunnel.tx).map(parseOuter);
    expect(got.map((g) => g.dst).sort()).toEqual([V2, V3]);
    for (const g of got) expect(g.flags).toBe(0x0a);
    r.expectClean();
  });
});

describe('Vtep offloads: super-frames are segmented before encapsulation', () => {
  const pseudoRandom = (n: number, seed: number): Uint8Array => {
    const b = new Uint8Array(n);
    let x = seed;
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      b[i] = x >>> 24;
    }
    return b;
  };

  let lastH = -1;
  /** a super-frame L1 → dst as a TAP with TSO hands it out, pushed to the network's port (handle in lastH) */
  function superOut(r: Rig, port: Port, spec: SuperSpec, gsoType: number, gsoSize: number, dst = R1_MAC): SuperFrame {
    const f = buildSuper(spec);
    writeMac48(f.bytes, 0, dst);
    writeMac48(f.bytes, 6, L1_MAC);
    const h = r.pool.fromBytes(f.bytes, 99);
    r.pool.meta8[h * 12] = META_NEEDS_CSUM;
    r.pool.meta8[h * 12 + 1] = gsoType;
    r.pool.meta[h * 6 + M_HDR_LEN] = f.pay;
    r.pool.meta[h * 6 + M_GSO_SIZE] = gsoSize;
    r.pool.meta[h * 6 + M_CSUM_START] = f.csumStart;
    r.pool.meta[h * 6 + M_CSUM_OFFSET] = f.csumOffset;
    expect(port.tx.push(h)).toBe(true);
    lastH = h;
    return f;
  }

  /** the inner frames are complete, checksum independently and carry the payload in order */
  function checkInner(inners: Uint8Array[], f: SuperFrame, spec: SuperSpec, maxPay: number): void {
    const whole: number[] = [];
    inners.forEach((b, i) => {
      const v = refVerify(b, f.l3);
      expect(v.ip).toBe(true);
      expect(v.l4).toBe(true);
      expect(b.length - f.pay).toBeLessThanOrEqual(maxPay);
      if (spec.proto === 6) {
        expect(u32(b, f.l4 + 4)).toBe(((spec.seq ?? 1000) + whole.length) >>> 0);
        expect(b[f.l4 + 13] & 0x08).toBe(i === inners.length - 1 ? (spec.tcpFlags ?? 0x10) & 0x08 : 0); // PSH on the last only
      }
      if (spec.ipv === 4) expect(u16(b, f.l3 + 4)).toBe(((spec.ipId ?? 0x1234) + i) & 0xffff);
      for (const x of b.subarray(f.pay)) whole.push(x);
    });
    expect(Buffer.from(whole).equals(Buffer.from(spec.payload))).toBe(true);
  }

  it('a TCP super-frame from a local port goes out as N VXLAN datagrams whose inner frames checksum (v4; v6 with VLAN in large slots)', () => {
    for (const [spec, type, gso] of [
      [{ ipv: 4, proto: 6, payload: pseudoRandom(10000, 1), tcpFlags: 0x18, tcpOpts: 12, seq: 0xfffff000 }, GSO_TCPV4, 1448],
      [{ ipv: 6, proto: 6, payload: pseudoRandom(7001, 2), tcpFlags: 0x18, vlan: 12 }, GSO_TCPV6, 4000],
    ] as const) {
      const r = rig();
      const portA = r.ports.get(VNI_A)!;
      r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
      const f = superOut(r, portA, spec, type, gso);
      r.vtep.process(0);
      const n = Math.ceil(spec.payload.length / gso);
      const pkts = r.take(r.tunnel.tx).map(parseOuter);
      expect(pkts).toHaveLength(n);
      for (const o of pkts) {
        expect(o.dst).toBe(V2);
        expect(o.vni).toBe(VNI_A);
        expect(o.sport).toBe(pkts[0].sport); // one flow, one source port
      }
      checkInner(
        pkts.map((o) => o.inner),
        f,
        spec,
        gso,
      );
      expect(portA.counters.snapshot()).toMatchObject({ txPackets: 1, txBytes: f.bytes.length, drops: 0 });
      expect(r.tunnel.counters.snapshot()).toMatchObject({ txPackets: n, drops: 0 });
      expect([r.vtep.segmented, r.vtep.segments]).toEqual([1, n]);
      r.expectClean();
    }
  });

  it('cuts segments to the network MTU when it is set (TCP and UDP_L4); floods every segment to every VTEP', () => {
    const r = rig();
    const VNI_M = 0x00c0c0;
    const port = new Port(9, 'ovmtu', 256);
    r.vtep.addNetwork({ vni: VNI_M, port, gatewayIp: GW_IP, gatewayMac: GW_MAC, keys: null, sendKeys: null, mtu: 1450 });
    r.vtep.setFlood(VNI_M, [V2, V3]);
    for (const [spec, type, hdr] of [
      [{ ipv: 4, proto: 6, payload: pseudoRandom(20000, 3) }, GSO_TCPV4, 40],
      [{ ipv: 4, proto: 17, payload: pseudoRandom(9000, 4) }, GSO_UDP_L4, 28],
    ] as const) {
      const f = superOut(r, port, spec, type, 8000, R2_MAC); // R2 unknown here: flooded
      r.vtep.process(0);
      const mss = 1450 - hdr;
      const n = Math.ceil(spec.payload.length / mss);
      const pkts = r.take(r.tunnel.tx).map(parseOuter);
      expect(pkts).toHaveLength(2 * n);
      for (const o of pkts) {
        expect(o.inner.length - 14).toBeLessThanOrEqual(1450);
        expect(o.inner.length + 36).toBeLessThanOrEqual(1500);
      }
      for (const vtep of [V2, V3]) {
        checkInner(
          pkts.filter((o) => o.dst === vtep).map((o) => o.inner),
          f,
          spec,
          mss,
        );
      }
    }
    expect(port.counters.snapshot()).toMatchObject({ txPackets: 2, drops: 0 });
    expect(r.vtep.segmented).toBe(2);
    r.vtep.removeNetwork(VNI_M);
    r.expectClean();
  });

  it('completes a plain frame’s partial checksum before encapsulating it', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    const inner = udpFrame(R1_MAC, L1_MAC, 40000, 53, 101);
    inner[24] = 0; // IPv4 header checksum, then the partial UDP sum as a TAP hands it out
    inner[25] = 0;
    const ipc = ~refSum(inner, 14, 20) & 0xffff;
    inner[24] = ipc >>> 8;
    inner[25] = ipc & 0xff;
    const ph = refSum(new Uint8Array(0), 0, 0, refPseudo(inner, 14, 4, 17, inner.length - 34));
    inner[40] = ph >>> 8;
    inner[41] = ph & 0xff;
    expect(refVerify(inner, 14).l4).toBe(false);
    const h = r.out(VNI_A, inner);
    r.pool.meta8[h * 12] = META_NEEDS_CSUM;
    r.pool.meta[h * 6 + M_CSUM_START] = 34;
    r.pool.meta[h * 6 + M_CSUM_OFFSET] = 6;
    r.vtep.process(0);
    const pkts = r.take(r.tunnel.tx).map(parseOuter);
    expect(pkts).toHaveLength(1);
    expect(refVerify(pkts[0].inner, 14)).toMatchObject({ ip: true, l4: true });
    expect(toHex(pkts[0].inner.subarray(42))).toBe(toHex(inner.subarray(42)));
    expect(r.vtep.segmented).toBe(0);
    expect(portA.counters.drops).toBe(0);
    r.expectClean();
  });

  it('drops invalid super-frames and checksum annotations as malformed, and a pool that runs dry as poolEmpty; nothing leaks', () => {
    const r = rig();
    const portA = r.ports.get(VNI_A)!;
    r.vtep.setEndpoint(VNI_A, R1_MAC, R1_IP, V2);
    const spec: SuperSpec = { ipv: 4, proto: 6, payload: pseudoRandom(5000, 5) };
    superOut(r, portA, spec, GSO_TCPV4, 0); // gsoSize 0
    superOut(r, portA, spec, GSO_TCPV6, 1448); // wrong type
    superOut(r, portA, spec, GSO_TCPV4, 1448);
    r.pool.meta[lastH * 6 + M_CSUM_OFFSET] = 4000; // checksum field outside
    const bad = udpFrame(R1_MAC, L1_MAC);
    const hb = r.out(VNI_A, bad);
    r.pool.meta8[hb * 12] = META_NEEDS_CSUM;
    r.pool.meta[hb * 6 + M_CSUM_START] = bad.length;
    r.vtep.process(0);
    expect(r.tunnel.tx.empty).toBe(true);
    expect(reasons(portA)).toEqual({ malformed: 4 });
    // the pool runs dry while segmenting
    const held: number[] = [];
    superOut(r, portA, spec, GSO_TCPV4, 1448);
    while (r.pool.available > 2) held.push(r.pool.alloc());
    r.vtep.process(1);
    expect(r.tunnel.tx.empty).toBe(true);
    expect(reasons(portA)).toEqual({ malformed: 4, poolEmpty: 1 });
    for (const h of held) r.pool.free(h);
    expect(r.vtep.segmented).toBe(0);
    r.expectClean();
  });

  it('encrypted overlay: every segment is sealed on its own and opens on the far VTEP as a complete frame', () => {
    const material = [{ id: 3, key: randomKey(), activeFrom: 0 }];
    const ringA = new KeyRing();
    ringA.set(material);
    const ringB = new KeyRing();
    ringB.set(material);
    const a = rig({}, ringA, V2);
    const b = rig({}, ringB, V3);
    a.vtep.setEndpoint(VNI_E, R1_MAC, R1_IP, V3);
    const spec: SuperSpec = { ipv: 4, proto: 6, payload: pseudoRandom(6000, 6), tcpFlags: 0x19 };
    const f = superOut(a, a.ports.get(VNI_E)!, spec, GSO_TCPV4, 1398);
    a.vtep.process(0);
    const pkts = a.take(a.tunnel.tx);
    expect(pkts).toHaveLength(5);
    for (const p of pkts) {
      expect(parseOuter(p).flags).toBe(0x0a);
      b.inject(p.subarray(28), V2);
    }
    b.vtep.process(1);
    const got = b.take(b.ports.get(VNI_E)!.rx);
    checkInner(got, f, spec, 1398);
    expect(got.map((g) => g[34 + 13] & 1)).toEqual([0, 0, 0, 0, 1]); // FIN on the last only
    a.expectClean();
    b.expectClean();
  });
});
