/**
 * Shared pieces of the element fuzz tests (cold; test code only): frames of
 * one network with its tag in the payload, feeding rings, draining them
 * with an isolation check on every frame that leaves.
 *
 * A tag is a small number naming where a frame came from (network × 16 +
 * port index, see tagOf()); it rides in the payload as a marker
 * (frames.ts), so it survives header rewrites, NAT and encapsulation.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import type { FramePool } from '../../src/dataplane/pool.js';
import type { Ring } from '../../src/dataplane/ring.js';
import { u16 } from '../../src/wire/bytes.js';
import { EthernetRepr, mac48 } from '../../src/wire/ethernet.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { FRAME_FIELDS, anyOf, arpFrame, ipFrame, mac, marker, netsIn, taggedPayload, tcpL4, u32a, udpL4, icmpL4 } from './frames.js';

export const BCAST = 0xffffffffffff;
export const MCAST = 0x01005e0000fb;

export const tagOf = (net: number, port: number): number => net * 16 + port;
export const netOf = (tag: number): number => tag >> 4;
export const portOf = (tag: number): number => tag & 15;

export interface Who {
  macs: readonly number[];
  ips: readonly number[];
}

/**
 * Valid frames a port of a network sees: ARP (requests and replies, padded
 * to 60 with the tag), IPv4 UDP/TCP/ICMP, other ethertypes, 802.1Q tagged;
 * addresses mostly from `who`, some random; then mutated or replaced by
 * garbage (anyOf).
 */
export function netFrame(who: Who, tag: number): fc.Arbitrary<Uint8Array> {
  const m = fc.oneof({ arbitrary: fc.constantFrom(...who.macs), weight: 4 }, fc.constantFrom(BCAST, MCAST, 0), mac);
  const srcMac = fc.oneof({ arbitrary: fc.constantFrom(...who.macs), weight: 6 }, mac, fc.constant(0));
  const ip = fc.oneof({ arbitrary: fc.constantFrom(...who.ips), weight: 4 }, u32a, fc.constant(0xffffffff));
  const pl = taggedPayload(tag, 18);
  const valid = fc.oneof(
    fc.tuple(fc.constantFrom(1, 2, 3), m, srcMac, ip, ip).map(([op, d, s, spa, tpa]) => {
      const f = new Uint8Array(60);
      f.set(arpFrame(op, s, spa, op === 1 ? 0 : d, tpa, d));
      f.set(pl, 42);
      return f;
    }),
    fc.tuple(m, srcMac, ip, ip, fc.constantFrom(6, 17, 1), fc.integer({ min: 1, max: 65535 })).map(([d, s, si, di, proto, port]) => {
      const l4 = proto === 17 ? udpL4(si, di, 40000, port, pl) : proto === 6 ? tcpL4(si, di, 40000, port, 0x02, pl) : icmpL4(8, 0, port, pl);
      return ipFrame(d, s, si, di, l4);
    }),
    fc.tuple(m, srcMac, fc.constantFrom(0x86dd, 0x88cc, 0x1234, 0x0800, 0x0806)).map(([d, s, t]) => {
      const f = new Uint8Array(14 + pl.length);
      EthernetRepr.emit({ dst: d, src: s, ethertype: t, vlan: null }, f, 0);
      f.set(pl, 14);
      return f;
    }),
    fc.tuple(m, srcMac, fc.integer({ min: 0, max: 4095 }), ip, ip).map(([d, s, vid, si, di]) => {
      const inner = ipFrame(d, s, si, di, udpL4(si, di, 1, 2, pl));
      const f = new Uint8Array(inner.length + 4);
      EthernetRepr.emit({ dst: d, src: s, ethertype: 0x0800, vlan: { pcp: 0, dei: 0, vid } }, f, 0);
      f.set(inner.subarray(14), 18);
      return f;
    }),
  );
  return anyOf(valid, FRAME_FIELDS, 120).map((b) => (b.length > 1500 ? b.slice(0, 1500) : b));
}

/** Put bytes in a fresh frame on `ring`; false (nothing held) when the ring is full or the pool empty. */
export function feed(pool: FramePool, ring: Ring, bytes: Uint8Array, inPort: number): boolean {
  const h = pool.fromBytes(bytes, inPort);
  if (h < 0) return false;
  if (ring.push(h)) return true;
  pool.free(h);
  return false;
}

/** Take every frame waiting in `ring` (freed); each one's tags must pass `allowed`. Returns the frames. */
export function drain(pool: FramePool, ring: Ring, where: string, allowed: (tag: number, frame: Uint8Array) => boolean): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let h = ring.pop(); h >= 0; h = ring.pop()) {
    const b = pool.toBytes(h);
    pool.free(h);
    for (const t of netsIn(b)) {
      if (!allowed(t, b)) expect.fail(`isolation: a frame tagged ${t} (network ${netOf(t)}, port ${portOf(t)}) left by ${where}`);
    }
    out.push(b);
  }
  return out;
}

/** Element counters before/after (rx, tx, drops). */
export interface Count {
  rxPackets: number;
  txPackets: number;
  drops: number;
}
export const snap = (c: Count): Count => ({ rxPackets: c.rxPackets, txPackets: c.txPackets, drops: c.drops });

/**
 * The answer a peer would send to IPv4 frame b (addresses, ports and MACs
 * swapped, echo request → reply, TCP SYN → SYN-ACK, the payload kept), or
 * null when b is not TCP/UDP/ICMP over IPv4. Tags in the payload become `tag` (the answerer's).
 */
export function replyTo(b: Uint8Array, tag: number): Uint8Array | null {
  const data = (from: number, to: number): Uint8Array => retag(b.slice(from, to), tag);
  if (b.length < 34 || b[12] !== 0x08 || b[13] !== 0x00) return null;
  const ip = new Ipv4View();
  if (!ip.wrap(b, 14, b.length - 14)) return null;
  const pl = ip.payloadOff;
  const n = ip.payloadLen;
  const dmac = mac48(b, 6);
  const smac = mac48(b, 0);
  if (ip.proto === 17 && n >= 8) return ipFrame(dmac, smac, ip.dst, ip.src, udpL4(ip.dst, ip.src, u16(b, pl + 2), u16(b, pl), data(pl + 8, pl + n)));
  if (ip.proto === 6 && n >= 20) {
    const hl = (b[pl + 12] >> 4) * 4;
    return ipFrame(dmac, smac, ip.dst, ip.src, tcpL4(ip.dst, ip.src, u16(b, pl + 2), u16(b, pl), (b[pl + 13] & 0x02) !== 0 ? 0x12 : 0x10, data(pl + Math.min(hl, n), pl + n)));
  }
  if (ip.proto === 1 && n >= 8) return ipFrame(dmac, smac, ip.dst, ip.src, icmpL4(b[pl] === 8 ? 0 : b[pl], 0, u16(b, pl + 4), data(pl + 8, pl + n)));
  return null;
}

/** b with every tag marker in it replaced by `tag`'s. */
function retag(b: Uint8Array, tag: number): Uint8Array {
  const m = marker(tag);
  for (const t of netsIn(b)) {
    const old = marker(t);
    for (let i = 0; i + 8 <= b.length; i++) if (old.every((x, j) => b[i + j] === x)) b.set(m, i);
  }
  return b;
}

/** Pool and ring sizes for a run: small ones reach the poolEmpty and ringFull paths. */
export const sizes = fc.record({ pool: fc.constantFrom(12, 24, 48, 1024), ring: fc.constantFrom(2, 4, 8, 32) });
