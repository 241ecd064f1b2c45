import { afterEach, describe, expect, it } from 'vitest';
import { FramePool } from '../dataplane/pool.js';
import { Port } from '../dataplane/port.js';
import { rng } from '../lab/rng.js';
import { toHex } from '../wire/bytes.js';
import { MacvlanSwitch, type MacvlanMode } from './macvlan.js';

const BCAST = 0xffffffffffff;
const MCAST = 0x01005e0000fb;
const A = 0x02420a000002; // children
const B = 0x02420a000003;
const C = 0x02420a000004;
const EXT = 0x001122334455; // a host on the segment
const HOST = 0x525400aabbcc; // the parent interface's own MAC

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
  for (let i = 14; i < len; i++) b[i] = (i * 7) & 0xff;
  return b;
}

let pool: FramePool;
let parent: Port;
let kids: Port[];
let sw: MacvlanSwitch;

function rig(mode: MacvlanMode, macs: number[] = [A, B, C]): void {
  pool = new FramePool({ capacity: 256 });
  parent = new Port(1, 'eth0', 64);
  kids = macs.map((_, i) => new Port(2 + i, `c${i}`, 64));
  sw = new MacvlanSwitch(pool, parent, { mode, seed: 99 });
  kids.forEach((k, i) => sw.attach(k, macs[i]));
}

function send(p: Port, dst: number, src: number, len = 60, ethertype = 0x0800): void {
  expect(p.rx.push(pool.fromBytes(frame(dst, src, len, ethertype), p.id))).toBe(true);
}
/** Run, then drain every tx ring: name → frames (hex), freed. */
function run(): Record<string, string[]> {
  sw.process(0);
  const out: Record<string, string[]> = {};
  for (const p of [parent, ...kids]) {
    for (let h = p.tx.pop(); h >= 0; h = p.tx.pop()) {
      (out[p.name] ??= []).push(toHex(pool.toBytes(h)));
      pool.free(h);
    }
  }
  return out;
}
/** who got how many frames */
function who(out: Record<string, string[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.length]));
}
const hex = (dst: number, src: number, len = 60, t = 0x0800): string => toHex(frame(dst, src, len, t));

afterEach(() => {
  run();
  for (const p of [parent, ...kids]) for (let h = p.rx.pop(); h >= 0; h = p.rx.pop()) pool.free(h);
  expect(pool.inUse).toBe(0);
});

describe('MacvlanSwitch bridge', () => {
  it('from the parent: unicast to a child’s MAC → that child, byte-exact; other unicast → notForUs', () => {
    rig('bridge');
    send(parent, B, EXT);
    expect(run()).toEqual({ c1: [hex(B, EXT)] });
    send(parent, HOST, EXT);
    send(parent, 0x0242ffffffff, EXT);
    expect(run()).toEqual({});
    expect(sw.counters.snapshot()).toMatchObject({ rxPackets: 3, txPackets: 1, txBytes: 60, drops: 2, dropReasons: { notForUs: 2 } });
  });

  it('from the parent: broadcast/multicast → every child; not back to a child that is its source', () => {
    rig('bridge');
    send(parent, BCAST, EXT, 60, 0x0806);
    expect(who(run())).toEqual({ c0: 1, c1: 1, c2: 1 });
    send(parent, MCAST, EXT);
    expect(run()).toEqual({ c0: [hex(MCAST, EXT)], c1: [hex(MCAST, EXT)], c2: [hex(MCAST, EXT)] });
    send(parent, BCAST, A); // A's broadcast hairpinned back by the switch
    expect(who(run())).toEqual({ c1: 1, c2: 1 });
    expect(sw.counters.drops).toBe(0);
  });

  it('from a child: to another child → that child only; broadcast → parent + other children; else → parent', () => {
    rig('bridge');
    send(kids[0], B, A);
    expect(run()).toEqual({ c1: [hex(B, A)] });
    send(kids[0], BCAST, A, 42, 0x0806);
    expect(run()).toEqual({ eth0: [hex(BCAST, A, 42, 0x0806)], c1: [hex(BCAST, A, 42, 0x0806)], c2: [hex(BCAST, A, 42, 0x0806)] });
    send(kids[2], EXT, C);
    send(kids[2], HOST, C); // the parent host: unreachable from its macvlans, goes to the wire
    expect(run()).toEqual({ eth0: [hex(EXT, C), hex(HOST, C)] });
    expect(sw.counters.snapshot()).toMatchObject({ rxPackets: 4, txPackets: 6, drops: 0 });
  });

  it('drops a child’s frame with a foreign source MAC (badSrcMac) and a frame to its own MAC (hairpin)', () => {
    rig('bridge');
    send(kids[0], EXT, B); // c0 pretends to be B
    send(kids[0], BCAST, EXT);
    send(kids[0], A, A);
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ badSrcMac: 2, hairpin: 1 });
  });
});

describe('MacvlanSwitch private', () => {
  it('from a child: everything → parent only', () => {
    rig('private');
    send(kids[0], B, A);
    send(kids[0], BCAST, A);
    send(kids[0], EXT, A);
    expect(run()).toEqual({ eth0: [hex(B, A), hex(BCAST, A), hex(EXT, A)] });
  });

  it('from the parent: frames from our own children are dropped even when hairpinned; others delivered', () => {
    rig('private');
    send(parent, B, A); // A → B hairpinned by the external switch
    send(parent, BCAST, A);
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ filtered: 2 });
    send(parent, B, EXT);
    send(parent, BCAST, EXT);
    expect(who(run())).toEqual({ c0: 1, c1: 2, c2: 1 });
  });
});

describe('MacvlanSwitch vepa', () => {
  it('sends everything to the parent; the hairpinned frame is then delivered by the parent rules', () => {
    rig('vepa');
    send(kids[0], B, A);
    send(kids[0], BCAST, A);
    const out = run();
    expect(out).toEqual({ eth0: [hex(B, A), hex(BCAST, A)] });
    // the external switch reflects both
    send(parent, B, A);
    send(parent, BCAST, A);
    expect(run()).toEqual({ c1: [hex(B, A), hex(BCAST, A)], c2: [hex(BCAST, A)] });
    expect(sw.counters.drops).toBe(0);
  });
});

describe('MacvlanSwitch passthru', () => {
  it('takes exactly one child: a second attach throws', () => {
    rig('passthru', [A]);
    expect(() => sw.attach(new Port(9, 'c9'), B)).toThrow(/passthru: only one endpoint per parent \(eth0 already has c0\)/);
    sw.attach(kids[0], A); // the same again is a no-op
    sw.detach(kids[0]);
    sw.attach(kids[0], B); // once it left, another may come
    expect(sw.children().map((c) => c.mac)).toEqual([B]);
  });

  it('everything from the parent (any MAC) goes to the child; everything from it to the parent, unchanged', () => {
    rig('passthru', [A]);
    send(parent, EXT, HOST);
    send(parent, BCAST, A);
    send(parent, HOST, B);
    expect(run()).toEqual({ c0: [hex(EXT, HOST), hex(BCAST, A), hex(HOST, B)] });
    send(kids[0], EXT, HOST); // any source MAC
    send(kids[0], A, A);
    expect(run()).toEqual({ eth0: [hex(EXT, HOST), hex(A, A)] });
    expect(sw.counters.drops).toBe(0);
  });
});

describe('MacvlanSwitch plumbing', () => {
  it('rejects bad attachments with clear errors', () => {
    rig('bridge');
    expect(() => sw.attach(new Port(9, 'c9'), A)).toThrow(/MAC 02:42:0a:00:00:02 is already used by c0/);
    expect(() => sw.attach(new Port(9, 'c9'), MCAST)).toThrow(/bad MAC/);
    expect(() => sw.attach(new Port(9, 'c9'), 0)).toThrow(/bad MAC/);
    expect(() => sw.attach(kids[0], EXT)).toThrow(/already attached/);
    expect(() => sw.attach(parent, EXT)).toThrow(/parent/);
    expect(() => new MacvlanSwitch(pool, parent, { mode: 'foo' as MacvlanMode })).toThrow(/unknown macvlan mode/);
    expect(sw.lookup(B)).toBe(kids[1]);
    expect(sw.lookup(EXT)).toBe(null);
  });

  it('detach frees the child’s frames and forgets its MAC', () => {
    rig('bridge');
    send(kids[1], EXT, B);
    send(parent, B, EXT);
    sw.process(0); // one waits on c1's tx ring
    send(kids[1], EXT, B); // one on its rx ring
    expect(pool.inUse).toBe(3);
    sw.detach(kids[1]);
    const out = run();
    expect(out).toEqual({ eth0: [hex(EXT, B)] });
    expect(pool.inUse).toBe(0);
    expect(sw.lookup(B)).toBe(null);
    expect(sw.lookup(C)).toBe(kids[2]);
    send(parent, B, EXT);
    send(parent, C, EXT);
    expect(who(run())).toEqual({ c2: 1 });
    kids = kids.filter((_, i) => i !== 1);
  });

  it('counts runt, portDown and ringFull', () => {
    rig('bridge');
    send(parent, BCAST, EXT, 13);
    send(kids[0], BCAST, A, 5);
    kids[1].up = false;
    send(parent, B, EXT);
    send(kids[1], EXT, B);
    send(parent, BCAST, EXT); // c1 skipped
    expect(who(run())).toEqual({ c0: 1, c2: 1 });
    expect(sw.counters.snapshot().dropReasons).toEqual({ runt: 2, portDown: 2 });
    kids[1].up = true;
    for (let i = 0; i < 64; i++) kids[2].tx.push(pool.alloc());
    send(parent, C, EXT);
    send(parent, BCAST, EXT);
    const out = who(run());
    expect(out).toEqual({ c0: 1, c1: 1, c2: 64 });
    expect(sw.counters.snapshot().dropReasons).toEqual({ runt: 2, portDown: 2, ringFull: 2 });
  });

  it('floods with n−1 clones and the original last; counts poolEmpty for a clone it cannot make', () => {
    rig('bridge');
    const h = pool.fromBytes(frame(BCAST, A), kids[0].id);
    kids[0].rx.push(h);
    sw.process(0);
    expect(kids[2].tx.pop()).toBe(h); // the original went to the last target
    pool.free(h);
    run();
    const small = new FramePool({ capacity: 2 });
    const p = new Port(1, 'eth1', 8);
    const ks = [2, 3, 4].map((id) => new Port(id, `k${id}`, 8));
    const s = new MacvlanSwitch(small, p, { mode: 'bridge', seed: 1 });
    ks.forEach((k, i) => s.attach(k, [A, B, C][i]));
    ks[0].rx.push(small.fromBytes(frame(BCAST, A)));
    s.process(0);
    expect(s.counters.snapshot()).toMatchObject({ txPackets: 2, dropReasons: { poolEmpty: 1 } });
    for (const q of [p, ...ks]) for (let x = q.tx.pop(); x >= 0; x = q.tx.pop()) small.free(x);
    expect(small.inUse).toBe(0);
  });

  it('with no child, what arrives on the parent is notForUs', () => {
    rig('bridge', []);
    send(parent, BCAST, EXT);
    expect(run()).toEqual({});
    expect(sw.counters.snapshot().dropReasons).toEqual({ notForUs: 1 });
  });

  it('looks up many children without confusion (hash table)', () => {
    const macs = Array.from({ length: 200 }, (_, i) => 0x02420a000100 + i);
    rig('bridge', macs);
    for (let i = 0; i < 200; i += 7) send(parent, macs[i], EXT);
    const out = run();
    expect(Object.keys(out).sort()).toEqual(
      Array.from({ length: 200 }, (_, i) => i)
        .filter((i) => i % 7 === 0)
        .map((i) => `c${i}`)
        .sort(),
    );
  });

  for (const mode of ['bridge', 'private', 'vepa', 'passthru'] as MacvlanMode[]) {
    it(`survives random bytes (${mode}): never throws, each frame delivered or dropped, no leak`, () => {
      rig(mode, mode === 'passthru' ? [A] : [A, B, C]);
      const r = rng(7 + mode.length);
      const srcs = [A, B, C, EXT, BCAST];
      let n = 0;
      for (let round = 0; round < 150; round++) {
        for (let k = 0; k < 6; k++) {
          const len = Math.floor(r() * 80);
          const b = new Uint8Array(len);
          for (let i = 0; i < len; i++) b[i] = Math.floor(r() * 256);
          // aim some at real MACs
          if (len >= 12 && r() < 0.6) b.set(frame(srcs[Math.floor(r() * 5)], srcs[Math.floor(r() * 5)], 12), 0);
          const p = r() < 0.4 ? parent : kids[Math.floor(r() * kids.length)];
          p.rx.push(pool.fromBytes(b, p.id));
          n++;
        }
        run();
        expect(pool.inUse).toBe(0);
      }
      expect(sw.counters.rxPackets).toBe(n);
      expect(sw.counters.txPackets).toBeGreaterThan(0);
    });
  }
});
