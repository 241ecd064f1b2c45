import { describe, expect, it } from 'vitest';
import { LEARN_FULL, LEARN_OK, LEARN_PORT_LIMIT, LEARN_STATIC, MacTable, hiOf, loOf, macFromString, macToString } from './mac-table.js';
import { rng } from '../lab/rng.js';

const A = macFromString('02:00:00:00:00:0a');
const B = macFromString('02:00:00:00:00:0b');
const C = macFromString('aa:bb:cc:dd:ee:ff');


describe('MacTable', () => {
  it('converts MACs between text, number and hi/lo', () => {
    expect(C).toBe(0xaabbccddeeff);
    expect(macToString(C)).toBe('aa:bb:cc:dd:ee:ff');
    expect(hiOf(C)).toBe(0xaabb);
    expect(loOf(C) >>> 0).toBe(0xccddeeff);
    expect(() => macFromString('aa:bb:cc')).toThrow();
  });

  it('sizes slots to a power of two at load ≤ 0.5', () => {
    const t = new MacTable(100, 1);
    expect(t.capacity).toBe(100);
    expect(t.slots).toBe(256);
  });

  it('learns, refreshes, moves and removes', () => {
    const t = new MacTable(16, 42);
    expect(t.lookup(A)).toBe(-1);
    expect(t.learn(A, 1, 1000)).toBe(true);
    expect(t.learn(B, 2, 1000)).toBe(true);
    expect(t.lookup(A)).toBe(1);
    expect(t.lookup(B)).toBe(2);
    expect(t.size).toBe(2);
    expect(t.learn(A, 3, 2000)).toBe(true); // station move
    expect(t.lookup(A)).toBe(3);
    expect(t.size).toBe(2);
    expect(t.entries().find((e) => e.mac === A)?.seen).toBe(2000);
    expect(t.remove(A)).toBe(true);
    expect(t.remove(A)).toBe(false);
    expect(t.lookup(A)).toBe(-1);
    expect(t.size).toBe(1);
  });

  it('refuses new MACs when full but still refreshes known ones', () => {
    const t = new MacTable(4, 7);
    for (let i = 1; i <= 4; i++) expect(t.learn(0x020000000000 + i, i, 0)).toBe(true);
    expect(t.learn(0x020000000099, 9, 0)).toBe(false);
    expect(t.lookup(0x020000000099)).toBe(-1);
    expect(t.learn(0x020000000001, 7, 5)).toBe(true);
    expect(t.lookup(0x020000000001)).toBe(7);
    expect(t.size).toBe(4);
  });

  it('ages dynamic entries at maxAge, not before; static entries never age', () => {
    const t = new MacTable(16, 3);
    t.learn(A, 1, 0);
    t.learn(B, 2, 10_000);
    t.addStatic(C, 5);
    expect(t.age(299_999, 300_000)).toBe(0);
    expect(t.age(300_000, 300_000)).toBe(1);
    expect(t.lookup(A)).toBe(-1);
    expect(t.lookup(B)).toBe(2);
    expect(t.age(310_000, 300_000)).toBe(1);
    expect(t.age(1e12, 300_000)).toBe(0);
    expect(t.lookup(C)).toBe(5);
  });

  it('static entries are not moved by learning; flushPort removes them too', () => {
    const t = new MacTable(16, 3);
    expect(t.addStatic(C, 5)).toBe(true);
    expect(t.learn(C, 6, 100)).toBe(true);
    expect(t.lookup(C)).toBe(5);
    t.learn(A, 5, 0);
    t.learn(B, 6, 0);
    expect(t.flushPort(5)).toBe(2);
    expect(t.lookup(C)).toBe(-1);
    expect(t.lookup(A)).toBe(-1);
    expect(t.lookup(B)).toBe(6);
  });

  it('never stores multicast MACs; a static entry seen on its own port still never ages', () => {
    const t = new MacTable(16, 3);
    expect(t.learn(0xffffffffffff, 1, 0)).toBe(false);
    expect(t.learn(macFromString('01:00:5e:00:00:01'), 1, 0)).toBe(false);
    expect(t.addStatic(macFromString('33:33:00:00:00:01'), 1)).toBe(false);
    expect(t.size).toBe(0);
    t.addStatic(C, 5);
    expect(t.learn(C, 5, 1000)).toBe(true);
    expect(t.age(1e12, 300_000)).toBe(0);
    expect(t.entries()).toEqual([{ mac: C, port: 5, seen: 1000, static: true }]);
  });

  it('keeps ports up to 0xffff and MACs with any bit pattern apart', () => {
    const t = new MacTable(16, 11);
    const macs = [0x000000000001, 0x00000000ffff, 0x0000ffffffff, 0xfeffffffffff, 0x020000000000, 0x02ffffffff00];
    macs.forEach((m, i) => expect(t.learn(m, 0xffff - i, i)).toBe(true));
    macs.forEach((m, i) => expect(t.lookup(m)).toBe(0xffff - i));
    expect(t.entries().map((e) => e.mac).sort((a, b) => a - b)).toEqual([...macs].sort((a, b) => a - b));
  });

  it('addStatic turns a dynamic entry static', () => {
    const t = new MacTable(16, 3);
    t.learn(A, 1, 0);
    t.addStatic(A, 2);
    expect(t.size).toBe(1);
    expect(t.lookup(A)).toBe(2);
    expect(t.age(1e9, 1)).toBe(0);
  });

  it('static entries do not count against capacity: a table full of learned MACs still pins a newcomer', () => {
    const t = new MacTable(8, 5);
    for (let i = 1; i <= 8; i++) expect(t.learn(0x020000000000 + i, 1, 0)).toBe(true);
    expect(t.learnHL(0x0200, 99, 2, 0)).toBe(LEARN_FULL);
    expect(t.staticRoom).toBeGreaterThanOrEqual(4); // ≥ capacity/2
    expect(t.addStatic(A, 3)).toBe(true);
    expect(t.lookup(A)).toBe(3);
    expect([t.size, t.dynamicSize, t.staticSize]).toEqual([9, 8, 1]);
    // statics are bounded too (the slots keep load ≤ 0.75), never at the cost of a probe that cannot end
    let n = 1;
    while (t.addStatic(0x060000000000 + n, 4)) n++;
    expect(t.size).toBe(t.maxEntries);
    expect(t.maxEntries).toBeLessThan(t.slots);
    expect(t.lookup(0x060000000000 + n)).toBe(-1);
    expect(t.lookup(A)).toBe(3);
  });

  it('a static entry on another port is neither moved nor refreshed: LEARN_STATIC', () => {
    const t = new MacTable(16, 2);
    t.addStatic(A, 5);
    expect(t.learnHL(hiOf(A), loOf(A), 1, 10)).toBe(LEARN_STATIC);
    expect(t.lookup(A)).toBe(5);
    expect(t.learnHL(hiOf(A), loOf(A), 5, 10)).toBe(LEARN_OK);
    expect(t.learn(A, 1, 10)).toBe(true); // the boolean form keeps its old meaning
    expect(t.isStatic(A)).toBe(true);
  });

  it('port limit: a port learns at most portLimit dynamic MACs; others still learn; moves onto a full port are refused', () => {
    const t = new MacTable(64, 8);
    t.portLimit = 4;
    for (let i = 0; i < 4; i++) expect(t.learnHL(0x0200, i, 1, 0)).toBe(LEARN_OK);
    expect(t.learnHL(0x0200, 100, 1, 0)).toBe(LEARN_PORT_LIMIT);
    expect(t.learnHL(0x0200, 100, 2, 0)).toBe(LEARN_OK);
    expect(t.learnHL(0x0200, 100, 1, 0)).toBe(LEARN_PORT_LIMIT); // a move onto port 1
    expect(t.lookup(0x020000000064)).toBe(2);
    // statics are not counted
    expect(t.addStatic(B, 1)).toBe(true);
    expect(t.portDynamic[1]).toBe(4);
    // room comes back as entries go (remove, age, move away, flush)
    t.remove(0x020000000000);
    expect(t.learnHL(0x0200, 101, 1, 5)).toBe(LEARN_OK);
    expect(t.learnHL(0x0200, 1, 3, 5)).toBe(LEARN_OK); // moved to port 3
    expect(t.portDynamic[1]).toBe(3);
    expect(t.age(5, 5)).toBe(3); // the three not seen since 0 (two on port 1, one on port 2)
    expect(t.portDynamic[1]).toBe(1);
    expect(t.flushPort(1)).toBe(2); // 101 and the static B
    expect([t.portDynamic[1], t.staticSize]).toEqual([0, 0]);
  });

  it('different seeds place keys differently', () => {
    const a = new MacTable(1024, 1);
    const b = new MacTable(1024, 2);
    let same = 0;
    for (let i = 0; i < 100; i++) if (a.hash(0x0200, i) === b.hash(0x0200, i)) same++;
    expect(same).toBeLessThan(10);
  });

  it('matches a Map under random learn/remove/age/flush with heavy collisions (backward shift keeps chains intact)', () => {
    for (const seed of [1, 2, 3, 99]) {
      const t = new MacTable(48, seed); // 128 slots
      const ref = new Map<number, { port: number; seen: number }>();
      const r = rng(seed);
      let now = 0;
      for (let step = 0; step < 8_000; step++) {
        now += 1;
        const mac = 0x020000000000 + Math.floor(r() * 80) * 0x1000001;
        const op = r();
        if (op < 0.55) {
          const port = 1 + Math.floor(r() * 4);
          const ok = t.learn(mac, port, now);
          if (ref.has(mac) || ref.size < 48) {
            expect(ok).toBe(true);
            ref.set(mac, { port, seen: now });
          } else expect(ok).toBe(false);
        } else if (op < 0.85) {
          expect(t.remove(mac)).toBe(ref.delete(mac));
        } else if (op < 0.95) {
          const maxAge = 50 + Math.floor(r() * 200);
          let n = 0;
          for (const [k, v] of ref) if (now - v.seen >= maxAge) (ref.delete(k), n++);
          expect(t.age(now, maxAge)).toBe(n);
        } else {
          const port = 1 + Math.floor(r() * 4);
          let n = 0;
          for (const [k, v] of ref) if (v.port === port) (ref.delete(k), n++);
          expect(t.flushPort(port)).toBe(n);
        }
        if (step % 97 === 0) {
          expect(t.size).toBe(ref.size);
          for (let port = 1; port <= 4; port++) expect(t.portDynamic[port]).toBe([...ref.values()].filter((v) => v.port === port).length);
          for (let m = 0; m < 80; m++) {
            const mm = 0x020000000000 + m * 0x1000001;
            expect(t.lookup(mm)).toBe(ref.get(mm)?.port ?? -1);
          }
        }
      }
      expect(t.entries().length).toBe(ref.size);
    }
  });
});
