/**
 * Observers for the wire fuzz tests (cold; test code only): each *Seen()
 * wraps one view over (bytes, off, len) and returns every accessor's value,
 * verifyChecksum() and Repr.parse() — or null when wrap() refuses. inBounds()
 * runs an observer on the input placed between two different fills and
 * requires the same answer, so a view that reads past what it was given is
 * caught. Also the valid inputs: fixtures and frames built from random Reprs.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { ArpRepr, ArpView } from '../../src/wire/arp.js';
import { fromHex } from '../../src/wire/bytes.js';
import { type DhcpRepr as DhcpReprT, DhcpRepr, DhcpView, dhcpOptions } from '../../src/wire/dhcp.js';
import { EthernetRepr, EthernetView } from '../../src/wire/ethernet.js';
import { FX } from '../../src/wire/fixtures.js';
import { IcmpRepr, IcmpView } from '../../src/wire/icmp.js';
import { Ipv4Repr, Ipv4View } from '../../src/wire/ipv4.js';
import { TcpRepr, TcpView, parseTcpOptions } from '../../src/wire/tcp.js';
import { UdpRepr, UdpView } from '../../src/wire/udp.js';
import { FRAME_FIELDS, anyOf, arpFrame, arpRepr, dhcpFrame, icmpL4, icmpRepr, ipFrame, mac, tcpL4, tcpRepr, u16a, u32a, udpL4, udpRepr } from './frames.js';

const PAD = 96;
export const SRC = 0xac110002;
export const DST = 0xac110001;

/** Run `f` on x placed between PAD bytes of `fill`. */
export function placed<T>(x: Uint8Array, fill: number, f: (b: Uint8Array, off: number, len: number) => T): T {
  const b = new Uint8Array(PAD + x.length + PAD).fill(fill);
  b.set(x, PAD);
  return f(b, PAD, x.length);
}

/** f must see the same thing whatever surrounds x (no read out of bounds), and must not throw. */
export function inBounds<T>(x: Uint8Array, f: (b: Uint8Array, off: number, len: number) => T): T {
  const a = placed(x, 0x00, f);
  const z = placed(x, 0xff, f);
  expect(z).toEqual(a);
  return a;
}

// ------------------------------------------------------------ observers (every accessor)

export function ethSeen(b: Uint8Array, off: number, len: number) {
  const v = new EthernetView();
  if (!v.wrap(b, off, len)) return null;
  expect(v.l3Offset - off).toBeLessThanOrEqual(len);
  expect(v.payloadLen).toBeGreaterThanOrEqual(0);
  const tag = v.tagged ? { tci: v.tci, vid: v.vid, pcp: v.pcp, dei: v.dei } : null;
  return { dst: v.dst, src: v.src, et: v.ethertype, l3: v.l3Offset - off, hl: v.headerLen, t: v.l3Type, tag, pl: v.payloadLen, r: EthernetRepr.parse(v) };
}

export function arpSeen(b: Uint8Array, off: number, len: number) {
  const v = new ArpView();
  if (!v.wrap(b, off, len)) return null;
  return { h: [v.htype, v.ptype, v.hlen, v.plen, v.oper], a: [v.sha, v.spa, v.tha, v.tpa], r: ArpRepr.parse(v) };
}

export function ipSeen(b: Uint8Array, off: number, len: number) {
  const v = new Ipv4View();
  if (!v.wrap(b, off, len)) return null;
  expect(v.payloadOff - off + v.payloadLen).toBeLessThanOrEqual(len);
  expect(v.payloadLen).toBeGreaterThanOrEqual(0);
  const f = [v.version, v.ihl, v.tos, v.dscp, v.ecn, v.totalLen, v.ident, v.flagsFrag, v.dontFrag, v.moreFrags, v.fragOffset, v.isFragment];
  return { f, g: [v.ttl, v.proto, v.checksum, v.src, v.dst, v.headerLen], ok: v.verifyChecksum(), p: [v.payloadOff - off, v.payloadLen], r: Ipv4Repr.parse(v) };
}

export function icmpSeen(b: Uint8Array, off: number, len: number) {
  const v = new IcmpView();
  if (!v.wrap(b, off, len)) return null;
  return { f: [v.type, v.code, v.checksum, v.rest, v.ident, v.seq, v.mtu, v.payloadOff - off, v.payloadLen], ok: v.verifyChecksum(), r: IcmpRepr.parse(v) };
}

export function udpSeen(b: Uint8Array, off: number, len: number, src = SRC, dst = DST) {
  const v = new UdpView();
  if (!v.wrap(b, off, len)) return null;
  expect(v.payloadOff - off + v.payloadLen).toBeLessThanOrEqual(len);
  return { f: [v.srcPort, v.dstPort, v.length, v.checksum, v.payloadOff - off, v.payloadLen], ok: v.verifyChecksum(src, dst), r: UdpRepr.parse(v) };
}

export function tcpSeen(b: Uint8Array, off: number, len: number, src = SRC, dst = DST) {
  const v = new TcpView();
  if (!v.wrap(b, off, len)) return null;
  expect(v.payloadOff - off + v.payloadLen).toBe(len);
  const mss = v.mssOffset();
  if (mss >= 0) {
    expect(mss).toBeGreaterThanOrEqual(off + 20);
    expect(mss + 2).toBeLessThanOrEqual(off + v.headerLen);
  }
  let opts: unknown;
  try {
    opts = parseTcpOptions(b.slice(v.optionsOff, v.payloadOff));
  } catch (e) {
    expect((e as Error).message).toBe('malformed TCP options'); // the documented refusal, nothing else
    opts = 'malformed';
  }
  const f = [v.srcPort, v.dstPort, v.seq, v.ack, v.dataOffset, v.flags, v.window, v.checksum, v.urgent, v.optionsOff - off, v.optionsLen, v.payloadLen];
  return { f, mss: mss < 0 ? -1 : mss - off, opts, ok: v.verifyChecksum(src, dst), r: TcpRepr.parse(v) };
}

export function dhcpSeen(b: Uint8Array, off: number, len: number) {
  const v = new DhcpView();
  if (!v.wrap(b, off, len)) return null;
  const within = (o: number, n: number): void => {
    if (n === 0) return;
    expect(o).toBeGreaterThanOrEqual(off);
    expect(o + n).toBeLessThanOrEqual(off + len);
  };
  within(v.clientIdOff, v.clientIdLen);
  within(v.paramsOff, v.paramsLen);
  within(v.hostnameOff, v.hostnameLen);
  expect(v.optionsEnd).toBeLessThanOrEqual(off + len);
  const f = [v.op, v.htype, v.hlen, v.hops, v.xid, v.secs, v.flags, v.broadcast, v.ciaddr, v.yiaddr, v.siaddr, v.giaddr, v.chaddr];
  const o = [v.msgType, v.requestedIp, v.serverId, v.leaseTime, v.maxMsgSize, v.overload, v.clientIdLen, v.paramsLen, v.hostnameLen, v.optionsEnd - off];
  const rel = [v.clientIdOff, v.paramsOff, v.hostnameOff].map((x) => (x === 0 ? 0 : x - off));
  const opts = dhcpOptions(v);
  for (const { data } of opts) expect(data.length).toBeLessThanOrEqual(255);
  return { f, o, rel, opts, r: DhcpRepr.parse(v) };
}

/** The whole chain a frame goes through: Ethernet → IPv4 → ICMP/UDP/TCP → DHCP; ARP. */
export function frameSeen(b: Uint8Array, off: number, len: number) {
  const eth = ethSeen(b, off, len);
  if (eth === null) return null;
  const l3 = off + eth.l3;
  const l3len = len - eth.l3;
  if (eth.t === 0x0806) return { eth, arp: arpSeen(b, l3, l3len) };
  if (eth.t !== 0x0800) return { eth };
  const ip = ipSeen(b, l3, l3len);
  if (ip === null) return { eth, ip };
  const l4 = l3 + ip.p[0];
  const l4len = ip.p[1];
  const proto = ip.g[1];
  if (proto === 1) return { eth, ip, icmp: icmpSeen(b, l4, l4len) };
  if (proto === 6) return { eth, ip, tcp: tcpSeen(b, l4, l4len, ip.g[3], ip.g[4]) };
  if (proto !== 17) return { eth, ip };
  const udp = udpSeen(b, l4, l4len, ip.g[3], ip.g[4]);
  if (udp === null) return { eth, ip, udp };
  const dhcp = udp.f[1] === 67 || udp.f[1] === 68 ? dhcpSeen(b, l4 + 8, udp.f[5] as number) : null;
  return { eth, ip, udp, dhcp };
}

// ------------------------------------------------------------ valid inputs

const fixtures = Object.values(FX).map((h) => fromHex(h));
const fixture = fc.constantFrom(...fixtures);

export const dhcpRepr: fc.Arbitrary<DhcpReprT> = fc.record(
  {
    op: fc.constantFrom(1, 2),
    hops: fc.integer({ min: 0, max: 255 }),
    xid: u32a,
    secs: u16a,
    flags: fc.constantFrom(0, 0x8000),
    ciaddr: u32a,
    yiaddr: u32a,
    siaddr: u32a,
    giaddr: u32a,
    chaddr: mac,
    messageType: fc.integer({ min: 1, max: 8 }),
    requestedIp: u32a,
    serverId: u32a,
    leaseTime: u32a,
    renewalTime: u32a,
    subnetMask: u32a,
    router: fc.array(u32a, { minLength: 1, maxLength: 4 }),
    dns: fc.array(u32a, { minLength: 1, maxLength: 4 }),
    clientId: fc.uint8Array({ minLength: 1, maxLength: 20 }),
    paramRequestList: fc.array(fc.integer({ min: 1, max: 254 }), { maxLength: 12 }),
    maxMessageSize: u16a,
    hostname: fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x20-\x7e]/g, 'x')),
    other: fc.uniqueArray(fc.record({ code: fc.constantFrom(2, 4, 15, 42, 60, 77, 81, 119, 121, 150, 224), data: fc.uint8Array({ maxLength: 40 }) }), { selector: (o) => o.code, maxLength: 4 }),
  },
  { requiredKeys: ['op', 'hops', 'xid', 'secs', 'flags', 'ciaddr', 'yiaddr', 'siaddr', 'giaddr', 'chaddr'] },
);

export function dhcpBytes(r: DhcpReprT): Uint8Array {
  const b = new Uint8Array(2048);
  return b.slice(0, DhcpRepr.emit(r, b, 0));
}

/** Frames of every kind, valid: fixtures and frames built from random Reprs. */
export const validFrame: fc.Arbitrary<Uint8Array> = fc.oneof(
  fixture,
  fc.tuple(arpRepr, mac, mac).map(([a, d, s]) => arpFrame(a.op, a.sha, a.spa, a.tha, a.tpa, d, s)),
  fc.tuple(mac, mac, u32a, u32a, udpRepr).map(([d, s, src, dst, u]) => ipFrame(d, s, src, dst, udpL4(src, dst, u.srcPort, u.dstPort, u.payload))),
  fc.tuple(mac, mac, u32a, u32a, tcpRepr).map(([d, s, src, dst, t]) => ipFrame(d, s, src, dst, tcpL4(src, dst, t.srcPort, t.dstPort, t.flags, t.payload))),
  fc.tuple(mac, mac, u32a, u32a, icmpRepr).map(([d, s, src, dst, i]) => ipFrame(d, s, src, dst, icmpL4(i.type, i.code, i.ident, i.payload))),
  dhcpRepr.map((r) => dhcpFrame(r)),
);

export const anyFrame = anyOf(validFrame, FRAME_FIELDS, 400);
