import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { Port } from '../dataplane/port.js';
import { type FrameMeta, getMeta, load, superFrame } from '../dataplane/super-frames.js';
import { LearningSwitch } from './learning-switch.js';
import { macFromString } from './mac-table.js';

const BCAST = 0xffffffffffff;
const MCAST = macFromString('01:00:5e:00:00:fb');
const M1 = macFromString('02:42:ac:11:00:01');
const M2 = macFromString('02:42:ac:11:00:02');
const M3 = macFromString('02:42:ac:11:00:03');
const M4 = macFromString('02:42:ac:11:00:04');
const GW = macFromString('02:42:ac:11:ff:fe');

/** An Ethernet frame: dst, src, ethertype, then payload bytes up to `len`. */
function frame(dst: number, src: number, len = 60, ethertype = 0x0800): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < 6; i++) {
    b[i] = Math.floor(dst / 2 ** (8 * (5 - i))) & 0xff;
    b[6 + i] = Math.floor(src / 2 ** (8 * (5 - i))) & 0xff;
  }
  if (len >= 14) {
    b[12] = ethertype >> 8;
    b[13] = ethertype & 0xff;
  }
  for (let i = 14; i < len; i++) b[i] = i & 0xff;
  return b;
}

describe('LearningSwitch', () => {
  let pool: FramePool;
  let sw: LearningSwitch;
  let ports: Port[];
  let clock: number;

  /** frame enters from port p */
  function send(p: Port, dst: number, src: number, len = 60, ethertype = 0x0800): number {
    const h = pool.fromBytes(frame(dst, src, len, ethertype), p.id);
    expect(p.rx.push(h)).toBe(true);
    return h;
  }
  /** drain every port's tx ring: returns the frames each port got (bytes), and frees them */
  function drain(): Map<number, Uint8Array[]> {
    const out = new Map<number, Uint8Array[]>();
    for (const p of ports) {
      const got: Uint8Array[] = [];
      for (let h = p.tx.pop(); h >= 0; h = p.tx.pop()) {
        got.push(pool.toBytes(h));
        pool.free(h);
      }
      out.set(p.id, got);
    }
    return out;
  }
  /** ids of the ports that got at least one frame, and how many each */
  function receivers(m: Map<number, Uint8Array[]>): Record<number, number> {
    const r: Record<number, number> = {};
    for (const [id, fs] of m) if (fs.length) r[id] = fs.length;
    return r;
  }
  function run(): Map<number, Uint8Array[]> {
    sw.process(clock);
    return drain();
  }

  beforeEach(() => {
    pool = new FramePool({ capacity: 256, slotSize: 2048, headroom: 128 });
    sw = new LearningSwitch(pool, { seed: 1234, tableSize: 64 });
    ports = [1, 2, 3, 4].map((id) => new Port(id, `p${id}`, 64));
    for (const p of ports) sw.attach(p);
    clock = 1_000_000;
  });

  afterEach(() => {
    // no leaks, no double free: every frame was transmitted (and drained) or freed exactly once
    drain();
    expect(pool.inUse).toBe(0);
  });

  it('learns the source and floods unknown unicast to the other ports only', () => {
    send(ports[0], M2, M1);
    const out = run();
    expect(receivers(out)).toEqual({ 2: 1, 3: 1, 4: 1 });
    expect(Array.from(out.get(3)![0])).toEqual(Array.from(frame(M2, M1)));
    expect(sw.lookup(M1)).toBe(1);
    expect(sw.counters.rxPackets).toBe(1);
    expect(sw.counters.rxBytes).toBe(60);
    expect(sw.counters.txPackets).toBe(3);
    expect(sw.counters.txBytes).toBe(180);
    expect(sw.counters.drops).toBe(0);
  });

  it('sends unicast to a known port only', () => {
    send(ports[1], BCAST, M2); // M2 on port 2
    run();
    send(ports[0], M2, M1);
    const out = run();
    expect(receivers(out)).toEqual({ 2: 1 });
    expect(Array.from(out.get(2)![0])).toEqual(Array.from(frame(M2, M1)));
    // and the reply goes straight back to port 1
    send(ports[1], M1, M2);
    expect(receivers(run())).toEqual({ 1: 1 });
    expect(sw.macTable().map((e) => [e.mac, e.port]).sort()).toEqual([
      [M1, 1],
      [M2, 2],
    ]);
  });

  it('floods broadcast and multicast to every other port, never back to ingress', () => {
    send(ports[2], BCAST, M3);
    expect(receivers(run())).toEqual({ 1: 1, 2: 1, 4: 1 });
    send(ports[3], MCAST, M4);
    expect(receivers(run())).toEqual({ 1: 1, 2: 1, 3: 1 });
    // even with the multicast MAC somehow in the table, it floods
    expect(sw.counters.txPackets).toBe(6);
  });

  it('skips down ports when flooding and counts portDown for a known down destination', () => {
    send(ports[1], BCAST, M2);
    run();
    ports[1].up = false;
    send(ports[0], BCAST, M1);
    expect(receivers(run())).toEqual({ 3: 1, 4: 1 });
    send(ports[0], M2, M1);
    expect(receivers(run())).toEqual({});
    expect(sw.counters.reasons[13]).toBe(1); // portDown
  });

  it('drops hairpin (destination learned on the ingress port)', () => {
    send(ports[0], BCAST, M2);
    run();
    send(ports[0], M2, M1);
    expect(receivers(run())).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ hairpin: 1 });
  });

  it('ages a MAC out at 300 s, not at 299 s', () => {
    send(ports[1], BCAST, M2);
    run();
    const t0 = clock;
    sw.tick(t0 + 299_000);
    expect(sw.lookup(M2)).toBe(2);
    expect(sw.macTable()[0].ageMs).toBe(299_000);
    clock = t0 + 299_000;
    send(ports[0], M2, M1);
    expect(receivers(run())).toEqual({ 2: 1 });
    sw.tick(t0 + 300_000);
    expect(sw.lookup(M2)).toBe(-1);
    expect(sw.lookup(M1)).toBe(1); // seen at 299 s, still young
    // now unknown again: flooded
    send(ports[0], M2, M1);
    expect(receivers(run())).toEqual({ 2: 1, 3: 1, 4: 1 });
  });

  it('honours agingMs and refreshes last-seen on every frame', () => {
    sw = new LearningSwitch(pool, { seed: 1, agingMs: 10_000 });
    for (const p of ports) sw.attach(p);
    send(ports[1], BCAST, M2);
    run();
    clock += 9_000;
    send(ports[1], BCAST, M2);
    run();
    sw.tick(clock + 9_999);
    expect(sw.lookup(M2)).toBe(2);
    sw.tick(clock + 10_000);
    expect(sw.lookup(M2)).toBe(-1);
  });

  it('counts macTableFull when the table is full and still forwards with existing entries', () => {
    sw = new LearningSwitch(pool, { seed: 5, tableSize: 2 });
    for (const p of ports) sw.attach(p);
    send(ports[0], BCAST, M1);
    send(ports[1], BCAST, M2);
    run();
    expect(sw.macCount).toBe(2);
    send(ports[2], M1, M3); // M3 cannot be learned, frame still goes to port 1
    expect(receivers(run())).toEqual({ 1: 1 });
    expect(sw.lookup(M3)).toBe(-1);
    expect(sw.counters.snapshot().dropReasons).toEqual({ macTableFull: 1 });
    expect(sw.counters.drops).toBe(0);
    send(ports[0], M2, M1);
    expect(receivers(run())).toEqual({ 2: 1 });
    // unknown M3 as destination floods
    send(ports[0], M3, M1);
    expect(receivers(run())).toEqual({ 2: 1, 3: 1, 4: 1 });
  });

  it('follows a station move', () => {
    send(ports[1], BCAST, M2);
    run();
    expect(sw.lookup(M2)).toBe(2);
    send(ports[3], BCAST, M2); // M2 now behind port 4
    run();
    expect(sw.lookup(M2)).toBe(4);
    send(ports[0], M2, M1);
    expect(receivers(run())).toEqual({ 4: 1 });
    expect(sw.macCount).toBe(2);
  });

  it('detach flushes the port’s MACs and frees frames in its rings', () => {
    send(ports[1], BCAST, M2);
    send(ports[2], BCAST, M3);
    run();
    send(ports[0], M2, M1);
    sw.process(clock); // frame waits in port 2's tx ring
    send(ports[1], M1, M2); // and one waits in its rx ring
    expect(pool.inUse).toBe(2);
    sw.detach(ports[1]);
    expect(pool.inUse).toBe(0);
    expect(sw.lookup(M2)).toBe(-1);
    expect(sw.lookup(M3)).toBe(3);
    expect(sw.ports().map((p) => p.id)).toEqual([1, 3, 4]);
    send(ports[0], M2, M1);
    expect(receivers(run())).toEqual({ 3: 1, 4: 1 });
    ports = ports.filter((p) => p.id !== 2);
  });

  it('static entries (gateway) never age and are not stolen by learning', () => {
    sw.addStatic(GW, ports[3]);
    send(ports[0], BCAST, GW); // spoofed gateway MAC on port 1
    run();
    expect(sw.lookup(GW)).toBe(4);
    sw.tick(clock + 10 * 300_000);
    expect(sw.lookup(GW)).toBe(4);
    send(ports[0], GW, M1);
    expect(receivers(run())).toEqual({ 4: 1 });
    expect(sw.macTable().find((e) => e.mac === GW)).toEqual({ mac: GW, port: 4, ageMs: 0, static: true });
  });

  it('port security: a MAC flood from one port fills only its share; a newcomer elsewhere is learned, unicast to it is not flooded', () => {
    sw = new LearningSwitch(pool, { seed: 11, tableSize: 64, portLimit: 16 });
    for (const p of ports) sw.attach(p);
    send(ports[1], BCAST, M2);
    run();
    for (let i = 0; i < 200; i++) {
      send(ports[0], GW, 0x060000000000 + i);
      if (i % 50 === 49) run();
    }
    run();
    expect(sw.macStats()).toMatchObject({ dynamic: 17, portLimit: 16, portLimitHits: 200 - 16, macTableFull: 0, macSpoof: 0 });
    expect(sw.counters.drops).toBe(0); // not learned, still forwarded
    // a newcomer on port 3 is learned; unicast to it reaches port 3 only
    send(ports[2], BCAST, M3);
    run();
    expect(sw.lookup(M3)).toBe(3);
    send(ports[1], M3, M2);
    expect(receivers(run())).toEqual({ 3: 1 });
  });

  it('a trunk port (the VXLAN tunnel) learns past the port limit; the limit comes back when it leaves', () => {
    sw = new LearningSwitch(pool, { seed: 13, tableSize: 64, portLimit: 4 });
    sw.attach(ports[0], true);
    for (const p of ports.slice(1)) sw.attach(p);
    for (let i = 0; i < 20; i++) send(ports[0], GW, 0x060000000000 + i);
    run();
    expect(sw.macStats()).toMatchObject({ dynamic: 20, portLimitHits: 0 });
    sw.detach(ports[0]);
    sw.attach(ports[0]);
    for (let i = 0; i < 20; i++) send(ports[0], GW, 0x060000000000 + i);
    run();
    expect(sw.macStats()).toMatchObject({ dynamic: 4, portLimitHits: 16 });
  });

  it('without port limits a flood fills the table, yet a pinned newcomer is still switched, not flooded', () => {
    sw = new LearningSwitch(pool, { seed: 12, tableSize: 8, portLimit: 0 });
    for (const p of ports) sw.attach(p);
    send(ports[1], BCAST, M2);
    run();
    for (let i = 0; i < 40; i++) send(ports[0], GW, 0x060000000000 + i);
    run();
    expect(sw.macStats()).toMatchObject({ entries: 8, dynamic: 8, macTableFull: 40 - 7 });
    sw.addStatic(M3, ports[2]);
    expect(sw.macStats()).toMatchObject({ entries: 9, static: 1, dynamic: 8 });
    send(ports[1], M3, M2);
    expect(receivers(run())).toEqual({ 3: 1 });
  });

  it('a pinned MAC arriving on another port is dropped as a spoof (macSpoof) and does not move', () => {
    sw.addStatic(M3, ports[2]);
    send(ports[1], BCAST, M2);
    run();
    send(ports[0], M2, M3); // port 1 claims M3
    send(ports[0], BCAST, M3);
    expect(receivers(run())).toEqual({});
    expect(sw.lookup(M3)).toBe(3);
    expect(sw.security.macSpoof).toBe(2);
    expect(sw.counters.snapshot().dropReasons).toEqual({ filtered: 2 });
    send(ports[2], M2, M3); // from its own port: fine
    expect(receivers(run())).toEqual({ 2: 1 });
    send(ports[1], M3, M2);
    expect(receivers(run())).toEqual({ 3: 1 });
    // unpinning only from its own port
    expect(sw.removeStatic(M3, ports[0])).toBe(false);
    expect(sw.removeStatic(M3, ports[2])).toBe(true);
    expect(sw.lookup(M3)).toBe(-1);
  });

  it('drops and counts malformed frames', () => {
    send(ports[0], BCAST, M1, 13); // runt
    send(ports[0], BCAST, M1, 0); // empty
    send(ports[0], M2, BCAST); // broadcast source
    send(ports[0], M2, MCAST); // multicast source
    send(ports[0], M2, 0); // zero source
    send(ports[0], BCAST, M1, 1519); // oversize for mtu 1500
    send(ports[0], BCAST, M1, 1523, 0x8100); // oversize even with a tag
    expect(receivers(run())).toEqual({});
    expect(sw.counters.snapshot()).toMatchObject({
      rxPackets: 7,
      txPackets: 0,
      drops: 7,
      dropReasons: { runt: 2, badSrcMac: 3, oversize: 2 },
    });
    expect(sw.macCount).toBe(0);
    // limits are inclusive: 1514, and 1518 when tagged
    send(ports[0], BCAST, M1, 1518);
    send(ports[0], BCAST, M1, 1522, 0x8100);
    send(ports[0], BCAST, M1, 1522, 0x88a8);
    expect(receivers(run())).toEqual({ 2: 3, 3: 3, 4: 3 });
  });

  it('drops oversize per egress port with a smaller MTU', () => {
    ports[2].mtu = 1000;
    send(ports[0], BCAST, M1, 1400);
    expect(receivers(run())).toEqual({ 2: 1, 4: 1 });
    expect(sw.counters.snapshot().dropReasons).toEqual({ oversize: 1 });
    send(ports[2], BCAST, M3); // M3 on port 3
    run();
    send(ports[0], M3, M1, 1400);
    expect(receivers(run())).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ oversize: 2 });
  });

  it('counts ringFull and frees the frame', () => {
    send(ports[1], BCAST, M2);
    run();
    for (let i = 0; i < 64; i++) ports[1].tx.push(pool.alloc()); // fill port 2's tx ring
    send(ports[0], M2, M1);
    send(ports[0], BCAST, M1);
    sw.process(clock);
    expect(sw.counters.snapshot().dropReasons).toEqual({ ringFull: 2 });
    const out = drain();
    expect(out.get(2)!.length).toBe(64);
    expect(receivers(out)).toEqual({ 2: 64, 3: 1, 4: 1 });
  });

  it('counts poolEmpty for flood copies it cannot clone', () => {
    const small = new FramePool({ capacity: 2 });
    const s = new LearningSwitch(small, { seed: 1 });
    const ps = [1, 2, 3, 4].map((id) => new Port(id, `q${id}`, 8));
    for (const p of ps) s.attach(p);
    const h = small.fromBytes(frame(BCAST, M1), 1);
    ps[0].rx.push(h);
    s.process(0);
    // one clone possible (2 slots), one copy fails, the original goes to the last port
    expect(s.counters.snapshot().dropReasons).toEqual({ poolEmpty: 1 });
    expect(s.counters.txPackets).toBe(2);
    let got = 0;
    for (const p of ps) for (let x = p.tx.pop(); x >= 0; x = p.tx.pop()) (small.free(x), got++);
    expect(got).toBe(2);
    expect(small.inUse).toBe(0);
  });

  it('calls the sink for every frame entering, before any check', () => {
    const seen: number[] = [];
    sw.sink = { frame: (h) => seen.push(pool.lengths[h]) };
    send(ports[0], BCAST, M1, 10);
    send(ports[0], BCAST, M1, 64);
    run();
    expect(seen).toEqual([10, 64]);
    sw.sink = null;
    send(ports[0], BCAST, M1, 64);
    run();
    expect(seen.length).toBe(2);
  });

  it('handles many frames across batches, in order, and leaves inPort as the producer set it', () => {
    sw = new LearningSwitch(pool, { seed: 9, batch: 4 });
    for (const p of ports) sw.attach(p);
    send(ports[1], BCAST, M2);
    run();
    const sent: number[] = [];
    for (let i = 0; i < 30; i++) sent.push(send(ports[0], M2, M1, 60 + i));
    sw.process(clock);
    const got: number[] = [];
    for (let h = ports[1].tx.pop(); h >= 0; h = ports[1].tx.pop()) {
      expect(pool.inPort[h]).toBe(1);
      got.push(pool.lengths[h]);
      pool.free(h);
    }
    expect(got).toEqual(sent.map((_, i) => 60 + i));
    expect(sw.counters.rxPackets).toBe(31);
  });

  it('drops frames waiting on a down ingress port and skips it as a flood target', () => {
    ports[0].up = false;
    send(ports[0], BCAST, M1);
    send(ports[1], BCAST, M2);
    expect(receivers(run())).toEqual({ 3: 1, 4: 1 });
    expect(sw.counters.snapshot().dropReasons).toEqual({ portDown: 1 });
    expect(sw.lookup(M1)).toBe(-1);
    ports[0].up = true;
    send(ports[0], BCAST, M1);
    expect(receivers(run())).toEqual({ 2: 1, 3: 1, 4: 1 });
  });

  it('a flood with nowhere to go is freed', () => {
    for (const p of ports.slice(1)) sw.detach(p);
    send(ports[0], BCAST, M1);
    expect(receivers(run())).toEqual({});
    expect(sw.counters.drops).toBe(0);
  });
});

describe('LearningSwitch isolated (enable_icc=false)', () => {
  let pool: FramePool;
  let sw: LearningSwitch;
  let ports: Port[];
  let router: Port;

  function send(p: Port, dst: number, src: number, len = 60, ethertype = 0x0800): void {
    expect(p.rx.push(pool.fromBytes(frame(dst, src, len, ethertype), p.id))).toBe(true);
  }
  function run(): Record<number, number> {
    sw.process(0);
    const r: Record<number, number> = {};
    for (const p of ports) {
      for (let h = p.tx.pop(); h >= 0; h = p.tx.pop()) {
        r[p.id] = (r[p.id] ?? 0) + 1;
        pool.free(h);
      }
    }
    return r;
  }

  beforeEach(() => {
    pool = new FramePool({ capacity: 64 });
    sw = new LearningSwitch(pool, { seed: 7, tableSize: 16 });
    ports = [1, 2, 3, 4].map((id) => new Port(id, `p${id}`, 16));
    for (const p of ports) sw.attach(p);
    router = ports[3];
    sw.trust(router);
    sw.addStatic(GW, router);
    sw.isolated = true;
  });

  afterEach(() => {
    run();
    expect(pool.inUse).toBe(0);
  });

  it('drops unicast between two untrusted ports (filtered)', () => {
    send(ports[1], GW, M2); // learn M2 on port 2
    send(ports[0], GW, M1);
    expect(run()).toEqual({ 4: 2 });
    send(ports[0], M2, M1);
    send(ports[1], M1, M2);
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ filtered: 2 });
    expect(sw.isTrusted(router)).toBe(true);
    expect(sw.isTrusted(ports[0])).toBe(false);
  });

  it('passes unicast to and from the trusted (router) port', () => {
    send(ports[0], GW, M1);
    expect(run()).toEqual({ 4: 1 });
    send(router, M1, GW);
    expect(run()).toEqual({ 1: 1 });
    expect(sw.counters.drops).toBe(0);
  });

  it('floods an untrusted port’s broadcast (ARP) to the trusted port only, the router’s to everyone', () => {
    send(ports[0], BCAST, M1, 60, 0x0806);
    expect(run()).toEqual({ 4: 1 });
    send(router, BCAST, GW, 60, 0x0806);
    expect(run()).toEqual({ 1: 1, 2: 1, 3: 1 });
    send(ports[1], M3, M2); // unknown unicast: flooded, to the router only
    expect(run()).toEqual({ 4: 1 });
    expect(sw.counters.drops).toBe(0);
  });

  it('counts a flood that reaches nobody as filtered', () => {
    sw.trust(router, false);
    send(ports[0], BCAST, M1);
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ filtered: 1 });
  });

  it('isolated = false restores normal switching; detach forgets trust', () => {
    sw.isolated = false;
    send(ports[1], BCAST, M2);
    expect(run()).toEqual({ 1: 1, 3: 1, 4: 1 });
    send(ports[0], M2, M1);
    expect(run()).toEqual({ 2: 1 });
    sw.detach(router);
    expect(sw.isTrusted(router)).toBe(false);
    ports = ports.slice(0, 3);
  });
});

describe('LearningSwitch with super-frames (GSO)', () => {
  it('floods a 40 KB super-frame to 3 ports: identical copies in large slots, same annotations, the pool balances', () => {
    const pool = new FramePool({ capacity: 64, largeCapacity: 8 });
    const sw = new LearningSwitch(pool, { seed: 99, tableSize: 64 });
    const ports = [1, 2, 3, 4].map((id) => new Port(id, `p${id}`, 64));
    for (const p of ports) sw.attach(p);
    const s = superFrame({ dmac: BCAST, smac: M1, src: 0xac110001, dst: 0xac1100ff, sport: 4000, dport: 80, payload: 40000, gsoSize: 1448 });
    const h = load(pool, s.bytes, s.meta, 1);
    expect(pool.isLarge(h)).toBe(true);
    expect(ports[0].rx.push(h)).toBe(true);
    sw.process(1_000_000);
    const copies: Array<{ f: Uint8Array; meta: FrameMeta; large: boolean }> = [];
    for (const p of ports) {
      for (let g = p.tx.pop(); g >= 0; g = p.tx.pop()) {
        copies.push({ f: pool.toBytes(g), meta: getMeta(pool, g), large: pool.isLarge(g) });
        pool.free(g);
      }
    }
    expect(copies.length).toBe(3);
    for (const c of copies) {
      expect(c.large).toBe(true);
      expect(Buffer.compare(Buffer.from(c.f), Buffer.from(s.bytes))).toBe(0);
      expect(c.meta).toEqual(s.meta);
    }
    // 40000 bytes of payload in 1448-byte segments: 28 on the wire per copy
    expect(sw.counters.snapshot()).toMatchObject({ rxPackets: 1, txPackets: 3, rxSegments: 28, txSegments: 84, drops: 0 });
    expect(pool.inUse).toBe(0);
    expect(pool.largeAvailable).toBe(8);
  });
});
