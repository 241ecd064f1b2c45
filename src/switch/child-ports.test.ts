import { describe, expect, it } from 'vitest';
import { DropReason } from '../dataplane/counters.js';
import { FramePool } from '../dataplane/pool.js';
import { Port } from '../dataplane/port.js';
import { ChildPortSwitch, lo32, macIs } from './child-ports.js';

/** The smallest subclass: children keyed by a number; every frame from the parent is flooded. */
class Hub extends ChildPortSwitch {
  rebuilds = 0;
  attach(child: Port, key: number): void {
    if (this.attached(child, key, (k) => `key ${k}`)) return;
    const owner = this.keyOwner(key);
    if (owner !== null) throw new Error(`key ${key} is already used by ${owner.name}`);
    this.join(child, key);
  }
  keysNow(): number[] {
    return [...this.keys];
  }
  protected override rebuild(): void {
    this.rebuilds++;
  }
  process(): void {
    const rx = this.parent.rx;
    for (let h = rx.pop(); h >= 0; h = rx.pop()) {
      const len = this.admit(h, true);
      if (len >= 0) this.flood(h, len, -1, false);
    }
  }
}

function rig(floodAlone: number, capacity = 16): { pool: FramePool; parent: Port; kids: Port[]; hub: Hub } {
  const pool = new FramePool({ capacity });
  const parent = new Port(1, 'eth0', 8);
  const kids = [2, 3, 4].map((id) => new Port(id, `c${id}`, 4));
  const hub = new Hub(pool, parent, 8, floodAlone);
  return { pool, parent, kids, hub };
}

const frame = (n = 60): Uint8Array => new Uint8Array(n).map((_, i) => i);

describe('ChildPortSwitch', () => {
  it('keeps children dense in attach order; re-attach with the same key is a no-op; detach frees their frames', () => {
    const { pool, parent, kids, hub } = rig(-1);
    kids.forEach((k, i) => hub.attach(k, 10 + i));
    hub.attach(kids[1], 11);
    expect(hub.rebuilds).toBe(3);
    expect(() => hub.attach(kids[1], 12)).toThrow(/port c3 is already attached with key 11/);
    expect(() => hub.attach(new Port(9, 'c9'), 12)).toThrow(/key 12 is already used by c4/);
    expect(() => hub.attach(parent, 99)).toThrow(/parent port cannot be a child/);
    kids[1].rx.push(pool.fromBytes(frame()));
    kids[1].tx.push(pool.fromBytes(frame()));
    hub.detach(kids[1]);
    hub.detach(kids[1]);
    expect(hub.rebuilds).toBe(4);
    expect(hub.keysNow()).toEqual([10, 12]);
    expect(pool.inUse).toBe(0);
  });

  it('floods n−1 clones and the original to the last port; counts tx per copy', () => {
    const { pool, parent, kids, hub } = rig(-1);
    kids.forEach((k, i) => hub.attach(k, i));
    const h = pool.fromBytes(frame());
    parent.rx.push(h);
    hub.process();
    expect(kids[2].tx.pop()).toBe(h);
    for (const k of kids.slice(0, 2)) expect(pool.toBytes(k.tx.pop())).toEqual(frame());
    expect(hub.counters.snapshot()).toMatchObject({ rxPackets: 1, rxBytes: 60, txPackets: 3, txBytes: 180, drops: 0 });
  });

  it('a flood with nobody at all: floodAlone (or freed uncounted); only down ports: portDown; runt', () => {
    for (const alone of [-1, DropReason.filtered]) {
      const { pool, parent, kids, hub } = rig(alone);
      parent.rx.push(pool.fromBytes(frame()));
      hub.process();
      expect(hub.counters.drops).toBe(alone < 0 ? 0 : 1);
      hub.attach(kids[0], 1);
      kids[0].up = false;
      parent.rx.push(pool.fromBytes(frame()));
      parent.rx.push(pool.fromBytes(frame(13)));
      hub.process();
      expect(hub.counters.snapshot().dropReasons).toEqual({ ...(alone < 0 ? {} : { filtered: 1 }), portDown: 1, runt: 1 });
      expect(pool.inUse).toBe(0);
    }
  });

  it('counts poolEmpty for a clone it cannot make and ringFull for a full ring', () => {
    const { pool, parent, kids, hub } = rig(-1, 2);
    kids.forEach((k, i) => hub.attach(k, i));
    parent.rx.push(pool.fromBytes(frame()));
    hub.process(); // one clone made (pool of 2), one not
    expect(hub.counters.snapshot()).toMatchObject({ txPackets: 2, dropReasons: { poolEmpty: 1 } });
    for (const k of kids) for (let x = k.tx.pop(); x >= 0; x = k.tx.pop()) pool.free(x);
    const big = rig(-1, 32);
    big.hub.attach(big.kids[0], 1);
    for (let i = 0; i < 5; i++) big.parent.rx.push(big.pool.fromBytes(frame()));
    big.hub.process(); // the child's tx ring holds 4
    expect(big.hub.counters.snapshot().dropReasons).toEqual({ ringFull: 1 });
  });

  it('reads MACs from frame bytes as (hi, lo)', () => {
    const b = Uint8Array.from([0, 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]);
    expect(lo32(b, 3) >>> 0).toBe(0x00aabbcc);
    expect(macIs(b, 1, 0x5254, 0x00aabbcc)).toBe(true);
    expect(macIs(b, 1, 0x5254, 0x00aabbcd)).toBe(false);
  });
});
