import { describe, expect, it } from 'vitest';
import { rng } from '../lab/rng.js';
import { ASK, ASK_UNTRACKED, ASK_WAIT, IpTable, NeighbourTable } from './neighbour-table.js';

const ip = (a: number, b: number, c: number, d: number): number => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
const RTR_IP = ip(192, 168, 1, 1);
const EXT_IP = ip(192, 168, 1, 50);
const NET_IP = ip(8, 8, 8, 8);
const RTR = 0x001122330001;
const EXT = 0x001122330050;

describe('NeighbourTable', () => {
  it('learns ip → MAC, lists by address with ages, ignores what can be no neighbour', () => {
    const t = new NeighbourTable(8, 1, 10_000, 500);
    expect(t.macOf(EXT_IP)).toBe(0);
    expect(t.learn(EXT_IP, EXT, 100)).toBe(true);
    expect(t.learn(RTR_IP, RTR, 200)).toBe(true);
    expect(t.macOf(EXT_IP)).toBe(EXT);
    expect(t.list(300)).toEqual([
      { ip: RTR_IP, mac: RTR, state: 'reachable', ageMs: 100 },
      { ip: EXT_IP, mac: EXT, state: 'reachable', ageMs: 200 },
    ]);
    // zero / multicast addresses, zero / group MACs: not learned, not "full" either
    for (const [a, m] of [
      [0, EXT],
      [ip(224, 0, 0, 251), EXT],
      [0xffffffff, EXT],
      [NET_IP, 0],
      [NET_IP, 0xffffffffffff],
      [NET_IP, 0x01005e0000fb],
    ])
      expect(t.learn(a, m, 0)).toBe(true);
    expect(t.size).toBe(2);
    expect(t.learn(EXT_IP, 0x001122339999, 400)).toBe(true); // moved
    expect(t.macOf(EXT_IP)).toBe(0x001122339999);
  });

  it('refresh() updates only an address already known', () => {
    const t = new NeighbourTable(8, 2, 10_000, 500);
    t.refresh(EXT_IP, EXT, 5);
    expect(t.size).toBe(0);
    t.learn(EXT_IP, EXT, 5);
    t.refresh(EXT_IP, 0x001122339999, 9);
    t.refresh(EXT_IP, 0xffffffffffff, 10); // a group MAC: ignored
    expect(t.list(9)).toEqual([{ ip: EXT_IP, mac: 0x001122339999, state: 'reachable', ageMs: 0 }]);
  });

  it('ask() notes a pending request, repeats it at most once per retransMs; an answer makes it reachable', () => {
    const t = new NeighbourTable(8, 3, 10_000, 500);
    expect(t.ask(RTR_IP, 1000)).toBe(ASK);
    expect(t.list(1000)).toEqual([{ ip: RTR_IP, mac: 0, state: 'incomplete', ageMs: 0 }]);
    expect(t.macOf(RTR_IP)).toBe(0);
    expect(t.ask(RTR_IP, 1499)).toBe(ASK_WAIT);
    expect(t.ask(RTR_IP, 1500)).toBe(ASK);
    expect(t.ask(RTR_IP, 1600)).toBe(ASK_WAIT);
    t.learn(RTR_IP, RTR, 1700);
    expect(t.list(1700)[0]).toMatchObject({ mac: RTR, state: 'reachable' });
  });

  it('a full table refuses new addresses and keeps what it has', () => {
    const t = new NeighbourTable(2, 4, 10_000, 500);
    expect(t.learn(ip(10, 0, 0, 1), RTR, 0)).toBe(true);
    expect(t.learn(ip(10, 0, 0, 2), EXT, 0)).toBe(true);
    expect(t.learn(ip(10, 0, 0, 3), EXT, 0)).toBe(false);
    expect(t.ask(ip(10, 0, 0, 4), 0)).toBe(ASK_UNTRACKED);
    expect(t.ask(ip(10, 0, 0, 4), 1)).toBe(ASK_UNTRACKED); // not noted: asked again
    expect(t.learn(ip(10, 0, 0, 2), RTR, 5)).toBe(true); // known ones still update
    expect(t.list(5).map((n) => [n.ip, n.mac])).toEqual([
      [ip(10, 0, 0, 1), RTR],
      [ip(10, 0, 0, 2), RTR],
    ]);
  });

  it('expire(): reachable entries after agingMs, incomplete ones after 3 × retransMs; forget()', () => {
    const t = new NeighbourTable(8, 5, 10_000, 500);
    t.learn(NET_IP, RTR, 0);
    t.ask(EXT_IP, 0);
    t.learn(RTR_IP, RTR, 0);
    expect(t.expire(1499)).toBe(0);
    expect(t.expire(1500)).toBe(1);
    expect(t.list(1500).map((n) => n.ip)).toEqual([NET_IP, RTR_IP]);
    t.learn(NET_IP, RTR, 5000); // confirmed again
    t.forget(RTR_IP);
    t.forget(EXT_IP); // not there: nothing
    expect(t.expire(14_999)).toBe(0);
    expect(t.expire(15_000)).toBe(1);
    expect(t.size).toBe(0);
  });
});

describe('IpTable', () => {
  it('matches a Map under random insert/delete with heavy collisions, and never exceeds its capacity', () => {
    for (const seed of [1, 7, 99]) {
      const r = rng(seed);
      const t = new IpTable(24, seed);
      const ref = new Map<number, number>();
      // few distinct addresses, many operations: long probe chains, many backward shifts
      const addrs = Array.from({ length: 40 }, (_, i) => (i < 20 ? ip(10, 0, 0, i) : ip(10, 0, i, 0)));
      for (let step = 0; step < 5000; step++) {
        const a = addrs[Math.floor(r() * addrs.length)];
        if (r() < 0.55) {
          const s = t.insert(a);
          if (ref.has(a) || ref.size < 24) {
            expect(s).toBeGreaterThanOrEqual(0);
            if (!ref.has(a)) ref.set(a, step);
            t.val[s] = ref.get(a)!;
          } else expect(s).toBe(-1);
        } else {
          const s = t.find(a);
          expect(s >= 0).toBe(ref.has(a));
          if (s >= 0) {
            t.deleteSlot(s);
            ref.delete(a);
          }
        }
        expect(t.size).toBe(ref.size);
      }
      for (const a of addrs) {
        const s = t.find(a);
        expect(s < 0 ? undefined : t.val[s]).toBe(ref.get(a));
      }
      t.clear();
      expect(t.size).toBe(0);
      expect(t.find(addrs[0])).toBe(-1);
    }
  });
});
