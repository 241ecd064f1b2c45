import { afterEach, describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { Port } from '../dataplane/port.js';
import { Conntrack } from '../nat/conntrack.js';
import { NatRewriter } from '../nat/nat.js';
import { fromHex, toHex } from '../wire/bytes.js';
import { CLIENT_IP, CLIENT_MAC, FX, GATEWAY_IP, GATEWAY_MAC } from '../wire/fixtures.js';
import { LearningSwitch } from '../switch/learning-switch.js';
import { Router } from './router.js';
import { A1, A2, A_GW, MAC, S, Testbed, UP_GW, UP_IP, arp, ip, parse, pkt } from './testbed.js';

let bed: Testbed;
afterEach(() => {
  bed.collect();
  // every frame went out (and was collected) or was freed; ARP queues are drained by removal
  for (const id of Object.values(bed.ids)) bed.router.removeInterface(id);
  expect(bed.pool.inUse).toBe(0);
});

describe('Router: gateway duties', () => {
  it('answers ARP and echo on a docker0-like network with the exact captured replies', () => {
    bed = new Testbed();
    const pool = new FramePool({ capacity: 32 });
    const ct = new Conntrack({ capacity: 16, seed: 1 });
    const r = new Router(pool, ct, new NatRewriter(pool, ct), { seed: 1 });
    const port = new Port(3, 'gw', 16);
    r.addInterface({ kind: 'network', port, side: 'switch', ip: GATEWAY_IP, prefixLen: 16, mac: GATEWAY_MAC, mtu: 1500 });
    const padded = new Uint8Array(60).fill(0xaa);
    padded.set(fromHex(FX.arpRequest));
    for (const f of [padded, fromHex(FX.icmpEcho)]) port.tx.push(pool.fromBytes(f, 7));
    r.process(0);
    const out: string[] = [];
    for (let h = port.rx.pop(); h >= 0; h = port.rx.pop()) {
      expect(pool.inPort[h]).toBe(3);
      out.push(toHex(pool.toBytes(h)));
      pool.free(h);
    }
    expect(out).toEqual([toHex(fromHex(FX.arpReply)), toHex(fromHex(FX.icmpEchoReply))]);
    expect(r.counters.snapshot()).toMatchObject({ rxPackets: 2, txPackets: 2, drops: 0 });
    // the router is the device side of a switch port: it counts the port too
    expect([port.counters.txPackets, port.counters.rxPackets]).toEqual([2, 2]);
    // it learned the asking client
    expect(r.arpTable()).toEqual([{ iface: 0, ip: CLIENT_IP, mac: CLIENT_MAC, state: 'reachable' }]);
    expect(pool.inUse).toBe(0);
  });

  it('answers on every iface for its own address only; ARP for others is notForUs', () => {
    bed = new Testbed();
    bed.send('UP', arp(1, MAC.UPGW, UP_GW, 0, UP_IP, 0xffffffffffff));
    bed.send('A', arp(1, MAC.A1, A1, 0, A2, 0xffffffffffff));
    const out = bed.run();
    expect(Testbed.counts(out)).toEqual({ UP: 1 });
    const reply = out.UP[0];
    expect(toHex(reply, 0, 12)).toBe('020000000101020000000102');
    expect(toHex(reply, 20, 2)).toBe('0002');
    expect(bed.drops()).toEqual({ notForUs: 1 });
  });

  it('answers echo to any router address, from that address, back to the sender', () => {
    bed = new Testbed();
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: UP_IP, proto: 1 }));
    const out = bed.run();
    const p = parse(out.A[0]);
    expect([p.src, p.dst, p.icmpType, p.ttl, p.dmac, p.smac]).toEqual([UP_IP, A1, 0, 64, MAC.A1, MAC.A]);
    expect(p.checksumsOk).toBe(true);
  });

  it('drops frames to other MACs, non-IPv4, VLAN-tagged and ARP replies not for us', () => {
    bed = new Testbed();
    bed.send('A', pkt({ dmac: MAC.A2, smac: MAC.A1, src: A1, dst: A2, proto: 1 }));
    const v6 = pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A_GW, proto: 1 });
    v6[12] = 0x86;
    v6[13] = 0xdd;
    bed.send('A', v6);
    bed.send('A', arp(2, MAC.A1, A1, MAC.A2, A2, MAC.A2));
    expect(Testbed.counts(bed.run())).toEqual({});
    expect(bed.drops()).toEqual({ notForUs: 2, unsupported: 1 });
  });
});

describe('Router: forwarding and ARP resolution', () => {
  it('resolves the uplink gateway, queues the packet, and releases it on the reply', () => {
    bed = new Testbed();
    bed.learn('A', MAC.A1, A1);
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 6, ttl: 64 }));
    let out = bed.run();
    expect(Testbed.counts(out)).toEqual({ UP: 1 });
    const req = out.UP[0];
    expect(toHex(req)).toBe(toHex(arp(1, MAC.UP, UP_IP, 0, UP_GW, 0xffffffffffff)));
    expect(bed.pool.inUse).toBe(1); // the SYN waits
    expect(bed.router.arpTable().find((e) => e.ip === UP_GW)?.state).toBe('incomplete');
    bed.send('UP', arp(2, MAC.UPGW, UP_GW, MAC.UP, UP_IP, MAC.UP));
    out = bed.run();
    expect(Testbed.counts(out)).toEqual({ UP: 1 });
    const p = parse(out.UP[0]);
    expect([p.dmac, p.smac, p.src, p.dst, p.ttl, p.sport, p.dport]).toEqual([MAC.UPGW, MAC.UP, UP_IP, S, 63, 40000, 80]);
    expect(p.checksumsOk).toBe(true);
    expect(bed.router.arpTable().find((e) => e.ip === UP_GW)?.state).toBe('reachable');
  });

  it('retries ARP requests each second and drops the queue after 3 unanswered (noRoute)', () => {
    bed = new Testbed();
    for (let i = 0; i < 10; i++) bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 17, sport: 1000 + i }));
    expect(Testbed.counts(bed.run())).toEqual({ UP: 1 });
    expect(bed.drops()).toEqual({ noRoute: 2 }); // the queue holds 8: the 2 oldest pushed out
    expect(Testbed.counts(bed.tick(500))).toEqual({});
    expect(Testbed.counts(bed.tick(500))).toEqual({ UP: 1 });
    expect(Testbed.counts(bed.tick(1000))).toEqual({ UP: 1 });
    expect(Testbed.counts(bed.tick(1000))).toEqual({});
    expect(bed.drops()).toEqual({ noRoute: 10 });
    expect(bed.router.arpTable()).toEqual([]);
    expect(bed.router.stats()).toMatchObject({ arpRequests: 3, arpUnresolved: 8 });
    expect(bed.router.ifaceCounters(bed.ids.UP).snapshot().dropReasons).toEqual({ noRoute: 10 });
  });

  it('resolves a container on demand (host link → network) and ages entries to stale, then probes', () => {
    bed = new Testbed();
    bed.learn('HOST', MAC.HOSTPEER, ip('10.255.0.2'));
    bed.send('HOST', pkt({ dmac: MAC.HOST, smac: MAC.HOSTPEER, src: ip('10.255.0.2'), dst: A2, proto: 1 }));
    let out = bed.run();
    expect(toHex(out.A[0])).toBe(toHex(arp(1, MAC.A, A_GW, 0, A2, 0xffffffffffff)));
    bed.send('A', arp(2, MAC.A2, A2, MAC.A, A_GW, MAC.A));
    out = bed.run();
    const p = parse(out.A[0]);
    expect([p.dmac, p.src, p.dst, p.ttl, p.icmpType]).toEqual([MAC.A2, ip('10.255.0.2'), A2, 63, 8]);
    // 30 s later the entry is stale; the next use sends a unicast probe and still forwards
    bed.tick(30_000);
    expect(bed.router.arpTable().find((e) => e.ip === A2)?.state).toBe('stale');
    bed.send('HOST', pkt({ dmac: MAC.HOST, smac: MAC.HOSTPEER, src: ip('10.255.0.2'), dst: A2, proto: 1 }));
    out = bed.run();
    expect(out.A.length).toBe(2);
    expect(toHex(out.A[0])).toBe(toHex(arp(1, MAC.A, A_GW, 0, A2, MAC.A2)));
    expect(parse(out.A[1]).dst).toBe(A2);
    expect(bed.router.arpTable().find((e) => e.ip === A2)?.state).toBe('probe');
    // no answer: two more probes, then the entry goes
    expect(Testbed.counts(bed.tick(1000))).toEqual({ A: 1 });
    expect(Testbed.counts(bed.tick(1000))).toEqual({ A: 1 });
    bed.tick(1000);
    expect(bed.router.arpTable().find((e) => e.ip === A2)).toBeUndefined();
  });

  it('frees queued frames and forgets flows when an iface is removed', () => {
    bed = new Testbed();
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 6 }));
    bed.run();
    expect(bed.pool.inUse).toBe(1);
    expect(bed.ct.size).toBe(1);
    bed.send('UP', pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: S, dst: UP_IP, proto: 17 })); // waiting in its input ring
    bed.router.removeInterface(bed.ids.UP);
    expect(bed.pool.inUse).toBe(0);
    expect(bed.ct.size).toBe(0);
    delete (bed.ids as Partial<typeof bed.ids>).UP;
    // without an uplink, outside traffic is net unreachable
    bed.learn('A', MAC.A1, A1);
    bed.send('A', pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 6 }));
    const p = parse(bed.run().A[0]);
    expect([p.src, p.dst, p.icmpType, p.icmpCode]).toEqual([A_GW, A1, 3, 0]);
  });

  it('counts rx/tx per iface and on the router', () => {
    bed = new Testbed();
    bed.learn('A', MAC.A1, A1);
    const a = bed.router.ifaceCounters(bed.ids.A).snapshot();
    expect([a.rxPackets, a.txPackets, a.drops]).toEqual([1, 1, 0]);
    expect(bed.router.counters.rxPackets).toBe(1);
    expect(() => bed.router.ifaceCounters(99)).toThrow();
  });
});

describe('Router wired to a LearningSwitch (enable_icc=false)', () => {
  it('containers reach the gateway and the outside through the trusted router port, never each other', () => {
    bed = new Testbed(); // unused by this test; keeps afterEach uniform
    const pool = new FramePool({ capacity: 64 });
    const ct = new Conntrack({ capacity: 16, seed: 1 });
    const r = new Router(pool, ct, new NatRewriter(pool, ct), { seed: 1 });
    const sw = new LearningSwitch(pool, { seed: 1 });
    const c1 = new Port(1, 'c1', 16);
    const c2 = new Port(2, 'c2', 16);
    const rp = new Port(10, 'router:a', 16);
    const up = new Port(20, 'uplink', 16);
    for (const p of [c1, c2, rp]) sw.attach(p);
    sw.trust(rp);
    sw.addStatic(MAC.A, rp);
    sw.isolated = true;
    r.addInterface({ kind: 'network', port: rp, side: 'switch', ip: A_GW, prefixLen: 16, mac: MAC.A, mtu: 1500, networkId: 'a' });
    r.addInterface({ kind: 'uplink', port: up, side: 'device', ip: UP_IP, prefixLen: 24, mac: MAC.UP, mtu: 1500, gateway: UP_GW });
    const breathe = (): void => {
      for (let k = 0; k < 3; k++) {
        sw.process(0);
        r.process(0);
      }
    };
    const take = (ring: { pop(): number }): Uint8Array[] => {
      const out: Uint8Array[] = [];
      for (let h = ring.pop(); h >= 0; h = ring.pop()) {
        out.push(pool.toBytes(h));
        pool.free(h);
      }
      return out;
    };
    // both containers ask for the gateway: only the router hears them, both get the answer
    c1.rx.push(pool.fromBytes(arp(1, MAC.A1, A1, 0, A_GW, 0xffffffffffff), 1));
    c2.rx.push(pool.fromBytes(arp(1, MAC.A2, A2, 0, A_GW, 0xffffffffffff), 2));
    breathe();
    expect(take(c1.tx).map((f) => toHex(f, 0, 12))).toEqual([toHex(arp(2, MAC.A, A_GW, MAC.A1, A1, MAC.A1), 0, 12)]);
    expect(take(c2.tx).length).toBe(1);
    // c1 → c2 directly: filtered by the switch; via the router: filtered by the router
    c1.rx.push(pool.fromBytes(pkt({ dmac: MAC.A2, smac: MAC.A1, src: A1, dst: A2, proto: 1 }), 1));
    c1.rx.push(pool.fromBytes(pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: A2, proto: 1 }), 1));
    breathe();
    expect([take(c2.tx).length, take(c1.tx).length]).toEqual([0, 0]);
    expect(sw.counters.reasons[12]).toBe(1);
    expect(r.counters.snapshot().dropReasons).toMatchObject({ filtered: 1 });
    // c1 → outside: the router resolves the uplink gateway, masquerades, and the reply comes back
    c1.rx.push(pool.fromBytes(pkt({ dmac: MAC.A, smac: MAC.A1, src: A1, dst: S, proto: 6, sport: 40000 }), 1));
    breathe();
    expect(take(up.tx).map((f) => toHex(f))).toEqual([toHex(arp(1, MAC.UP, UP_IP, 0, UP_GW, 0xffffffffffff))]);
    up.rx.push(pool.fromBytes(arp(2, MAC.UPGW, UP_GW, MAC.UP, UP_IP, MAC.UP), 20));
    breathe();
    const [syn] = take(up.tx).map(parse);
    expect([syn.src, syn.dst, syn.sport, syn.checksumsOk]).toEqual([UP_IP, S, 40000, true]);
    up.rx.push(pool.fromBytes(pkt({ dmac: MAC.UP, smac: MAC.UPGW, src: S, dst: UP_IP, proto: 6, sport: 80, dport: 40000, flags: 0x12 }), 20));
    breathe();
    const [synack] = take(c1.tx).map(parse);
    expect([synack.src, synack.dst, synack.dport, synack.dmac, synack.checksumsOk]).toEqual([S, A1, 40000, MAC.A1, true]);
    expect(pool.inUse).toBe(0);
  });
});
