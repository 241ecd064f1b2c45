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

  it('is bounded: a full table refuses; removal keeps chains intact (backward shift)', () => {
    const c = new ArpCache({ capacity: 64, seed: 3 });
    const ids: number[] = [];
    for (let i = 0; i < 64; i++) ids.push(c.create(i % 3, 0x0a000000 + i, 0));
    expect(ids.every((e) => e >= 0)).toBe(true);
    expect(c.create(0, 0x0b000000, 0)).toBe(-1);
    for (let i = 0; i < 64; i += 2) c.remove(c.find(i % 3, 0x0a000000 + i), null);
    for (let i = 0; i < 64; i++) expect(c.find(i % 3, 0x0a000000 + i) >= 0).toBe(i % 2 === 1);
    expect(c.size).toBe(32);
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
