/**
 * Arbitraries and frame builders for the robustness suite (cold; test code
 * only). Valid frames are built with the wire Repr emitters; `mutated()`
 * turns one into a broken one (flipped/set bytes, truncation, extension,
 * length fields forced to extremes); `garbage()` is plain random bytes.
 *
 * Network tags: `taggedPayload(net)` holds an 8-byte marker naming the
 * network the frame was sent on into its payload (a place no element
 * rewrites), and `netsIn(bytes)` finds every marker in what came out, so
 * an isolation check is "no frame leaving network B carries A's marker".
 *
 * `fcParams(n)`: fc.assert parameters with n runs and, when FC_SEED is
 * set, that seed (fast-check prints the seed and path of a failure).
 */
import fc from 'fast-check';
import { ArpRepr } from '../../src/wire/arp.js';
import { DhcpRepr } from '../../src/wire/dhcp.js';
import { EthernetRepr } from '../../src/wire/ethernet.js';
import { IcmpRepr } from '../../src/wire/icmp.js';
import { Ipv4Repr } from '../../src/wire/ipv4.js';
import { TcpRepr } from '../../src/wire/tcp.js';
import { UdpRepr } from '../../src/wire/udp.js';

export function fcParams(numRuns: number): fc.Parameters<unknown> {
  const s = process.env.FC_SEED;
  return s !== undefined && s !== '' ? { numRuns, seed: Number(s) } : { numRuns };
}

// ------------------------------------------------------------ mutations

export type Mutation =
  | { k: 'flip'; pos: number; x: number }
  | { k: 'set'; pos: number; v: number }
  | { k: 'u16'; pos: number; v: number }
  | { k: 'field'; i: number; v: number }
  | { k: 'truncate'; len: number }
  | { k: 'extend'; bytes: Uint8Array };

const extreme16 = fc.constantFrom(0, 1, 4, 7, 8, 13, 19, 20, 21, 0x7fff, 0x8000, 0xfffe, 0xffff);

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), pos: fc.nat(), x: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ k: fc.constant('set' as const), pos: fc.nat(), v: fc.constantFrom(0, 0xff, 0x80, 0x0f, 0xf0, 0x45, 0x4f, 0x40) }),
  fc.record({ k: fc.constant('u16' as const), pos: fc.nat(), v: fc.oneof(extreme16, fc.integer({ min: 0, max: 0xffff })) }),
  fc.record({ k: fc.constant('field' as const), i: fc.nat(), v: fc.oneof(extreme16, fc.integer({ min: 0, max: 0xffff })) }),
  fc.record({ k: fc.constant('truncate' as const), len: fc.nat() }),
  fc.record({ k: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
);

/**
 * Apply mutations to a copy of `base`. `fields` are offsets of 16-bit
 * length/type fields worth hitting ('field' mutations pick one; a byte
 * field at an offset is hit through its 16-bit neighbourhood).
 */
export function mutate(base: Uint8Array, muts: readonly Mutation[], fields: readonly number[] = []): Uint8Array {
  let b = base.slice();
  for (const m of muts) {
    const n = b.length;
    switch (m.k) {
      case 'flip':
        if (n > 0) b[m.pos % n] ^= m.x;
        break;
      case 'set':
        if (n > 0) b[m.pos % n] = m.v;
        break;
      case 'u16':
      case 'field': {
        const p = m.k === 'u16' ? (n > 1 ? m.pos % (n - 1) : -1) : fields.length > 0 ? fields[m.i % fields.length] : -1;
        if (p >= 0 && p + 1 < n) {
          b[p] = m.v >>> 8;
          b[p + 1] = m.v & 0xff;
        }
        break;
      }
      case 'truncate':
        b = b.slice(0, n === 0 ? 0 : m.len % (n + 1));
        break;
      case 'extend': {
        const e = new Uint8Array(n + m.bytes.length);
        e.set(b);
        e.set(m.bytes, n);
        b = e;
        break;
      }
    }
  }
  return b;
}

/** A mutated copy of one of `bases` (1–4 mutations). */
export function mutated(bases: fc.Arbitrary<Uint8Array>, fields: readonly number[] = []): fc.Arbitrary<Uint8Array> {
  return fc.tuple(bases, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([b, m]) => mutate(b, m, fields));
}

export function garbage(maxLength = 200): fc.Arbitrary<Uint8Array> {
  return fc.uint8Array({ minLength: 0, maxLength });
}

/** Valid, mutated or random: the usual input mix. */
export function anyOf(valid: fc.Arbitrary<Uint8Array>, fields: readonly number[] = [], maxGarbage = 200): fc.Arbitrary<Uint8Array> {
  return fc.oneof({ arbitrary: valid, weight: 2 }, { arbitrary: mutated(valid, fields), weight: 5 }, { arbitrary: garbage(maxGarbage), weight: 2 });
}

// ------------------------------------------------------------ Repr arbitraries

export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16a = fc.integer({ min: 0, max: 0xffff });
export const u32a = fc.integer({ min: 0, max: 0xffffffff });
export const mac = fc.integer({ min: 0, max: 0xffffffffffff });
/** a unicast MAC that is not zero */
export const unicastMac = fc.integer({ min: 1, max: 0xffffffffffff }).map((m) => m - (Math.floor(m / 0x10000000000) & 1) * 0x10000000000 || 2);
export const payload = (max = 64): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max });
export const options4 = fc.integer({ min: 0, max: 10 }).chain((w) => fc.uint8Array({ minLength: w * 4, maxLength: w * 4 }));

export const ethRepr: fc.Arbitrary<EthernetRepr> = fc.record({
  dst: mac,
  src: mac,
  ethertype: u16a.filter((t) => t !== 0x8100),
  vlan: fc.option(fc.record({ pcp: fc.integer({ min: 0, max: 7 }), dei: fc.integer({ min: 0, max: 1 }), vid: fc.integer({ min: 0, max: 4095 }) })),
});

export const arpRepr: fc.Arbitrary<ArpRepr> = fc.record({ op: u16a, sha: mac, spa: u32a, tha: mac, tpa: u32a });

export const ipv4Repr = (proto?: number, payloadLen?: number): fc.Arbitrary<Ipv4Repr> =>
  fc.record({
    tos: u8,
    ident: u16a,
    flagsFrag: u16a,
    ttl: u8,
    proto: proto === undefined ? u8 : fc.constant(proto),
    src: u32a,
    dst: u32a,
    payloadLen: payloadLen === undefined ? fc.integer({ min: 0, max: 200 }) : fc.constant(payloadLen),
    options: options4,
  });

export const icmpRepr: fc.Arbitrary<IcmpRepr> = fc.record({ type: u8, code: u8, ident: u16a, seq: u16a, payload: payload() });
export const udpRepr: fc.Arbitrary<UdpRepr> = fc.record({ srcPort: u16a, dstPort: u16a, payload: payload() });
export const tcpRepr: fc.Arbitrary<TcpRepr> = fc.record({
  srcPort: u16a,
  dstPort: u16a,
  seq: u32a,
  ack: u32a,
  flags: u8,
  window: u16a,
  urgent: u16a,
  options: options4,
  payload: payload(),
});

// ------------------------------------------------------------ frame builders

export interface L4 {
  proto: number;
  bytes: Uint8Array;
}

/** Ethernet (untagged) + IPv4 + the given L4 bytes. */
export function ipFrame(dmac: number, smac: number, src: number, dst: number, l4: L4, ttl = 64, flagsFrag = 0x4000): Uint8Array {
  const r: Ipv4Repr = { tos: 0, ident: 0x1234, flagsFrag, ttl, proto: l4.proto, src, dst, payloadLen: l4.bytes.length, options: new Uint8Array(0) };
  const f = new Uint8Array(14 + 20 + l4.bytes.length);
  EthernetRepr.emit({ dst: dmac, src: smac, ethertype: 0x0800, vlan: null }, f, 0);
  Ipv4Repr.emit(r, f, 14);
  f.set(l4.bytes, 34);
  return f;
}

export function udpL4(src: number, dst: number, sport: number, dport: number, data: Uint8Array): L4 {
  const r = { srcPort: sport, dstPort: dport, payload: data };
  const b = new Uint8Array(UdpRepr.len(r));
  UdpRepr.emit(r, b, 0, src, dst);
  return { proto: 17, bytes: b };
}

export function tcpL4(src: number, dst: number, sport: number, dport: number, flags: number, data: Uint8Array): L4 {
  const r = { srcPort: sport, dstPort: dport, seq: 1000, ack: 0, flags, window: 65535, urgent: 0, options: new Uint8Array(0), payload: data };
  const b = new Uint8Array(TcpRepr.len(r));
  TcpRepr.emit(r, b, 0, src, dst);
  return { proto: 6, bytes: b };
}

export function icmpL4(type: number, code: number, ident: number, data: Uint8Array): L4 {
  const r = { type, code, ident, seq: 1, payload: data };
  const b = new Uint8Array(IcmpRepr.len(r));
  IcmpRepr.emit(r, b, 0);
  return { proto: 1, bytes: b };
}

export function arpFrame(op: number, sha: number, spa: number, tha: number, tpa: number, dmac: number, smac = sha): Uint8Array {
  const f = new Uint8Array(42);
  EthernetRepr.emit({ dst: dmac, src: smac, ethertype: 0x0806, vlan: null }, f, 0);
  ArpRepr.emit({ op, sha, spa, tha, tpa }, f, 14);
  return f;
}

/** A DHCP client message in a broadcast frame from 0.0.0.0:68 to 255.255.255.255:67. */
export function dhcpFrame(r: DhcpRepr, smac = r.chaddr, dst = 0xffffffff, src = 0, dmac = 0xffffffffffff): Uint8Array {
  const body = new Uint8Array(1500);
  const n = DhcpRepr.emit(r, body, 0);
  return ipFrame(dmac, smac, src, dst, udpL4(src, dst, 68, 67, body.slice(0, n)), 64, 0);
}

/** Offsets of the 16-bit fields worth forcing in an Ethernet/IPv4/L4 frame. */
export const FRAME_FIELDS = [12, 14, 16, 20, 22, 24, 34, 36, 38, 40, 46] as const;

// ------------------------------------------------------------ network tags

const MARK = [0xc0, 0xff, 0xee, 0x7a] as const;
export const MARK_LEN = 8;
/** a second check byte: a bijection of the tag, so no single 16-bit write forges another tag's marker */
const check2 = (net: number): number => (net * 97 + 13) & 0xff;

/** The 8-byte marker of network `net` (0..255): magic, tag, ~tag, check2(tag), 0x5a. */
export function marker(net: number): Uint8Array {
  return Uint8Array.from([...MARK, net & 0xff, ~net & 0xff, check2(net & 0xff), 0x5a]);
}

/** Payload bytes carrying the marker of `net`, padded with `fill` to `len` (≥ 8). */
export function taggedPayload(net: number, len = 16, fill = 0x33): Uint8Array {
  const p = new Uint8Array(Math.max(MARK_LEN, len)).fill(fill);
  p.set(marker(net));
  return p;
}

/** Every network whose marker appears in `b`. */
export function netsIn(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i + MARK_LEN <= b.length; i++) {
    if (b[i] !== MARK[0] || b[i + 1] !== MARK[1] || b[i + 2] !== MARK[2] || b[i + 3] !== MARK[3]) continue;
    const t = b[i + 4];
    if (b[i + 5] !== (~t & 0xff) || b[i + 6] !== check2(t) || b[i + 7] !== 0x5a) continue;
    if (!out.includes(t)) out.push(t);
  }
  return out;
}
