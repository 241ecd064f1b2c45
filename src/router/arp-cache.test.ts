import { describe, expect, it } from 'vitest';
import { ArpCache, type ArpHost } from './arp-cache.js';
import { macHi, macLo } from './ifaces.js';

class Host implements ArpHost {
  requests: Array<[number, number, number]> = [];
  unresolved: Array<[number, number]> = [];
  arpRequest(iface: number, ip: number, mac: number): void {
    this.requests.push([iface, ip, mac]);
  }
  arpUnresolved(h: number, iface: number): void {
    this.unresolved.push([h, iface]);
  }
}

const IP1 = 0xac120002;
const IP2 = 0xc0a80101;
const MAC1 = 0x0242ac120002;

describe('ArpCache', () => {
  it('creates INCOMPLETE entries that queue frames, pushing out the oldest when full', () => {
    const c = new ArpCache({ capacity: 4, queueLen: 2, seed: 1 });
    const host = new Host();
    expect(c.lookup(0, IP1, 0, host)).toBe(-1);
    const e = c.create(0, IP1, 0);
    expect(c.find(0, IP1)).toBe(e);
    expect(c.find(1, IP1)).toBe(-1); // keyed by iface too
    expect(c.lookup(0, IP1, 0, host)).toBe(-1);
    expect(c.enqueue(e, 10)).toBe(-1);
    expect(c.enqueue(e, 11)).toBe(-1);
    expect(c.enqueue(e, 12)).toBe(10);
    expect(c.pending(e)).toBe(2);
    expect(c.rows()).toEqual([{ iface: 0, ip: IP1, mac: 0, state: 'incomplete' }]);
    // a reply confirms it: frames come out in order
    expect(c.confirm(0, IP1, macHi(MAC1), macLo(MAC1), 5, false)).toBe(e);
    expect([c.dequeue(e), c.dequeue(e), c.dequeue(e)]).toEqual([11, 12, -1]);
    expect(c.lookup(0, IP1, 6, host)).toBe(e);
    expect([c.eHi[e], c.eLo[e] >>> 0]).toEqual([0x0242, 0xac120002]);
  });

  it('only creates on confirm when asked (a message addressed to us)', () => {
    const c = new ArpCache({ capacity: 4 });
    expect(c.confirm(0, IP1, macHi(MAC1), macLo(MAC1), 0, false)).toBe(-1);
    expect(c.confirm(0, IP1, macHi(MAC1), macLo(MAC1), 0, true)).toBeGreaterThanOrEqual(0);
    expect(c.size).toBe(1);
  });

  it('retries INCOMPLETE every retransMs and gives up after maxProbes, handing back the queue', () => {
    const c = new ArpCache({ capacity: 4, retransMs: 1000, maxProbes: 3 });
    const host = new Host();
    const e = c.create(2, IP2, 0); // the owner sent request 1
    c.enqueue(e, 7);
    c.tick(999, host);
    expect(host.requests).toEqual([]);
    c.tick(1000, host);
    c.tick(2000, host);
    expect(host.requests).toEqual([
      [2, IP2, 0],
      [2, IP2, 0],
    ]);
    c.tick(3000, host);
    expect(host.unresolved).toEqual([[7, 2]]);
    expect(c.size).toBe(0);
    expect(c.find(2, IP2)).toBe(-1);
  });

  it('REACHABLE → STALE after reachableMs; use of a stale entry probes it unicast; no answer → gone', () => {
    const c = new ArpCache({ capacity: 4, reachableMs: 30_000, retransMs: 1000, maxProbes: 2 });
    const host = new Host();
    c.confirm(0, IP1, macHi(MAC1), macLo(MAC1), 0, true);
    c.tick(29_999, host);
    expect(c.rows()[0].state).toBe('reachable');
    c.tick(30_000, host);
    expect(c.rows()[0].state).toBe('stale');
    expect(c.lookup(0, IP1, 30_001, host)).toBe(c.find(0, IP1));
    expect(host.requests).toEqual([[0, IP1, MAC1]]);
    expect(c.rows()[0].state).toBe('probe');
    c.tick(31_001, host);
    expect(host.requests.length).toBe(2);
    c.tick(32_001, host);
    expect(c.size).toBe(0);
  });

  it('a confirmation during PROBE makes it reachable again', () => {
    const c = new ArpCache({ capacity: 4, reachableMs: 10 });
    const host = new Host();
    c.confirm(0, IP1, macHi(MAC1), macLo(MAC1), 0, true);
    c.lookup(0, IP1, 20, host);
    expect(c.rows()[0].state).toBe('probe');
    c.confirm(0, IP1, macHi(MAC1 + 1), macLo(MAC1 + 1), 21, false);
    expect(c.rows()[0]).toEqual({ iface: 0, ip: IP1, mac: MAC1 + 1, state: 'reachable' });
  });

  it('garbage-collects stale entries unused for gcMs', () => {
    const c = new ArpCache({ capacity: 4, reachableMs: 10, gcMs: 1000 });
    const host = new Host();
    c.confirm(0, IP1, macHi(MAC1), macLo(MAC1), 0, true);
    c.tick(10, host);
    c.tick(999, host);
    expect(c.size).toBe(1);
    c.tick(1000, host);
    expect(c.size).toBe(0);
  });

  it('is bounded: a full table evicts the biggest holder’s oldest entry; removal keeps chains intact (backward shift)', () => {
    const c = new ArpCache({ capacity: 64, seed: 3, ifaceQuota: 64 });
    const host = new Host();
    const ids: number[] = [];
    for (let i = 0; i < 64; i++) ids.push(c.create(i % 3, 0x0a000000 + i, i));
    expect(ids.every((e) => e >= 0)).toBe(true);
    // iface 0 holds the most (22): its oldest (0x0a000000) makes room
    expect(c.create(1, 0x0b000000, 100, host)).toBeGreaterThanOrEqual(0);
    expect(c.size).toBe(64);
    expect(c.counters.full).toBe(1);
    expect(c.find(0, 0x0a000000)).toBe(-1);
    expect(c.find(1, 0x0b000000)).toBeGreaterThanOrEqual(0);
    c.remove(c.find(1, 0x0b000000), null);
    for (let i = 2; i < 64; i += 2) c.remove(c.find(i % 3, 0x0a000000 + i), null);
    for (let i = 1; i < 64; i++) expect(c.find(i % 3, 0x0a000000 + i) >= 0).toBe(i % 2 === 1);
    expect(c.size).toBe(32);
  });

  it('a flood on one iface only churns that iface’s own quota: other ifaces still learn', () => {
    const c = new ArpCache({ capacity: 64, ifaceQuota: 16, seed: 9 });
    const host = new Host();
    // iface 1 learns its neighbour first
    const n1 = c.confirm(1, IP1, macHi(MAC1), macLo(MAC1), 0, true, host);
    expect(n1).toBeGreaterThanOrEqual(0);
    // iface 0 floods: 1000 claims addressed to us from random addresses, plus 1000 INCOMPLETE destinations
    for (let i = 0; i < 1000; i++) c.confirm(0, 0x0a000000 + i, 0x0242, 0x0a000000 + i, 1 + i, true, host);
    for (let i = 0; i < 1000; i++) {
      const e = c.create(0, 0x0a100000 + i, 2000 + i, host);
      expect(e).toBeGreaterThanOrEqual(0);
      c.enqueue(e, 10_000 + i);
    }
    expect(c.ifaceStats(0)).toEqual({ dynamic: 16, static: 0, quota: 16, quotaHits: 2000 - 16 });
    expect(c.counters.quotaEvicted).toBe(2000 - 16);
    expect(c.counters.full).toBe(0);
    // evicted INCOMPLETE entries handed their frames back: every frame is either still queued or handed back
    const queued = c.rows().filter((r) => r.iface === 0 && r.state === 'incomplete').map((r) => c.pending(c.find(0, r.ip)));
    expect(queued.every((n) => n === 1)).toBe(true);
    expect(host.unresolved.length + queued.length).toBe(1000);
    expect(host.unresolved.every(([h, i]) => i === 0 && h >= 10_000)).toBe(true);
    // iface 1 keeps its entry and still learns new ones, up to its own quota
    expect(c.find(1, IP1)).toBe(n1);
    for (let i = 0; i < 15; i++) expect(c.create(1, 0x0b000000 + i, 5000, host)).toBeGreaterThanOrEqual(0);
    expect(c.find(1, IP1)).toBe(n1);
    expect(c.ifaceStats(1)).toEqual({ dynamic: 16, static: 0, quota: 16, quotaHits: 0 });
  });

  it('a full quota evicts a non-REACHABLE entry before reachable ones, least recently confirmed first', () => {
    const c = new ArpCache({ capacity: 64, ifaceQuota: 3 });
    const host = new Host();
    const a = c.confirm(0, 1, 0x0242, 1, 0, true, host);
    const b = c.create(0, 2, 1, host); // INCOMPLETE
    c.confirm(0, 3, 0x0242, 3, 2, true, host);
    c.create(0, 4, 3, host); // evicts b (not reachable), not the older a
    expect(c.find(0, 2)).toBe(-1);
    expect(c.find(0, 1)).toBe(a);
    expect(b).toBeGreaterThanOrEqual(0);
    c.confirm(0, 1, 0x0242, 1, 4, false, host); // a confirmed again: now the newest
    c.confirm(0, 4, 0x0242, 4, 5, false, host);
    c.create(0, 5, 6, host); // all reachable: the least recently confirmed (3) goes
    expect(c.find(0, 3)).toBe(-1);
    expect([c.find(0, 1), c.find(0, 4), c.find(0, 5)].every((e) => e >= 0)).toBe(true);
  });

  it('permanent entries: outside the quota, never evicted, aged, probed or changed by ARP', () => {
    const c = new ArpCache({ capacity: 8, ifaceQuota: 2, staticCapacity: 2, reachableMs: 10, gcMs: 100 });
    const host = new Host();
    const s = c.setStatic(0, IP1, MAC1);
    expect(s).toBeGreaterThanOrEqual(0);
    expect(c.rows()).toEqual([{ iface: 0, ip: IP1, mac: MAC1, state: 'permanent' }]);
    // a flood on iface 0 and a full dynamic table do not touch it
    for (let i = 0; i < 50; i++) c.confirm(i % 4, 0x0a000000 + i, 0x0242, i, i, true, host);
    expect(c.find(0, IP1)).toBe(s);
    expect(c.dynamicSize).toBe(8);
    expect(c.ifaceStats(0)).toMatchObject({ dynamic: 2, static: 1 });
    // a spoofed claim is ignored and counted
    expect(c.confirm(0, IP1, 0x0666, 1, 60, true, host)).toBe(s);
    expect(c.counters.conflicts).toBe(1);
    expect(c.eMac[s]).toBe(MAC1);
    c.tick(1_000_000, host);
    expect(host.requests).toEqual([]);
    expect(c.lookup(0, IP1, 1_000_001, host)).toBe(s);
    expect(host.requests).toEqual([]);
    expect(c.find(0, IP1)).toBe(s);
    // the static area is bounded
    expect(c.setStatic(1, IP1, MAC1)).toBeGreaterThanOrEqual(0);
    expect(c.setStatic(2, IP1, MAC1)).toBe(-1);
    expect(c.counters.staticFull).toBe(1);
    // removal only when it still maps to that MAC
    expect(c.removeStatic(0, IP1, MAC1 + 1)).toBe(false);
    expect(c.removeStatic(0, IP1, MAC1)).toBe(true);
    expect(c.find(0, IP1)).toBe(-1);
    expect(c.staticSize).toBe(1);
  });

  it('setStatic turns a learned or INCOMPLETE entry permanent, keeping its queued frames for the caller', () => {
    const c = new ArpCache({ capacity: 4 });
    const e = c.create(3, IP2, 0);
    c.enqueue(e, 42);
    expect(c.setStatic(3, IP2, MAC1)).toBe(e);
    expect(c.dynamicSize).toBe(0);
    expect(c.staticSize).toBe(1);
    expect(c.ifaceStats(3)).toMatchObject({ dynamic: 0, static: 1 });
    expect(c.dequeue(e)).toBe(42);
    expect(c.lookup(3, IP2, 1, new Host())).toBe(e);
    // flushIface (the iface is gone) removes permanent entries too
    expect(c.flushIface(3, null)).toBe(1);
    expect(c.size).toBe(0);
  });

  it('flushIface removes that iface’s entries only and hands back their frames', () => {
    const c = new ArpCache({ capacity: 8 });
    const host = new Host();
    const a = c.create(1, IP1, 0);
    c.enqueue(a, 3);
    c.create(2, IP1, 0);
    expect(c.flushIface(1, host)).toBe(1);
    expect(host.unresolved).toEqual([[3, 1]]);
    expect(c.rows().map((r) => r.iface)).toEqual([2]);
  });
});
