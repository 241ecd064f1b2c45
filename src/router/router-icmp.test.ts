import { afterEach, describe, expect, it } from 'vitest';
import { toHex, w16 } from '../wire/bytes.js';
import { checksum } from '../wire/checksum.js';
import { A1, A_GW, HOST_PEER, I1, I_GW, MAC, S, Testbed, UP_GW, UP_IP, X, ip, ipFrame, parse, pkt, udp, type BedOptions, type IfName, type Parsed } from './testbed.js';

let bed: Testbed;

function ready(opts: BedOptions = {}): Testbed {
  bed = new Testbed(opts);
  bed.learn('A', MAC.A1, A1);
  bed.learn('I', MAC.I1, I1);
  if (opts.uplink !== false) bed.learn('UP', MAC.UPGW, UP_GW);
  if (opts.host !== false) bed.learn('HOST', MAC.HOSTPEER, HOST_PEER);
  return bed;
}

function one(where: IfName): Parsed {
  const out = bed.run();
  expect(Testbed.counts(out)).toEqual({ [where]: 1 });
  const p = parse(out[where][0]);
  expect(p.checksumsOk).toBe(true);
  return p;
}

/** the ICMP error's quote is exactly the offending IP header + 8 bytes, as sent */
function expectQuote(err: Parsed, sent: Uint8Array): void {
  const hl = (sent[14] & 15) << 2;
  expect(toHex(err.quote)).toBe(toHex(sent, 14, hl + 8));
}

afterEach(() => {
  bed.collect();
  for (const id of Object.values(bed.ids)) bed.router.removeInterface(id);
  expect(bed.pool.inUse).toBe(0);
});

describe('Router: TTL, MTU and unreachables', () => {
  it('TTL 1 → time exceeded from the gateway, quoting the packet as received; no flow made', () => {
    ready();
    const f = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, ttl: 1, sport: 33434, dport: 33435 });
    bed.send('A', f);
    const err = one('A');
    expect([err.src, err.dst, err.icmpType, err.icmpCode, err.ttl, err.dmac]).toEqual([A_GW, A1, 11, 0, 64, MAC.A1]);
    expectQuote(err, f);
    expect(bed.ct.size).toBe(0);
    expect(bed.drops()).toEqual({ ttlExceeded: 1 });
    // TTL 2 passes with TTL 1
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, ttl: 2 }));
    expect(one('UP').ttl).toBe(1);
  });

  it('TTL expiry of an inbound reply goes to the outside sender, quoting what it sent', () => {
    ready();
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 6, sport: 40000, dport: 80 }));
    one('UP');
    const f = pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: S, dst: UP_IP, proto: 6, sport: 80, dport: 40000, flags: 0x12, ttl: 1 });
    bed.send('UP', f);
    const err = one('UP');
    expect([err.src, err.dst, err.icmpType, err.dmac]).toEqual([UP_IP, S, 11, MAC.UPGW]);
    expectQuote(err, f);
  });

  it('DF and longer than the egress MTU → fragmentation needed with the next-hop MTU', () => {
    ready({ mtu: { UP: 1400 } });
    const f = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, payload: new Uint8Array(1472) });
    bed.send('A', f);
    const err = one('A');
    expect([err.src, err.dst, err.icmpType, err.icmpCode, err.icmpRest]).toEqual([A_GW, A1, 3, 4, 1400]);
    expectQuote(err, f);
    expect(bed.drops()).toEqual({ oversize: 1 });
    expect(bed.ct.size).toBe(0);
    // exactly the MTU passes
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, payload: new Uint8Array(1372) }));
    expect(one('UP').totalLen).toBe(1400);
  });

  it('without DF the packet is fragmented (after NAT), and the pieces reassemble to it', () => {
    ready({ mtu: { UP: 600 } });
    const payload = new Uint8Array(1400).map((_, i) => i * 7);
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, flagsFrag: 0, sport: 7777, dport: 9, payload }));
    const frags = bed.run().UP.map(parse);
    expect(frags.map((p) => [p.totalLen, p.flagsFrag, p.src, p.ttl, p.checksumsOk])).toEqual([
      [596, 0x2000, UP_IP, 63, true],
      [596, 0x2000 | 72, UP_IP, 63, true],
      [276, 144, UP_IP, 63, true],
    ]);
    const whole = new Uint8Array(1408);
    let at = 0;
    for (const p of frags) {
      whole.set(p.l4, at);
      at += p.l4.length;
    }
    const re = parse(ipFrame({ dmac: 0, smac: 0, src: UP_IP, dst: S, proto: 17 }, whole));
    expect(re.checksumsOk).toBe(true);
    expect([re.sport, re.dport]).toEqual([7777, 9]);
    expect(toHex(re.l4.slice(8))).toBe(toHex(payload));
    expect(bed.router.stats().fragmentsMade).toBe(3);
  });

  it('no route (uplink without a gateway) → net unreachable from the ingress iface; on-link uplink hosts still work', () => {
    ready({ uplinkGateway: 0 });
    const f = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: X, proto: 1 });
    bed.send('A', f);
    const err = one('A');
    expect([err.src, err.dst, err.icmpType, err.icmpCode]).toEqual([A_GW, A1, 3, 0]);
    expectQuote(err, f);
    expect(bed.drops()).toEqual({ noRoute: 1 });
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: UP_GW, proto: 1 }));
    expect(one('UP')).toMatchObject({ src: UP_IP, dst: UP_GW, dmac: MAC.UPGW });
  });

  it('UDP to a closed router port → port unreachable; TCP → RST', () => {
    ready();
    const u = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 17, sport: 5000, dport: 9999 });
    bed.send('A', u);
    const err = one('A');
    expect([err.src, err.dst, err.icmpType, err.icmpCode]).toEqual([A_GW, A1, 3, 3]);
    expectQuote(err, u);
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 6, sport: 5001, dport: 22, flags: 0x02 }));
    const rst = one('A');
    expect([rst.src, rst.sport, rst.dst, rst.dport, rst.tcpFlags, rst.seq, rst.ack]).toEqual([A_GW, 22, A1, 5001, 0x14, 0, 1001]);
    const ackSeg = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 6, sport: 5001, dport: 22, flags: 0x10 });
    bed.send('A', ackSeg);
    expect(one('A')).toMatchObject({ tcpFlags: 0x04, seq: 0 });
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 6, flags: 0x04 })); // no RST for a RST
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.router.stats().rstSent).toBe(2);
  });

  it('rate-limits ICMP errors (token bucket) and counts what it held back', () => {
    ready({ icmpBurst: 2, icmpRatePerSec: 1 });
    for (let i = 0; i < 4; i++) bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, ttl: 1 }));
    expect(bed.run().A.length).toBe(2);
    expect(bed.router.stats()).toMatchObject({ icmpErrorsSent: 2, icmpRateLimited: 2 });
    bed.now += 1000;
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, ttl: 1 }));
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, ttl: 1 }));
    expect(bed.run().A.length).toBe(1);
  });

  it('sends no error about ICMP errors, later fragments or group addresses', () => {
    ready();
    // an ICMP error of a tracked flow arriving with TTL 1: dropped silently
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, sport: 5000, dport: 53 }));
    one('UP');
    const quote = ipFrame({ dmac: 0, smac: 0, src: UP_IP, dst: S, proto: 17 }, udp(UP_IP, S, 5000, 53)).slice(14, 42);
    bed.send('UP', pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: S, dst: UP_IP, proto: 1, type: 3, ident: 0, payload: quote, ttl: 1 }));
    // a later fragment with TTL 1 whose first fragment went through
    const data = udp(A1, S, 6000, 53, new Uint8Array(24));
    bed.send('A', ipFrame({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, flagsFrag: 0x2000, ident: 5 }, data.slice(0, 16)));
    bed.send('A', ipFrame({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, flagsFrag: 2, ident: 5, ttl: 1 }, data.slice(16)));
    // to the subnet broadcast / multicast (to our MAC)
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: ip('172.18.255.255'), proto: 17, ttl: 1 }));
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: ip('224.0.0.251'), proto: 17, ttl: 1 }));
    const out = bed.run();
    expect(Testbed.counts(out)).toEqual({ UP: 1 }); // the first fragment
    expect(bed.drops()).toEqual({ ttlExceeded: 2, notForUs: 2 });
    expect(bed.router.stats().icmpErrorsSent).toBe(0);
  });
});

describe('Router: internal networks', () => {
  it('nothing leaves: net unreachable from its gateway for any address outside its subnet', () => {
    ready();
    for (const dst of [S, UP_IP, A1, HOST_PEER]) {
      const f = pkt({ dmac: MAC.I, smac: MAC.I1, src: I1, dst, proto: 6 });
      bed.send('I', f);
      const err = one('I');
      expect([err.src, err.dst, err.icmpType, err.icmpCode]).toEqual([I_GW, I1, 3, 0]);
      expectQuote(err, f);
    }
    bed.send('I', pkt({ dmac: MAC.I, smac: MAC.I1, src: I1, dst: I_GW, proto: 1 }));
    expect(one('I')).toMatchObject({ src: I_GW, dst: I1, icmpType: 0 });
    expect(bed.ct.size).toBe(0);
  });

  it('nothing from the uplink enters it; the host link reaches it', () => {
    ready();
    bed.send('UP', pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: X, dst: I1, proto: 6 }));
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({ filtered: 1 });
    bed.send('HOST', pkt({ dmac: MAC.HOST, smac: MAC.HOSTPEER, src: HOST_PEER, dst: I1, proto: 1 }));
    expect(one('I')).toMatchObject({ src: HOST_PEER, dst: I1 });
    // the host's flows are answered (as the host reaches containers of internal networks on Docker)
    bed.send('I', pkt({ dmac: MAC.I, smac: MAC.I1, src: I1, dst: HOST_PEER, proto: 1, type: 0 }));
    expect(one('HOST')).toMatchObject({ src: I1, dst: HOST_PEER, icmpType: 0 });
    // but nothing new: a request of its own to the host is net unreachable
    bed.send('I', pkt({ dmac: MAC.I, smac: MAC.I1, src: I1, dst: HOST_PEER, proto: 1, ident: 99 }));
    expect(one('I')).toMatchObject({ icmpType: 3, icmpCode: 0 });
  });
});

describe('Router: malformed packets', () => {
  it('counts and drops them, never forwards them', () => {
    ready();
    const good = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17 });
    const badSum = good.slice();
    badSum[24] ^= 1;
    const ihl4 = good.slice();
    ihl4[14] = 0x44;
    const tooLong = good.slice(0, good.length - 1);
    const shortTotal = good.slice();
    w16(shortTotal, 16, 19);
    w16(shortTotal, 24, 0);
    w16(shortTotal, 24, checksum(shortTotal, 14, 20));
    const udpLen = good.slice();
    w16(udpLen, 38, 200); // UDP length beyond the packet
    const tcpShort = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 6 }).slice(0, 14 + 20 + 12);
    w16(tcpShort, 16, 32);
    w16(tcpShort, 24, 0);
    w16(tcpShort, 24, checksum(tcpShort, 14, 20));
    const loopSrc = pkt({ dmac: MAC.A, smac: MAC.A1, src: ip('127.0.0.1'), dst: S, proto: 17 });
    const arpShort = new Uint8Array(30).fill(0xff);
    arpShort[12] = 0x08;
    arpShort[13] = 0x06;
    for (const f of [good.slice(0, 10), good.slice(0, 20), badSum, ihl4, tooLong, shortTotal, udpLen, tcpShort, loopSrc, arpShort]) bed.send('A', f);
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({ runt: 1, malformed: 8, badChecksum: 1 });
    expect(bed.ct.size).toBe(0);
  });

  it('trims Ethernet padding from forwarded packets', () => {
    ready();
    const f = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, payload: new Uint8Array(2) });
    const padded = new Uint8Array(60).fill(0xee);
    padded.set(f);
    bed.send('A', padded);
    const p = one('UP');
    expect(p.totalLen).toBe(f.length - 14);
  });
});
