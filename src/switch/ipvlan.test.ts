import { afterEach, describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { Port } from '../dataplane/port.js';
import { rng } from '../lab/rng.js';
import { toHex, u32, w16, w32 } from '../wire/bytes.js';
import { checksum } from '../wire/checksum.js';
import { mac48, writeMac48 } from '../wire/ethernet.js';
import { type IpvlanMode, type IpvlanOptions, IpvlanSwitch } from './ipvlan.js';

const BCAST = 0xffffffffffff;
const MCAST = 0x01005e0000fb;
const PMAC = 0x525400aabbcc; // the parent's MAC, shared by every child
const RTR = 0x001122330001; // the segment's router
const EXT = 0x001122330050; // a host on the segment
const ip = (a: number, b: number, c: number, d: number): number => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
const PARENT_IP = ip(192, 168, 1, 10);
const A_IP = ip(192, 168, 1, 101);
const B_IP = ip(192, 168, 1, 102);
const C_IP = ip(192, 168, 1, 103);
const RTR_IP = ip(192, 168, 1, 1);
const EXT_IP = ip(192, 168, 1, 50);
const NET_IP = ip(8, 8, 8, 8);
const MDNS_IP = ip(224, 0, 0, 251);

/** An ARP packet in an Ethernet frame (42 bytes). */
function arp(dst: number, src: number, op: number, sha: number, spa: number, tha: number, tpa: number): Uint8Array {
  const b = new Uint8Array(42);
  writeMac48(b, 0, dst);
  writeMac48(b, 6, src);
  w16(b, 12, 0x0806);
  w16(b, 14, 1);
  w16(b, 16, 0x0800);
  b[18] = 6;
  b[19] = 4;
  w16(b, 20, op);
  writeMac48(b, 22, sha);
  w32(b, 28, spa);
  writeMac48(b, 32, tha);
  w32(b, 38, tpa);
  return b;
}

/** An IPv4/UDP frame, `data` payload bytes, checksummed header. */
function udp(dst: number, src: number, sip: number, dip: number, data = 18): Uint8Array {
  const b = new Uint8Array(14 + 20 + 8 + data);
  writeMac48(b, 0, dst);
  writeMac48(b, 6, src);
  w16(b, 12, 0x0800);
  b[14] = 0x45;
  w16(b, 16, 20 + 8 + data);
  w16(b, 18, 0x1234);
  b[22] = 64;
  b[23] = 17;
  w32(b, 26, sip);
  w32(b, 30, dip);
  w16(b, 24, checksum(b, 14, 20));
  w16(b, 34, 40000);
  w16(b, 36, 53);
  w16(b, 38, 8 + data);
  for (let i = 0; i < data; i++) b[42 + i] = (i * 13) & 0xff;
  return b;
}

/** the same bytes with the Ethernet destination replaced */
function withDst(f: Uint8Array, dst: number): Uint8Array {
  const b = f.slice();
  writeMac48(b, 0, dst);
  return b;
}

let pool: FramePool;
let parent: Port;
let kids: Port[];
let sw: IpvlanSwitch;

function rig(mode: IpvlanMode, extra: Partial<IpvlanOptions> = {}, ips: number[] = [A_IP, B_IP, C_IP]): void {
  pool = new FramePool({ capacity: 256 });
  parent = new Port(1, 'eth0', 64);
  kids = ips.map((_, i) => new Port(2 + i, `c${i}`, 64));
  sw = new IpvlanSwitch(pool, parent, { mode, parentMac: PMAC, seed: 5, ...extra });
  kids.forEach((k, i) => sw.attach(k, ips[i]));
}
function send(p: Port, bytes: Uint8Array): void {
  expect(p.rx.push(pool.fromBytes(bytes, p.id))).toBe(true);
}
/** Run at `now`, then drain every tx ring: name → frames (hex), freed. */
function run(now = 0): Record<string, string[]> {
  sw.process(now);
  const out: Record<string, string[]> = {};
  for (const p of [parent, ...kids]) {
    for (let h = p.tx.pop(); h >= 0; h = p.tx.pop()) {
      (out[p.name] ??= []).push(toHex(pool.toBytes(h)));
      pool.free(h);
    }
  }
  return out;
}
function who(out: Record<string, string[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.length]));
}
const hx = (b: Uint8Array): string => toHex(b);

afterEach(() => {
  run();
  for (const p of [parent, ...kids]) for (let h = p.rx.pop(); h >= 0; h = p.rx.pop()) pool.free(h);
  expect(pool.inUse).toBe(0);
});

describe('IpvlanSwitch l2 from the parent', () => {
  it('delivers an ARP request or reply to the child whose IP it targets, and only to it', () => {
    rig('l2');
    const req = arp(BCAST, EXT, 1, EXT, EXT_IP, 0, B_IP);
    send(parent, req);
    expect(run()).toEqual({ c1: [hx(req)] });
    const rep = arp(PMAC, RTR, 2, RTR, RTR_IP, PMAC, C_IP);
    send(parent, rep);
    expect(run()).toEqual({ c2: [hx(rep)] });
    // per endpoint IP: each gets its own
    for (const t of [A_IP, B_IP, C_IP]) send(parent, arp(BCAST, EXT, 1, EXT, EXT_IP, 0, t));
    expect(who(run())).toEqual({ c0: 1, c1: 1, c2: 1 });
  });

  it('floods other broadcast/multicast (ARP for someone else too) to every child', () => {
    rig('l2');
    const req = arp(BCAST, EXT, 1, EXT, EXT_IP, 0, RTR_IP);
    send(parent, req);
    expect(run()).toEqual({ c0: [hx(req)], c1: [hx(req)], c2: [hx(req)] });
    send(parent, udp(MCAST, EXT, EXT_IP, MDNS_IP));
    send(parent, udp(BCAST, EXT, EXT_IP, 0xffffffff));
    expect(who(run())).toEqual({ c0: 2, c1: 2, c2: 2 });
  });

  it('delivers unicast to parentMac by IPv4 destination; the parent’s own and others’ → notForUs', () => {
    rig('l2');
    const f = udp(PMAC, RTR, NET_IP, B_IP);
    send(parent, f);
    expect(run()).toEqual({ c1: [hx(f)] });
    send(parent, udp(PMAC, RTR, NET_IP, PARENT_IP)); // the parent host's
    send(parent, udp(EXT, RTR, NET_IP, B_IP)); // another MAC
    send(parent, arp(PMAC, RTR, 2, RTR, RTR_IP, PMAC, PARENT_IP)); // ARP reply for the parent host
    const v6 = udp(PMAC, RTR, NET_IP, B_IP);
    w16(v6, 12, 0x86dd);
    send(parent, v6);
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ notForUs: 4 });
  });

  it('does not re-deliver a child’s own broadcast hairpinned back (source parentMac + a child’s address)', () => {
    rig('l2');
    send(parent, arp(BCAST, PMAC, 1, PMAC, A_IP, 0, RTR_IP));
    send(parent, udp(BCAST, PMAC, A_IP, 0xffffffff));
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ filtered: 2 });
    // the parent host's broadcast (its address is no child's) is delivered
    send(parent, arp(BCAST, PMAC, 1, PMAC, PARENT_IP, 0, RTR_IP));
    expect(who(run())).toEqual({ c0: 1, c1: 1, c2: 1 });
  });

  it('drops malformed ARP and IPv4', () => {
    rig('l2');
    const a = arp(BCAST, EXT, 1, EXT, EXT_IP, 0, B_IP);
    a[18] = 8;
    send(parent, a);
    send(parent, arp(BCAST, EXT, 1, EXT, EXT_IP, 0, B_IP).subarray(0, 41));
    const f = udp(PMAC, RTR, NET_IP, B_IP);
    f[14] = 0x65;
    send(parent, f);
    send(parent, udp(PMAC, RTR, NET_IP, B_IP).subarray(0, 33));
    send(parent, new Uint8Array(13));
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ malformed: 4, runt: 1 });
  });
});

describe('IpvlanSwitch l2 from a child', () => {
  it('delivers IPv4 to another child’s address locally, never on the wire', () => {
    rig('l2');
    const f = udp(PMAC, PMAC, A_IP, C_IP);
    send(kids[0], f);
    expect(run()).toEqual({ c2: [hx(f)] });
  });

  it('delivers ARP for another child’s address to that child only', () => {
    rig('l2');
    const req = arp(BCAST, PMAC, 1, PMAC, A_IP, 0, B_IP);
    send(kids[0], req);
    expect(run()).toEqual({ c1: [hx(req)] });
    const rep = arp(PMAC, PMAC, 2, PMAC, B_IP, PMAC, A_IP);
    send(kids[1], rep);
    expect(run()).toEqual({ c0: [hx(rep)] });
  });

  it('sends broadcast to the parent and every other child; other frames to the parent', () => {
    rig('l2');
    const g = arp(BCAST, PMAC, 1, PMAC, A_IP, 0, A_IP); // gratuitous: own address
    send(kids[0], g);
    expect(run()).toEqual({ eth0: [hx(g)], c1: [hx(g)], c2: [hx(g)] });
    const who1 = arp(BCAST, PMAC, 1, PMAC, A_IP, 0, RTR_IP);
    send(kids[0], who1);
    expect(who(run())).toEqual({ eth0: 1, c1: 1, c2: 1 });
    const out1 = udp(RTR, PMAC, A_IP, NET_IP);
    const out2 = udp(PMAC, PMAC, A_IP, PARENT_IP); // the parent host's address
    const out3 = udp(RTR, PMAC, A_IP, B_IP); // a child's address but to another MAC: the kernel sends it out too
    send(kids[0], out1);
    send(kids[0], out2);
    send(kids[0], out3);
    expect(run()).toEqual({ eth0: [hx(out1), hx(out2), hx(out3)] });
    expect(sw.counters.drops).toBe(0);
  });

  it('drops frames whose source is not parentMac (badSrcMac) and to the child’s own address (hairpin)', () => {
    rig('l2');
    send(kids[0], udp(RTR, EXT, A_IP, NET_IP));
    send(kids[0], udp(PMAC, PMAC, A_IP, A_IP));
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ badSrcMac: 1, hairpin: 1 });
  });
});

describe('IpvlanSwitch l3', () => {
  it('passes no broadcast or multicast, either way (filtered)', () => {
    rig('l3');
    send(parent, udp(BCAST, EXT, EXT_IP, 0xffffffff));
    send(parent, udp(MCAST, EXT, EXT_IP, MDNS_IP));
    send(parent, arp(BCAST, EXT, 1, EXT, EXT_IP, 0, RTR_IP)); // not for a child
    send(kids[0], udp(BCAST, PMAC, A_IP, 0xffffffff));
    send(kids[0], udp(MCAST, PMAC, A_IP, MDNS_IP));
    send(kids[0], udp(PMAC, PMAC, A_IP, MDNS_IP)); // multicast address behind a unicast MAC
    expect(run()).toEqual({});
    expect(sw.counters.snapshot()).toMatchObject({ txPackets: 0, drops: 6, dropReasons: { filtered: 6 } });
  });

  it('answers the segment’s ARP for a child’s address with parentMac, and learns the asker', () => {
    rig('l3');
    send(parent, arp(BCAST, RTR, 1, RTR, RTR_IP, 0, B_IP));
    expect(run(100)).toEqual({ eth0: [hx(arp(RTR, PMAC, 2, PMAC, B_IP, RTR, RTR_IP))] });
    expect(sw.arpReplies).toBe(1);
    expect(sw.neighbours()).toEqual([{ ip: RTR_IP, mac: RTR, state: 'reachable', ageMs: 0 }]);
    // unicast requests (a refresh) too
    send(parent, arp(PMAC, RTR, 1, RTR, RTR_IP, PMAC, C_IP));
    expect(run()).toEqual({ eth0: [hx(arp(RTR, PMAC, 2, PMAC, C_IP, RTR, RTR_IP))] });
    send(parent, arp(PMAC, RTR, 1, RTR, RTR_IP, PMAC, PARENT_IP)); // the parent host's business
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ notForUs: 1 });
  });

  it('routes IPv4 from the parent to the child owning the destination, learning the sender', () => {
    rig('l3');
    const f = udp(PMAC, RTR, NET_IP, A_IP);
    send(parent, f);
    expect(run(50)).toEqual({ c0: [hx(f)] });
    expect(sw.neighbours()).toEqual([{ ip: NET_IP, mac: RTR, state: 'reachable', ageMs: 0 }]);
    // and the reply goes back to the MAC it came from
    const r = udp(PMAC, PMAC, A_IP, NET_IP);
    send(kids[0], r);
    expect(run(60)).toEqual({ eth0: [hx(withDst(r, RTR))] });
    // not a child's address, or not to parentMac: notForUs
    send(parent, udp(PMAC, RTR, NET_IP, PARENT_IP));
    send(parent, udp(EXT, RTR, NET_IP, A_IP));
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ notForUs: 2 });
  });

  it('on a miss, sends an ARP request (from the child’s address) and drops the frame; the reply is learned', () => {
    rig('l3');
    const f = udp(PMAC, PMAC, A_IP, EXT_IP);
    send(kids[0], f);
    expect(run(1000)).toEqual({ eth0: [hx(arp(BCAST, PMAC, 1, PMAC, A_IP, 0, EXT_IP))] });
    expect(sw.counters.snapshot().dropReasons).toEqual({ noRoute: 1 });
    expect(sw.arpRequests).toBe(1);
    expect(sw.neighbours()).toEqual([{ ip: EXT_IP, mac: 0, state: 'incomplete', ageMs: 0 }]);
    // retried at most once per arpRetransMs
    send(kids[0], f);
    expect(run(1999)).toEqual({});
    send(kids[0], f);
    expect(who(run(2000))).toEqual({ eth0: 1 });
    expect(sw.arpRequests).toBe(2);
    // the answer comes
    send(parent, arp(PMAC, EXT, 2, EXT, EXT_IP, PMAC, A_IP));
    expect(run(2010)).toEqual({});
    expect(sw.neighbours()).toEqual([{ ip: EXT_IP, mac: EXT, state: 'reachable', ageMs: 0 }]);
    send(kids[0], f);
    expect(run(2020)).toEqual({ eth0: [hx(withDst(f, EXT))] });
    expect(sw.counters.snapshot().dropReasons).toEqual({ noRoute: 3 });
  });

  it('uses the gateway’s MAC for unknown destinations, asking for it from parentIp', () => {
    rig('l3', { gatewayIp: RTR_IP, parentIp: PARENT_IP });
    const f = udp(PMAC, PMAC, B_IP, NET_IP);
    send(kids[1], f);
    expect(run(0)).toEqual({ eth0: [hx(arp(BCAST, PMAC, 1, PMAC, PARENT_IP, 0, RTR_IP))] });
    send(parent, arp(PMAC, RTR, 2, RTR, RTR_IP, PMAC, PARENT_IP));
    send(kids[1], f);
    expect(run(10)).toEqual({ eth0: [hx(withDst(f, RTR))] });
    // a destination learned directly wins over the gateway
    send(parent, udp(PMAC, EXT, EXT_IP, B_IP));
    run(20);
    const g = udp(PMAC, PMAC, B_IP, EXT_IP);
    send(kids[1], g);
    expect(run(30)).toEqual({ eth0: [hx(withDst(g, EXT))] });
  });

  it('answers every child ARP request with parentMac, except for the child’s own address', () => {
    rig('l3');
    send(kids[0], arp(BCAST, PMAC, 1, PMAC, A_IP, 0, RTR_IP));
    expect(run()).toEqual({ c0: [hx(arp(PMAC, PMAC, 2, PMAC, RTR_IP, PMAC, A_IP))] });
    send(kids[0], arp(BCAST, PMAC, 1, PMAC, A_IP, 0, B_IP));
    expect(run()).toEqual({ c0: [hx(arp(PMAC, PMAC, 2, PMAC, B_IP, PMAC, A_IP))] });
    send(kids[0], arp(BCAST, PMAC, 1, PMAC, 0, 0, A_IP)); // duplicate-address probe
    send(kids[0], arp(BCAST, PMAC, 1, PMAC, A_IP, 0, A_IP)); // gratuitous
    send(kids[0], arp(PMAC, PMAC, 2, PMAC, A_IP, PMAC, RTR_IP)); // a reply: nobody asked
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ filtered: 3 });
    expect(sw.arpReplies).toBe(2);
    expect(sw.neighbours()).toEqual([]); // nothing learned from children
  });

  it('delivers child-to-child IPv4 locally with dst MAC = parentMac', () => {
    rig('l3');
    const f = udp(RTR, PMAC, A_IP, C_IP); // even if the child had another MAC cached
    send(kids[0], f);
    expect(run()).toEqual({ c2: [hx(withDst(f, PMAC))] });
    send(kids[0], udp(PMAC, PMAC, A_IP, A_IP));
    send(kids[0], udp(PMAC, EXT, A_IP, C_IP));
    const v6 = udp(PMAC, PMAC, A_IP, C_IP);
    w16(v6, 12, 0x86dd);
    send(kids[0], v6);
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ hairpin: 1, badSrcMac: 1, unsupported: 1 });
  });

  it('ages neighbours in tick(): confirmed ones after neighbourAgingMs, pending ones after 3 retransmits', () => {
    rig('l3', { neighbourAgingMs: 10_000, arpRetransMs: 500 });
    send(parent, udp(PMAC, RTR, NET_IP, A_IP));
    send(kids[0], udp(PMAC, PMAC, A_IP, EXT_IP));
    run(0);
    expect(sw.neighbours().map((n) => [n.ip, n.state])).toEqual([
      [NET_IP, 'reachable'],
      [EXT_IP, 'incomplete'],
    ]);
    expect(sw.tick(1499)).toBe(0);
    expect(sw.tick(1500)).toBe(1);
    expect(sw.neighbours().map((n) => n.ip)).toEqual([NET_IP]);
    send(parent, udp(PMAC, RTR, NET_IP, A_IP)); // refreshed by traffic
    run(5000);
    expect(sw.tick(14_999)).toBe(0);
    expect(sw.neighbours()[0].ageMs).toBe(9_999);
    expect(sw.tick(15_000)).toBe(1);
    expect(sw.neighbours()).toEqual([]);
  });

  it('a full neighbour table refuses (macTableFull, no drop) and keeps what it has', () => {
    rig('l3', { neighbours: 2 });
    for (let i = 0; i < 4; i++) send(parent, udp(PMAC, 0x020000000010 + i, ip(10, 0, 0, i + 1), A_IP));
    expect(who(run())).toEqual({ c0: 4 });
    expect(sw.neighbours().length).toBe(2);
    expect(sw.counters.reasons[5]).toBe(2); // macTableFull
    expect(sw.counters.drops).toBe(0);
  });

  it('learns nothing from broadcast, only updates a known neighbour from ARP not addressed to it', () => {
    rig('l3');
    send(parent, arp(BCAST, EXT, 1, EXT, EXT_IP, 0, RTR_IP));
    run();
    expect(sw.neighbours()).toEqual([]);
    send(parent, udp(PMAC, EXT, EXT_IP, A_IP));
    run();
    const moved = 0x001122339999;
    send(parent, arp(BCAST, moved, 2, moved, EXT_IP, BCAST, EXT_IP)); // gratuitous: EXT_IP moved
    run(7);
    expect(sw.neighbours()).toEqual([{ ip: EXT_IP, mac: moved, state: 'reachable', ageMs: 0 }]);
  });

  it('l3s calls track() for every IPv4 frame passing (inbound from the parent), l3 never does', () => {
    const seen: [string, boolean][] = [];
    rig('l3s', {
      track: (p, h, inbound) => {
        const o = p.offsets[h];
        seen.push([`${u32(p.bytes, o + 26) >>> 0}>${u32(p.bytes, o + 30) >>> 0}:${mac48(p.bytes, o) === PMAC}`, inbound]);
      },
    });
    send(parent, udp(PMAC, RTR, NET_IP, A_IP));
    send(kids[0], udp(PMAC, PMAC, A_IP, NET_IP));
    send(kids[0], udp(PMAC, PMAC, A_IP, B_IP));
    send(kids[0], udp(PMAC, PMAC, A_IP, EXT_IP)); // no route: not passing
    send(parent, arp(BCAST, RTR, 1, RTR, RTR_IP, 0, A_IP)); // not IPv4
    expect(who(run())).toEqual({ c0: 1, c1: 1, eth0: 3 });
    expect(seen).toEqual([
      [`${NET_IP}>${A_IP}:true`, true],
      [`${A_IP}>${NET_IP}:false`, false], // called after the rewrite to the router's MAC
      [`${A_IP}>${B_IP}:true`, false],
    ]);
    const calls: number[] = [];
    run();
    sw = new IpvlanSwitch(pool, parent, { mode: 'l3', parentMac: PMAC, track: (_p, h) => void calls.push(h) });
    sw.attach(kids[0], A_IP);
    send(parent, udp(PMAC, RTR, NET_IP, A_IP));
    expect(who(run())).toEqual({ c0: 1 });
    expect(calls).toEqual([]);
  });
});

describe('IpvlanSwitch plumbing', () => {
  it('rejects bad configuration and attachments with clear errors', () => {
    rig('l2');
    expect(() => sw.attach(new Port(9, 'c9'), B_IP)).toThrow(/address 192.168.1.102 is already used by c1/);
    expect(() => sw.attach(new Port(9, 'c9'), 0)).toThrow(/bad endpoint address/);
    expect(() => sw.attach(new Port(9, 'c9'), MDNS_IP)).toThrow(/bad endpoint address/);
    expect(() => sw.attach(kids[0], EXT_IP)).toThrow(/already attached/);
    expect(() => new IpvlanSwitch(pool, parent, { mode: 'l4' as IpvlanMode, parentMac: PMAC })).toThrow(/unknown ipvlan mode/);
    expect(() => new IpvlanSwitch(pool, parent, { mode: 'l2', parentMac: MCAST })).toThrow(/parentMac/);
    expect(sw.lookup(C_IP)).toBe(kids[2]);
    expect(sw.lookup(EXT_IP)).toBe(null);
  });

  it('detach frees the child’s frames and forgets its address', () => {
    rig('l2');
    send(parent, udp(PMAC, RTR, NET_IP, B_IP));
    sw.process(0);
    send(kids[1], udp(RTR, PMAC, B_IP, NET_IP));
    expect(pool.inUse).toBe(2);
    sw.detach(kids[1]);
    expect(pool.inUse).toBe(0);
    kids = kids.filter((_, i) => i !== 1);
    send(parent, udp(PMAC, RTR, NET_IP, B_IP));
    send(parent, udp(PMAC, RTR, NET_IP, C_IP));
    expect(who(run())).toEqual({ c2: 1 }); // B's frame is notForUs now
    expect(sw.counters.snapshot().dropReasons).toEqual({ notForUs: 1 });
  });

  it('counts portDown, ringFull and poolEmpty', () => {
    rig('l2');
    kids[1].up = false;
    send(parent, udp(PMAC, RTR, NET_IP, B_IP));
    send(kids[1], udp(RTR, PMAC, B_IP, NET_IP));
    send(parent, udp(BCAST, EXT, EXT_IP, 0xffffffff)); // c1 skipped
    expect(who(run())).toEqual({ c0: 1, c2: 1 });
    expect(sw.counters.snapshot().dropReasons).toEqual({ portDown: 2 });
    kids[1].up = true;
    for (let i = 0; i < 64; i++) parent.tx.push(pool.alloc());
    send(kids[0], udp(RTR, PMAC, A_IP, NET_IP));
    sw.process(0);
    expect(sw.counters.snapshot().dropReasons).toEqual({ portDown: 2, ringFull: 1 });
    run();
    const small = new FramePool({ capacity: 2 });
    const p = new Port(1, 'eth1', 8);
    const ks = [2, 3, 4].map((id) => new Port(id, `k${id}`, 8));
    const s = new IpvlanSwitch(small, p, { mode: 'l2', parentMac: PMAC, seed: 1 });
    ks.forEach((k, i) => s.attach(k, [A_IP, B_IP, C_IP][i]));
    p.rx.push(small.fromBytes(udp(BCAST, EXT, EXT_IP, 0xffffffff)));
    s.process(0);
    expect(s.counters.snapshot()).toMatchObject({ txPackets: 2, dropReasons: { poolEmpty: 1 } });
    for (const q of [p, ...ks]) for (let x = q.tx.pop(); x >= 0; x = q.tx.pop()) small.free(x);
    expect(small.inUse).toBe(0);
  });

  it('handles many children by address (hash table)', () => {
    const ips = Array.from({ length: 200 }, (_, i) => ip(10, 1, i >> 8, i & 0xff) + 1);
    rig('l3', {}, ips);
    for (let i = 0; i < 200; i += 9) send(parent, udp(PMAC, RTR, NET_IP, ips[i]));
    expect(Object.keys(run()).sort()).toEqual(
      Array.from({ length: 200 }, (_, i) => i)
        .filter((i) => i % 9 === 0)
        .map((i) => `c${i}`)
        .sort(),
    );
  });

  for (const mode of ['l2', 'l3', 'l3s'] as IpvlanMode[]) {
    it(`survives random bytes (${mode}): never throws, each frame accounted for, no leak`, () => {
      rig(mode, { gatewayIp: RTR_IP, neighbours: 8, track: () => {} });
      const r = rng(11 + mode.length);
      const macs = [PMAC, BCAST, RTR, EXT];
      const ips = [A_IP, B_IP, C_IP, RTR_IP, EXT_IP, NET_IP];
      let n = 0;
      for (let round = 0; round < 150; round++) {
        for (let k = 0; k < 6; k++) {
          const shape = r();
          let b: Uint8Array;
          const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
          if (shape < 0.3) b = arp(pick(macs), pick(macs), 1 + Math.floor(r() * 3), pick(macs), pick(ips), pick(macs), pick(ips));
          else if (shape < 0.6) b = udp(pick(macs), pick(macs), pick(ips), pick(ips), Math.floor(r() * 30));
          else {
            b = new Uint8Array(Math.floor(r() * 80));
            for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
          }
          // corrupt a byte now and then, truncate now and then
          if (b.length > 0 && r() < 0.3) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
          if (r() < 0.1) b = b.subarray(0, Math.floor(r() * b.length));
          const p = r() < 0.5 ? parent : pick(kids);
          p.rx.push(pool.fromBytes(b, p.id));
          n++;
        }
        run(round * 100);
        sw.tick(round * 100);
        expect(pool.inUse).toBe(0);
      }
      expect(sw.counters.rxPackets).toBe(n);
      expect(sw.counters.txPackets).toBeGreaterThan(0);
    });
  }
});
