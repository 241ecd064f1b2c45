/**
 * The router with super-frames (GSO) in and out: forwarded whole with TTL
 * and IP checksum rewritten once, NATed with their partial checksum kept
 * right, counted as their segments (conntrack, counters), measured against
 * the egress MTU by their segments (DF → frag needed, else segmented),
 * segmented for a local UDP service, and dropped (badGso) when their
 * annotations do not match their bytes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GSO_TCPV4, GSO_UDP_L4, META_NEEDS_CSUM } from '../dataplane/pool.js';
import { segmentFrame } from '../dataplane/segment.js';
import { CT_ORIGINAL, CT_REPLY, TcpState } from '../nat/conntrack.js';
import { type FrameMeta, getMeta, ipHeaderOk, l4ChecksumField, load, payloadBytes, scratchL4Checksum, superFrame, type SuperOpts } from '../dataplane/super-frames.js';
import { u16, u32, w16 } from '../wire/bytes.js';
import { completeChecksum } from '../wire/gso.js';
import { A1, A2, A_GW, MAC, S, Testbed, UP_GW, UP_IP, X, arp, parse, parseQuote, type BedOptions, type IfName } from './testbed.js';

let bed: Testbed;

function ready(o: BedOptions = {}): Testbed {
  bed = new Testbed({ largeSlots: 64, poolSlots: 512, ...o });
  bed.router.addNeighbour(bed.ids.A, A1, MAC.A1);
  bed.router.addNeighbour(bed.ids.A, A2, MAC.A2);
  bed.router.addNeighbour(bed.ids.UP, UP_GW, MAC.UPGW);
  return bed;
}

afterEach(() => {
  bed.collect();
  for (const id of Object.values(bed.ids)) bed.router.removeInterface(id);
  expect(bed.pool.inUse).toBe(0);
});

const fromA1 = (o: Partial<SuperOpts>) => superFrame({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, sport: 40000, dport: 80, payload: 40000, gsoSize: 1448, ...o });
const fromUp = (o: Partial<SuperOpts>) => superFrame({ dmac: MAC.UP, smac: MAC.UPGW, src: S, dst: UP_IP, sport: 80, dport: 40000, payload: 40000, gsoSize: 1448, ...o });

/** Run; exactly one frame must leave, by `where`: it is returned with its annotations. */
function one(where: IfName): { f: Uint8Array; meta: FrameMeta } {
  const out = bed.run();
  expect(Testbed.counts(out)).toEqual({ [where]: 1 });
  return { f: out[where][0], meta: bed.metas[where][0] };
}

/** A forwarded super-frame is right: same annotations, IP checksum, partial checksum completes to the from-scratch one, payload intact, and every segment verifies. */
function superOk(f: Uint8Array, meta: FrameMeta, sent: { bytes: Uint8Array; meta: FrameMeta }, seed?: number): void {
  expect(meta).toEqual(sent.meta);
  expect(f.length).toBe(sent.bytes.length);
  expect(ipHeaderOk(f)).toBe(true);
  const c = f.slice();
  completeChecksum(c, 0, c.length, meta.csumStart, meta.csumOffset);
  expect(l4ChecksumField(c)).toBe(scratchL4Checksum(c));
  expect(c.subarray(meta.hdrLen)).toEqual(payloadBytes(sent.bytes.length - sent.meta.hdrLen, seed));
  // and cut as the receiving kernel would: every segment verifies
  const h = load(bed.pool, f, meta);
  const out = new Uint32Array(1024);
  const n = segmentFrame(bed.pool, h, 0, out);
  bed.pool.free(h);
  expect(n).toBe(Math.ceil((f.length - meta.hdrLen) / meta.gsoSize));
  for (let k = 0; k < n; k++) {
    expect(parse(bed.pool.toBytes(out[k])).checksumsOk).toBe(true);
    bed.pool.free(out[k]);
  }
}

describe('Router: super-frames through masquerade', () => {
  it('forwards a TCP super-frame whole: TTL − 1 and the IP checksum once, NAT keeps the partial checksum, conntrack and counters count segments', () => {
    ready();
    const s = fromA1({ ttl: 64 });
    bed.send('A', s.bytes, s.meta);
    const { f, meta } = one('UP');
    superOk(f, meta, s);
    expect(f[22]).toBe(63);
    expect([u32(f, 26), u32(f, 30), u16(f, 36)]).toEqual([UP_IP, S, 80]);
    const mapped = u16(f, 34);
    const r = bed.ct.lookup(6, A1, 40000, S, 80);
    expect(r & 1).toBe(CT_ORIGINAL);
    const flow = r >>> 1;
    expect(bed.ct.packets(flow, CT_ORIGINAL)).toBe(28); // ceil(40000 / 1448)
    expect(bed.ct.bytes(flow, CT_ORIGINAL)).toBe(40040);
    expect(bed.ct.state(flow)).toBe(TcpState.ESTABLISHED);
    const c = bed.router.counters;
    expect([c.rxPackets, c.rxSegments, c.txPackets, c.txSegments]).toEqual([1, 28, 1, 28]);
    expect(bed.router.ifaceCounters(bed.ids.A).rxSegments).toBe(28);
    expect(bed.router.ifaceCounters(bed.ids.UP).txSegments).toBe(28);
    // the router is the device side of its switch port on A: that port transmitted them to it
    expect([bed.ports.A.counters.txPackets, bed.ports.A.counters.txSegments]).toEqual([1, 28]);

    // the answer: a 62 000-byte super-frame ending in FIN comes back to A1, un-NATed
    const back = fromUp({ dport: mapped, payload: 62000, flags: 0x19, seed: 3, ttl: 50 });
    bed.send('UP', back.bytes, back.meta);
    const b = one('A');
    superOk(b.f, b.meta, back, 3);
    expect([u32(b.f, 26), u32(b.f, 30), u16(b.f, 34), u16(b.f, 36), b.f[22]]).toEqual([S, A1, 80, 40000, 49]);
    expect(bed.ct.packets(flow, CT_REPLY)).toBe(43);
    expect(bed.ct.bytes(flow, CT_REPLY)).toBe(62040);
    // its FIN drives the state machine as the last segment's would
    expect(bed.ct.state(flow)).toBe(TcpState.FIN_WAIT);
    expect([c.rxPackets, c.rxSegments, c.txSegments]).toEqual([2, 28 + 43, 28 + 43]);
    expect([bed.ports.A.counters.rxPackets, bed.ports.A.counters.rxSegments]).toEqual([1, 43]);
  });

  it('published port (DNAT) and hairpin (DNAT + SNAT) keep the partial checksum right', () => {
    ready();
    bed.router.publish({ proto: 6, hostPort: 8080, targetIp: A1, targetPort: 80 });
    const s = fromUp({ src: X, sport: 5555, dport: 8080, payload: 30000, gsoSize: 1400 });
    bed.send('UP', s.bytes, s.meta);
    const d = one('A');
    superOk(d.f, d.meta, s);
    expect([u32(d.f, 26), u32(d.f, 30), u16(d.f, 34), u16(d.f, 36)]).toEqual([X, A1, 5555, 80]);
    const h = superFrame({ dmac: MAC.A, smac: MAC.A2, src: A2, dst: UP_IP, sport: 41000, dport: 8080, payload: 20000, gsoSize: 1448, seed: 8 });
    bed.send('A', h.bytes, h.meta);
    const hp = one('A');
    superOk(hp.f, hp.meta, h, 8);
    expect([u32(hp.f, 26), u32(hp.f, 30), u16(hp.f, 34), u16(hp.f, 36)]).toEqual([A_GW, A1, 41000, 80]);
  });

  it('a UDP super-frame (GSO_UDP_L4) is NATed and counted the same way', () => {
    ready();
    const s = fromA1({ proto: 'udp', sport: 5000, dport: 4433, payload: 12000, gsoSize: 1200 });
    expect(s.meta.gsoType).toBe(GSO_UDP_L4);
    bed.send('A', s.bytes, s.meta);
    const { f, meta } = one('UP');
    superOk(f, meta, s);
    expect(u32(f, 26)).toBe(UP_IP);
    const r = bed.ct.lookup(17, A1, 5000, S, 4433);
    expect(bed.ct.packets(r >>> 1, CT_ORIGINAL)).toBe(10);
  });

  it('an ordinary frame with a partial checksum (built by hand) is completed on the way in', () => {
    ready();
    const s = fromA1({ payload: 1000, gsoSize: 0 });
    bed.send('A', s.bytes, { ...s.meta, gsoType: 0, gsoSize: 0, hdrLen: 0 });
    const { f, meta } = one('UP');
    expect(meta.flags & META_NEEDS_CSUM).toBe(0);
    expect(parse(f).checksumsOk).toBe(true);
    expect(u32(f, 26)).toBe(UP_IP);
  });
});

describe('Router: super-frames and the egress MTU', () => {
  it('DF set and segments too big for the uplink (1400): frag needed with the MTU, dropped and counted', () => {
    ready({ mtu: { UP: 1400 } });
    const s = fromA1({ gsoSize: 1448 }); // 20 + 20 + 1448 = 1488 > 1400
    bed.send('A', s.bytes, s.meta);
    const { f } = one('A');
    const p = parse(f);
    expect(p.checksumsOk).toBe(true);
    expect([p.icmpType, p.icmpCode, p.icmpRest & 0xffff, p.dst, p.src]).toEqual([3, 4, 1400, A1, A_GW]);
    // the quote is the packet as sent (its header says 40 040 bytes)
    const q = parseQuote(p);
    expect([q.src, q.dst, q.totalLen, q.sport, q.dport]).toEqual([A1, S, 40040, 40000, 80]);
    expect(bed.drops()).toEqual({ oversize: 1 });
  });

  it('segments that fit exactly (IP + TCP + gsoSize = MTU) go on whole, whatever the super-frame’s length', () => {
    ready({ mtu: { UP: 1400 } });
    const s = fromA1({ gsoSize: 1360 });
    bed.send('A', s.bytes, s.meta);
    const { f, meta } = one('UP');
    superOk(f, meta, s);
    expect(u16(f, 16)).toBe(40040);
  });

  it('DF clear: cut into segments that fit, every one complete and correct, nothing IP-fragmented', () => {
    ready({ mtu: { UP: 1400 } });
    const s = fromA1({ gsoSize: 1448, df: false, ident: 0x1000, seq: 0xfffff000, flags: 0x19 });
    bed.send('A', s.bytes, s.meta);
    const out = bed.run();
    expect(Testbed.counts(out)).toEqual({ UP: 30 }); // ceil(40000 / 1360)
    const pay: Uint8Array[] = [];
    let seq = 0xfffff000;
    out.UP.forEach((f, i) => {
      const p = parse(f);
      expect(p.checksumsOk).toBe(true);
      expect(p.totalLen).toBeLessThanOrEqual(1400);
      expect(bed.metas.UP[i]).toEqual({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 });
      expect([p.src, p.dst, p.ttl, p.flagsFrag, p.ident]).toEqual([UP_IP, S, 63, 0, 0x1000 + i]);
      expect(p.seq).toBe(seq);
      expect(p.tcpFlags).toBe(i === 29 ? 0x19 : 0x10);
      seq = (seq + p.l4.length - 20) >>> 0;
      pay.push(p.l4.subarray(20));
    });
    expect(Buffer.concat(pay)).toEqual(Buffer.from(payloadBytes(40000)));
    expect(bed.router.stats()).toMatchObject({ gsoSegmented: 1, segmentsMade: 30, fragmentsMade: 0 });
    expect([bed.router.counters.txPackets, bed.router.counters.txSegments]).toEqual([30, 30]);
    // conntrack counted the super-frame as its 28 segments as sent (before the cut)
    expect(bed.ct.packets(bed.ct.lookup(6, A1, 40000, S, 80) >>> 1, CT_ORIGINAL)).toBe(28);
  });
});

describe('Router: malformed super-frames', () => {
  it('are dropped (badGso) and never forwarded, tracked or answered', () => {
    ready();
    const base = () => fromA1({ payload: 5000, gsoSize: 1448 });
    const cases: Array<{ bytes: Uint8Array; meta: FrameMeta }> = [];
    const add = (edit: (b: Uint8Array, m: FrameMeta) => Uint8Array | void) => {
      const s = base();
      const r = edit(s.bytes, s.meta);
      cases.push({ bytes: r ?? s.bytes, meta: s.meta });
    };
    add((_, m) => void (m.gsoSize = 0)); // segment size 0
    add((b) => {
      // IP total length says more than the frame holds
      w16(b, 16, u16(b, 16) + 100);
      w16(b, 24, 0);
      w16(b, 24, ipSum(b));
    });
    add((b) => {
      // trailing bytes after the IP packet: lengths inconsistent
      const c = new Uint8Array(b.length + 10);
      c.set(b);
      return c;
    });
    add((_, m) => void (m.csumOffset = 60000)); // checksum offset outside the frame
    add((_, m) => void (m.csumStart = 14)); // checksum start not at the L4 header
    add((_, m) => void (m.flags = 0)); // a super-frame without a partial checksum
    add((_, m) => void (m.gsoType = GSO_UDP_L4)); // UDP GSO on a TCP packet
    add((_, m) => void (m.gsoType = 3)); // UFO: not supported
    add((b) => {
      // a fragment
      w16(b, 20, 0x2000);
      w16(b, 24, 0);
      w16(b, 24, ipSum(b));
    });
    // an ordinary frame whose partial checksum field lies outside it
    const plain = fromA1({ payload: 100, gsoSize: 0 });
    cases.push({ bytes: plain.bytes, meta: { ...plain.meta, gsoType: 0, gsoSize: 0, csumOffset: 4000 } });
    // a GSO annotation on an ARP request
    cases.push({ bytes: arp(1, MAC.A1, A1, 0, A_GW, 0xffffffffffff), meta: { flags: 1, gsoType: GSO_TCPV4, hdrLen: 42, gsoSize: 1448, csumStart: 34, csumOffset: 16 } });
    for (const c of cases) bed.send('A', c.bytes, c.meta);
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({ badGso: cases.length });
    expect(bed.router.ifaceCounters(bed.ids.A).snapshot().dropReasons).toEqual({ badGso: cases.length });
    expect(bed.ct.size).toBe(0);
    expect(bed.router.stats().icmpErrorsSent).toBe(0);
    // the same super-frame, well-formed, goes through
    const ok = base();
    bed.send('A', ok.bytes, ok.meta);
    superOk(one('UP').f, bed.metas.UP[0], ok);
  });
});

describe('Router: super-frames for the router itself', () => {
  it('a UDP super-frame to a service at the gateway address is delivered as its datagrams', () => {
    ready();
    const got: Array<{ f: Uint8Array; meta: FrameMeta }> = [];
    bed.router.setUdpService(bed.ids.A, 53, {
      handle: (h) => {
        got.push({ f: bed.pool.toBytes(h), meta: getMeta(bed.pool, h) });
        return -1;
      },
    });
    const s = superFrame({ proto: 'udp', dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, sport: 5353, dport: 53, payload: 3000, gsoSize: 1000 });
    bed.send('A', s.bytes, s.meta);
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(got.length).toBe(3);
    for (const [i, g] of got.entries()) {
      const p = parse(g.f);
      expect(p.checksumsOk).toBe(true);
      expect(g.meta).toEqual({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 });
      expect([p.src, p.dst, p.dport, u16(p.l4, 4)]).toEqual([A1, A_GW, 53, 1008]);
      expect(p.l4.subarray(8)).toEqual(payloadBytes(3000).subarray(i * 1000, (i + 1) * 1000));
    }
    expect(bed.router.stats().udpDelivered).toBe(3);
    expect(bed.drops()).toEqual({});
  });

  it('a UDP super-frame to the broadcast MAC is no DHCP request: notForUs, the service never sees it', () => {
    ready();
    let calls = 0;
    bed.router.setUdpService(bed.ids.A, 67, { handle: () => (calls++, -1) });
    const s = superFrame({ proto: 'udp', dmac: 0xffffffffffff, smac: MAC.A1, src: A1, dst: 0xffffffff, sport: 68, dport: 67, payload: 3000, gsoSize: 1000 });
    bed.send('A', s.bytes, s.meta);
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(calls).toBe(0);
    expect(bed.drops()).toEqual({ notForUs: 1 });
  });

  it('a super-frame a service sends (sendFrom) goes out whole when its segments fit, else segmented', () => {
    ready({ mtu: { A: 1400 } });
    const fits = superFrame({ dmac: MAC.A1, smac: MAC.A, src: A_GW, dst: A1, sport: 53, dport: 40000, payload: 20000, gsoSize: 1360 });
    bed.router.sendFrom(bed.ids.A, load(bed.pool, fits.bytes, fits.meta));
    const { f, meta } = one('A');
    superOk(f, meta, fits);
    const big = superFrame({ dmac: MAC.A1, smac: MAC.A, src: A_GW, dst: A1, sport: 53, dport: 40000, payload: 20000, gsoSize: 1448 });
    bed.router.sendFrom(bed.ids.A, load(bed.pool, big.bytes, big.meta));
    const out = bed.run();
    expect(Testbed.counts(out)).toEqual({ A: 15 }); // ceil(20000 / 1360)
    for (const g of out.A) {
      const p = parse(g);
      expect(p.checksumsOk).toBe(true);
      expect(p.totalLen).toBeLessThanOrEqual(1400);
    }
    expect(bed.router.stats()).toMatchObject({ udpSent: 1 + 15, gsoSegmented: 1, segmentsMade: 15 });
  });

  it('a TCP super-frame to the gateway address is answered with one RST', () => {
    ready();
    const s = fromA1({ dst: A_GW, dport: 9999, payload: 8000, seq: 5000, flags: 0x18 });
    bed.send('A', s.bytes, s.meta);
    const { f } = one('A');
    const p = parse(f);
    expect([p.src, p.dst, p.sport, p.dport, p.tcpFlags, p.seq]).toEqual([A_GW, A1, 9999, 40000, 0x04, 77]);
    expect(bed.drops()).toEqual({ unsupported: 1 });
  });
});

function ipSum(b: Uint8Array): number {
  let s = 0;
  for (let k = 14; k < 34; k += 2) s += u16(b, k);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
