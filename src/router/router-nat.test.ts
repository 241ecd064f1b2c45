import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CT_ORIGINAL, TcpState } from '../nat/conntrack.js';
import { A1, A2, A_GW, B1, B_GW, HOST_IP, HOST_PEER, MAC, S, Testbed, UP_GW, UP_IP, X, ip, ipFrame, parse, parseQuote, pkt, udp, type IfName, type Parsed } from './testbed.js';

let bed: Testbed;

/** A bed whose router already knows every neighbour's MAC. */
function ready(opts = {}): Testbed {
  const b = new Testbed(opts);
  b.learn('A', MAC.A1, A1);
  b.learn('A', MAC.A2, A2);
  b.learn('B', MAC.B1, B1);
  b.learn('UP', MAC.UPGW, UP_GW);
  b.learn('HOST', MAC.HOSTPEER, HOST_PEER);
  return b;
}

/** Run, expect exactly one frame, out of `where`; parse it (checksums must hold). */
function one(where: IfName): Parsed {
  const out = bed.run();
  expect(Testbed.counts(out)).toEqual({ [where]: 1 });
  const p = parse(out[where][0]);
  expect(p.checksumsOk).toBe(true);
  return p;
}

const fromA1 = (dst: number, proto: number, extra = {}) => pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst, proto, ...extra });
const fromA2 = (dst: number, proto: number, extra = {}) => pkt({ dmac: MAC.A, smac: MAC.A2, src: A2, dst, proto, ...extra });
const fromB1 = (dst: number, proto: number, extra = {}) => pkt({ dmac: MAC.B, smac: MAC.B1, src: B1, dst, proto, ...extra });
const fromUp = (src: number, proto: number, extra = {}) => pkt({ dmac: MAC.UP, smac: MAC.UPGW, src, dst: UP_IP, proto, ...extra });

beforeEach(() => {
  bed = ready();
});
afterEach(() => {
  bed.collect();
  for (const id of Object.values(bed.ids)) bed.router.removeInterface(id);
  expect(bed.pool.inUse).toBe(0);
});

describe('Router: masquerade', () => {
  it('SNATs an outbound TCP SYN to the uplink address (port kept) and un-NATs the reply', () => {
    bed.send('A', fromA1(S, 6, { sport: 40000, dport: 80, flags: 0x02 }));
    const syn = one('UP');
    expect([syn.src, syn.sport, syn.dst, syn.dport, syn.ttl, syn.dmac, syn.smac]).toEqual([UP_IP, 40000, S, 80, 63, MAC.UPGW, MAC.UP]);
    bed.send('UP', fromUp(S, 6, { sport: 80, dport: 40000, flags: 0x12 }));
    const synack = one('A');
    expect([synack.src, synack.sport, synack.dst, synack.dport, synack.tcpFlags, synack.dmac, synack.smac]).toEqual([S, 80, A1, 40000, 0x12, MAC.A1, MAC.A]);
    const f = bed.ct.lookup(6, A1, 40000, S, 80);
    expect(f & 1).toBe(CT_ORIGINAL);
    expect(bed.ct.state(f >> 1)).toBe(TcpState.SYN_RECV);
  });

  it('remaps the source port when the reply tuple is taken, within natPorts', () => {
    bed.send('A', fromA1(S, 6, { sport: 40000 }));
    bed.send('B', fromB1(S, 6, { sport: 40000 }));
    const out = bed.run();
    const [p1, p2] = out.UP.map(parse);
    expect(p1.sport).toBe(40000);
    expect(p2.src).toBe(UP_IP);
    expect(p2.sport).not.toBe(40000);
    expect(p2.sport).toBeGreaterThanOrEqual(32768);
    expect(p2.sport).toBeLessThanOrEqual(60999);
    expect(p2.checksumsOk).toBe(true);
    bed.send('UP', fromUp(S, 6, { sport: 80, dport: p2.sport, flags: 0x12 }));
    const back = one('B');
    expect([back.dst, back.dport, back.dmac]).toEqual([B1, 40000, MAC.B1]);
  });

  it('NATs UDP both ways', () => {
    bed.send('A', fromA1(S, 17, { sport: 5353, dport: 53 }));
    const q = one('UP');
    expect([q.src, q.sport, q.dst, q.dport]).toEqual([UP_IP, 5353, S, 53]);
    bed.send('UP', fromUp(S, 17, { sport: 53, dport: 5353 }));
    const r = one('A');
    expect([r.src, r.sport, r.dst, r.dport]).toEqual([S, 53, A1, 5353]);
  });

  it('NATs ICMP echo: identifier kept, remapped when taken, replies restored', () => {
    bed.send('A', fromA1(S, 1, { ident: 0x77 }));
    expect(one('UP')).toMatchObject({ src: UP_IP, icmpType: 8, icmpIdent: 0x77 });
    bed.send('B', fromB1(S, 1, { ident: 0x77 }));
    const second = one('UP');
    expect(second.icmpIdent).not.toBe(0x77);
    bed.send('UP', fromUp(S, 1, { type: 0, ident: second.icmpIdent }));
    expect(one('B')).toMatchObject({ src: S, dst: B1, icmpType: 0, icmpIdent: 0x77 });
    bed.send('UP', fromUp(S, 1, { type: 0, ident: 0x77 }));
    expect(one('A')).toMatchObject({ dst: A1, icmpType: 0, icmpIdent: 0x77 });
  });

  it('drops new flows from a RST or an echo reply, and replies to unknown flows (filtered)', () => {
    bed.send('A', fromA1(S, 6, { flags: 0x04 }));
    bed.send('A', fromA1(S, 1, { type: 0 }));
    bed.send('UP', fromUp(S, 6, { sport: 80, dport: 40000, flags: 0x12 }));
    expect(Testbed.counts(bed.run())).toEqual({ UP: 1 }); // the router answers the stray SYN+ACK to its address with a RST
    expect(bed.drops()).toMatchObject({ filtered: 2 });
  });

  it('counts conntrack full and NAT port exhaustion', () => {
    bed = ready({ natPorts: [50000, 50000] as [number, number] });
    bed.send('A', fromA1(S, 17, { sport: 1 }));
    bed.send('A', fromA2(S, 17, { sport: 1 }));
    bed.send('B', fromB1(S, 17, { sport: 1 }));
    const out = bed.run();
    expect(out.UP.map((f) => parse(f).sport)).toEqual([1, 50000]);
    expect(bed.router.stats().natPortsExhausted).toBe(1);
    bed.collect();
    for (const id of Object.values(bed.ids)) bed.router.removeInterface(id);
    bed = ready({ ctCapacity: 1 });
    bed.send('A', fromA1(S, 17, { sport: 1 }));
    one('UP');
    bed.send('UP', fromUp(S, 17, { sport: 53, dport: 1 })); // replied: may not be evicted
    one('A');
    bed.send('A', fromA1(S, 17, { sport: 2 }));
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.router.stats().conntrackFull).toBe(1);
    expect(bed.drops()).toEqual({ filtered: 1 });
  });
});

describe('Router: published ports', () => {
  beforeEach(() => {
    bed.router.publish({ proto: 6, hostPort: 8080, targetIp: A1, targetPort: 80 });
    bed.router.publish({ proto: 17, hostPort: 5353, targetIp: A1, targetPort: 53 });
  });

  it('DNATs from the uplink and un-DNATs the reply', () => {
    bed.send('UP', fromUp(X, 6, { sport: 5555, dport: 8080 }));
    const syn = one('A');
    expect([syn.src, syn.sport, syn.dst, syn.dport, syn.dmac]).toEqual([X, 5555, A1, 80, MAC.A1]);
    bed.send('A', fromA1(X, 6, { sport: 80, dport: 5555, flags: 0x12 }));
    const synack = one('UP');
    expect([synack.src, synack.sport, synack.dst, synack.dport, synack.dmac]).toEqual([UP_IP, 8080, X, 5555, MAC.UPGW]);
  });

  it('DNATs UDP, and from the host link address', () => {
    bed.send('UP', fromUp(X, 17, { sport: 7000, dport: 5353 }));
    expect(one('A')).toMatchObject({ src: X, dst: A1, dport: 53 });
    bed.send('HOST', pkt({ dmac: MAC.HOST, smac: MAC.HOSTPEER, src: HOST_PEER, dst: HOST_IP, proto: 6, sport: 33000, dport: 8080 }));
    expect(one('A')).toMatchObject({ src: HOST_PEER, sport: 33000, dst: A1, dport: 80 });
    bed.send('A', fromA1(HOST_PEER, 6, { sport: 80, dport: 33000, flags: 0x12 }));
    expect(one('HOST')).toMatchObject({ src: HOST_IP, sport: 8080, dst: HOST_PEER, dport: 33000, dmac: MAC.HOSTPEER });
  });

  it('hairpin on the same network: DNAT + SNAT to the gateway, the reply comes back through the router', () => {
    bed.send('A', fromA2(UP_IP, 6, { sport: 41000, dport: 8080 }));
    const syn = one('A');
    expect([syn.src, syn.sport, syn.dst, syn.dport, syn.dmac, syn.smac]).toEqual([A_GW, 41000, A1, 80, MAC.A1, MAC.A]);
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 6, sport: 80, dport: 41000, flags: 0x12 }));
    const back = one('A');
    expect([back.src, back.sport, back.dst, back.dport, back.dmac]).toEqual([UP_IP, 8080, A2, 41000, MAC.A2]);
  });

  it('hairpin to its own published port', () => {
    bed.send('A', fromA1(UP_IP, 6, { sport: 42000, dport: 8080 }));
    expect(one('A')).toMatchObject({ src: A_GW, sport: 42000, dst: A1, dport: 80 });
  });

  it('hairpin from another network: SNAT to the target network’s gateway', () => {
    bed.send('B', fromB1(UP_IP, 6, { sport: 43000, dport: 8080 }));
    expect(one('A')).toMatchObject({ src: A_GW, sport: 43000, dst: A1, dport: 80 });
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 6, sport: 80, dport: 43000, flags: 0x12 }));
    expect(one('B')).toMatchObject({ src: UP_IP, sport: 8080, dst: B1, dport: 43000, dmac: MAC.B1 });
  });

  it('unpublish: the port is closed again (RST from the uplink address); a taken port throws', () => {
    expect(() => bed.router.publish({ proto: 6, hostPort: 8080, targetIp: B1, targetPort: 80 })).toThrow(/already published/);
    bed.router.publish({ proto: 6, hostPort: 8080, targetIp: A1, targetPort: 80 }); // same mapping again: fine
    bed.router.unpublish({ proto: 6, hostPort: 8080, targetIp: A1, targetPort: 80 });
    bed.send('UP', fromUp(X, 6, { sport: 5555, dport: 8080 }));
    const rst = one('UP');
    expect([rst.src, rst.sport, rst.dst, rst.dport, rst.tcpFlags, rst.ack]).toEqual([UP_IP, 8080, X, 5555, 0x14, 1001]);
  });

  it('never to an internal network', () => {
    bed.router.publish({ proto: 6, hostPort: 9000, targetIp: ip('172.20.0.2'), targetPort: 80 });
    bed.send('UP', fromUp(X, 6, { sport: 5555, dport: 9000 }));
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({ filtered: 1 });
  });
});

describe('Router: ICMP errors about NATed flows', () => {
  it('an outside port unreachable about a masqueraded UDP flow reaches the container, quote restored', () => {
    bed.send('A', fromA1(S, 17, { sport: 5000, dport: 53 }));
    const q = one('UP');
    // S answers "port unreachable", quoting what it got
    const quote = ipFrame({ dmac: 0, smac: 0, src: UP_IP, dst: S, proto: 17, ttl: 50 }, udp(UP_IP, S, 5000, 53)).slice(14, 14 + 28);
    expect(q.sport).toBe(5000);
    bed.send('UP', pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: S, dst: UP_IP, proto: 1, type: 3, ident: 0, payload: quote }));
    const err = bed.run().A.map(parse)[0];
    expect(err).toBeDefined();
    expect([err.src, err.dst, err.icmpType, err.dmac]).toEqual([S, A1, 3, MAC.A1]);
    expect(err.checksumsOk).toBe(true);
    const inner = parseQuote(err);
    expect([inner.src, inner.dst, inner.sport, inner.dport]).toEqual([A1, S, 5000, 53]);
  });

  it('traceroute through NAT: an outside router’s time exceeded reaches the container from that router', () => {
    const R1 = ip('198.51.100.1');
    bed.send('A', fromA1(S, 17, { sport: 33000, dport: 33434, ttl: 2 }));
    const probe = one('UP');
    expect(probe.ttl).toBe(1);
    const quote = ipFrame({ dmac: 0, smac: 0, src: UP_IP, dst: S, proto: 17, ttl: 0 }, udp(UP_IP, S, 33000, 33434)).slice(14, 42);
    bed.send('UP', pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: R1, dst: UP_IP, proto: 1, type: 11, ident: 0, payload: quote }));
    const err = one('A');
    expect([err.src, err.dst, err.icmpType, err.ttl]).toEqual([R1, A1, 11, 63]);
    const inner = parseQuote(err);
    expect([inner.src, inner.dst, inner.sport, inner.dport]).toEqual([A1, S, 33000, 33434]);
  });

  it('a container’s port unreachable about a published UDP flow leaves from the published address', () => {
    bed.router.publish({ proto: 17, hostPort: 5353, targetIp: A1, targetPort: 53 });
    bed.send('UP', fromUp(X, 17, { sport: 7000, dport: 5353 }));
    const inb = one('A');
    const quote = new Uint8Array(28);
    const f = pkt({ dmac: 0, smac: 0, src: X, dst: A1, proto: 17, sport: 7000, dport: 53, ttl: inb.ttl });
    quote.set(f.slice(14, 42));
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: X, proto: 1, type: 3, ident: 0, payload: quote }));
    const err = one('UP');
    expect([err.src, err.dst, err.icmpType]).toEqual([UP_IP, X, 3]);
    const inner = parseQuote(err);
    expect([inner.src, inner.dst, inner.sport, inner.dport]).toEqual([X, UP_IP, 7000, 5353]);
  });

  it('drops ICMP errors about no known flow, and redirects', () => {
    const quote = pkt({ dmac: 0, smac: 0, src: UP_IP, dst: S, proto: 17, sport: 1, dport: 2 }).slice(14, 42);
    bed.send('UP', pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: S, dst: UP_IP, proto: 1, type: 3, ident: 0, payload: quote }));
    bed.send('UP', pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: S, dst: A1, proto: 1, type: 11, ident: 0, payload: quote }));
    bed.send('UP', pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: UP_GW, dst: UP_IP, proto: 1, type: 5, ident: 0, payload: quote })); // a redirect
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({ notForUs: 1, filtered: 1, unsupported: 1 });
  });
});

describe('Router: fragments through NAT', () => {
  it('later fragments follow the first one’s flow; ones seen first are dropped', () => {
    const data = udp(A1, S, 6000, 9999, new Uint8Array(24).map((_, i) => i));
    const first = ipFrame({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, flagsFrag: 0x2000, ident: 77 }, data.slice(0, 16));
    const second = ipFrame({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, flagsFrag: 2, ident: 77 }, data.slice(16));
    bed.send('A', second); // before its first fragment: unknown
    bed.send('A', first);
    bed.send('A', second);
    const out = bed.run().UP.map(parse);
    expect(out.length).toBe(2);
    expect(out.map((p) => [p.src, p.dst, p.flagsFrag, p.checksumsOk])).toEqual([
      [UP_IP, S, 0x2000, true],
      [UP_IP, S, 2, true],
    ]);
    // the reassembled datagram checks out for the NATed addresses
    const whole = new Uint8Array(32);
    whole.set(out[0].l4, 0);
    whole.set(out[1].l4, 16);
    const reparsed = parse(ipFrame({ dmac: 0, smac: 0, src: UP_IP, dst: S, proto: 17 }, whole));
    expect(reparsed.checksumsOk).toBe(true);
    expect(bed.drops()).toEqual({ unsupported: 1 });
  });
});

describe('Router: isolation between networks', () => {
  it('drops network A → network B, A → A via the router and uplink → container (filtered)', () => {
    bed.send('A', fromA1(B1, 6));
    bed.send('A', fromA1(A2, 6));
    bed.send('UP', pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: X, dst: A1, proto: 6 }));
    bed.send('UP', pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: X, dst: HOST_PEER, proto: 1 }));
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({ filtered: 4 });
    expect(bed.ct.size).toBe(0);
  });

  it("does not answer another network's gateway address (ping, TCP), but the host link may", () => {
    bed.send('A', fromA1(B_GW, 1));
    bed.send('A', fromA1(B_GW, 6));
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({ filtered: 2 });
    bed.send('A', fromA1(A_GW, 1)); // its own gateway answers
    expect(one('A')).toMatchObject({ src: A_GW, dst: A1, icmpType: 0 });
    bed.send('HOST', pkt({ dmac: MAC.HOST, smac: MAC.HOSTPEER, src: HOST_PEER, dst: B_GW, proto: 1 }));
    expect(one('HOST')).toMatchObject({ src: B_GW, dst: HOST_PEER, icmpType: 0 });
  });

  it('a spoofed tuple from the wrong iface does not ride an existing flow', () => {
    bed.send('A', fromA1(S, 17, { sport: 5000, dport: 53 }));
    one('UP');
    bed.send('B', pkt({ dmac: MAC.B, smac: MAC.B1, src: B1, dst: S, proto: 17, sport: 5000, dport: 53 }));
    one('UP'); // a new flow of its own (remapped), not A1's
    // the reply tuple of A1's flow, but from the host link instead of the uplink
    bed.send('HOST', pkt({ dmac: MAC.HOST, smac: MAC.HOSTPEER, src: S, dst: UP_IP, proto: 17, sport: 53, dport: 5000 }));
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({ filtered: 1 });
  });

  it('host link ↔ network passes without NAT; a network’s spoofed source is filtered', () => {
    bed.send('HOST', pkt({ dmac: MAC.HOST, smac: MAC.HOSTPEER, src: HOST_PEER, dst: B1, proto: 6, sport: 1234, dport: 22 }));
    expect(one('B')).toMatchObject({ src: HOST_PEER, dst: B1, sport: 1234, dport: 22, ttl: 63 });
    bed.send('B', pkt({ dmac: MAC.B, smac: MAC.B1, src: B1, dst: HOST_PEER, proto: 6, sport: 22, dport: 1234, flags: 0x12 }));
    expect(one('HOST')).toMatchObject({ src: B1, dst: HOST_PEER, sport: 22, dport: 1234 });
    bed.send('A', fromA1(HOST_PEER, 17, { sport: 9, dport: 9 }));
    expect(one('HOST')).toMatchObject({ src: A1, dst: HOST_PEER });
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: B1, dst: S, proto: 17 }));
    bed.send('B', pkt({ dmac: MAC.B, smac: MAC.B1, src: B1, dst: B_GW, proto: 47 }));
    const out = bed.run();
    expect(out.B.length).toBe(1); // protocol unreachable for GRE to the gateway
    expect(parse(out.B[0])).toMatchObject({ icmpType: 3, icmpCode: 2, src: B_GW });
    expect(bed.drops()).toEqual({ filtered: 1, unsupported: 1 });
  });
});
