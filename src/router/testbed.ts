/**
 * Test bed for the router's tests (cold; test code only, no test-runner
 * imports): a Router with conntrack and NAT on a small pool, three bridge
 * networks (A, B, internal I), an uplink and a host link, a fake clock,
 * frame builders over the wire Repr emitters, and a parser that checks
 * every checksum by full recomputation.
 *
 * Addresses: A 172.18.0.0/16 (gw .0.1), B 172.19.0.0/16, I 172.20.0.0/16
 * (internal), uplink 192.168.1.2/24 via 192.168.1.1, host link
 * 10.255.0.1/30 (the host is 10.255.0.2). Containers: A1 172.18.0.2, A2
 * 172.18.0.3, B1 172.19.0.2, I1 172.20.0.2. Outside: S 93.184.216.34, X
 * 203.0.113.5.
 */
import { FramePool } from '../dataplane/pool.js';
import { Port } from '../dataplane/port.js';
import { Conntrack } from '../nat/conntrack.js';
import { NatRewriter } from '../nat/nat.js';
import { getMeta, setMeta, type FrameMeta } from '../dataplane/super-frames.js';
import { u16, u32, w16 } from '../wire/bytes.js';
import { checksum, pseudoHeaderSum } from '../wire/checksum.js';
import { ArpRepr } from '../wire/arp.js';
import { EthernetRepr, mac48 } from '../wire/ethernet.js';
import { IcmpRepr } from '../wire/icmp.js';
import { Ipv4Repr, parseIpv4 } from '../wire/ipv4.js';
import { TcpRepr } from '../wire/tcp.js';
import { UdpRepr } from '../wire/udp.js';
import { Router, type RouterOptions } from './router.js';

export const ip = parseIpv4;
export const A_GW = ip('172.18.0.1');
export const B_GW = ip('172.19.0.1');
export const I_GW = ip('172.20.0.1');
export const UP_IP = ip('192.168.1.2');
export const UP_GW = ip('192.168.1.1');
export const HOST_IP = ip('10.255.0.1');
export const HOST_PEER = ip('10.255.0.2');
export const A1 = ip('172.18.0.2');
export const A2 = ip('172.18.0.3');
export const B1 = ip('172.19.0.2');
export const I1 = ip('172.20.0.2');
export const S = ip('93.184.216.34');
export const X = ip('203.0.113.5');

export const MAC = {
  A: 0x020000000a01,
  B: 0x020000000b01,
  I: 0x020000000c01,
  UP: 0x020000000102,
  UPGW: 0x020000000101,
  HOST: 0x020000000201,
  HOSTPEER: 0x020000000202,
  A1: 0x0242ac120002,
  A2: 0x0242ac120003,
  B1: 0x0242ac130002,
  I1: 0x0242ac140002,
} as const;

export type IfName = 'A' | 'B' | 'I' | 'UP' | 'HOST';

export interface BedOptions extends RouterOptions {
  uplink?: boolean;
  host?: boolean;
  mtu?: Partial<Record<IfName, number>>;
  ctCapacity?: number;
  poolSlots?: number;
  /** large (66 KiB) slots for super-frames (default 0) */
  largeSlots?: number;
  /** the uplink's default gateway (default UP_GW; 0: none) */
  uplinkGateway?: number;
}

export class Testbed {
  readonly pool: FramePool;
  readonly ct: Conntrack;
  readonly nat: NatRewriter;
  readonly router: Router;
  readonly ports = {} as Record<IfName, Port>;
  readonly ids = {} as Record<IfName, number>;
  readonly side = {} as Record<IfName, 'switch' | 'device'>;
  now = 1_000_000;
  /** annotations of the frames the last collect() took, per iface (same order) */
  metas = {} as Record<IfName, FrameMeta[]>;

  constructor(o: BedOptions = {}) {
    this.pool = new FramePool({ capacity: o.poolSlots ?? 256, largeCapacity: o.largeSlots ?? 0 });
    this.ct = new Conntrack({ capacity: o.ctCapacity ?? 256, seed: 42 });
    this.nat = new NatRewriter(this.pool, this.ct);
    this.router = new Router(this.pool, this.ct, this.nat, { seed: 7, icmpBurst: 1000, ...o });
    const mtu = o.mtu ?? {};
    const add = (name: IfName, pid: number, kind: 'network' | 'uplink' | 'host', side: 'switch' | 'device', ipa: number, prefixLen: number, mac: number, extra = {}): void => {
      const port = new Port(pid, name, 64);
      this.ports[name] = port;
      this.side[name] = side;
      this.ids[name] = this.router.addInterface({ kind, port, side, ip: ipa, prefixLen, mac, mtu: mtu[name] ?? 1500, ...extra });
    };
    add('A', 11, 'network', 'switch', A_GW, 16, MAC.A, { networkId: 'a' });
    add('B', 12, 'network', 'switch', B_GW, 16, MAC.B, { networkId: 'b' });
    add('I', 13, 'network', 'switch', I_GW, 16, MAC.I, { networkId: 'i', internal: true });
    if (o.uplink !== false) add('UP', 14, 'uplink', 'device', UP_IP, 24, MAC.UP, { gateway: o.uplinkGateway ?? UP_GW });
    if (o.host !== false) add('HOST', 15, 'host', 'device', HOST_IP, 30, MAC.HOST);
  }

  /** A frame arrives at the router on iface `name`. */
  send(name: IfName, f: Uint8Array, meta?: FrameMeta): void {
    const h = this.pool.fromBytes(f, this.ports[name].id);
    if (meta) setMeta(this.pool, h, meta);
    const ring = this.side[name] === 'switch' ? this.ports[name].tx : this.ports[name].rx;
    if (!ring.push(h)) throw new Error('input ring full');
  }

  /** Run the router (at the clock) and take every frame it sent, per iface. */
  run(): Record<IfName, Uint8Array[]> {
    this.router.process(this.now);
    return this.collect();
  }

  collect(): Record<IfName, Uint8Array[]> {
    const out = {} as Record<IfName, Uint8Array[]>;
    for (const name of Object.keys(this.ports) as IfName[]) {
      const ring = this.side[name] === 'switch' ? this.ports[name].rx : this.ports[name].tx;
      const got: Uint8Array[] = [];
      const metas: FrameMeta[] = [];
      for (let h = ring.pop(); h >= 0; h = ring.pop()) {
        got.push(this.pool.toBytes(h));
        metas.push(getMeta(this.pool, h));
        this.pool.free(h);
      }
      out[name] = got;
      this.metas[name] = metas;
    }
    return out;
  }

  /** Non-empty outputs only, as counts (for quick assertions). */
  static counts(out: Record<IfName, Uint8Array[]>): Partial<Record<IfName, number>> {
    const r: Partial<Record<IfName, number>> = {};
    for (const [k, v] of Object.entries(out)) if (v.length) r[k as IfName] = v.length;
    return r;
  }

  tick(ms: number): Record<IfName, Uint8Array[]> {
    this.now += ms;
    this.router.tick(this.now);
    return this.collect();
  }

  /** Teach the router a neighbour: it asks for the gateway (the router learns it and answers). */
  learn(name: IfName, mac: number, addr: number): void {
    const gw = { A: A_GW, B: B_GW, I: I_GW, UP: UP_IP, HOST: HOST_IP }[name];
    this.send(name, arp(1, mac, addr, 0, gw, 0xffffffffffff));
    const out = this.run();
    if (out[name].length !== 1) throw new Error('no ARP reply');
  }

  drops(): Record<string, number> {
    return this.router.counters.snapshot().dropReasons;
  }
}

// ------------------------------------------------------------------ frames

export function arp(op: number, sha: number, spa: number, tha: number, tpa: number, dmac: number): Uint8Array {
  const f = new Uint8Array(42);
  EthernetRepr.emit({ dst: dmac, src: sha, ethertype: 0x0806, vlan: null }, f, 0);
  ArpRepr.emit({ op, sha, spa, tha, tpa }, f, 14);
  return f;
}

export interface IpOpts {
  dmac: number;
  smac: number;
  src: number;
  dst: number;
  proto: number;
  ttl?: number;
  flagsFrag?: number;
  ident?: number;
  tos?: number;
  options?: Uint8Array;
}

export function ipFrame(o: IpOpts, l4: Uint8Array): Uint8Array {
  const r: Ipv4Repr = {
    tos: o.tos ?? 0,
    ident: o.ident ?? 0x1234,
    flagsFrag: o.flagsFrag ?? 0x4000,
    ttl: o.ttl ?? 64,
    proto: o.proto,
    src: o.src,
    dst: o.dst,
    payloadLen: l4.length,
    options: o.options ?? new Uint8Array(0),
  };
  const hl = Ipv4Repr.headerLen(r);
  const f = new Uint8Array(14 + hl + l4.length);
  EthernetRepr.emit({ dst: o.dmac, src: o.smac, ethertype: 0x0800, vlan: null }, f, 0);
  Ipv4Repr.emit(r, f, 14);
  f.set(l4, 14 + hl);
  return f;
}

export function tcp(src: number, dst: number, sport: number, dport: number, flags: number, seq = 1000, ack = 0, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const r = { srcPort: sport, dstPort: dport, seq, ack, flags, window: 65535, urgent: 0, options: new Uint8Array(0), payload };
  const b = new Uint8Array(TcpRepr.len(r));
  TcpRepr.emit(r, b, 0, src, dst);
  return b;
}

export function udp(src: number, dst: number, sport: number, dport: number, payload: Uint8Array = new Uint8Array([1, 2, 3, 4, 5])): Uint8Array {
  const r = { srcPort: sport, dstPort: dport, payload };
  const b = new Uint8Array(UdpRepr.len(r));
  UdpRepr.emit(r, b, 0, src, dst);
  return b;
}

export function icmp(type: number, code: number, ident: number, seq: number, payload: Uint8Array = new Uint8Array([9, 8, 7, 6])): Uint8Array {
  const r = { type, code, ident, seq, payload };
  const b = new Uint8Array(IcmpRepr.len(r));
  IcmpRepr.emit(r, b, 0);
  return b;
}

/** A TCP/UDP/ICMP packet in a frame (L4 checksum for these addresses). */
export function pkt(o: IpOpts & { sport?: number; dport?: number; flags?: number; type?: number; ident?: number; payload?: Uint8Array }): Uint8Array {
  let l4: Uint8Array;
  if (o.proto === 6) l4 = tcp(o.src, o.dst, o.sport ?? 40000, o.dport ?? 80, o.flags ?? 0x02, 1000, 0, o.payload);
  else if (o.proto === 17) l4 = udp(o.src, o.dst, o.sport ?? 40000, o.dport ?? 53, o.payload);
  else l4 = icmp(o.type ?? 8, 0, o.ident ?? 0x77, 1, o.payload);
  return ipFrame(o, l4);
}

// ------------------------------------------------------------------ parse

export interface Parsed {
  dmac: number;
  smac: number;
  type: number;
  src: number;
  dst: number;
  ttl: number;
  proto: number;
  flagsFrag: number;
  ident: number;
  totalLen: number;
  hl: number;
  sport: number;
  dport: number;
  tcpFlags: number;
  seq: number;
  ack: number;
  icmpType: number;
  icmpCode: number;
  /** bytes 4..7 of ICMP */
  icmpRest: number;
  icmpIdent: number;
  /** ICMP error quote (after the 8-byte ICMP header) */
  quote: Uint8Array;
  /** L4 bytes */
  l4: Uint8Array;
  /** every checksum present is right (full recomputation) */
  checksumsOk: boolean;
}

function recomputed(b: Uint8Array, off: number, len: number, field: number, initial = 0): number {
  const c = b.slice(off, off + len);
  w16(c, field, 0);
  return checksum(c, 0, len, initial);
}

export function parse(f: Uint8Array): Parsed {
  const type = u16(f, 12);
  const l3 = 14;
  const hl = (f[l3] & 15) << 2;
  const total = u16(f, l3 + 2);
  const src = u32(f, l3 + 12);
  const dst = u32(f, l3 + 16);
  const proto = f[l3 + 9];
  const ff = u16(f, l3 + 6);
  const l4 = f.slice(l3 + hl, l3 + total);
  let ok = f.length === 14 + total && recomputed(f, l3, hl, 10) === u16(f, l3 + 10);
  const frag = (ff & 0x3fff) !== 0;
  if (!frag) {
    if (proto === 6) ok &&= recomputed(l4, 0, l4.length, 16, pseudoHeaderSum(src, dst, 6, l4.length)) === u16(l4, 16);
    if (proto === 17 && u16(l4, 6) !== 0) ok &&= (recomputed(l4, 0, l4.length, 6, pseudoHeaderSum(src, dst, 17, l4.length)) || 0xffff) === u16(l4, 6);
    if (proto === 1) ok &&= recomputed(l4, 0, l4.length, 2) === u16(l4, 2);
  }
  return {
    dmac: mac48(f, 0),
    smac: mac48(f, 6),
    type,
    src,
    dst,
    ttl: f[l3 + 8],
    proto,
    flagsFrag: ff,
    ident: u16(f, l3 + 4),
    totalLen: total,
    hl,
    sport: proto === 6 || proto === 17 ? u16(l4, 0) : 0,
    dport: proto === 6 || proto === 17 ? u16(l4, 2) : 0,
    tcpFlags: proto === 6 ? l4[13] : 0,
    seq: proto === 6 ? u32(l4, 4) : 0,
    ack: proto === 6 ? u32(l4, 8) : 0,
    icmpType: proto === 1 ? l4[0] : -1,
    icmpCode: proto === 1 ? l4[1] : -1,
    icmpRest: proto === 1 ? u32(l4, 4) : 0,
    icmpIdent: proto === 1 ? u16(l4, 4) : 0,
    quote: proto === 1 ? l4.slice(8) : new Uint8Array(0),
    l4,
    checksumsOk: ok,
  };
}

/** Parse the embedded packet of an ICMP error (a fake Ethernet header is added). */
export function parseQuote(p: Parsed): Parsed {
  const f = new Uint8Array(14 + p.quote.length);
  f.set(p.quote, 14);
  const q = parse(f);
  return q;
}
